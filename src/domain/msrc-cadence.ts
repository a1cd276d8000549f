/**
 * How often MSRC is asked while a month is published by the calendar but not stored yet. Engineers wait for the
 * digest on Patch Tuesday morning, so the first two hours from 10:00 Pacific are polled every 30 s; the rest of
 * that Pacific day every 2 minutes (Microsoft is late now and then); any other day at the slow cadence, since a
 * month still missing days later is an outage, not a race. Every poll is a conditional request, so an unchanged
 * answer is a 304 without a body.
 *
 * Failures back off exponentially from the phase's interval, up to a cap; a Retry-After from MSRC is a floor
 * on the wait (itself capped, so a wrong header cannot silence the watcher for days). Nothing here ever asks more
 * often than the burst interval.
 */
import { DateTime } from 'luxon';
import { PATCH_TUESDAY_ZONE, releaseMonth } from './calendar.ts';

export interface MsrcCadence {
  /** The interval in the burst, and the least time between two polls whatever else is said. */
  burstSeconds: number;
  /** How long the burst lasts from the publication instant. */
  burstHours: number;
  /** The interval for the rest of Patch Tuesday (Pacific day). */
  releaseDayMinutes: number;
  /** The interval on any other day. */
  quietMinutes: number;
  /** The longest a failing MSRC is left alone without a Retry-After saying longer. */
  maxBackoffMinutes: number;
  /** The most a Retry-After is honoured. */
  maxRetryAfterHours: number;
}

export const DEFAULT_MSRC_CADENCE: MsrcCadence = {
  burstSeconds: 30,
  burstHours: 2,
  releaseDayMinutes: 2,
  quietMinutes: 5,
  maxBackoffMinutes: 30,
  maxRetryAfterHours: 6,
};

export type MsrcPhase = 'burst' | 'release-day' | 'quiet';

/** What came of the polls up to the last one: how many failed in a row, and what MSRC asked for on the last. */
export interface PollOutcome {
  consecutiveFailures: number;
  retryAfterMs?: number;
}

export function checkCadence(cadence: MsrcCadence): void {
  for (const [name, value] of Object.entries(cadence)) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`MSRC cadence ${name} must be a positive number (got ${value})`);
  }
}

/** Where `at` falls on the Patch Tuesday calendar of its own Pacific month. */
export function msrcPhase(at: DateTime, cadence: MsrcCadence = DEFAULT_MSRC_CADENCE): MsrcPhase {
  const pacific = at.setZone(PATCH_TUESDAY_ZONE);
  const published = releaseMonth(pacific.year, pacific.month).publishedAt;
  const ms = at.toMillis();
  if (ms < published.toMillis()) return 'quiet';
  if (ms < published.plus({ hours: cadence.burstHours }).toMillis()) return 'burst';
  // The end of the Pacific day, taken in the zone so a DST change in it is counted right.
  return ms < published.setZone(PATCH_TUESDAY_ZONE).endOf('day').toMillis() ? 'release-day' : 'quiet';
}

export function phaseIntervalMs(phase: MsrcPhase, cadence: MsrcCadence): number {
  if (phase === 'burst') return cadence.burstSeconds * 1000;
  if (phase === 'release-day') return cadence.releaseDayMinutes * 60_000;
  return cadence.quietMinutes * 60_000;
}

/**
 * When to poll next, given the last poll's instant and what has come of the polls so far. The interval is the
 * one of the phase the last poll fell in; a phase boundary (10:00 on Patch Tuesday) is the caller's to clamp to.
 */
export function nextMsrcPoll(last: DateTime, outcome: PollOutcome, cadence: MsrcCadence = DEFAULT_MSRC_CADENCE): { at: DateTime; phase: MsrcPhase; waitMs: number } {
  checkCadence(cadence);
  if (!last.isValid) throw new RangeError(`last poll is not a valid instant: ${last.invalidExplanation ?? ''}`);
  const failures = outcome.consecutiveFailures;
  if (!Number.isInteger(failures) || failures < 0) throw new RangeError(`consecutiveFailures must be a whole number ≥ 0 (got ${failures})`);
  const phase = msrcPhase(last, cadence);
  const base = phaseIntervalMs(phase, cadence);
  let waitMs = failures === 0 ? base : Math.max(base, Math.min(base * 2 ** Math.min(failures, 30), cadence.maxBackoffMinutes * 60_000));
  const retryAfter = outcome.retryAfterMs;
  if (retryAfter !== undefined && Number.isFinite(retryAfter) && retryAfter > 0) {
    waitMs = Math.max(waitMs, Math.min(retryAfter, cadence.maxRetryAfterHours * 3_600_000));
  }
  waitMs = Math.max(waitMs, cadence.burstSeconds * 1000);
  return { at: last.plus({ milliseconds: waitMs }), phase, waitMs };
}
