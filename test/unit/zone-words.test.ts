import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { answerLine, windowPhrase } from '../../src/domain/user-dm.ts';
import { formatDecisionTime } from '../../src/domain/approval.ts';
import { mspTime } from '../../src/use-cases/rollout-actions.ts';

// en-US has no abbreviation for Auckland, so luxon's ZZZZ printed "GMT+13" in what end users, champions and
// engineers read (found walking the sandbox as Kiwi Physio's users); these say NZDT, as the window reports do.
const AUCKLAND = 'Pacific/Auckland';
const at = (iso: string) => DateTime.fromISO(iso, { zone: AUCKLAND }).toJSDate();

describe('times an Auckland client reads', () => {
  it('the "save your work" window says NZDT', () => {
    const phrase = windowPhrase(at('2026-12-12T01:00'), at('2026-12-12T05:00'), AUCKLAND, at('2026-12-11T15:00'));
    expect(phrase).toContain('NZDT');
    expect(phrase).not.toContain('GMT');
  });

  it('a deferral and an answer say NZDT', () => {
    expect(answerLine('defer', at('2026-12-11T16:00'), AUCKLAND, at('2026-12-13T01:00'))).toBe('Done: it will not be updated then. It moves to Sunday 13 December at 1:00 AM NZDT.');
    expect(answerLine('ok', at('2026-12-11T16:00'), AUCKLAND)).toContain('4:00 PM NZDT');
    // A DM naming two computers is answered about both.
    expect(answerLine('defer', at('2026-12-11T16:00'), AUCKLAND, at('2026-12-13T01:00'), 2)).toBe('Done: they will not be updated then. They move to Sunday 13 December at 1:00 AM NZDT.');
    expect(answerLine('ok', at('2026-12-11T16:00'), AUCKLAND, undefined, 2)).toBe('Thanks: you said you will leave them on (answered at 4:00 PM NZDT).');
  });

  it('decision and rollout times say NZDT', () => {
    expect(formatDecisionTime(at('2026-12-11T16:00'), AUCKLAND)).toBe('16:00 NZDT');
    expect(mspTime('2026-12-11T03:00:00Z', AUCKLAND)).toBe('Fri 11 Dec 16:00 NZDT');
  });
});
