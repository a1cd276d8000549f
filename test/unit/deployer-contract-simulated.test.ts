import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readLedger, SimulatedFleet, type SimulatedBehaviour } from '../../src/adapters/deployers/simulated.ts';
import { describeDeployer, type DeployerHarness } from '../support/deployer-contract.ts';

// The simulated fleet keeps its operations in a ledger file: a new instance on the same file is a restarted worker.
describeDeployer('simulated fleet', async (): Promise<DeployerHarness> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'patchbay-contract-'));
  const ledgerPath = path.join(dir, 'fleet.jsonl');
  let now = Date.parse('2024-02-14T02:00:00Z');
  const devices: Record<string, Partial<SimulatedBehaviour>> = {};
  const online = new Map<string, boolean>();
  const make = () => {
    const fleet = new SimulatedFleet({ clock: () => new Date(now), ledgerPath, devices, fleet: { operationMs: 5 * 60_000 } });
    for (const [name, on] of online) fleet.setOnline(name, on);
    return fleet;
  };
  let fleet = make();
  const count = (name: string, kind: 'install' | 'reboot') => readLedger(ledgerPath).filter((e) => e.device === name && e.kind === kind).length;
  let nextId = 1;
  return {
    get deployer() {
      return fleet;
    },
    async restart() {
      fleet = make();
      return fleet;
    },
    async addDevice(name, setup) {
      devices[name] = setup.failsInstall ? { installFailureRate: 1 } : {};
      online.set(name, setup.online ?? true);
      fleet.setOnline(name, setup.online ?? true);
      return { id: nextId++, name };
    },
    async setOnline(name, on) {
      online.set(name, on);
      fleet.setOnline(name, on);
    },
    async advance(ms) {
      now += ms;
    },
    installsStarted: async (name) => count(name, 'install'),
    rebootsStarted: async (name) => count(name, 'reboot'),
    async close() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});
