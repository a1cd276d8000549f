import { afterAll, beforeAll } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { describeDeployer, type DeployerHarness } from '../support/deployer-contract.ts';
import { openNinjaOneWorld } from '../support/ninjaone-world.ts';

// One database for the file; each contract clause gets its own emulator (its own NinjaOne tenant).
let database: TestDatabase;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(async () => {
  await database?.close();
});

describeDeployer('NinjaOne adapter on the emulator', async (): Promise<DeployerHarness> => {
  const world = await openNinjaOneWorld(database);
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
      const id = world.emulator.addDevice({ systemName: name, online: setup.online ?? true });
      for (const u of setup.updates) {
        world.emulator.addPatch(id, { kb: u.kb ?? u.key, rebootRequired: u.restartRequired !== 'No', ...(setup.failsInstall ? { failsWith: '0x80070643' } : {}) });
      }
      return { id: nextId++, name };
    },
    async setOnline(name, online) {
      world.emulator.setOnline(world.emulator.deviceIdOf(name), online);
    },
    async advance(ms) {
      world.advance(ms);
    },
    installsStarted: async (name) => world.emulator.count(world.emulator.deviceIdOf(name), 'script'),
    rebootsStarted: async (name) => world.emulator.count(world.emulator.deviceIdOf(name), 'reboot'),
    close: () => world.close(),
  };
});
