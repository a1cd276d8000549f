import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { patchTuesday } from '../../src/domain/calendar.ts';
import { DEFAULT_MSRC_CADENCE, msrcPhase, nextMsrcPoll } from '../../src/domain/msrc-cadence.ts';

const LA = 'America/Los_Angeles';

/** Los Angeles wall time of an instant, read with Intl (not luxon), as the oracle for the phase. */
function laWall(ms: number): { date: string; hour: number; minute: number } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone: LA, year: 'numeric', month: '2-digit', day: '2-digit', hour: 'numeric', minute: 'numeric', hourCycle: 'h23' })
      .formatToParts(new Date(ms))
      .map((part) => [part.type, part.value]),
  );
  return { date: `${parts.year}-${parts.month}-${parts.day}`, hour: Number(parts.hour), minute: Number(parts.minute) };
}

const yearMonth = fc.record({ year: fc.integer({ min: 2000, max: 2099 }), month: fc.integer({ min: 1, max: 12 }) });
// March and November carry the US DST changes (a March Patch Tuesday falls before or after the change by year).
const dstMonth = fc.record({ year: fc.integer({ min: 2000, max: 2099 }), month: fc.constantFrom(3, 11) });
const nearPatchTuesday = (months: fc.Arbitrary<{ year: number; month: number }>) =>
  fc.tuple(months, fc.integer({ min: -36 * 3600, max: 36 * 3600 })).map(([{ year, month }, seconds]) => patchTuesday(year, month).plus({ seconds }).toUTC());
const anyInstant = fc.oneof(
  nearPatchTuesday(yearMonth),
  nearPatchTuesday(dstMonth),
  fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true }).map((d) => DateTime.fromJSDate(d, { zone: 'utc' })),
);
const outcome = fc.record({
  consecutiveFailures: fc.integer({ min: 0, max: 40 }),
  retryAfterMs: fc.option(fc.integer({ min: -1000, max: 10 * 86_400_000 }), { nil: undefined }),
});

describe('nextMsrcPoll', () => {
  it('never asks more often than every 30 s, whatever the instant, failures or Retry-After', () => {
    fc.assert(
      fc.property(anyInstant, outcome, (last, result) => {
        const next = nextMsrcPoll(last, result);
        expect(next.at.toMillis() - last.toMillis()).toBeGreaterThanOrEqual(30_000);
        expect(next.waitMs).toBe(next.at.toMillis() - last.toMillis());
      }),
      { numRuns: 2000 },
    );
  });

  it('in the two hours from 10:00 Los Angeles time on Patch Tuesday, a healthy MSRC is asked every 30 s (DST both ways)', () => {
    fc.assert(
      fc.property(fc.oneof(yearMonth, dstMonth), fc.integer({ min: 0, max: 2 * 3600 - 1 }), ({ year, month }, seconds) => {
        const last = patchTuesday(year, month).plus({ seconds }).toUTC();
        const wall = laWall(last.toMillis());
        expect(wall.hour === 10 || wall.hour === 11).toBe(true);
        expect(nextMsrcPoll(last, { consecutiveFailures: 0 })).toMatchObject({ phase: 'burst', waitMs: 30_000 });
      }),
      { numRuns: 1000 },
    );
  });

  it('the phase follows Los Angeles wall time: 10:00-12:00 burst, the rest of that day 2 min, other days quiet', () => {
    fc.assert(
      fc.property(anyInstant, (at) => {
        const wall = laWall(at.toMillis());
        const pt = patchTuesday(Number(wall.date.slice(0, 4)), Number(wall.date.slice(5, 7)));
        const isPatchTuesday = laWall(pt.toMillis()).date === wall.date;
        const expected = !isPatchTuesday || wall.hour < 10 ? 'quiet' : wall.hour < 12 ? 'burst' : 'release-day';
        expect(msrcPhase(at)).toBe(expected);
        const interval = { quiet: 5 * 60_000, burst: 30_000, 'release-day': 2 * 60_000 }[expected];
        expect(nextMsrcPoll(at, { consecutiveFailures: 0 }).waitMs).toBe(interval);
      }),
      { numRuns: 3000 },
    );
  });

  it('backs off on failures, capped at 30 min, and a Retry-After is a floor capped at 6 h', () => {
    const burst = patchTuesday(2024, 3).plus({ minutes: 5 }).toUTC();
    const waits = [0, 1, 2, 3, 6, 12].map((consecutiveFailures) => nextMsrcPoll(burst, { consecutiveFailures }).waitMs);
    expect(waits).toEqual([30_000, 60_000, 120_000, 240_000, 1_800_000, 1_800_000]);
    expect(nextMsrcPoll(burst, { consecutiveFailures: 1, retryAfterMs: 600_000 }).waitMs).toBe(600_000);
    expect(nextMsrcPoll(burst, { consecutiveFailures: 1, retryAfterMs: 5_000 }).waitMs).toBe(60_000);
    expect(nextMsrcPoll(burst, { consecutiveFailures: 1, retryAfterMs: 30 * 86_400_000 }).waitMs).toBe(6 * 3_600_000);
    fc.assert(
      fc.property(anyInstant, outcome, (last, result) => {
        const { waitMs } = nextMsrcPoll(last, result);
        const healthy = nextMsrcPoll(last, { consecutiveFailures: 0 }).waitMs;
        expect(waitMs).toBeGreaterThanOrEqual(healthy);
        if (result.retryAfterMs !== undefined && result.retryAfterMs > 0) expect(waitMs).toBeGreaterThanOrEqual(Math.min(result.retryAfterMs, 6 * 3_600_000));
        expect(waitMs).toBeLessThanOrEqual(Math.max(healthy, 30 * 60_000, Math.min(result.retryAfterMs ?? 0, 6 * 3_600_000)));
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses nonsense by name', () => {
    const at = DateTime.fromISO('2024-03-12T17:00:00Z');
    expect(() => nextMsrcPoll(at, { consecutiveFailures: -1 })).toThrow(/consecutiveFailures/);
    expect(() => nextMsrcPoll(at, { consecutiveFailures: 0 }, { ...DEFAULT_MSRC_CADENCE, burstSeconds: 0 })).toThrow(/burstSeconds/);
    expect(() => nextMsrcPoll(DateTime.invalid('nope'), { consecutiveFailures: 0 })).toThrow(/last poll/);
  });
});
