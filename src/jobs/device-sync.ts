/**
 * The device sync from the configured device manager (DEPLOYER=tactical or ninjaone), daily and on demand
 * (`/patch sync`). A job scheduler ticks every minute (on the context's clock, so the sandbox's jumps count); a
 * tick claims the sync when it is due (src/use-cases/device-sync.ts) and runs the same sync as `patchbay devices
 * sync`: the inventory file (DEVICE_SYNC_INVENTORY, formerly TACTICAL_SYNC_INVENTORY) with its linked clients'
 * devices read from the device manager, applied like an import.
 */
import type { Config } from '../config.ts';
import type { AppDatabase } from '../db/client.ts';
import type { InventoryChanges } from '../db/inventory-repo.ts';
import { storedDeviceZones } from '../db/tactical-sync-repo.ts';
import { readInventoryFile, formatProblems } from '../adapters/inventory/parse.ts';
import type { Inventory } from '../domain/inventory.ts';
import { TacticalClient } from '../adapters/deployers/tactical-client.ts';
import { readTacticalSync, type ReadOptions } from '../adapters/deployers/tactical-sync-read.ts';
import type { SyncResult } from '../adapters/deployers/tactical-sync.ts';
import { NinjaOneClient } from '../adapters/deployers/ninjaone-client.ts';
import { readNinjaOneSync } from '../adapters/deployers/ninjaone-sync-read.ts';
import type { SyncedManager } from '../chat/notices/device-sync.ts';
import { applyDeviceSync, claimDeviceSync, recordDeviceSyncFailure, type SyncOptions } from '../use-cases/device-sync.ts';
import type { UseCaseContext } from '../use-cases/transaction.ts';
import type { JobModule } from './context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';

const QUEUE = 'device-sync';
const TICK = 'tick';

export type DeviceSyncOutcome =
  | { ok: true; synced: SyncResult; changes: InventoryChanges; told: boolean }
  /** The file is invalid or Tactical could not be read: nothing was written but the failure note. (A dry run is
   * the command's own: it must not even migrate.) */
  | { ok: false; error: string; told: boolean };

export interface DeviceSyncRun extends Omit<SyncOptions, 'subject'> {
  file: string;
  /** Read every agent's time zone again rather than only new agents' (an engineer's sync). */
  rereadZones: boolean;
}

/** A device manager's side of a sync: what it is called, how its devices are read, how its secrets are scrubbed. */
export interface DeviceSource {
  manager: SyncedManager;
  /** How the inventory names a linked client, for messages. */
  linkField: 'tactical_client' | 'ninjaone_organization';
  read(inventory: Inventory, options: ReadOptions): Promise<SyncResult>;
  redact(text: string): string;
}

export function tacticalClientFor(config: Config): TacticalClient | undefined {
  const deployer = config.deployer;
  return deployer.kind === 'tactical' ? new TacticalClient({ url: deployer.url, apiKey: deployer.apiKey, requestsPerSecond: deployer.requestsPerSecond }) : undefined;
}

export function ninjaOneClientFor(config: Config): NinjaOneClient | undefined {
  const deployer = config.deployer;
  if (deployer.kind !== 'ninjaone') return undefined;
  return new NinjaOneClient({ url: deployer.url, clientId: deployer.clientId, clientSecret: deployer.clientSecret, requestsPerSecond: deployer.requestsPerSecond });
}

export function tacticalSource(client: TacticalClient): DeviceSource {
  return { manager: 'Tactical RMM', linkField: 'tactical_client', read: (inventory, options) => readTacticalSync(client, inventory, options), redact: (text) => client.redact(text) };
}

/** NinjaOne has no device time zone, so the zone options mean nothing to it. */
export function ninjaOneSource(client: NinjaOneClient): DeviceSource {
  return { manager: 'NinjaOne', linkField: 'ninjaone_organization', read: (inventory) => readNinjaOneSync(client, inventory), redact: (text) => client.redact(text) };
}

/** The configured device manager's source; undefined with the simulated fleet (nothing to sync from). */
export function deviceSourceFor(config: Config): DeviceSource | undefined {
  const tactical = tacticalClientFor(config);
  if (tactical) return tacticalSource(tactical);
  const ninja = ninjaOneClientFor(config);
  return ninja ? ninjaOneSource(ninja) : undefined;
}

/** One sync: read the file and the device manager, then apply. A failed read is recorded (told once) and changes nothing. */
export async function runDeviceSync(ctx: UseCaseContext, source: DeviceSource, run: DeviceSyncRun): Promise<DeviceSyncOutcome> {
  const failed = async (error: string): Promise<DeviceSyncOutcome> => {
    const { told } = await recordDeviceSyncFailure(ctx, error, source.manager);
    return { ok: false, error, told };
  };
  const parsed = await readInventoryFile(run.file);
  if (!parsed.ok) return failed(`${run.file} has problems: ${formatProblems(parsed).slice(0, 3).join('; ')}`);
  let synced: SyncResult;
  try {
    synced = await source.read(parsed.inventory, { storedZones: await storedDeviceZones(ctx.db), rereadZones: run.rereadZones });
  } catch (error) {
    return failed(source.redact((error as Error).message));
  }
  const subject = `${run.file.split(/[\\/]/).pop()} + ${source.manager}`;
  const { changes, told } = await applyDeviceSync(ctx, synced, { subject, manager: source.manager, actor: run.actor, source: run.source });
  return { ok: true, synced, changes, told };
}

async function tick(ctx: UseCaseContext, config: Config, source: DeviceSource): Promise<unknown> {
  const due = await claimDeviceSync(ctx, config.deviceSync.time);
  if (due === undefined) return { due: false };
  const file = config.deviceSync.inventory;
  if (file === undefined) {
    const why = `DEVICE_SYNC_INVENTORY is not set: the sync needs the inventory file its linked clients (${source.linkField}) are in`;
    const told = await recordDeviceSyncFailure(ctx, why, source.manager);
    return { due, ok: false, told: told.told };
  }
  const outcome = await runDeviceSync(ctx, source, { file, rereadZones: due === 'requested', actor: 'system:device-sync', source: 'system' });
  return outcome.ok ? { due, added: outcome.synced.added.length, retired: outcome.changes.retiredDevices.length, told: outcome.told } : { due, error: outcome.error };
}

export function deviceSyncModule(options: { tickMs?: number } = {}): JobModule {
  return async (context) => {
    const source = deviceSourceFor(context.config);
    const hasScheduler = context.roles.has('scheduler');
    const hasWorker = context.roles.has('worker');
    if (!source || (!hasScheduler && !hasWorker)) return { close: async () => {} };
    const queue = createQueue(context, QUEUE, { ...KEEP_FEW, attempts: 1 });
    if (hasScheduler) {
      await queue.upsertJobScheduler('device-sync-tick', { every: options.tickMs ?? context.pace?.tickMs ?? 60_000 }, { name: TICK, opts: { ...KEEP_FEW, attempts: 1 } });
    }
    const db: AppDatabase = context.database.db;
    const ctx: UseCaseContext = { db, now: context.now };
    const worker = hasWorker ? createWorker(context, QUEUE, (job) => (job.name === TICK ? tick(ctx, context.config, source) : Promise.resolve(undefined))) : undefined;
    // A sync may be waiting on the device manager; abandoning it is safe (nothing is written until its one transaction).
    return { close: () => closeAll([worker], [queue], { force: true }) };
  };
}

export const deviceSync: JobModule = deviceSyncModule();
