/**
 * What the release watcher does on a tick, decided from the calendar and what is stored, never from a cron
 * string: the scheduler only ticks, and this says whether the tick polls MSRC, re-reads the stored month, or
 * waits (and until when).
 *
 * The month watched is always the latest one published by `now` (calendar.currentRelease): before this
 * month's Patch Tuesday (10:00 America/Los_Angeles on the second Tuesday) that is last month's, so nothing new
 * is polled for. From the publication instant until the month's document is stored, MSRC is polled at the
 * cadence of msrc-cadence.ts (every 30 s for two hours from 10:00 Pacific, then slower); once stored, it is
 * re-read daily for the rest of the month to catch revisions. A failed fetch backs off (nextMsrcPoll), not
 * retried on every tick, so an MSRC outage is not hammered.
 */
import { DateTime } from 'luxon';
import { currentRelease, nextPatchTuesday } from './calendar.ts';
import { DEFAULT_MSRC_CADENCE, nextMsrcPoll, type MsrcCadence, type PollOutcome } from './msrc-cadence.ts';

export interface WatchSettings extends Omit<MsrcCadence, 'quietMinutes'> {
  /** Between publication and the document being stored on days other than Patch Tuesday, and after a failed read. */
  pollEveryMinutes: number;
  /** How often a stored month is read again for revisions. */
  recheckEveryHours: number;
  /** How often the KEV catalog is refreshed. */
  kevEveryHours: number;
}

export const DEFAULT_WATCH_SETTINGS: WatchSettings = {
  ...DEFAULT_MSRC_CADENCE,
  pollEveryMinutes: DEFAULT_MSRC_CADENCE.quietMinutes,
  recheckEveryHours: 24,
  kevEveryHours: 24,
};

export interface WatchState {
  /** Stored releases and when each was last read successfully (changed or not). */
  stored: ReadonlyArray<{ id: string; checkedAt: Date }>;
  /** The last time a read of a release was attempted, whatever came of it, by release id. */
  lastAttemptAt: ReadonlyMap<string, Date>;
  /** When the KEV catalog was last stored; undefined when never. */
  kevRefreshedAt: Date | undefined;
  /** The last KEV download attempt, whatever came of it. */
  kevLastAttemptAt: Date | undefined;
  /** By release id: failures in a row and MSRC's last Retry-After; absent means the last read went well. */
  outcomes?: ReadonlyMap<string, PollOutcome>;
}

export type WatchPhase = 'before-patch-tuesday' | 'awaiting-document' | 'published';

export type ReleaseAction =
  /** Not stored yet: read MSRC's index and, when the month is listed, its document. */
  | { action: 'poll'; releaseId: string; phase: WatchPhase; reason: string }
  /** Stored: read the document again to catch a revision. */
  | { action: 'reread'; releaseId: string; phase: WatchPhase; reason: string }
  | { action: 'wait'; releaseId: string; phase: WatchPhase; reason: string; until: DateTime };

export interface WatchPlan {
  release: ReleaseAction;
  refreshKev: boolean;
  /** The earliest instant something is due again (for logs and for a scheduler that sleeps). */
  nextCheckAt: DateTime;
}

function checkSettings(settings: WatchSettings): void {
  for (const [name, value] of Object.entries(settings)) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`watch setting ${name} must be a positive number (got ${value})`);
  }
}

const later = (a: DateTime, b: DateTime) => (a.toMillis() >= b.toMillis() ? a : b);
const earlier = (a: DateTime, b: DateTime) => (a.toMillis() <= b.toMillis() ? a : b);
const fromDate = (date: Date) => DateTime.fromJSDate(date, { zone: 'utc' });

export function planWatch(now: DateTime, state: WatchState, settings: WatchSettings = DEFAULT_WATCH_SETTINGS): WatchPlan {
  checkSettings(settings);
  if (!now.isValid) throw new RangeError(`now is not a valid instant: ${now.invalidExplanation ?? ''}`);
  const target = currentRelease(now);
  const poll = { minutes: settings.pollEveryMinutes };
  const nextPublication = nextPatchTuesday(now);
  const stored = state.stored.find((release) => release.id === target.id);
  const lastAttempt = state.lastAttemptAt.get(target.id);
  // The attempt gate: after any attempt (failed ones included), wait the cadence's interval, longer after failures.
  const cadence = { ...settings, quietMinutes: settings.pollEveryMinutes };
  const outcome = state.outcomes?.get(target.id) ?? { consecutiveFailures: 0 };
  const attemptGate = lastAttempt ? nextMsrcPoll(fromDate(lastAttempt), outcome, cadence).at : undefined;

  let release: ReleaseAction;
  if (!stored) {
    const phase: WatchPhase = 'awaiting-document';
    if (!attemptGate || attemptGate <= now) {
      release = { action: 'poll', releaseId: target.id, phase, reason: `${target.id} was published at ${iso(target.publishedAt)} and is not stored yet` };
    } else {
      release = { action: 'wait', releaseId: target.id, phase, reason: `polled ${target.id} at ${iso(fromDate(lastAttempt!))}; next at ${iso(attemptGate)}`, until: attemptGate };
    }
  } else {
    // Before this month's Patch Tuesday the target is last month's release: only its daily re-read happens.
    const pacific = now.setZone(target.publishedAt.zoneName ?? 'America/Los_Angeles');
    const phase: WatchPhase = pacific.month !== target.month || pacific.year !== target.year ? 'before-patch-tuesday' : 'published';
    const recheckDue = fromDate(stored.checkedAt).plus({ hours: settings.recheckEveryHours });
    const due = attemptGate ? later(recheckDue, attemptGate) : recheckDue;
    if (due <= now) {
      release = { action: 'reread', releaseId: target.id, phase, reason: `${target.id} last read at ${iso(fromDate(stored.checkedAt))}` };
    } else {
      release = { action: 'wait', releaseId: target.id, phase, reason: `${target.id} is stored; next re-read at ${iso(due)}`, until: due };
    }
  }
  // The month changes hands at the next publication instant, whatever the wait says.
  if (release.action === 'wait') release.until = earlier(release.until, nextPublication);

  const kevDue = state.kevRefreshedAt ? fromDate(state.kevRefreshedAt).plus({ hours: settings.kevEveryHours }) : now;
  const kevGate = state.kevLastAttemptAt ? fromDate(state.kevLastAttemptAt).plus(poll) : now;
  const kevAt = later(kevDue, kevGate);
  const refreshKev = kevAt <= now;

  const releaseAt = release.action === 'wait' ? release.until : now;
  const nextCheckAt = refreshKev ? now : earlier(releaseAt, kevAt);
  return { release, refreshKev, nextCheckAt };
}

function iso(instant: DateTime): string {
  return instant.toUTC().toISO({ suppressMilliseconds: true }) ?? String(instant.toMillis());
}
