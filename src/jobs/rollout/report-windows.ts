/**
 * The sweep's last step: progress messages for every window with runs, edited in place (paced so all windows
 * together stay inside chat.update's tier), then a final edit and a summary once a window has closed and its runs
 * have settled. Keys make each message once: a second sweep, or two schedulers, queue nothing new.
 */
import { loadAudiences } from '../../chat/audiences.ts';
import { notify } from '../../chat/notify.ts';
import { windowEditKey, type RolloutNotice } from '../../chat/notices/rollout.ts';
import type { AppDatabase } from '../../db/client.ts';
import { lastWindowMessages, windowOwners, windowTallies, type WindowOwner } from '../../db/rollout-repo.ts';
import { reportFor, unfinished, updateIntervalMs, type WindowTally } from '../../domain/window-report.ts';

/** Returns how many messages were queued. */
export async function reportWindows(db: AppDatabase, now: Date): Promise<number> {
  const tallies = await windowTallies(db, now);
  if (tallies.length === 0) return 0;
  const [owners, audiences, last] = await Promise.all([windowOwners(db), loadAudiences(db), lastWindowMessages(db, now)]);
  const active = tallies.filter((t) => unfinished(t) > 0 || Date.parse(t.windowEnd) > now.getTime()).length;
  const pacing = { now, interval: updateIntervalMs(active), last };
  const notices = tallies.flatMap((counted) => windowNotices(counted, owners.get(counted.who), audiences.engineers?.channel ?? null, pacing));
  return (await notify(db, notices, now, audiences)).length;
}

interface Pacing {
  now: Date;
  /** How long a window's progress message waits between edits. */
  interval: number;
  /** The message last queued per `channel subject`. */
  last: ReadonlyMap<string, { at: number; key: string }>;
}

/** One window's messages, in the engineers' channel and the client's own; an edit that says nothing new is left out. */
function windowNotices(counted: WindowTally, owner: WindowOwner | undefined, engineers: string | null, pacing: Pacing): RolloutNotice[] {
  const tally = owner && counted.who !== 'msp' ? { ...counted, name: owner.name } : counted;
  const zone = owner?.timezone ?? 'UTC';
  const channels = [...new Set([engineers, tally.who === 'msp' ? null : (owner?.channel ?? null)].filter((c): c is string => !!c))];
  const notices: RolloutNotice[] = [];
  for (const report of reportFor(tally, pacing.now)) {
    for (const channel of channels) {
      if (report.type === 'summary') {
        notices.push({ kind: 'window_summary', channel, tally, zone });
        continue;
      }
      const previous = pacing.last.get(`${channel} ${report.subject}`);
      const progress = { kind: 'window_progress' as const, channel, tally, zone, at: pacing.now.toISOString(), closing: report.closing };
      if (!previous) {
        notices.push({ ...progress, first: true });
        continue;
      }
      if (previous.key === windowEditKey(channel, tally, report.closing) || (!report.closing && pacing.now.getTime() - previous.at < pacing.interval)) continue;
      notices.push({ ...progress, first: false });
    }
  }
  return notices;
}
