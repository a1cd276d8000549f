/**
 * The sandbox on a NinjaOne emulator instead of the simulated fleet (PATCHBAY_SANDBOX_DEPLOYER=ninjaone): the real
 * NinjaOne adapter, over HTTP with OAuth client credentials, against an emulated NinjaOne on the sandbox clock. Its
 * devices are the inventory's live machines (organization = client, location = the inventory's); each is offered
 * every KB of the releases stored so far as a MANUAL patch, so only patchbay's script installs them. The emulator's
 * state lives in memory: after a restart the devices are seeded again and an install resumed mid-script finds no
 * activity (not started, tried again in its window), as a reimaged machine would answer.
 */
import { randomBytes } from 'node:crypto';
import type { Database } from '../db/client.ts';
import { liveDevicesWithLocations } from '../db/sandbox-ninjaone-repo.ts';
import { storedKbs } from '../db/sandbox-tactical-repo.ts';
import type { Logger } from '../log.ts';
import { NinjaOneDeployer } from '../adapters/deployers/ninjaone.ts';
import { NinjaOneEmulator, startNinjaOneEmulator } from './emulators/ninjaone-emulator.ts';

const CLIENT_ID = 'patchbay-sandbox';
const INSTALL_SCRIPT_ID = 42;

export interface SandboxNinjaOne {
  emulator: NinjaOneEmulator;
  url: string;
  deployer: NinjaOneDeployer;
  /** Adds devices imported since, and offers every device the KBs of releases stored since. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export async function startSandboxNinjaOne(options: { now: () => Date; database: Database; log: Logger; refreshMs: number }): Promise<SandboxNinjaOne> {
  const clientSecret = randomBytes(24).toString('hex');
  const emulator = new NinjaOneEmulator({ now: options.now, clientId: CLIENT_ID, clientSecret, installScriptId: INSTALL_SCRIPT_ID });
  const offered = new Map<number, Set<string>>();
  const refresh = async () => {
    const known = new Set(emulator.deviceList().map((d) => d.systemName.toLowerCase()));
    for (const device of await liveDevicesWithLocations(options.database.db)) {
      if (known.has(device.name.toLowerCase())) continue;
      const id = emulator.addDevice({
        systemName: device.name,
        organization: device.organization,
        ...(device.location ? { location: device.location } : {}),
        nodeClass: device.class === 'server' ? 'WINDOWS_SERVER' : 'WINDOWS_WORKSTATION',
      });
      offered.set(id, new Set());
    }
    const kbs = await storedKbs(options.database.db);
    for (const [id, has] of offered) {
      for (const update of kbs.filter((u) => !has.has(u.kb))) {
        has.add(update.kb);
        emulator.addPatch(id, { kb: update.kb, status: 'MANUAL', rebootRequired: update.restartRequired !== 'No' });
      }
    }
  };
  await refresh();
  const server = await startNinjaOneEmulator(emulator);
  const timer = setInterval(() => void refresh().catch((error: unknown) => options.log.warn({ err: error }, 'sandbox: refreshing the NinjaOne emulator failed')), options.refreshMs);
  timer.unref();
  const deployer = new NinjaOneDeployer({
    client: { url: server.url, clientId: CLIENT_ID, clientSecret, requestsPerSecond: 50 },
    db: options.database.db,
    now: options.now,
    installScriptId: INSTALL_SCRIPT_ID,
  });
  options.log.info({ url: server.url, devices: offered.size }, 'sandbox: installs and reboots go to a NinjaOne emulator');
  return {
    emulator,
    url: server.url,
    deployer,
    refresh,
    async close() {
      clearInterval(timer);
      await server.close();
    },
  };
}
