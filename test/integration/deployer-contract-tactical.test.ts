import { afterAll, beforeAll } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { describeDeployer, type DeployerHarness } from '../support/deployer-contract.ts';
import { openTacticalWorld } from '../support/tactical-world.ts';

// One database for the file; each contract clause gets its own emulator (its own Tactical server).
let database: TestDatabase;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(async () => {
  await database?.close();
});

describeDeployer('Tactical RMM adapter on the emulator', async (): Promise<DeployerHarness> => {
  const world = await openTacticalWorld(database);
  let deployer = world.adapter();
  let nextId = 1;
  return {
    get deployer() {
      return deployer;
    },
    async restart() {
      deployer = world.adapter();
      return deployer;
    },
    async addDevice(name, setup) {
      const agentId = world.emulator.addAgent({ hostname: name, client: 'Contoso', connected: setup.online ?? true });
      for (const u of setup.updates) {
        world.emulator.addUpdate(agentId, { kb: u.kb ?? u.key, rebootRequired: u.restartRequired !== 'No', fails: setup.failsInstall ?? false });
      }
      return { id: nextId++, name };
    },
    async setOnline(name, online) {
      world.emulator.setConnected(world.emulator.agentIdOf(name), online);
    },
    async advance(ms) {
      world.advance(ms);
    },
    installsStarted: async (name) => world.emulator.installsDelivered(world.emulator.agentIdOf(name)),
    rebootsStarted: async (name) => world.emulator.rebootsDelivered(world.emulator.agentIdOf(name)),
    close: () => world.close(),
  };
});
