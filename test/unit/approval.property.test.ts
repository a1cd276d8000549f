// The decision state machine under arbitrary sequences of events, including repeats of the same event (a
// retry, a double click) and events from several engineers at once.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decide, emptyState, formatDecisionTime, standingOf, type DecisionEvent, type ReleaseDecisionState } from '../../src/domain/approval.ts';
import type { Ring } from '../../src/domain/inventory.ts';

const KEYS = ['5099001', '5099002', 'release-notes.browser'];
const NOW = new Date('2024-06-11T19:02:00Z');

const key = fc.constantFrom<string | null>(null, ...KEYS, 'KB-unknown');
const actor = fc.constantFrom('U0PAT', 'U0SAM');
const reason = fc.oneof(fc.constant(''), fc.constant('   '), fc.string({ maxLength: 20 }), fc.constant('x'.repeat(501)));
const clients = fc.oneof(fc.constant<'all'>('all'), fc.uniqueArray(fc.constantFrom('acme', 'globex', 'initech'), { maxLength: 3 }));
// Absent and null both mean every ring; the three rings are what `/patch hold ring:…` sends.
const ring = fc.constantFrom<Ring | null | undefined>(undefined, null, 'msp', 'pilot', 'broad');

const eventBody = fc.oneof(
  fc.record({ type: fc.constant('approve' as const), actor, updateKey: key }),
  fc.record({ type: fc.constant('withdraw' as const), actor, updateKey: key }),
  fc.record({ type: fc.constant('hold' as const), actor, updateKey: key, clients, reason, ring }),
  fc.record({
    type: fc.constant('release_hold' as const),
    actor,
    target: fc.oneof(
      fc.constant({ kind: 'all' as const }),
      fc.constantFrom(...KEYS).map((k) => ({ kind: 'update' as const, updateKey: k })),
      fc.constantFrom('acme', 'globex').map((c) => ({ kind: 'client' as const, clientId: c })),
      fc.constantFrom<Ring>('msp', 'pilot', 'broad').map((r) => ({ kind: 'ring' as const, ring: r })),
    ),
  }),
  fc.record({ type: fc.constant('note' as const), actor, updateKey: fc.constantFrom(...KEYS), text: fc.string({ maxLength: 10 }), tags: fc.constant([]) }),
);

/** Events with ids; some ids repeat, as a retried request would. */
const sequence = fc.array(fc.tuple(eventBody, fc.nat({ max: 30 })), { maxLength: 40 }).map((items) =>
  items.map(([body, n]) => ({ ...body, id: `e${n}` }) as DecisionEvent),
);
const deployed = fc.record({ release: fc.boolean(), updates: fc.dictionary(fc.constantFrom(...KEYS), fc.boolean()) });

function run(events: DecisionEvent[], facts: ReleaseDecisionState['deployed']) {
  let state: ReleaseDecisionState = { ...emptyState('2024-Jun', KEYS), deployed: facts };
  const outcomes = events.map((event) => {
    const t = decide(state, event, NOW);
    if (t.outcome !== 'refused') state = t.state;
    return t;
  });
  return { state, outcomes };
}

