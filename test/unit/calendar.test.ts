import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import {
  currentRelease,
  nextPatchTuesday,
  nextRelease,
  parseReleaseId,
  patchTuesday,
  releaseIdFor,
} from '../../src/domain/calendar.ts';

const yearMonth = fc.record({ year: fc.integer({ min: 2000, max: 2040 }), month: fc.integer({ min: 1, max: 12 }) });

describe('patchTuesday', () => {
  it('falls on the dates Microsoft actually published', () => {
    expect(patchTuesday(2024, 2).toISO()).toBe('2024-02-13T10:00:00.000-08:00');
    expect(patchTuesday(2024, 5).toISO()).toBe('2024-05-14T10:00:00.000-07:00');
    // A month that starts on a Tuesday: the second Tuesday is the 8th, not the 1st.
    expect(patchTuesday(2025, 4).toISODate()).toBe('2025-04-08');
    // A month that starts on a Wednesday: the latest possible second Tuesday.
    expect(patchTuesday(2025, 1).toISODate()).toBe('2025-01-14');
  });

  it('is always the second Tuesday at 10:00 Pacific', () => {
    fc.assert(
      fc.property(yearMonth, ({ year, month }) => {
        const published = patchTuesday(year, month);
        expect(published.zoneName).toBe('America/Los_Angeles');
        expect(published.weekday).toBe(2);
        expect(published.day).toBeGreaterThanOrEqual(8);
        expect(published.day).toBeLessThanOrEqual(14);
        expect(published.month).toBe(month);
        expect(published.year).toBe(year);
        expect([published.hour, published.minute, published.second]).toEqual([10, 0, 0]);
        // Exactly one earlier Tuesday in the month.
        const earlierTuesdays = [...Array(published.day - 1).keys()]
          .map((index) => published.set({ day: index + 1 }))
          .filter((day) => day.weekday === 2);
        expect(earlierTuesdays).toHaveLength(1);
        // 10:00 Pacific is 17:00 UTC in summer time and 18:00 UTC otherwise.
        expect(published.toUTC().hour).toBe(published.isInDST ? 17 : 18);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects months and years that do not exist', () => {
    expect(() => patchTuesday(2024, 13)).toThrow(RangeError);
    expect(() => patchTuesday(2024, 0)).toThrow(RangeError);
    expect(() => patchTuesday(2024.5, 1)).toThrow(RangeError);
  });
});

describe('release ids', () => {
  it("uses MSRC's spelling", () => {
    expect(releaseIdFor(2024, 2)).toBe('2024-Feb');
    expect(releaseIdFor(2023, 12)).toBe('2023-Dec');
    expect(releaseIdFor(2025, 9)).toBe('2025-Sep');
  });

  it('round-trips through parseReleaseId', () => {
    fc.assert(
      fc.property(yearMonth, ({ year, month }) => {
        const parsed = parseReleaseId(releaseIdFor(year, month));
        expect(parsed.ok && [parsed.value.year, parsed.value.month]).toEqual([year, month]);
      }),
    );
  });

  it('accepts any letter case but answers in the canonical spelling', () => {
    const parsed = parseReleaseId(' 2024-FEB ');
    expect(parsed.ok && parsed.value.id).toBe('2024-Feb');
    expect(parsed.ok && parsed.value.publishedAt.toISODate()).toBe('2024-02-13');
  });

  it.each(['2024-02', '2024-Febr', '24-Feb', '2024-Foo', '', '2024 Feb'])('rejects %j', (text) => {
    expect(parseReleaseId(text).ok).toBe(false);
  });
});

describe('currentRelease and nextPatchTuesday', () => {
  it('switches to the new release at the publication instant, not at Pacific midnight', () => {
    const published = DateTime.fromISO('2024-02-13T18:00:00Z');
    expect(currentRelease(published.minus({ milliseconds: 1 })).id).toBe('2024-Jan');
    expect(currentRelease(published).id).toBe('2024-Feb');
    expect(nextPatchTuesday(published.minus({ milliseconds: 1 })).toMillis()).toBe(published.toMillis());
    expect(nextPatchTuesday(published).toISO()).toBe('2024-03-12T10:00:00.000-07:00');
  });

  it('crosses the year boundary', () => {
    expect(currentRelease(DateTime.fromISO('2025-01-02T00:00:00Z')).id).toBe('2024-Dec');
    expect(nextRelease(DateTime.fromISO('2024-12-31T23:00:00-08:00')).id).toBe('2025-Jan');
  });

  it('uses Pacific time to decide the month, whatever zone now is in', () => {
    // 2024-03-01 05:00 in Tokyo is still 2024-02-29 in Los Angeles; the February release is current.
    expect(currentRelease(DateTime.fromISO('2024-03-01T05:00:00+09:00', { setZone: true })).id).toBe('2024-Feb');
  });

  it('current <= now < next, and they are consecutive months', () => {
    const instant = fc.integer({
      min: DateTime.fromISO('2000-02-01T00:00:00Z').toMillis(),
      max: DateTime.fromISO('2040-12-01T00:00:00Z').toMillis(),
    });
    fc.assert(
      fc.property(instant, (millis) => {
        const now = DateTime.fromMillis(millis, { zone: 'UTC' });
        const current = currentRelease(now);
        const next = nextRelease(now);
        expect(current.publishedAt.toMillis()).toBeLessThanOrEqual(millis);
        expect(next.publishedAt.toMillis()).toBeGreaterThan(millis);
        expect(nextPatchTuesday(now).toMillis()).toBe(next.publishedAt.toMillis());
        expect((next.year * 12 + next.month) - (current.year * 12 + current.month)).toBe(1);
      }),
      { numRuns: 300 },
    );
  });
});
