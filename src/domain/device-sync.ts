/**
 * When the daily device sync runs: once a day at the configured local time of the MSP (its engineers read the
 * result over their morning coffee), and at once after an engineer's `/patch sync`. Pure: `now` comes in.
 */
import { DateTime } from 'luxon';

export interface SyncClock {
  /** The last sync that ran (successful or not), ISO. */
  syncedAt?: string | undefined;
  /** An engineer's request not yet served, ISO. */
  requestedAt?: string | undefined;
}

/** `HH:MM`, 24-hour. */
export function isSyncTime(text: string): boolean {
  return /^([01]\d|2[0-3]):[0-5]\d$/.test(text);
}

/**
 * The latest scheduled instant at or before `now`: today's `time` in `zone`, or yesterday's when today's is still
 * ahead. On a spring-forward night a time that does not exist is taken as the first minute after the gap (luxon).
 */
export function lastScheduledSync(now: Date, zone: string, time: string): Date {
  const [hour, minute] = time.split(':').map(Number) as [number, number];
  const local = DateTime.fromJSDate(now, { zone });
  let at = local.set({ hour, minute, second: 0, millisecond: 0 });
  if (at > local) at = local.minus({ days: 1 }).set({ hour, minute, second: 0, millisecond: 0 });
  return at.toJSDate();
}

/** Why a sync should run now, or undefined. A request counts only when it came after the last sync began. */
export function syncDue(clock: SyncClock, now: Date, zone: string, time: string): 'requested' | 'scheduled' | undefined {
  const last = clock.syncedAt === undefined ? undefined : Date.parse(clock.syncedAt);
  if (clock.requestedAt !== undefined && (last === undefined || Date.parse(clock.requestedAt) >= last)) return 'requested';
  // Never synced: the first one runs now rather than waiting up to a day for the configured time.
  if (last === undefined) return 'scheduled';
  return last < lastScheduledSync(now, zone, time).getTime() ? 'scheduled' : undefined;
}
