import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nominalMinutes, parseWindowSpec, type WindowRule } from '../../src/domain/window-spec.ts';

function parsed(spec: string): WindowRule {
  const result = parseWindowSpec(spec);
  if (!result.ok) throw new Error(`${spec}: ${result.error}`);
  return result.value;
}

describe('parseWindowSpec', () => {
  it.each([
    ['daily 01:00-05:00', [1, 2, 3, 4, 5, 6, 7], 60, 300, 'daily 01:00-05:00'],
    ['sun 01:00-05:00', [7], 60, 300, 'sun 01:00-05:00'],
    ['mon,wed,fri 22:00-02:00', [1, 3, 5], 1320, 120, 'mon,wed,fri 22:00-02:00'],
    ['mon-fri 22:00-02:00', [1, 2, 3, 4, 5], 1320, 120, 'mon,tue,wed,thu,fri 22:00-02:00'],
    // A range may wrap the week.
    ['fri-mon 23:30-00:30', [1, 5, 6, 7], 1410, 30, 'mon,fri,sat,sun 23:30-00:30'],
    ['Sunday  1:00-5:00', [7], 60, 300, 'sun 01:00-05:00'],
    ['mon, wed 22:00 - 02:00', [1, 3], 1320, 120, 'mon,wed 22:00-02:00'],
    ['wed,mon,wed 22:00-24:00', [1, 3], 1320, 0, 'mon,wed 22:00-00:00'],
    ['sat,sun,mon,tue,wed,thu,fri 01:00-05:00', [1, 2, 3, 4, 5, 6, 7], 60, 300, 'daily 01:00-05:00'],
  ])('reads %j', (spec, days, startMinute, endMinute, canonical) => {
    expect(parsed(spec)).toEqual({ days, startMinute, endMinute, spec: canonical });
  });

  it.each([
    ['dayly 01:00-05:00', '"dayly" is not a day'],
    ['sun 01:00-25:00', '"25:00" is not a time'],
    ['sun 24:00-05:00', '"24:00" is not a time'],
    ['sun 1:0-05:00', '"1:0" is not a time'],
    ['mon-fri-sat 01:00-05:00', 'is not a day range'],
    ['mon-xyz 01:00-05:00', '"mon-xyz" is not a day range'],
    ['monxyz 01:00-05:00', '"monxyz" is not a day'],
    ['daily', 'expected e.g.'],
    ['01:00-05:00', 'expected e.g.'],
    ['', 'expected e.g.'],
  ])('rejects %j', (spec, message) => {
    const result = parseWindowSpec(spec);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error).toContain(message);
  });

  it('gives a canonical spelling that reads back to the same rule', () => {
    const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
    const pad = (n: number) => String(n).padStart(2, '0');
    const spec = fc
      .record({
        days: fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 7 }),
        start: fc.integer({ min: 0, max: 1439 }),
        end: fc.integer({ min: 0, max: 1439 }),
      })
      .map(({ days, start, end }) => ({
        days,
        start,
        end,
        text: `${days.map((day) => DAY_NAMES[day - 1]).join(',')} ${pad(Math.floor(start / 60))}:${pad(start % 60)}-${pad(Math.floor(end / 60))}:${pad(end % 60)}`,
      }));
    fc.assert(
      fc.property(spec, ({ days, start, end, text }) => {
        const rule = parsed(text);
        expect(rule.days).toEqual([...days].sort((a, b) => a - b));
        expect([rule.startMinute, rule.endMinute]).toEqual([start, end]);
        expect(parsed(rule.spec)).toEqual(rule);
      }),
    );
  });
});

describe('nominalMinutes', () => {
  it('counts wall-clock minutes, crossing midnight when the end is not after the start', () => {
    expect(nominalMinutes(parsed('daily 01:00-05:00'))).toBe(240);
    expect(nominalMinutes(parsed('mon 22:00-02:00'))).toBe(240);
    expect(nominalMinutes(parsed('mon 22:00-24:00'))).toBe(120);
    expect(nominalMinutes(parsed('mon 03:00-03:00'))).toBe(24 * 60);
  });
});
