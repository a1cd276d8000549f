/**
 * The rollout engine's notices (src/jobs/rollout): a window's progress message and summary, the updates a finished
 * ring could not test, and a device that keeps missing its windows. Each carries a snapshot of what it reports (a
 * window's tally, the KB labels), so a re-delivery says what was true then, and a pure renderer turns it into rows.
 */
import { createHash } from 'node:crypto';
import type { OutboxItem } from '../../db/outbox-repo.ts';
import type { Ring } from '../../domain/inventory.ts';
import type { WindowTally } from '../../domain/window-report.ts';
import { escapeMrkdwn } from '../slack/block-kit.ts';
import { progressMessage, summaryMessage } from '../slack/window-blocks.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

/** A window's progress message in one channel (the engineers' or the client's own: the channel is the audience). */
export interface WindowProgressNotice {
  kind: 'window_progress';
  channel: string;
  tally: WindowTally;
  /** The owner's zone, for the times people read. */
  zone: string;
  /** When the tally was taken (minutes left are counted from it). */
  at: string;
  /** The window has closed and its runs have settled: the final edit. */
  closing: boolean;
  /** The first message for this window in this channel is posted; later ones edit it. */
  first: boolean;
}

export type RolloutNotice =
  | WindowProgressNotice
  /** A closed window's summary, replying under its progress message. */
  | { kind: 'window_summary'; channel: string; tally: WindowTally; zone: string }
  /**
   * Updates a finished ring could not test wait for an engineer's skip of `ring` (`msp_os`: they installed on ring
   * msp, but on no MSP machine running the OS of this client's pilots, so they wait at ring msp for them).
   */
  | { kind: 'updates_untested'; releaseId: string; ring: Ring; clientId: string | null; waitsFor: 'own_ring' | 'msp_os'; keys: readonly string[]; kbs: readonly string[] }
  /** A device missed `missed` windows in a row and no longer holds its ring up. */
  | { kind: 'device_flagged'; deviceId: number; deviceName: string; clientId: string | null; windowStart: string; missed: number };

const windowSubject = (window: Pick<WindowTally, 'who' | 'windowStart'>) => subjects.window(window.who, window.windowStart);

/**
 * The key of a progress edit: one per tally (the counts), and one final edit. The engine compares it with the key
 * last queued to skip an edit that would say nothing new.
 */
export function windowEditKey(channel: string, tally: WindowTally, closing: boolean): string {
  const base = `${windowSubject(tally)}:${channel}`;
  return closing ? finalEditKey(base) : `${base}:${createHash('sha1').update(JSON.stringify(tally.counts)).digest('hex').slice(0, 12)}`;
}

const finalEditKey = (base: string) => `${base}:final`;
const summaryKey = (base: string) => `${base}:summary`;

/** The keys of a closed window's last messages in a channel (the final edit, the summary): once both are queued, it is told. */
export function windowDoneKeys(channel: string, window: { who: string; windowStart: string }): string[] {
  const base = `${windowSubject(window)}:${channel}`;
  return [finalEditKey(base), summaryKey(base)];
}

/** The outbox rows of one engine notice; none when the engineers' channel is not configured (for theirs). Pure. */
export function renderRolloutNotice(notice: RolloutNotice, audiences: Audiences): OutboxItem[] {
  switch (notice.kind) {
    case 'window_progress':
      return [windowProgress(notice)];
    case 'window_summary': {
      const subject = windowSubject(notice.tally);
      const payload = { ...summaryMessage(notice.tally, notice.zone), threadSubject: subject };
      return [{ key: summaryKey(`${subject}:${notice.channel}`), channel: notice.channel, action: 'post', subject: subjects.windowSummary(subject), payload }];
    }
    case 'updates_untested':
      return audiences.engineers ? [untestedPost(notice, audiences.engineers.channel, audiences.clientName)] : [];
    case 'device_flagged': {
      if (!audiences.engineers) return [];
      const subject = subjects.deviceFlagged(notice.deviceId, notice.windowStart);
      const owner = notice.clientId === null ? 'our own machines' : escapeMrkdwn(notice.clientId);
      const text = `${escapeMrkdwn(notice.deviceName)} (${owner}) has missed ${notice.missed} maintenance windows in a row: it needs a look.`;
      return [{ key: subject, channel: audiences.engineers.channel, action: 'post', subject, payload: { text } }];
    }
  }
}

function windowProgress(notice: WindowProgressNotice): OutboxItem {
  const { channel, tally, closing } = notice;
  const subject = windowSubject(tally);
  const payload = { ...progressMessage(tally, notice.zone, closing) };
  if (notice.first) return { key: `${subject}:${channel}:post`, channel, action: 'post', subject, payload };
  return { key: windowEditKey(channel, tally, closing), channel, action: 'update', subject, payload };
}

type UntestedNotice = Extract<RolloutNotice, { kind: 'updates_untested' }>;

function untestedPost(notice: UntestedNotice, channel: string, clientName: (clientId: string) => string): OutboxItem {
  const { releaseId, clientId, kbs } = notice;
  const where = clientId === null ? 'our own machines (ring msp)' : `${escapeMrkdwn(clientName(clientId))}'s pilot machines`;
  const thread = { threadSubject: subjects.digest(releaseId) };
  if (notice.waitsFor === 'msp_os') {
    const how = kbs.map((kb) => `\`/patch skip msp ${kb}\``).join(', ');
    const subject = subjects.untested(releaseId, 'msp-os', clientId, notice.keys);
    const text = `${escapeMrkdwn(releaseId)}: ${kbs.join(', ')} installed on our own machines, but on none running the OS of ${where}, so it does not go to them: it waits until it installs on an MSP machine running that OS, or an engineer skips ring msp for it (${how}).`;
    return { key: subject, channel, action: 'post', subject, payload: { text, ...thread } };
  }
  const how = kbs.map((kb) => `\`/patch skip ${notice.ring} ${kb}${clientId ? ` ${clientId}` : ''}\``).join(', ');
  const subject = subjects.untested(releaseId, notice.ring, clientId, notice.keys);
  const text = `${escapeMrkdwn(releaseId)}: ${kbs.join(', ')} did not install on ${where}: none of them runs it, or it failed. It waits there until an engineer skips the ring for it (${how}) or it installs.`;
  return { key: subject, channel, action: 'post', subject, payload: { text, ...thread } };
}
