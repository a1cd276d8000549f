// Issue 13 finding 10: a new sandbox opened on today's date, where last month's release (weeks old, its KEV due
// dates past) was the one waiting for a decision. It starts on the next Patch Tuesday, just after publication.
import { describe, expect, it } from 'vitest';
import { DateTime } from 'luxon';
import { currentRelease } from '../../src/domain/calendar.ts';
import { freshSandboxStart } from '../../src/sandbox/clock.ts';

const current = (d: Date) => currentRelease(DateTime.fromJSDate(d));

describe('a fresh sandbox clock', () => {
  it('starts just after the next Patch Tuesday publication, so the current month is the one just released', () => {
    const start = freshSandboxStart(new Date('2026-12-06T00:42:00Z'));
    // 8 December 2026 is the second Tuesday; Microsoft publishes at 10:00 Pacific (18:00Z).
    expect(start.toISOString()).toBe('2026-12-08T18:05:00.000Z');
    expect(current(start).id).toBe('2026-Dec');
    expect(current(new Date('2026-12-06T00:42:00Z')).id).toBe('2026-Nov');
  });

  it('starts late in a month on the next month’s Patch Tuesday, never on a month weeks old', () => {
    const real = new Date('2027-01-30T12:00:00Z');
    const start = freshSandboxStart(real);
    expect(current(start).id).toBe('2027-Feb');
    expect(start.getTime() - current(start).publishedAt.toMillis()).toBeLessThan(3_600_000);
  });

  it('starts now on Patch Tuesday afternoon: that month is already the fresh one', () => {
    const real = new Date('2026-12-08T21:00:00Z');
    expect(freshSandboxStart(real)).toEqual(real);
    expect(current(real).id).toBe('2026-Dec');
  });
});
