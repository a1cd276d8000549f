import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DateTime } from 'luxon';
import { admit, openWindows, planOpenWindows, planWindow, type PlanInput, type SweepDevice } from '../../src/domain/plan.ts';

const products = [
  { id: 'P11', name: 'Windows 11 Version 23H2 for x64-based Systems', family: 'Windows' },
  { id: 'P10', name: 'Windows 10 Version 22H2 for x64-based Systems', family: 'Windows' },
  { id: 'S22', name: 'Windows Server 2022', family: 'Windows' },
];
const base: PlanInput = {
  releaseId: '2024-Feb',
  ring: 'broad',
  clientId: 'acme',
  devices: [
    { id: 1, name: 'ACD-FD-01', clientId: 'acme', os: 'Windows 11 Version 23H2 for x64-based Systems' },
    { id: 2, name: 'ACD-FD-02', clientId: 'acme', os: 'Windows 10 22H2 x64' },
    { id: 3, name: 'ACD-SRV-01', clientId: 'acme', os: 'Windows Server 2022' },
    { id: 4, name: 'ACD-MAC', clientId: 'acme', os: 'macOS 14' },
    { id: 5, name: 'ACD-NOOS', clientId: 'acme', os: null },
  ],
  products,
  updates: [
    { key: '5034765', productIds: ['P11'], restartRequired: 'Yes' },
    { key: '5034763', productIds: ['P10'], restartRequired: 'Yes' },
    { key: '5034770', productIds: ['S22'], restartRequired: 'Yes' },
    { key: '5034439', productIds: ['P11', 'P10', 'S22'], restartRequired: 'No' },
  ],
  approved: 'all',
  holds: [],
  done: new Map(),
};

describe('planWindow', () => {
  it('gives each device the approved updates for its OS', () => {
    const plan = planWindow(base);
    expect(plan.runs).toEqual([
      { deviceId: 1, updates: ['5034765', '5034439'] },
      { deviceId: 2, updates: ['5034763', '5034439'] },
      { deviceId: 3, updates: ['5034770', '5034439'] },
    ]);
    expect(plan.skipped).toEqual([
      { deviceId: 4, reason: 'nothing_applies' },
      { deviceId: 5, reason: 'no_os' },
    ]);
  });

  it('leaves out unapproved and held updates, and devices already done', () => {
    const plan = planWindow({
      ...base,
      approved: new Set(['5034765', '5034763', '5034439']),
      holds: [{ scope: 'update', releaseId: '2024-Feb', updateKey: '5034439', clientId: null, ring: null }],
      done: new Map([[2, new Set(['5034763', '5034439'])]]),
    });
    expect(plan.runs).toEqual([{ deviceId: 1, updates: ['5034765'] }]);
    expect(plan.skipped.find((s) => s.deviceId === 2)?.reason).toBe('done');
    // The server's only approved update is held: it is held, not "nothing to install".
    expect(plan.skipped.find((s) => s.deviceId === 3)?.reason).toBe('held');
    expect(plan.skipped.find((s) => s.deviceId === 4)?.reason).toBe('nothing_applies');
  });

  it('done is per device per update: an update approved after a device succeeded still reaches it', () => {
    // Device 1 already installed the Windows 11 cumulative update; the late-approved servicing stack is new to it.
    const plan = planWindow({ ...base, devices: base.devices.slice(0, 1), done: new Map([[1, new Set(['5034765'])]]) });
    expect(plan.runs).toEqual([{ deviceId: 1, updates: ['5034439'] }]);
  });

  it('carries only the updates that passed the earlier rings for this ring and client', () => {
    const plan = planWindow({ ...base, passed: new Set(['5034763']) });
    expect(plan.runs).toEqual([{ deviceId: 2, updates: ['5034763'] }]);
  });

  it('a device whose updates have not passed the earlier rings is waiting for a ring, not "nothing to install"', () => {
    const plan = planWindow({ ...base, passed: new Set(['5034763']) });
    expect(plan.skipped).toEqual([
      { deviceId: 1, reason: 'waiting_for_ring' },
      { deviceId: 3, reason: 'waiting_for_ring' },
      { deviceId: 4, reason: 'nothing_applies' },
      { deviceId: 5, reason: 'no_os' },
    ]);
    // Done with what passed, the rest still in the earlier rings: still waiting.
    const later = planWindow({ ...base, devices: base.devices.slice(1, 2), passed: new Set(['5034763']), done: new Map([[2, new Set(['5034763'])]]) });
    expect(later.skipped).toEqual([{ deviceId: 2, reason: 'waiting_for_ring' }]);
  });

  it('an update passes ring msp per product: one tested on Windows 11 only does not reach a Windows 10 device', () => {
    // 5034439 fixes Windows 11, Windows 10 and Server 2022; ring msp installed it on a Windows 11 machine only.
    const plan = planWindow({ ...base, passedProducts: new Map([['5034439', new Set(['P11'])]]) });
    expect(plan.runs).toEqual([
      { deviceId: 1, updates: ['5034765', '5034439'] },
      { deviceId: 2, updates: ['5034763'] },
      { deviceId: 3, updates: ['5034770'] },
    ]);
    // Tested on no product of its own (none of the MSP machines it installed on runs one): it reaches no device.
    const none = planWindow({ ...base, devices: base.devices.slice(0, 1), passedProducts: new Map([['5034765', new Set()], ['5034439', new Set()]]) });
    expect(none.skipped).toEqual([{ deviceId: 1, reason: 'waiting_for_ring' }]);
  });

  it('a client hold plans nothing', () => {
    const plan = planWindow({ ...base, holds: [{ scope: 'client', releaseId: null, updateKey: null, clientId: 'acme', ring: null }] });
    expect(plan.runs).toEqual([]);
    expect(plan.skipped.every((s) => s.reason === 'held')).toBe(true);
  });
});

