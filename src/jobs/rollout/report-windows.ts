/**
 * The sweep's last step: progress messages for every window with runs, edited in place (paced so all windows
 * together stay inside chat.update's tier), then a final edit and a summary once a window has closed and its runs
 * have settled. Keys make each message once: a second sweep, or two schedulers, queue nothing new.
 */
import { loadAudiences } from '../../chat/audiences.ts';
import { notify } from '../../chat/notify.ts';
import { windowDoneKeys, windowEditKey, type RolloutNotice } from '../../chat/notices/rollout.ts';
import type { AppDatabase } from '../../db/client.ts';
import { withUnqueuedKeys } from '../../db/outbox-repo.ts';
import { lastWindowMessages, recentWindows, windowOwners, windowTallies, type RecentWindow, type WindowOwner, type WindowRef } from '../../db/rollout-repo.ts';
import { reportFor, unfinished, updateIntervalMs, windowSubject, type WindowTally } from '../../domain/window-report.ts';

/** Returns how many messages were queued. */
export async function reportWindows(db: AppDatabase, now: Date): Promise<number> {
  const windows = await recentWindows(db, now);
  if (windows.length === 0) return 0;
  const [owners, audiences, last] = await Promise.all([windowOwners(db), loadAudiences(db), lastWindowMessages(db, now)]);
  const engineers = audiences.engineers?.channel ?? null;
  const channels = (who: string) => channelsOf(who, owners.get(who), engineers);
  const resting = editedTooRecently(windows, channels, last, now);
  const tallies = await windowTallies(db, now, await untoldWindows(db, windows.filter((w) => !resting.has(w)), channels));
  // A window left untallied is still running: it counts towards the pacing as it would have tallied.
  const active = tallies.filter((t) => unfinished(t) > 0 || Date.parse(t.windowEnd) > now.getTime()).length + resting.size;
  const pacing = { now, interval: updateIntervalMs(active), last };
  const notices = tallies.flatMap((counted) => windowNotices(counted, owners.get(counted.who), engineers, pacing));
  return (await notify(db, notices, now, audiences)).length;
}

/**
 * The windows still to tally: those running, and those ended that some channel has not had both the final edit and
 * the summary of. The sweep runs every 15 s; the day after a night of 1,000 clients' windows, tallying every
 * run of them to queue nothing took seconds. The outbox keys still make each message once.
 */
async function untoldWindows(db: AppDatabase, windows: readonly RecentWindow[], channels: (who: string) => string[]): Promise<WindowRef[]> {
  const owed = await withUnqueuedKeys(db, windows.filter((w) => w.ended), (w) => channels(w.who).flatMap((channel) => windowDoneKeys(channel, w)));
  return [...windows.filter((w) => !w.ended), ...owed].map(({ who, windowStart }) => ({ who, windowStart }));
}

/**
 * Running windows whose progress message, in every channel, was queued less than the pacing interval ago: whatever
 * their tally says, no edit of theirs is due (a window that has not ended only ever gets a paced progress edit,
 * `reportFor`), so they need not be tallied. Mid-window that was every window, every sweep: ~0.4 s at 100,000 runs.
 * The interval is at least the one for the running windows alone (more windows active only lengthens it).
 */
function editedTooRecently(windows: readonly RecentWindow[], channels: (who: string) => string[], last: Pacing['last'], now: Date): Set<RecentWindow> {
  const running = windows.filter((w) => !w.ended);
  const atLeast = updateIntervalMs(running.length);
  return new Set(
    running.filter((w) => {
      const subject = windowSubject(w.who, w.windowStart);
      return channels(w.who).every((channel) => {
        const previous = last.get(`${channel} ${subject}`);
        return previous !== undefined && now.getTime() - previous.at < atLeast;
      });
    }),
  );
}

/** Where a window's messages go: the engineers' channel, and a client's own channel. */
function channelsOf(who: string, owner: WindowOwner | undefined, engineers: string | null): string[] {
  return [...new Set([engineers, who === 'msp' ? null : (owner?.channel ?? null)].filter((c): c is string => !!c))];
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
  const channels = channelsOf(tally.who, owner, engineers);
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
