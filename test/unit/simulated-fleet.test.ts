import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { toOutcome } from '../../src/adapters/deployers/port.ts';
import { readLedger, SimulatedFleet } from '../../src/adapters/deployers/simulated.ts';

const dev = (name: string) => ({ id: 1, name });
const updates = [{ key: '5034763', restartRequired: 'Yes' }, { key: '5034765', restartRequired: 'Yes' }];

describe('simulated fleet', () => {
  it('the same idempotency key starts one operation, however often it is asked', async () => {
    const fleet = new SimulatedFleet();
    const first = await fleet.install(dev('PC1'), updates, 'run-1-install-1');
    const again = await fleet.install(dev('PC1'), updates, 'run-1-install-1');
    expect(again).toEqual(first);
    await fleet.reboot(dev('PC1'), 'run-1-reboot-1-0');
    await fleet.reboot(dev('PC1'), 'run-1-reboot-1-0');
    expect(fleet.installsOf('PC1')).toHaveLength(1);
    expect(fleet.rebootsOf('PC1')).toHaveLength(1);
    expect(fleet.calls).toBe(4);
    expect(await fleet.verify(dev('PC1'), updates)).toEqual({ missing: [], rebootPending: false });
  });

  it('operations take clock time; status is polled until they finish', async () => {
    let now = Date.parse('2024-02-14T07:00:00Z');
    const fleet = new SimulatedFleet({ clock: () => new Date(now), fleet: { operationMs: 600_000 } });
    const started = await fleet.install(dev('PC1'), updates, 'k1');
    expect(toOutcome(started, true)).toEqual({ type: 'started', handle: 'k1' });
    expect(toOutcome(await fleet.status(dev('PC1'), 'k1'), false)).toEqual({ type: 'progress', state: 'running' });
    now += 600_000;
    expect(toOutcome(await fleet.status(dev('PC1'), 'k1'), false)).toEqual({ type: 'succeeded', rebootRequired: true });
  });

  it('rates are seeded: the same seed answers the same, and roughly at the configured rate', async () => {
    const answers = async (seed: number) => {
      const fleet = new SimulatedFleet({ seed, fleet: { installFailureRate: 0.3, offlineRate: 0.2, rebootTwiceRate: 0.5 } });
      const out: string[] = [];
      for (let i = 0; i < 400; i++) {
        const d = dev(`PC${i}`);
        const online = await fleet.isOnline(d);
        const status = await fleet.install(d, updates, `k${i}`);
        out.push(`${online}/${status.state}/${fleet.installsOf(d.name)[0]!.rebootsWanted}`);
      }
      return out;
    };
    const a = await answers(7);
    expect(await answers(7)).toEqual(a);
    expect(await answers(8)).not.toEqual(a);
    const failed = a.filter((x) => x.includes('/failed/')).length / a.length;
    const offline = a.filter((x) => x.startsWith('false')).length / a.length;
    const twice = a.filter((x) => x.endsWith('/2')).length / a.filter((x) => !x.includes('/failed/')).length;
    expect(failed).toBeGreaterThan(0.2);
    expect(failed).toBeLessThan(0.4);
    expect(offline).toBeGreaterThan(0.12);
    expect(offline).toBeLessThan(0.28);
    expect(twice).toBeGreaterThan(0.4);
    expect(twice).toBeLessThan(0.6);
  });

  it('a failed install reports the device error text', async () => {
    const fleet = new SimulatedFleet({ devices: { PC1: { installFailureRate: 1 } } });
    const status = await fleet.install(dev('PC1'), updates, 'k');
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(/^0x8/);
    expect((await fleet.install(dev('PC2'), updates, 'k2')).state).toBe('succeeded');
  });

  it('a device that never comes back stays down after its reboot', async () => {
    const fleet = new SimulatedFleet({ devices: { PC1: { neverComesBack: true } } });
    await fleet.install(dev('PC1'), updates, 'i');
    expect((await fleet.reboot(dev('PC1'), 'r')).state).toBe('running');
    expect((await fleet.status(dev('PC1'), 'r')).state).toBe('running');
    expect(await fleet.isOnline(dev('PC1'))).toBe(false);
  });

  it('reboot twice: verify keeps asking for a reboot until the second one', async () => {
    const fleet = new SimulatedFleet({ fleet: { rebootTwiceRate: 1 } });
    await fleet.install(dev('PC1'), updates, 'i');
    await fleet.reboot(dev('PC1'), 'r1');
    expect((await fleet.verify(dev('PC1'), updates)).rebootPending).toBe(true);
    await fleet.reboot(dev('PC1'), 'r2');
    expect((await fleet.verify(dev('PC1'), updates)).rebootPending).toBe(false);
  });

  it('a ledger file survives the process: a new fleet knows the operations the old one started', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'patchbay-ledger-'));
    const ledgerPath = path.join(dir, 'ledger.jsonl');
    try {
      const a = new SimulatedFleet({ ledgerPath, worker: 'a' });
      await a.install(dev('PC1'), updates, 'i');
      await a.reboot(dev('PC1'), 'r');
      const b = new SimulatedFleet({ ledgerPath, worker: 'b' });
      await b.reboot(dev('PC1'), 'r');
      await b.install(dev('PC1'), updates, 'i');
      expect(readLedger(ledgerPath).map((e) => `${e.worker}:${e.kind}`)).toEqual(['a:install', 'a:reboot']);
      expect(await b.verify(dev('PC1'), updates)).toEqual({ missing: [], rebootPending: false });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