describe('admit', () => {
  it('respects per-client and overall limits, fairly, and is stable as runs finish', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'b', 'c', null), { maxLength: 200 }),
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 1, max: 50 }),
        (clients, perClient, overall) => {
          const runs = clients.map((clientId, i) => ({ id: i, clientId }));
          const admitted = admit(runs, () => perClient, overall);
          const byClient = new Map<string | null, number>();
          for (const r of admitted) byClient.set(r.clientId, (byClient.get(r.clientId) ?? 0) + 1);
          for (const count of byClient.values()) expect(count).toBeLessThanOrEqual(perClient);
          expect(admitted.length).toBeLessThanOrEqual(overall);
          // Nothing left waiting that could have been admitted.
          const expected = Math.min(overall, [...new Set(clients)].reduce((sum, c) => sum + Math.min(perClient, clients.filter((x) => x === c).length), 0));
          expect(admitted.length).toBe(expected);
          // Within a client, the earliest runs go first.
          for (const c of new Set(clients)) {
            const ids = admitted.filter((r) => r.clientId === c).map((r) => r.id);
            expect(ids).toEqual(runs.filter((r) => r.clientId === c).slice(0, ids.length).map((r) => r.id));
          }
        },
      ),
    );
  });
});

describe('openWindows and planOpenWindows (a sweep’s planning)', () => {
  const device = (id: number, gateId: number, over: Partial<SweepDevice> = {}): SweepDevice => ({
    id, name: `D${id}`, clientId: 'acme', os: 'Windows 11 Version 23H2 for x64-based Systems',
    gateId, releaseId: '2024-Feb', ring: 'broad', gateState: 'scheduled', spec: 'daily 01:00-05:00', timezone: 'UTC', ...over,
  });
  const at = (iso: string) => DateTime.fromISO(iso, { zone: 'utc' });

  it('groups devices by gate and the window open for them, and opens nothing outside a window or without room', () => {
    const devices = [
      // A gate's devices in two zones, one after the other: two windows of the same gate.
      device(1, 10), device(2, 10), device(8, 10, { timezone: 'Europe/Berlin' }), device(9, 10), device(3, 11),
      device(4, 10, { spec: 'daily 22:00-23:00' }),
      device(5, 12, { timezone: 'America/Chicago' }),
      device(6, 13, { spec: null }),
      device(7, 14, { spec: 'not a window' }),
    ];
    const open = openWindows(devices, at('2024-02-14T02:00:00Z'), 60);
    expect(open.map((w) => ({ gate: w.gate.id, start: w.windowStart, end: w.windowEnd, devices: w.devices.map((d) => d.id) }))).toEqual([
      { gate: 10, start: '2024-02-14T01:00:00.000Z', end: '2024-02-14T05:00:00.000Z', devices: [1, 2, 9] },
      { gate: 10, start: '2024-02-14T00:00:00.000Z', end: '2024-02-14T04:00:00.000Z', devices: [8] },
      { gate: 11, start: '2024-02-14T01:00:00.000Z', end: '2024-02-14T05:00:00.000Z', devices: [3] },
    ]);
    expect(open[0]!.gate).toEqual({ id: 10, releaseId: '2024-Feb', ring: 'broad', clientId: 'acme', state: 'scheduled' });
    // 04:30 leaves 30 minutes: not enough for a 60-minute install budget, enough for 30.
    expect(openWindows(devices, at('2024-02-14T04:30:00Z'), 60)).toEqual([]);
    expect(openWindows(devices, at('2024-02-14T04:30:00Z'), 30).map((w) => w.gate.id)).toEqual([10, 11]);
  });

  it('plans each open window’s devices not planned there yet, and records those with nothing to install', () => {
    const devices = [device(1, 10), device(2, 10), device(3, 10, { os: 'macOS 14' }), device(4, 10, { os: null }), device(5, 11)];
    const open = openWindows(devices, at('2024-02-14T02:00:00Z'), 60);
    const start = '2024-02-14T01:00:00.000Z';
    const inputs: Array<{ gate: number; devices: number[] }> = [];
    const { runs, passedOver } = planOpenWindows(open, new Set([`2/${start}`]), (gate, mine) => {
      inputs.push({ gate: gate.id, devices: mine.map((d) => d.id) });
      // Gate 11's release is unknown: nothing is planned for it.
      return gate.id === 11 ? undefined : { ...base, ring: gate.ring, clientId: gate.clientId, devices: mine };
    });
    expect(inputs).toEqual([{ gate: 10, devices: [1, 3, 4] }, { gate: 11, devices: [5] }]);
    const row = { releaseId: '2024-Feb', rolloutId: 10, windowStart: start, windowEnd: '2024-02-14T05:00:00.000Z' };
    expect(runs).toEqual([{ deviceId: 1, ...row, updates: ['5034765', '5034439'] }]);
    expect(passedOver).toEqual([
      { deviceId: 3, ...row, updates: [], skipped: 'nothing_applies' },
      { deviceId: 4, ...row, updates: [], skipped: 'no_os' },
    ]);
  });

  it('writes no row for a device waiting for an earlier ring or a hold: it is not "nothing to install"', () => {
    const open = openWindows([device(1, 10), device(2, 10, { os: 'Windows 10 22H2 x64' })], at('2024-02-14T02:00:00Z'), 60);
    const held = planOpenWindows(open, new Set(), (_gate, mine) => ({ ...base, devices: mine, holds: [{ scope: 'all', releaseId: '2024-Feb', updateKey: null, clientId: null, ring: null }] }));
    expect(held).toEqual({ runs: [], passedOver: [] });
    const waiting = planOpenWindows(open, new Set(), (_gate, mine) => ({ ...base, devices: mine, passed: new Set<string>() }));
    expect(waiting).toEqual({ runs: [], passedOver: [] });
  });
});
