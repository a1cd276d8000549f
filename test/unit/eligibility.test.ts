import { describe, expect, it } from 'vitest';
import { broadClassesRunning, mspProducts, mspStandings, passedUpdates, pilotAsk, readyToPromote, releaseFacts, type UpdateOutcome } from '../../src/domain/eligibility.ts';
import { emptyBook, transition, type Book, type RolloutEvent } from '../../src/domain/rollout.ts';

const W11 = 'Windows 11 Version 23H2 for x64-based Systems';
const S22 = 'Windows Server 2022';
const products = [
  { id: 'P11', name: W11, family: 'Windows' },
  { id: 'S22', name: S22, family: 'Windows' },
];
const engineer = { kind: 'engineer' as const, id: 'eng' };

function book(events: Array<[RolloutEvent, string]>): Book {
  let b = emptyBook('R');
  for (const [event, at] of events) {
    const t = transition(b, event, new Date(at));
    if (t.outcome !== 'applied') throw new Error(`${event.type}: ${JSON.stringify(t)}`);
    b = t.book;
  }
  return b;
}

const installed = (deviceId: number, ring: 'msp' | 'pilot' | 'broad', clientId: string | null, updateKey: string, at: string): UpdateOutcome => ({
  deviceId,
  ring,
  clientId,
  updateKey,
  outcome: 'installed',
  at,
});

