/**
 * The sandbox on a Tactical RMM emulator instead of the simulated fleet (PATCHBAY_SANDBOX_DEPLOYER=tactical): the
 * real Tactical adapter, over HTTP, against an emulated server on the sandbox clock. Its agents are the inventory's
 * live devices; Windows Update offers them every KB of the releases stored so far. The emulator's state lives in
 * memory: after a restart the agents are seeded again and a run resumed mid-install finds no result (not started,
 * tried again in its window), as a real agent that was reinstalled would answer.
 */
import { randomBytes } from 'node:crypto';
import type { Database } from '../db/client.ts';
import { liveDevicesWithOwners, storedKbs } from '../db/sandbox-tactical-repo.ts';
import type { Logger } from '../log.ts';
import { TacticalDeployer } from '../adapters/deployers/tactical.ts';
import { tacticalOsFor } from '../adapters/deployers/tactical-os.ts';
import { startTacticalEmulator, TacticalEmulator, type UpdateSeed } from './emulators/tactical-emulator.ts';

export interface SandboxTactical {
  emulator: TacticalEmulator;
  url: string;
  deployer: TacticalDeployer;
  /** Adds agents for devices imported since, and learns the KBs of releases stored since. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export async function startSandboxTactical(options: { now: () => Date; database: Database; log: Logger; refreshMs: number }): Promise<SandboxTactical> {
  const apiKey = randomBytes(24).toString('hex');
  let offers: UpdateSeed[] = [];
  const emulator = new TacticalEmulator({ now: options.now, apiKey, offers: () => offers });
  const known = new Set<string>();
  const refresh = async () => {
    for (const device of await liveDevicesWithOwners(options.database.db)) {
      if (known.has(device.name.toLowerCase())) continue;
      known.add(device.name.toLowerCase());
      emulator.addAgent({
        hostname: device.name,
        client: device.client,
        operatingSystem: (device.os && tacticalOsFor(device.os)) ?? 'Windows 11 Pro, 64 bit v23H2 (build 22631.3007)',
        monitoringType: device.class === 'server' ? 'server' : 'workstation',
      });
    }
    offers = (await storedKbs(options.database.db)).map((u) => ({ kb: u.kb, severity: 'Important', rebootRequired: u.restartRequired !== 'No' }));
  };
  await refresh();
  const server = await startTacticalEmulator(emulator);
  const timer = setInterval(() => void refresh().catch((error: unknown) => options.log.warn({ err: error }, 'sandbox: refreshing the Tactical emulator failed')), options.refreshMs);
  timer.unref();
  const deployer = new TacticalDeployer({ client: { url: server.url, apiKey, requestsPerSecond: 50 }, db: options.database.db, now: options.now });
  options.log.info({ url: server.url, agents: known.size }, 'sandbox: installs and reboots go to a Tactical RMM emulator');
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