describe('decision state machine (properties)', () => {
  it('never applies one event twice, however often it is repeated', () => {
    fc.assert(
      fc.property(sequence, deployed, (events, facts) => {
        const { outcomes } = run(events, facts);
        const appliedIds = events.filter((_, i) => outcomes[i]!.outcome === 'applied').map((e) => e.id);
        expect(new Set(appliedIds).size).toBe(appliedIds.length);
      }),
    );
  });

  it('applies a repeat of the same meaning once: no two approvals in force, no duplicate holds', () => {
    fc.assert(
      fc.property(sequence, deployed, (events, facts) => {
        let state: ReleaseDecisionState = { ...emptyState('2024-Jun', KEYS), deployed: facts };
        for (const event of events) {
          const t = decide(state, event, NOW);
          if (t.outcome === 'refused') continue;
          // Approve twice in a row, as a double click: the second changes nothing and says who approved.
          if (t.outcome === 'applied' && event.type === 'approve') {
            const again = decide(t.state, { ...event, id: `${event.id}-again` }, NOW);
            expect(again.outcome).toBe('noop');
            if (again.outcome === 'noop') expect(again.by).toBeDefined();
          }
          state = t.state;
          const holdKeys = state.holds.map((h) => `${h.updateKey}|${h.clientId}|${h.ring}`);
          expect(new Set(holdKeys).size).toBe(holdKeys.length);
        }
      }),
    );
  });

  it('never places a hold without a reason, and refuses a blank one', () => {
    fc.assert(
      fc.property(sequence, deployed, (events, facts) => {
        const { state, outcomes } = run(events, facts);
        for (const h of state.holds) expect(h.reason.trim()).not.toBe('');
        events.forEach((event, i) => {
          if (event.type === 'hold' && event.reason.trim() === '' && !outcomes[i]!.outcome.startsWith('noop')) {
            expect(outcomes[i]).toMatchObject({ outcome: 'refused', code: 'reason_required' });
          }
        });
      }),
    );
  });

  it('places a hold only where no hold on the same target already stops it, and keeps each hold\u2019s ring', () => {
    fc.assert(
      fc.property(sequence, deployed, (events, facts) => {
        let state: ReleaseDecisionState = { ...emptyState('2024-Jun', KEYS), deployed: facts };
        for (const event of events) {
          const t = decide(state, event, NOW);
          if (t.outcome === 'applied' && event.type === 'hold') {
            const wanted = event.ring ?? null;
            const placed = t.state.holds.filter((h) => !state.holds.some((old) => old.id === h.id));
            expect(placed.length).toBeGreaterThan(0);
            for (const h of placed) {
              expect(h.ring).toBe(wanted);
              const coveredBefore = state.holds.some(
                (old) => old.updateKey === h.updateKey && (old.ring === null || old.ring === h.ring) && (old.clientId === null || old.clientId === h.clientId),
              );
              expect(coveredBefore).toBe(false);
            }
          }
          if (t.outcome !== 'refused') state = t.state;
        }
      }),
    );
  });

  it('a ring hold never stands in the way of an approval, and releasing a ring releases only that ring\u2019s holds', () => {
    fc.assert(
      fc.property(sequence, deployed, fc.constantFrom<Ring>('msp', 'pilot', 'broad'), (events, facts, r) => {
        const { state } = run(events, facts);
        const t = decide(state, { type: 'release_hold', id: 'release-ring', actor: 'U0PAT', target: { kind: 'ring', ring: r } }, NOW);
        const after = t.outcome === 'refused' ? state : t.state;
        expect(after.holds.filter((h) => h.ring === r)).toEqual([]);
        expect(after.holds).toEqual(state.holds.filter((h) => h.ring !== r));
        // With only ring holds left, nothing refuses an approval as held.
        const ringOnly = { ...state, holds: state.holds.filter((h) => h.ring !== null) };
        for (const k of [null, ...KEYS]) {
          const approved = decide(ringOnly, { type: 'approve', id: `a-${k}`, actor: 'U0SAM', updateKey: k }, NOW);
          expect(approved).not.toMatchObject({ outcome: 'refused', code: 'held' });
        }
      }),
    );
  });

  it('refuses to withdraw an approval once anything of it was deployed', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KEYS), (k) => {
        let state = emptyState('2024-Jun', KEYS);
        const approved = decide(state, { type: 'approve', id: 'a', actor: 'U0PAT', updateKey: k }, NOW);
        if (approved.outcome !== 'applied') throw new Error('approve should apply');
        state = { ...approved.state, deployed: { release: false, updates: { [k]: true } } };
        expect(decide(state, { type: 'withdraw', id: 'w', actor: 'U0SAM', updateKey: k }, NOW)).toMatchObject({ outcome: 'refused', code: 'deployed' });
        const notDeployed = { ...approved.state, deployed: { release: false, updates: {} } };
        expect(decide(notDeployed, { type: 'withdraw', id: 'w', actor: 'U0SAM', updateKey: k }, NOW).outcome).toBe('applied');
      }),
    );
  });

  it('refusing to withdraw a release approval names the updates that went out, not the whole release (sandbox walk)', () => {
    const approved = decide(emptyState('2024-Jun', KEYS), { type: 'approve', id: 'a', actor: 'U0PAT', updateKey: null }, NOW);
    if (approved.outcome !== 'applied') throw new Error('approve should apply');
    const [first] = KEYS;
    const partly = { ...approved.state, deployed: { release: false, updates: { [first!]: true } } };
    const refused = decide(partly, { type: 'withdraw', id: 'w', actor: 'U0SAM', updateKey: null }, NOW);
    expect(refused).toMatchObject({ outcome: 'refused', code: 'deployed' });
    expect(refused.message).toMatch(/^Part of release 2024-Jun \(\S+\) has already been deployed/);
  });

  it('an applied approval, and nothing else, starts the rollout of its release (the use-case applies it with the decision)', () => {
    fc.assert(
      fc.property(sequence, deployed, (events, facts) => {
        const { outcomes } = run(events, facts);
        events.forEach((event, i) => {
          const t = outcomes[i]!;
          const starts = t.outcome === 'applied' ? t.effects.filter((e) => e.type === 'start_rollout') : [];
          expect(starts).toEqual(t.outcome === 'applied' && event.type === 'approve' ? [{ type: 'start_rollout', releaseId: '2024-Jun' }] : []);
        });
      }),
    );
  });

  it('the effects of every applied decision include its rerender, and a refusal changes nothing', () => {
    fc.assert(
      fc.property(sequence, deployed, (events, facts) => {
        let state: ReleaseDecisionState = { ...emptyState('2024-Jun', KEYS), deployed: facts };
        for (const event of events) {
          const before = JSON.stringify({ ...state, applied: [...state.applied] });
          const t = decide(state, event, NOW);
          if (t.outcome === 'applied') {
            expect(t.effects.some((e) => e.type === 'rerender')).toBe(true);
            state = t.state;
          } else {
            expect(JSON.stringify({ ...state, applied: [...state.applied] })).toBe(before);
          }
        }
      }),
    );
  });
});

