/**
 * The model's invariant checks on hand-made histories: each flags the history it exists to catch and passes the
 * same history done right. Without this a check that can never fire would make the model pass for nothing.
 */
import { describe, expect, it } from 'vitest';
import type { LedgerEntry } from '../../src/adapters/deployers/simulated.ts';
import { cardUpdates, checkI1, checkI2, checkI3, checkI4, checkI5, checkI6, checkI7, type Facts } from '../support/rollout-model/invariants.ts';
import { WIN11, WIN10 } from '../support/rollout-model/world.ts';

const at = (iso: string) => Date.parse(iso);
const device = (name: string, clientId: string | null, ring: 'msp' | 'pilot' | 'broad', extra: Partial<Facts['devices'] extends Map<string, infer D> ? D : never> = {}) =>
  [name, { id: name.length, name, clientId, ring, os: WIN11, userEmail: null, spec: 'daily 01:00-05:00', zone: 'America/Chicago', noticeHours: 4, retiredAt: null, ...extra }] as const;
const install = (deviceName: string, iso: string, updates: string[], fails = false): LedgerEntry => ({ kind: 'install', device: deviceName, key: `${deviceName}-${iso}`, at: iso, worker: 't', updates, fails });

function facts(partial: Partial<Facts>): Facts {
  return {
    ledger: [],
    devices: new Map([device('MSP-1', null, 'msp'), device('P-1', 'c', 'pilot'), device('B-1', 'c', 'broad', { userEmail: 'u@c.example', id: 99 })]),
    holds: [],
    confirmations: [],
    skips: [],
    dms: [],
    cards: [],
    statusText: '',
    approvals: [],
    ...partial,
  };
}

// 01:00-05:00 Chicago on 19 Feb 2024 is 07:00Z-11:00Z.
const NIGHT1 = '2024-02-19T07:30:00.000Z';
const NIGHT2 = '2024-02-20T07:30:00.000Z';
const NIGHT3 = '2024-02-21T07:30:00.000Z';

