// MSRC's supersedence turned around for a device manager that drops superseded updates: for each KB asked about,
// the later KBs that replace it, through chains across releases.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { supersededBy } from '../../src/domain/supersedence.ts';

describe('supersededBy', () => {
  it('inverts `supersedes`, follows chains, and leaves out what nothing replaces', () => {
    const updates = [
      { kb: '5035853', supersedes: ['5034765'] }, // March's cumulative update replaces February's
      { kb: '5036893', supersedes: ['5035853', '5033375'] }, // April's replaces March's (and an older one)
      { kb: '5034439', supersedes: [] },
    ];
    const later = supersededBy(['5034765', 'KB5035853', '5034439'], updates);
    expect(later.get('5034765')).toEqual(['5035853', '5036893']);
    expect(later.get('KB5035853')).toEqual(['5036893']);
    expect(later.has('5034439')).toBe(false);
  });

  it('by property: every answer replaces the KB through some chain, never the KB itself, and a cycle ends', () => {
    const kb = fc.integer({ min: 1, max: 12 }).map(String);
    fc.assert(
      fc.property(fc.array(fc.record({ kb, supersedes: fc.array(kb, { maxLength: 3 }) }), { maxLength: 12 }), fc.array(kb, { maxLength: 5 }), (updates, asked) => {
        const later = supersededBy(asked, updates);
        for (const [old, successors] of later) {
          expect(successors).not.toContain(old);
          expect(new Set(successors).size).toBe(successors.length);
          // The first successor replaces it directly.
          expect(updates.some((u) => u.kb === successors[0] && u.supersedes.includes(old))).toBe(true);
        }
        for (const old of asked) expect(later.has(old)).toBe(updates.some((u) => u.kb !== old && u.supersedes.includes(old)));
      }),
    );
  });
});