describe('decision state machine (examples)', () => {
  const base = emptyState('2024-Jun', KEYS);

  it('refuses approving an update held for every client, and allows it when held only for some', () => {
    const held = decide(base, { type: 'hold', id: 'h', actor: 'U0PAT', updateKey: '5099001', clients: 'all', reason: 'EMR breaks' }, NOW);
    if (held.outcome !== 'applied') throw new Error('hold should apply');
    expect(decide(held.state, { type: 'approve', id: 'a', actor: 'U0SAM', updateKey: '5099001' }, NOW)).toMatchObject({ outcome: 'refused', code: 'held' });
    const some = decide(base, { type: 'hold', id: 'h', actor: 'U0PAT', updateKey: '5099001', clients: ['acme'], reason: 'EMR breaks' }, NOW);
    if (some.outcome !== 'applied') throw new Error('hold should apply');
    expect(decide(some.state, { type: 'approve', id: 'a', actor: 'U0SAM', updateKey: '5099001' }, NOW).outcome).toBe('applied');
  });

  it('holds one ring, for the release or an update, and releases it by ring', () => {
    const pilot = decide(base, { type: 'hold', id: 'h1', actor: 'U0PAT', updateKey: null, clients: 'all', ring: 'pilot', reason: 'pilot sites closed Friday' }, NOW);
    expect(pilot).toMatchObject({ outcome: 'applied', message: 'release 2024-Jun held in ring pilot for all clients.' });
    if (pilot.outcome !== 'applied') throw new Error('hold should apply');
    expect(pilot.state.holds).toEqual([expect.objectContaining({ updateKey: null, clientId: null, ring: 'pilot', reason: 'pilot sites closed Friday', by: 'U0PAT' })]);
    expect(pilot.effects).toContainEqual(expect.objectContaining({ type: 'decision', kind: 'hold', ring: 'pilot', reason: 'pilot sites closed Friday' }));
    // The same ring again is a no-op that names who held it; another ring, or every ring, is a hold of its own.
    expect(decide(pilot.state, { type: 'hold', id: 'h2', actor: 'U0SAM', updateKey: null, clients: ['acme'], ring: 'pilot', reason: 'again' }, NOW)).toMatchObject({ outcome: 'noop', by: 'U0PAT' });
    const broad = decide(pilot.state, { type: 'hold', id: 'h3', actor: 'U0SAM', updateKey: '5099001', clients: ['acme'], ring: 'broad', reason: 'EMR' }, NOW);
    expect(broad).toMatchObject({ outcome: 'applied', message: 'KB5099001 held in ring broad for acme.' });
    if (broad.outcome !== 'applied') throw new Error('hold should apply');
    // A ring hold leaves approval open: the other rings may still go ahead.
    expect(decide(broad.state, { type: 'approve', id: 'a', actor: 'U0SAM', updateKey: null }, NOW).outcome).toBe('applied');
    const released = decide(broad.state, { type: 'release_hold', id: 'r', actor: 'U0SAM', target: { kind: 'ring', ring: 'pilot' } }, NOW);
    expect(released).toMatchObject({ outcome: 'applied', message: 'Released 1 hold.' });
    if (released.outcome !== 'applied') throw new Error('release should apply');
    expect(released.effects).toContainEqual(expect.objectContaining({ type: 'decision', kind: 'release_hold', ring: 'pilot' }));
    expect(released.state.holds.map((h) => h.ring)).toEqual(['broad']);
    expect(decide(released.state, { type: 'release_hold', id: 'r2', actor: 'U0SAM', target: { kind: 'ring', ring: 'pilot' } }, NOW).outcome).toBe('noop');
  });

  it('refuses a ring msp hold that names clients: the MSP\u2019s own machines belong to no client', () => {
    expect(decide(base, { type: 'hold', id: 'h', actor: 'U0PAT', updateKey: null, clients: ['acme'], ring: 'msp', reason: 'x' }, NOW)).toMatchObject({
      outcome: 'refused',
      code: 'msp_ring_clients',
    });
    expect(decide(base, { type: 'hold', id: 'h', actor: 'U0PAT', updateKey: null, clients: 'all', ring: 'msp', reason: 'x' }, NOW)).toMatchObject({
      outcome: 'applied',
      message: 'release 2024-Jun held in ring msp.',
    });
  });

  it('reports the whole-release approval when an update of it is approved again', () => {
    const rel = decide(base, { type: 'approve', id: 'r', actor: 'U0PAT', updateKey: null }, NOW);
    if (rel.outcome !== 'applied') throw new Error('approve should apply');
    expect(decide(rel.state, { type: 'approve', id: 'u', actor: 'U0SAM', updateKey: '5099002' }, NOW)).toMatchObject({ outcome: 'noop', by: 'U0PAT' });
    expect(standingOf(rel.state, '5099002')).toMatchObject({ viaRelease: true, approval: { by: 'U0PAT' } });
    expect(decide(rel.state, { type: 'withdraw', id: 'w', actor: 'U0SAM', updateKey: '5099002' }, NOW)).toMatchObject({ outcome: 'refused', code: 'covered_by_release' });
  });

  it('says an update whose own approval is withdrawn stays approved when the whole release is too', () => {
    const own = decide(base, { type: 'approve', id: 'u', actor: 'U0SAM', updateKey: '5099002' }, NOW);
    if (own.outcome !== 'applied') throw new Error('approve should apply');
    const rel = decide(own.state, { type: 'approve', id: 'r', actor: 'U0PAT', updateKey: null }, NOW);
    if (rel.outcome !== 'applied') throw new Error('approve should apply');
    const withdrawn = decide(rel.state, { type: 'withdraw', id: 'w', actor: 'U0SAM', updateKey: '5099002' }, NOW);
    expect(withdrawn).toMatchObject({ outcome: 'applied', message: expect.stringContaining('stays approved as part of the whole release') });
    if (withdrawn.outcome !== 'applied') throw new Error('withdraw should apply');
    expect(standingOf(withdrawn.state, '5099002')).toMatchObject({ viaRelease: true });
    expect(decide(own.state, { type: 'withdraw', id: 'w2', actor: 'U0SAM', updateKey: '5099002' }, NOW)).toMatchObject({ outcome: 'applied', message: 'Approval of KB5099002 withdrawn.' });
  });

  it('shows decision times in the reader\u2019s zone, with CST/CDT as people write them', () => {
    expect(formatDecisionTime('2024-06-11T19:02:00Z', 'America/Chicago')).toBe('14:02 CDT');
    expect(formatDecisionTime('2024-02-13T20:02:00Z', 'America/Chicago')).toBe('14:02 CST');
    expect(formatDecisionTime('2024-02-12T20:02:00Z', 'America/Chicago', new Date('2024-02-13T20:00:00Z'))).toBe('Feb 12 14:02 CST');
  });
});