describe('the rollout model invariants', () => {
  it('I1 flags a pilot install before ring msp installed the update, or only on a machine with another OS', () => {
    expect(checkI1(facts({ ledger: [install('P-1', NIGHT1, ['1'])] }))).toHaveLength(1);
    expect(checkI1(facts({ ledger: [install('MSP-1', NIGHT1, ['1'], true), install('P-1', NIGHT2, ['1'])] }))).toHaveLength(1);
    const otherOs = facts({ ledger: [install('MSP-1', NIGHT1, ['1']), install('P-1', NIGHT2, ['1'])] });
    otherOs.devices.set('P-1', { ...otherOs.devices.get('P-1')!, os: WIN10 });
    expect(checkI1(otherOs)[0]?.text).toMatch(/no MSP machine running/);
    expect(checkI1(facts({ ledger: [install('MSP-1', NIGHT1, ['1']), install('P-1', NIGHT2, ['1'])] }))).toEqual([]);
    expect(checkI1(facts({ ledger: [install('P-1', NIGHT2, ['1'])], skips: [{ at: at(NIGHT1), text: 'decision.skip_ring update:2024-Feb:1 {"ring": "msp"}' }] }))).toEqual([]);
  });

  it('I2 flags a broad install without its pilot having installed it, or with a confirmation older than the pilot install', () => {
    const base = [install('MSP-1', NIGHT1, ['1'])];
    expect(checkI2(facts({ ledger: [...base, install('B-1', NIGHT2, ['1'])], confirmations: [{ clientId: 'c', at: at(NIGHT1) }] }))).toHaveLength(1);
    const early = facts({ ledger: [...base, install('P-1', NIGHT2, ['1']), install('B-1', NIGHT3, ['1'])], confirmations: [{ clientId: 'c', at: at(NIGHT1) }] });
    expect(checkI2(early)[0]?.text).toMatch(/confirmed nothing/);
    const right = facts({ ledger: [...base, install('P-1', NIGHT2, ['1']), install('B-1', NIGHT3, ['1'])], confirmations: [{ clientId: 'c', at: at('2024-02-20T15:00:00Z') }] });
    expect(checkI2(right)).toEqual([]);
  });

  it('I3 flags work on a user\u2019s device warned too late or not at all, and any work in a window the user deferred', () => {
    const window = '2024-02-20T07:00:00.000Z';
    const dm = (sentIso: string, answer: string | null = null, answeredIso: string | null = null) => ({
      email: 'u@c.example',
      devices: [{ deviceId: 99, windowStart: window }],
      sentAt: at(sentIso),
      answer,
      answeredAt: answeredIso ? at(answeredIso) : null,
    });
    const work = [install('B-1', NIGHT2, ['1'])];
    expect(checkI3(facts({ ledger: work }))).toHaveLength(1);
    expect(checkI3(facts({ ledger: work, dms: [dm('2024-02-20T04:00:00Z')] }))).toHaveLength(1); // 3 h before
    expect(checkI3(facts({ ledger: work, dms: [dm('2024-02-19T21:00:00Z')] }))).toEqual([]); // 15:00 the day before
    expect(checkI3(facts({ ledger: work, dms: [dm('2024-02-20T05:00:00Z', 'ok', '2024-02-20T05:10:00Z')] }))).toEqual([]);
    expect(checkI3(facts({ ledger: work, dms: [dm('2024-02-19T21:00:00Z', 'defer', '2024-02-19T22:00:00Z')] }))[0]?.text).toMatch(/deferred/);
  });

  it('I4 flags an install under a hold, work outside the window, and work on a retired device', () => {
    const hold = { scope: 'ring', releaseId: '2024-Feb', updateKey: '1', clientId: null, ring: 'pilot', placedAt: at(NIGHT1), releasedAt: null };
    expect(checkI4(facts({ ledger: [install('P-1', NIGHT2, ['1'])], holds: [hold] }))).toHaveLength(1);
    expect(checkI4(facts({ ledger: [install('P-1', NIGHT2, ['2'])], holds: [hold] }))).toEqual([]);
    expect(checkI4(facts({ ledger: [install('B-1', NIGHT2, ['1'])], holds: [hold] }))).toEqual([]);
    expect(checkI4(facts({ ledger: [install('P-1', NIGHT2, ['1'])], holds: [{ ...hold, releasedAt: at(NIGHT1) + 60_000 }] }))).toEqual([]);
    expect(checkI4(facts({ ledger: [install('P-1', '2024-02-20T12:00:00.000Z', ['2'])] }))[0]?.text).toMatch(/outside its window/);
    const retired = facts({ ledger: [install('P-1', NIGHT2, ['2'])] });
    retired.devices.set('P-1', { ...retired.devices.get('P-1')!, retiredAt: at(NIGHT1) });
    expect(checkI4(retired)[0]?.text).toMatch(/retired/);
  });

  it('I5 reads the "what was installed" list of a card and flags a card listing more, or any card with nothing installed', () => {
    const card = (kbs: string[]) => ({
      body: [
        { type: 'TextBlock', text: 'Your test machines', weight: 'Bolder' },
        { type: 'FactSet', facts: [{ title: 'P-1', value: 'Updated' }] },
        { type: 'TextBlock', text: 'What was installed', weight: 'Bolder' },
        ...kbs.map((kb) => ({ type: 'TextBlock', text: `• Cumulative update (KB${kb}).` })),
        { type: 'TextBlock', text: 'Notes from your IT team', weight: 'Bolder' },
        { type: 'TextBlock', text: '• KB9999999 breaks nothing' },
      ],
    });
    expect([...cardUpdates(card(['1000001', '1000002']))].sort()).toEqual(['1000001', '1000002']);
    const cards = (kbs: string[]) => [{ clientId: 'c', at: at(NIGHT3), action: 'post', card: card(kbs) }];
    const ledger = [install('P-1', NIGHT2, ['1000001']), install('P-1', NIGHT1, ['1000002'], true)];
    expect(checkI5(facts({ ledger, cards: cards(['1000001']) }))).toEqual([]);
    expect(checkI5(facts({ ledger, cards: cards(['1000001', '1000002']) }))).toHaveLength(1);
    expect(checkI5(facts({ ledger: [], cards: cards([]) }))[0]?.text).toMatch(/nothing installed/);
  });

  it('I5: a card after a confirmation asks only about what installed since; asking again about the confirmed update, or leaving the new one out, is flagged', () => {
    const card = (kbs: string[]) => ({ body: [{ type: 'TextBlock', text: 'What was installed', weight: 'Bolder' }, ...kbs.map((kb) => ({ type: 'TextBlock', text: `• Update (KB${kb}).` }))] });
    const ledger = [install('P-1', NIGHT1, ['1000001']), install('P-1', NIGHT2, ['1000002'])];
    const first = { clientId: 'c', at: at(NIGHT1) + 6 * 3_600_000, action: 'post', card: card(['1000001']) };
    const confirmations = [{ clientId: 'c', at: at(NIGHT1) + 7 * 3_600_000 }];
    const second = (kbs: string[]) => ({ clientId: 'c', at: at(NIGHT2) + 6 * 3_600_000, action: 'post', card: card(kbs) });
    expect(checkI5(facts({ ledger, confirmations, cards: [first, second(['1000002'])] }))).toEqual([]);
    expect(checkI5(facts({ ledger, confirmations, cards: [first, second(['1000001', '1000002'])] }))).toHaveLength(1);
    expect(checkI5(facts({ ledger, confirmations, cards: [first, second([])] }))).toHaveLength(1);
    // Not confirmed in between: the second card must ask about both.
    expect(checkI5(facts({ ledger, confirmations: [], cards: [first, second(['1000002'])] }))).toHaveLength(1);
  });

  it('I6 counts a client\u2019s hold as no release-wide hold, and compares with the status text', () => {
    const clientHold = { scope: 'client', releaseId: '2024-Feb', updateKey: null, clientId: 'c', ring: null, placedAt: at(NIGHT1), releasedAt: null };
    const approvals = [{ updateKey: null, at: at(NIGHT1) }];
    const now = at(NIGHT2);
    expect(checkI6(facts({ holds: [clientHold], approvals, statusText: '*2024-Feb*\nUpdates: 4 approved, 0 held, 0 waiting' }), now)).toEqual([]);
    expect(checkI6(facts({ holds: [clientHold], approvals, statusText: '*2024-Feb*\nUpdates: 0 approved, 4 held, 0 waiting' }), now)).toHaveLength(1);
    const everywhere = { ...clientHold, scope: 'update', updateKey: '5034765', clientId: null };
    expect(checkI6(facts({ holds: [everywhere], approvals, statusText: '*2024-Feb*\nUpdates: 3 approved, 1 held, 0 waiting' }), now)).toEqual([]);
  });

  it('I7: an approved, unheld update past ring msp that never reached a pilot machine in three windows is flagged; delivered, held, flagged or too soon is not', () => {
    const from = at('2024-02-19T12:00:00.000Z');
    const to = from + 4 * 24 * 3_600_000;
    const approvals = [{ updateKey: '5034765', at: from - 3_600_000 }];
    // Ring msp installed it on a machine running the pilot's OS and an engineer promoted it: P-1 owes it.
    const before = facts({ ledger: [install('MSP-1', NIGHT1, ['5034765'])], approvals, promoted: new Set(['5034765']), pilotConfirmed: new Map() });
    const late = checkI7(before, before, from, to);
    expect(late.map((v) => v.text)).toEqual([expect.stringMatching(/^P-1 \(pilot, c\) never got KB5034765/)]);
    const delivered = facts({ ...before, ledger: [...before.ledger, install('P-1', '2024-02-20T07:30:00.000Z', ['5034765'], true)] });
    expect(checkI7(before, delivered, from, to)).toEqual([]);
    const held = facts({ ...before, holds: [{ scope: 'update', releaseId: '2024-Feb', updateKey: '5034765', clientId: 'c', ring: null, placedAt: from, releasedAt: null }] });
    expect(checkI7(before, held, from, to)).toEqual([]);
    const flagged = facts({ ...before, devices: new Map([...before.devices].map(([n, d]) => [n, n === 'P-1' ? { ...d, flagged: true } : d])) });
    expect(checkI7(before, flagged, from, to)).toEqual([]);
    expect(checkI7(before, before, from, from + 24 * 3_600_000)).toEqual([]);
    // Not promoted, or its pilot waiting for the champion: nothing is owed yet.
    expect(checkI7(facts({ ...before, promoted: new Set() }), before, from, to)).toEqual([]);
    expect(checkI7(before, facts({ ...before, pilotAwaiting: new Set(['c']) }), from, to)).toEqual([]);
    // A broad machine is owed it once its client's pilot installed it and the confirmation covered it.
    const piloted = facts({ ...before, ledger: [...before.ledger, install('P-1', '2024-02-19T08:30:00.000Z', ['5034765'])], pilotConfirmed: new Map([['c', new Set(['5034765'])]]) });
    expect(checkI7(piloted, piloted, from, to).map((v) => v.text)).toEqual([expect.stringMatching(/^B-1 \(broad, c\) never got KB5034765/)]);
  });
});
