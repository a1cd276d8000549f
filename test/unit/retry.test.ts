import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { retryTarget } from '../../src/domain/retry.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { windowContaining } from '../../src/domain/windows.ts';

const rule = (() => {
  const parsed = parseWindowSpec('daily 01:00-05:00');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
})();
const zone = 'America/Chicago';
const at = (iso: string) => DateTime.fromISO(iso, { zone: 'utc' });

describe('retryTarget', () => {
  const window = windowContaining(rule, zone, at('2024-02-14T08:00:00Z'))!;
  it('starts again in its own window while an install still fits', () => {
    expect(retryTarget({ window, rule, zone, now: at('2024-02-14T09:59:00Z'), budgetMinutes: 60 })).toEqual({ kind: 'again' });
  });
  it('goes to the next window when less than the budget is left, never into the short rest of this one', () => {
    const target = retryTarget({ window, rule, zone, now: at('2024-02-14T10:01:00Z'), budgetMinutes: 60 });
    expect(target?.kind === 'window' && target.window.start.toUTC().toISO()).toBe('2024-02-15T07:00:00.000Z');
  });
  it('passes over a spring-forward night too short for the budget', () => {
    const before = windowContaining(rule, zone, at('2024-03-09T08:00:00Z'))!;
    const target = retryTarget({ window: before, rule, zone, now: at('2024-03-09T12:00:00Z'), budgetMinutes: 200 });
    // 10 March 01:00-05:00 CST->CDT is 3 real hours (180 min): the retry waits for the 11th.
    expect(target?.kind === 'window' && target.window.start.toISODate()).toBe('2024-03-11');
  });
});