describe('ring msp, per update', () => {
  it('a desktop KB finished on the MSP desktop soaks from then: servers with nothing to install do not hold it up', () => {
    // Finding 4: the desktop KB finished Wednesday night; the Sunday server window is irrelevant to it.
    const b = book([
      [{ type: 'approved', id: 'a' }, '2026-12-08T19:00:00Z'],
      [{ type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2026-12-10T07:00:00Z', holds: [] }, '2026-12-10T07:00:00Z'],
    ]);
    const facts = releaseFacts(b, [installed(1, 'msp', null, 'DESK', '2026-12-10T08:01:28Z')]);
    const input = {
      facts,
      devices: [
        { id: 1, os: W11, flagged: false },
        { id: 2, os: S22, flagged: false },
      ],
      products,
      updates: [
        { key: 'DESK', productIds: ['P11'] },
        { key: 'SRV', productIds: ['S22'] },
      ],
      soakHours: 24,
    };
    const early = mspStandings(input, new Date('2026-12-11T08:00:00Z'));
    expect(early.find((s) => s.key === 'DESK')).toMatchObject({ state: 'soaking', soakUntil: '2026-12-11T08:01:28.000Z', installedOn: [1], needing: [1] });
    // The server KB is still waiting for Sunday; it does not hold the desktop KB back.
    expect(early.find((s) => s.key === 'SRV')).toMatchObject({ state: 'testing', needing: [2] });
    const thursday = mspStandings(input, new Date('2026-12-11T08:02:00Z'));
    expect(readyToPromote(thursday)).toEqual(['DESK']);
  });

  it('passes ring msp per product: the products of its own that the MSP devices it installed on run; a skip passes every product', () => {
    const b = book([[{ type: 'approved', id: 'a' }, '2026-12-08T19:00:00Z']]);
    const updates = [
      { key: 'BOTH', productIds: ['P11', 'S22'] },
      { key: 'SRV', productIds: ['S22'] },
    ];
    const facts = releaseFacts(b, [{ ...installed(1, 'msp', null, 'BOTH', '2026-12-10T08:00:00Z'), os: W11 }]);
    expect(mspProducts(facts, products, updates)).toEqual(new Map([['BOTH', new Set(['P11'])], ['SRV', new Set()]]));
    const skipped = transition(b, { type: 'skip_ring', id: 's', actor: engineer, ring: 'msp', clientId: null, updateKey: 'BOTH', reason: 'no server here' }, new Date('2026-12-10T09:00:00Z'));
    if (skipped.outcome !== 'applied') throw new Error(skipped.outcome);
    expect(mspProducts(releaseFacts(skipped.book, facts.outcomes), products, updates).has('BOTH')).toBe(false);
  });

  it('an update no MSP device runs is untested until an engineer skips ring msp for it', () => {
    const b = book([[{ type: 'approved', id: 'a' }, '2026-12-08T19:00:00Z']]);
    const input = { devices: [{ id: 1, os: W11, flagged: false }], products, updates: [{ key: 'SRV', productIds: ['S22'] }], soakHours: 24 };
    expect(mspStandings({ ...input, facts: releaseFacts(b, []) }, new Date('2026-12-20T00:00:00Z'))[0]!.state).toBe('untested');
    const skipped = transition(b, { type: 'skip_ring', id: 's', actor: engineer, ring: 'msp', clientId: null, updateKey: 'SRV', reason: 'no server of ours' }, new Date('2026-12-09T00:00:00Z'));
    if (skipped.outcome !== 'applied') throw new Error('skip refused');
    expect(skipped.effects).toContainEqual(expect.objectContaining({ type: 'audit', action: 'skip_ring_msp', actor: 'eng' }));
    expect(skipped.effects).toContainEqual(expect.objectContaining({ type: 'ring_skipped', ring: 'msp', updateKey: 'SRV' }));
    expect(mspStandings({ ...input, facts: releaseFacts(skipped.book, []) }, new Date('2026-12-09T00:00:00Z'))[0]!.state).toBe('ready');
    // Only engineers skip a ring.
    expect(transition(b, { type: 'skip_ring', id: 's2', actor: { kind: 'system' }, ring: 'msp', clientId: null, updateKey: 'SRV', reason: 'x' }, new Date()).outcome).toBe('refused');
  });
});

describe('a late approval starts at ring msp', () => {
  it('reopens ring msp after a promotion, and the late update is not passed to any pilot until it installed there', () => {
    const b = book([
      [{ type: 'approved', id: 'a1' }, '2026-12-08T19:00:00Z'],
      [{ type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2026-12-09T07:00:00Z', holds: [] }, '2026-12-09T07:00:00Z'],
      [{ type: 'ring_finished', ring: 'msp', clientId: null, soakUntil: '2026-12-10T09:00:00Z' }, '2026-12-09T09:00:00Z'],
      [{ type: 'promote', id: 'p1', actor: engineer, clients: ['acme'], updates: ['EARLY'] }, '2026-12-10T10:00:00Z'],
    ]);
    const late = transition(b, { type: 'approved', id: 'a2' }, new Date('2026-12-10T11:00:00Z'));
    expect(late).toMatchObject({ outcome: 'applied', effects: [{ type: 'schedule', ring: 'msp', clientId: null }] });
    if (late.outcome !== 'applied') return;
    expect(late.book.gates.msp!.state).toBe('scheduled');
    const facts = releaseFacts(late.book, [installed(1, 'msp', null, 'EARLY', '2026-12-09T08:00:00Z')]);
    expect([...passedUpdates(facts, 'pilot', 'acme', ['EARLY', 'LATE'])]).toEqual(['EARLY']);
    // A second Promote covers only what is ready then, and is recorded with what it covered.
    const second = transition(late.book, { type: 'promote', id: 'p2', actor: engineer, clients: ['acme'], updates: ['EARLY', 'LATE'] }, new Date('2026-12-12T10:00:00Z'));
    if (second.outcome !== 'applied') throw new Error('second promote refused');
    expect(second.book.gates.msp!.promotions!.map((p) => p.updates)).toEqual([['EARLY'], ['LATE']]);
  });
});

describe('tested means installed', () => {
  const promoted = (): Book =>
    book([
      [{ type: 'approved', id: 'a1' }, '2026-12-08T19:00:00Z'],
      [{ type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2026-12-09T07:00:00Z', holds: [] }, '2026-12-09T07:00:00Z'],
      [{ type: 'ring_finished', ring: 'msp', clientId: null, soakUntil: null }, '2026-12-09T09:00:00Z'],
      [{ type: 'promote', id: 'p1', actor: engineer, clients: ['acme'], updates: ['K1', 'K2'] }, '2026-12-10T10:00:00Z'],
      [{ type: 'window_opened', ring: 'pilot', clientId: 'acme', windowStart: '2026-12-11T07:00:00Z', holds: [] }, '2026-12-11T07:00:00Z'],
    ]);

  it('a pilot where nothing installed asks nothing: no card, no awaiting_confirmation, the client waits', () => {
    // Finding 3: "0 succeeded, 2 nothing to install" counted as a pass and was confirmed.
    const b = promoted();
    const asked = pilotAsk(releaseFacts(b, [installed(1, 'msp', null, 'K1', '2026-12-09T08:00:00Z')]), 'acme', []);
    expect(asked).toEqual([]);
    const finished = transition(b, { type: 'ring_finished', ring: 'pilot', clientId: 'acme', asked }, new Date('2026-12-11T09:00:00Z'));
    if (finished.outcome !== 'applied') throw new Error('not applied');
    expect(finished.book.gates['pilot/acme']!.state).toBe('waiting');
    expect(finished.effects.map((e) => e.type)).toEqual(['pilot_waiting']);
    const confirm = transition(finished.book, { type: 'confirm_pilot', id: 'c', actor: engineer, clientId: 'acme' }, new Date('2026-12-11T10:00:00Z'));
    expect(confirm).toMatchObject({ outcome: 'refused', code: 'pilot_not_finished' });
  });

  it('the champion is asked only about updates installed on that client’s pilots, never a held one; the confirmation covers exactly those', () => {
    const b = promoted();
    const facts = releaseFacts(b, [
      installed(1, 'msp', null, 'K1', '2026-12-09T08:00:00Z'),
      installed(1, 'msp', null, 'K2', '2026-12-09T08:00:00Z'),
      installed(7, 'pilot', 'acme', 'K1', '2026-12-11T08:00:00Z'),
      installed(7, 'pilot', 'acme', 'K2', '2026-12-11T08:00:00Z'),
      installed(8, 'pilot', 'other', 'K1', '2026-12-11T08:00:00Z'),
    ]);
    const holds = [{ scope: 'update' as const, releaseId: 'R', updateKey: 'K2', clientId: 'acme', ring: null }];
    const asked = pilotAsk(facts, 'acme', holds);
    expect(asked).toEqual(['K1']);
    const finished = transition(b, { type: 'ring_finished', ring: 'pilot', clientId: 'acme', asked }, new Date('2026-12-11T09:00:00Z'));
    if (finished.outcome !== 'applied') throw new Error('not applied');
    expect(finished.effects).toContainEqual({ type: 'ask_confirmation', clientId: 'acme', autoConfirmAt: null, updates: ['K1'] });
    const confirmed = transition(finished.book, { type: 'confirm_pilot', id: 'c', actor: { kind: 'champion', id: 'ch', clientId: 'acme' }, clientId: 'acme' }, new Date('2026-12-11T15:00:00Z'));
    if (confirmed.outcome !== 'applied') throw new Error('not applied');
    expect(confirmed.book.gates['pilot/acme']!.confirmation!.updates).toEqual(['K1']);
    const after = releaseFacts(confirmed.book, facts.outcomes);
    expect([...passedUpdates(after, 'broad', 'acme', ['K1', 'K2'])]).toEqual(['K1']);
  });
});

describe('the broad machines a pilot confirmation starts', () => {
  const products = [
    { id: 'p24', name: 'Windows 11 Version 24H2 for x64-based Systems', family: 'Windows' },
    { id: 'p23', name: 'Windows 11 Version 23H2 for x64-based Systems', family: 'Windows' },
    { id: 'srv', name: 'Windows Server 2022', family: 'Windows' },
  ];
  const updates = [
    { key: 'K24', productIds: ['p24'] },
    { key: 'K23', productIds: ['p23', 'srv'] },
  ];
  const groups = [
    { deviceClass: 'desktop', os: 'Windows 11 Version 23H2 for x64-based Systems', count: 2, users: true },
    { deviceClass: 'desktop', os: null, count: 1, users: false },
    { deviceClass: 'server', os: 'Windows Server 2022', count: 1, users: false },
  ];

  it('counts none when the confirmed update runs on none of them (the sandbox walk: 24H2 pilots, 23H2 and server broad)', () => {
    expect(broadClassesRunning(groups, { products, updates }, ['K24'])).toEqual([]);
  });

  it('counts per class only the machines that run a confirmed update; a machine with no OS runs nothing', () => {
    expect(broadClassesRunning(groups, { products, updates }, ['K23'])).toEqual([
      { deviceClass: 'desktop', count: 2, users: true },
      { deviceClass: 'server', count: 1, users: false },
    ]);
    const with24 = [...groups, { deviceClass: 'desktop', os: 'Windows 11 Version 24H2 for x64-based Systems', count: 3, users: false }];
    expect(broadClassesRunning(with24, { products, updates }, ['K24'])).toEqual([{ deviceClass: 'desktop', count: 3, users: false }]);
  });

  it('counts every machine when the confirmation named no update', () => {
    expect(broadClassesRunning(groups, { products, updates }, [])).toEqual([
      { deviceClass: 'desktop', count: 3, users: true },
      { deviceClass: 'server', count: 1, users: false },
    ]);
  });
});
