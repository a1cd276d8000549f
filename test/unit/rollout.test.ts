import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { emptyBook, gateKey, isHeld, transition, type Actor, type Book, type Hold, type RolloutEvent } from '../../src/domain/rollout.ts';

const T0 = Date.parse('2024-02-13T18:00:00Z');
const CLIENTS = ['acme', 'bluebird', 'cedar'];

function run(events: RolloutEvent[], start = T0, stepMs = 3_600_000): Book {
  let book = emptyBook('2024-Feb');
  events.forEach((event, i) => {
    const result = transition(book, event, new Date(start + i * stepMs));
    if (result.outcome === 'applied') book = result.book;
  });
  return book;
}

const engineer: Actor = { kind: 'engineer', id: 'U_ENG' };
const champion = (clientId: string): Actor => ({ kind: 'champion', id: `champ-${clientId}`, clientId });

describe('rollout gates, by example', () => {
  it('walks msp -> soak -> promote -> pilot -> champion confirms -> broad', () => {
    let book = emptyBook('2024-Feb');
    const step = (event: RolloutEvent, at: string) => {
      const result = transition(book, event, new Date(at));
      if (result.outcome !== 'applied') throw new Error(`expected applied, got ${JSON.stringify(result)}`);
      book = result.book;
      return result;
    };
    expect(step({ type: 'approved', id: 'a1' }, '2024-02-13T19:00:00Z').effects).toEqual([{ type: 'schedule', ring: 'msp', clientId: null }]);
    step({ type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2024-02-14T07:00:00Z', holds: [] }, '2024-02-14T07:00:00Z');
    step({ type: 'ring_finished', ring: 'msp', clientId: null, soakHours: 24 }, '2024-02-14T09:00:00Z');
    expect(book.gates.msp!.soakUntil).toBe('2024-02-15T09:00:00.000Z');
    // Too early: the soak has not elapsed; nothing due on a tick either.
    const early = transition(book, { type: 'promote', id: 'p0', actor: engineer, clients: CLIENTS }, new Date('2024-02-15T08:59:00Z'));
    expect(early).toMatchObject({ outcome: 'refused', code: 'soak_not_elapsed' });
    expect(transition(book, { type: 'tick' }, new Date('2024-02-15T08:59:00Z')).outcome).toBe('noop');
    expect(step({ type: 'tick' }, '2024-02-15T09:00:00Z').effects).toEqual([{ type: 'offer_promotion', releaseId: '2024-Feb' }]);
    const promoted = step({ type: 'promote', id: 'p1', actor: engineer, clients: CLIENTS }, '2024-02-15T10:00:00Z');
    expect(promoted.effects.filter((e) => e.type === 'schedule')).toHaveLength(3);
    step({ type: 'window_opened', ring: 'pilot', clientId: 'acme', windowStart: '2024-02-16T07:00:00Z', holds: [] }, '2024-02-16T07:00:00Z');
    // A champion of another client may not confirm acme's pilot, and nobody may before it finished.
    expect(transition(book, { type: 'confirm_pilot', id: 'c0', actor: champion('acme'), clientId: 'acme' }, new Date('2024-02-16T08:00:00Z'))).toMatchObject({
      outcome: 'refused',
      code: 'pilot_not_finished',
    });
    step({ type: 'ring_finished', ring: 'pilot', clientId: 'acme' }, '2024-02-16T09:00:00Z');
    expect(transition(book, { type: 'confirm_pilot', id: 'c1', actor: champion('cedar'), clientId: 'acme' }, new Date('2024-02-16T15:00:00Z'))).toMatchObject({
      outcome: 'refused',
      code: 'not_allowed',
    });
    const confirmed = step({ type: 'confirm_pilot', id: 'c2', actor: champion('acme'), clientId: 'acme' }, '2024-02-16T15:00:00Z');
    expect(confirmed.effects).toContainEqual({ type: 'schedule', ring: 'broad', clientId: 'acme' });
    expect(book.gates['broad/acme']?.state).toBe('scheduled');
    expect(book.gates['broad/bluebird']).toBeUndefined();
  });

  it('a second offer before anyone promoted amends the first (one Promote button); after a promotion the next offer is new', () => {
    let book = emptyBook('2024-Feb');
    const step = (event: RolloutEvent, at: string) => {
      const result = transition(book, event, new Date(at));
      if (result.outcome !== 'applied') throw new Error(`expected applied, got ${JSON.stringify(result)}`);
      book = result.book;
      return result.effects.filter((e) => e.type === 'offer_promotion');
    };
    step({ type: 'approved', id: 'a1' }, '2024-02-13T19:00:00Z');
    expect(step({ type: 'tick', mspReady: ['k1'] }, '2024-02-15T09:00:00Z')).toEqual([{ type: 'offer_promotion', releaseId: '2024-Feb', updates: ['k1'] }]);
    // k2 soaked an hour later, nobody pressed Promote yet: the offer on record now lists both.
    expect(step({ type: 'tick', mspReady: ['k1', 'k2'] }, '2024-02-15T10:00:00Z')).toEqual([
      { type: 'offer_promotion', releaseId: '2024-Feb', updates: ['k1', 'k2'], amends: true },
    ]);
    step({ type: 'promote', id: 'p1', actor: engineer, clients: CLIENTS, updates: ['k1', 'k2'] }, '2024-02-15T11:00:00Z');
    // k3 is late: a message of its own, the second round of offers.
    expect(step({ type: 'tick', mspReady: ['k3'] }, '2024-02-16T09:00:00Z')).toEqual([{ type: 'offer_promotion', releaseId: '2024-Feb', updates: ['k3'], round: 1 }]);
  });

  /** Acme confirmed U1 on its pilot and its broad ring finished with it: every gate at rest. */
  const confirmedAcme = (): RolloutEvent[] => [
    { type: 'approved', id: 'a' },
    { type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2024-02-14T07:00:00Z', holds: [] },
    { type: 'ring_finished', ring: 'msp', clientId: null, soakHours: 1 },
    { type: 'promote', id: 'p1', actor: engineer, clients: ['acme'], updates: ['U1'] },
    { type: 'window_opened', ring: 'pilot', clientId: 'acme', windowStart: '2024-02-15T07:00:00Z', holds: [] },
    { type: 'ring_finished', ring: 'pilot', clientId: 'acme', asked: ['U1'] },
    { type: 'confirm_pilot', id: 'c1', actor: engineer, clientId: 'acme' },
    { type: 'window_opened', ring: 'broad', clientId: 'acme', windowStart: '2024-02-16T07:00:00Z', holds: [] },
    { type: 'ring_finished', ring: 'broad', clientId: 'acme' },
  ];
  const at = new Date('2024-02-20T12:00:00Z');

  it('a hold released after its rings finished reopens the resting gates that have eligible work; a gate at work is left alone', () => {
    const book = run(confirmedAcme());
    expect([book.gates.msp!.state, book.gates['pilot/acme']!.state, book.gates['broad/acme']!.state]).toEqual(['promoted', 'confirmed', 'finished']);
    const reopened = transition(book, { type: 'reopen', gates: ['pilot/acme', 'broad/acme', 'pilot/nobody'] }, at);
    if (reopened.outcome !== 'applied') throw new Error(reopened.outcome);
    expect(reopened.book.gates['pilot/acme']!.state).toBe('scheduled');
    expect(reopened.book.gates['broad/acme']!.state).toBe('scheduled');
    expect(reopened.effects).toEqual([
      { type: 'schedule', ring: 'broad', clientId: 'acme' },
      { type: 'schedule', ring: 'pilot', clientId: 'acme' },
    ]);
    // The confirmation acme gave stays: a reopened pilot asks only about what installs now.
    expect(reopened.book.gates['pilot/acme']!.confirmed).toEqual(['U1']);
    expect(transition(reopened.book, { type: 'reopen', gates: ['pilot/acme', 'broad/acme'] }, at).outcome).toBe('noop');
    // A pilot waiting for its champion's answer runs again once answered, as after a later promotion.
    const awaiting = run(confirmedAcme().slice(0, 6));
    const flagged = transition(awaiting, { type: 'reopen', gates: ['pilot/acme'] }, at);
    if (flagged.outcome !== 'applied') throw new Error(flagged.outcome);
    expect(flagged.book.gates['pilot/acme']).toMatchObject({ state: 'awaiting_confirmation', reopen: true });
    expect(flagged.effects).toEqual([]);
  });

  it('a pilot a later promotion reopened, with nothing eligible for its devices, settles back to confirmed (or waiting): no card, no note', () => {
    const promoted = transition(run(confirmedAcme()), { type: 'promote', id: 'p2', actor: engineer, clients: ['acme'], updates: ['U2'] }, at);
    if (promoted.outcome !== 'applied') throw new Error(promoted.outcome);
    expect(promoted.book.gates['pilot/acme']!.state).toBe('scheduled');
    const settled = transition(promoted.book, { type: 'settle', gates: ['pilot/acme'] }, at);
    if (settled.outcome !== 'applied') throw new Error(settled.outcome);
    expect(settled.book.gates['pilot/acme']!.state).toBe('confirmed');
    expect(settled.effects).toEqual([]);
    // Ran and installed nothing new: back to confirmed too, without a "client waits" note.
    const opened = run([...confirmedAcme(), { type: 'promote', id: 'p2', actor: engineer, clients: ['acme'], updates: ['U2'] }, { type: 'window_opened', ring: 'pilot', clientId: 'acme', windowStart: '2024-02-21T07:00:00Z', holds: [] }]);
    const finished = transition(opened, { type: 'ring_finished', ring: 'pilot', clientId: 'acme', asked: [] }, at);
    if (finished.outcome !== 'applied') throw new Error(finished.outcome);
    expect(finished.book.gates['pilot/acme']!.state).toBe('confirmed');
    expect(finished.effects).toEqual([]);
    // A pilot that never confirmed anything, reopened with nothing eligible, waits again without a second note.
    const waiting = run([...confirmedAcme().slice(0, 5), { type: 'ring_finished', ring: 'pilot', clientId: 'acme', asked: [] }, { type: 'promote', id: 'p2', actor: engineer, clients: ['acme'], updates: ['U2'] }]);
    expect(waiting.gates['pilot/acme']!.state).toBe('scheduled');
    const back = transition(waiting, { type: 'settle', gates: ['pilot/acme'] }, at);
    expect(back).toMatchObject({ outcome: 'applied', effects: [] });
    if (back.outcome === 'applied') expect(back.book.gates['pilot/acme']!.state).toBe('waiting');
    // A new gate's first window tells its own story: settle leaves it alone.
    const fresh = run(confirmedAcme().slice(0, 4));
    expect(transition(fresh, { type: 'settle', gates: ['pilot/acme'] }, at).outcome).toBe('noop');
  });

  it('a held gate refuses its window and resumes at the next one once released', () => {
    const book = run([{ type: 'approved', id: 'a' }]);
    const hold: Hold = { scope: 'ring', releaseId: null, updateKey: null, clientId: null, ring: 'msp' };
    const held = transition(book, { type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2024-02-14T07:00:00Z', holds: [hold] }, new Date('2024-02-14T07:00:00Z'));
    expect(held).toMatchObject({ outcome: 'refused', code: 'held' });
    const next = transition(book, { type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2024-02-15T07:00:00Z', holds: [] }, new Date('2024-02-15T07:00:00Z'));
    expect(next).toMatchObject({ outcome: 'applied', effects: [{ type: 'start_runs', windowStart: '2024-02-15T07:00:00Z' }] });
  });

  it('auto-confirms only a client that opted in, after its period', () => {
    const book = run(
      [
        { type: 'approved', id: 'a' },
        { type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2024-02-14T07:00:00Z', holds: [] },
        { type: 'ring_finished', ring: 'msp', clientId: null, soakHours: 0 },
        { type: 'tick' },
        { type: 'promote', id: 'p', actor: engineer, clients: ['acme', 'cedar'] },
        { type: 'window_opened', ring: 'pilot', clientId: 'acme', windowStart: '2024-02-15T07:00:00Z', holds: [] },
        { type: 'window_opened', ring: 'pilot', clientId: 'cedar', windowStart: '2024-02-15T07:00:00Z', holds: [] },
        { type: 'ring_finished', ring: 'pilot', clientId: 'acme', autoConfirmHours: 2 },
        { type: 'ring_finished', ring: 'pilot', clientId: 'cedar' },
      ],
      T0,
      60_000,
    );
    const late = new Date(T0 + 10 * 3_600_000);
    const ticked = transition(book, { type: 'tick' }, late);
    expect(ticked.outcome).toBe('applied');
    if (ticked.outcome !== 'applied') return;
    expect(ticked.book.gates['pilot/acme']?.confirmation?.as).toBe('auto');
    expect(ticked.book.gates['broad/acme']).toBeDefined();
    expect(ticked.book.gates['broad/cedar']).toBeUndefined();
  });

  it('a reported problem holds the client and alerts engineers; only an engineer overrules it', () => {
    const book = run([
      { type: 'approved', id: 'a' },
      { type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2024-02-14T07:00:00Z', holds: [] },
      { type: 'ring_finished', ring: 'msp', clientId: null, soakHours: 0 },
      { type: 'tick' },
      { type: 'promote', id: 'p', actor: engineer, clients: ['acme'] },
      { type: 'window_opened', ring: 'pilot', clientId: 'acme', windowStart: '2024-02-15T07:00:00Z', holds: [] },
      { type: 'ring_finished', ring: 'pilot', clientId: 'acme' },
    ]);
    const reported = transition(book, { type: 'report_problem', id: 'r', actor: champion('acme'), clientId: 'acme', text: 'EMR will not start' }, new Date(T0 + 1e8));
    expect(reported.outcome).toBe('applied');
    if (reported.outcome !== 'applied') return;
    expect(reported.effects.map((e) => e.type)).toEqual(['hold_client', 'alert_engineers', 'audit']);
    expect(transition(reported.book, { type: 'confirm_pilot', id: 'c', actor: champion('acme'), clientId: 'acme' }, new Date(T0 + 2e8)).outcome).toBe('refused');
    expect(transition(reported.book, { type: 'confirm_pilot', id: 'c', actor: engineer, clientId: 'acme' }, new Date(T0 + 2e8)).outcome).toBe('applied');
  });

  it('isHeld reads each hold scope', () => {
    const target = { releaseId: '2024-Feb', ring: 'broad' as const, clientId: 'acme' };
    const h = (over: Partial<Hold>): Hold => ({ scope: 'all', releaseId: null, updateKey: null, clientId: null, ring: null, ...over });
    expect(isHeld([h({})], target)).toBe(true);
    expect(isHeld([h({ releaseId: '2024-Mar' })], target)).toBe(false);
    expect(isHeld([h({ scope: 'client', clientId: 'acme' })], target)).toBe(true);
    expect(isHeld([h({ scope: 'client', clientId: 'cedar' })], target)).toBe(false);
    expect(isHeld([h({ scope: 'ring', ring: 'pilot' })], target)).toBe(false);
    expect(isHeld([h({ scope: 'ring', ring: 'broad' })], target)).toBe(true);
    expect(isHeld([h({ scope: 'update', updateKey: '5034763' })], target)).toBe(false);
    expect(isHeld([h({ scope: 'update', updateKey: '5034763' })], { ...target, updateKey: '5034763' })).toBe(true);
  });

  it('a ring hold on one update drops that update from the ring, and leaves the ring and other rings running', () => {
    const target = { releaseId: '2024-Feb', ring: 'pilot' as const, clientId: 'acme' };
    const ringUpdate: Hold = { scope: 'ring', releaseId: '2024-Feb', updateKey: '5034763', clientId: null, ring: 'pilot' };
    expect(isHeld([ringUpdate], target)).toBe(false);
    expect(isHeld([ringUpdate], { ...target, updateKey: '5034763' })).toBe(true);
    expect(isHeld([ringUpdate], { ...target, updateKey: '5034765' })).toBe(false);
    expect(isHeld([ringUpdate], { ...target, ring: 'broad', updateKey: '5034763' })).toBe(false);
    expect(isHeld([{ ...ringUpdate, clientId: 'cedar' }], { ...target, updateKey: '5034763' })).toBe(false);
  });
});

// Events drawn from everything anyone could send, in any order, with repeated ids and wrong actors.
const clientArb = fc.constantFrom(...CLIENTS);
const ringArb = fc.constantFrom('msp' as const, 'pilot' as const, 'broad' as const);
const idArb = fc.constantFrom('e1', 'e2', 'e3', 'e4', 'e5');
const actorArb: fc.Arbitrary<Actor> = fc.oneof(
  fc.constant<Actor>(engineer),
  clientArb.map((c) => champion(c)),
  fc.constant<Actor>({ kind: 'system' }),
);
const holdArb: fc.Arbitrary<Hold> = fc.record({
  scope: fc.constantFrom('update' as const, 'client' as const, 'ring' as const, 'all' as const),
  releaseId: fc.constantFrom(null, '2024-Feb'),
  updateKey: fc.constantFrom(null, '5034763'),
  clientId: fc.option(clientArb, { nil: null }),
  ring: fc.option(ringArb, { nil: null }),
});
const targetArb = fc.oneof(
  fc.constant({ ring: 'msp' as const, clientId: null }),
  fc.record({ ring: fc.constantFrom('pilot' as const, 'broad' as const), clientId: clientArb }),
  // Nonsense pairs too (msp with a client, pilot without): they must be refused, not crash.
  fc.record({ ring: ringArb, clientId: fc.option(clientArb, { nil: null }) }),
);
const noiseArb: fc.Arbitrary<RolloutEvent> = fc.oneof(
  idArb.map((id) => ({ type: 'approved' as const, id })),
  fc.record({
    type: fc.constant('window_opened' as const),
    target: targetArb,
    windowStart: fc.integer({ min: 0, max: 30 }).map((d) => new Date(T0 + d * 86_400_000).toISOString()),
    holds: fc.array(holdArb, { maxLength: 2 }),
  }).map(({ target, ...rest }) => ({ ...rest, ...target })),
  fc.record({
    type: fc.constant('ring_finished' as const),
    target: targetArb,
    soakHours: fc.constantFrom(0, 24),
    autoConfirmHours: fc.constantFrom(undefined, 0, 48),
  }).map(({ target, ...rest }) => ({ ...rest, ...target })),
  fc.constant({ type: 'tick' as const }),
  fc.record({ type: fc.constant('promote' as const), id: idArb, actor: actorArb, clients: fc.subarray(CLIENTS) }),
  fc.record({ type: fc.constant('confirm_pilot' as const), id: idArb, actor: actorArb, clientId: clientArb }),
  fc.record({ type: fc.constant('report_problem' as const), id: idArb, actor: actorArb, clientId: clientArb, text: fc.constantFrom('', 'broken') }),
);

/**
 * Random events alone rarely get deep enough to test the pilot gate, so sequences are the happy path for every
 * client (each step kept with probability ~0.85) with noise events dropped in anywhere.
 */
function skeleton(): RolloutEvent[] {
  let day = 0;
  const window = (ring: 'msp' | 'pilot' | 'broad', clientId: string | null): RolloutEvent => ({
    type: 'window_opened',
    ring,
    clientId,
    windowStart: new Date(T0 + ++day * 86_400_000).toISOString(),
    holds: [],
  });
  const events: RolloutEvent[] = [
    { type: 'approved', id: 'e1' },
    window('msp', null),
    { type: 'ring_finished', ring: 'msp', clientId: null, soakHours: 0 },
    { type: 'tick' },
    { type: 'promote', id: 'e2', actor: engineer, clients: CLIENTS },
  ];
  for (const c of CLIENTS) {
    events.push(window('pilot', c), { type: 'ring_finished', ring: 'pilot', clientId: c, autoConfirmHours: c === 'cedar' ? 1 : undefined }, { type: 'tick' });
  }
  for (const c of CLIENTS) events.push(window('broad', c), { type: 'ring_finished', ring: 'broad', clientId: c });
  return events;
}
const SKELETON = skeleton();
const eventArb: fc.Arbitrary<RolloutEvent> = noiseArb;
const eventsArb: fc.Arbitrary<RolloutEvent[]> = fc
  .tuple(
    fc.array(fc.integer({ min: 0, max: 99 }), { minLength: SKELETON.length, maxLength: SKELETON.length }),
    fc.array(fc.tuple(fc.nat(), noiseArb), { maxLength: 30 }),
  )
  .map(([keep, noise]) => {
    const events = SKELETON.filter((_, i) => keep[i]! < 85);
    for (const [at, event] of noise) events.splice(at % (events.length + 1), 0, event);
    return events;
  });

describe('rollout gates, by property', () => {
  it('no sequence of events reaches broad for a client without that client confirming its own pilot', () => {
    fc.assert(
      fc.property(eventsArb, fc.integer({ min: 1, max: 100 * 3_600_000 }), (events, stepMs) => {
        let book = emptyBook('2024-Feb');
        const confirmedBy = new Map<string, Actor | 'auto'>();
        events.forEach((event, i) => {
          const result = transition(book, event, new Date(T0 + i * stepMs));
          if (result.outcome !== 'applied') return;
          for (const key of result.changed) {
            const before = book.gates[key];
            const after = result.book.gates[key]!;
            if (after.ring === 'pilot' && after.state === 'confirmed' && before?.state !== 'confirmed') {
              confirmedBy.set(after.clientId!, event.type === 'confirm_pilot' ? event.actor : 'auto');
            }
          }
          book = result.book;
          for (const gate of Object.values(book.gates)) {
            if (gate.ring !== 'broad') continue;
            const pilot = book.gates[gateKey('pilot', gate.clientId)];
            // Once confirmed, a pilot may run again for a later promotion; the confirmation it gave stays.
            expect(pilot?.confirmation).not.toBeNull();
            const who = confirmedBy.get(gate.clientId!);
            expect(who).toBeDefined();
            if (who === 'auto') {
              expect(pilot?.autoConfirmAt).not.toBeNull();
            } else {
              expect(who!.kind === 'engineer' || (who!.kind === 'champion' && who!.clientId === gate.clientId)).toBe(true);
            }
          }
          // Pilot never exists without a promotion (a late approval may send ring msp round again meanwhile).
          if (Object.values(book.gates).some((g) => g.ring === 'pilot')) expect(book.gates.msp?.promotions?.length).toBeGreaterThan(0);
        });
      }),
      { numRuns: 2000 },
    );
  });

  it('no event applies twice: repeating any applied event (right away or later) changes nothing', () => {
    fc.assert(
      fc.property(fc.oneof(eventsArb, fc.array(eventArb, { maxLength: 40 })), fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), (events, picks) => {
        let book = emptyBook('2024-Feb');
        const applied: Array<{ event: RolloutEvent; at: Date }> = [];
        events.forEach((event, i) => {
          const at = new Date(T0 + i * 3_600_000);
          const result = transition(book, event, at);
          if (result.outcome === 'applied') {
            // Every change bumps exactly the versions of the gates it touched.
            for (const [key, gate] of Object.entries(result.book.gates)) {
              expect(gate.version).toBe(result.changed.includes(key) ? (book.gates[key]?.version ?? -1) + 1 : book.gates[key]!.version);
            }
            book = result.book;
            applied.push({ event, at });
            // The same event again at once: nothing more happens.
            const again = transition(book, event, at);
            expect(again.outcome).not.toBe('applied');
          }
        });
        // Replays of people's events later (a Slack retry arriving after other events) are no-ops too.
        for (const pick of picks) {
          const replay = applied[pick % Math.max(1, applied.length)];
          if (!replay || replay.event.type === 'tick' || replay.event.type === 'window_opened' || replay.event.type === 'ring_finished') continue;
          const result = transition(book, replay.event, new Date(T0 + 1e10));
          expect(result.outcome).not.toBe('applied');
        }
      }),
      { numRuns: 2000 },
    );
  });
});
