/**
 * The device sync from Tactical RMM, daily and on demand (`/patch sync`), only with DEPLOYER=tactical. A job
 * scheduler ticks every minute (on the context's clock, so the sandbox's jumps count); a tick claims the sync when
 * it is due (src/use-cases/device-sync.ts) and runs the same sync as `patchbay devices sync`: the inventory file
 * (TACTICAL_SYNC_INVENTORY) with its Tactical-linked clients' devices read from Tactical, applied like an import.
 */
import type { Config } from '../config.ts';
import type { AppDatabase } from '../db/client.ts';
import type { InventoryChanges } from '../db/inventory-repo.ts';
import { storedDeviceZones } from '../db/tactical-sync-repo.ts';
import { readInventoryFile, formatProblems } from '../adapters/inventory/parse.ts';
import { TacticalClient } from '../adapters/deployers/tactical-client.ts';
import { readTacticalSync } from '../adapters/deployers/tactical-sync-read.ts';
import type { SyncResult } from '../adapters/deployers/tactical-sync.ts';
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

export function tacticalClientFor(config: Config): TacticalClient | undefined {
  const deployer = config.deployer;
  return deployer.kind === 'tactical' ? new TacticalClient({ url: deployer.url, apiKey: deployer.apiKey, requestsPerSecond: deployer.requestsPerSecond }) : undefined;
}

/** One sync: read the file and Tactical, then apply. A failed read is recorded (told once) and changes nothing. */
export async function runDeviceSync(ctx: UseCaseContext, client: TacticalClient, run: DeviceSyncRun): Promise<DeviceSyncOutcome> {
  const failed = async (error: string): Promise<DeviceSyncOutcome> => {
    const { told } = await recordDeviceSyncFailure(ctx, error);
    return { ok: false, error, told };
  };
  const parsed = await readInventoryFile(run.file);
  if (!parsed.ok) return failed(`${run.file} has problems: ${formatProblems(parsed).slice(0, 3).join('; ')}`);
  let synced: SyncResult;
  try {
    synced = await readTacticalSync(client, parsed.inventory, { storedZones: await storedDeviceZones(ctx.db), rereadZones: run.rereadZones });
  } catch (error) {
    return failed(client.redact((error as Error).message));
  }
  const subject = `${run.file.split(/[\\/]/).pop()} + Tactical RMM`;
  const { changes, told } = await applyDeviceSync(ctx, synced, { subject, actor: run.actor, source: run.source });
  return { ok: true, synced, changes, told };
}

async function tick(ctx: UseCaseContext, config: Config, client: TacticalClient): Promise<unknown> {
  const due = await claimDeviceSync(ctx, config.tacticalSync.time);
  if (due === undefined) return { due: false };
  const file = config.tacticalSync.inventory;
  if (file === undefined) {
    const told = await recordDeviceSyncFailure(ctx, 'TACTICAL_SYNC_INVENTORY is not set: the sync needs the inventory file its Tactical-linked clients are in');
    return { due, ok: false, told: told.told };
  }
  const outcome = await runDeviceSync(ctx, client, { file, rereadZones: due === 'requested', actor: 'system:device-sync', source: 'system' });
  return outcome.ok ? { due, added: outcome.synced.added.length, retired: outcome.changes.retiredDevices.length, told: outcome.told } : { due, error: outcome.error };
}

export function deviceSyncModule(options: { tickMs?: number } = {}): JobModule {
  return async (context) => {
    const client = tacticalClientFor(context.config);
    const hasScheduler = context.roles.has('scheduler');
    const hasWorker = context.roles.has('worker');
    if (!client || (!hasScheduler && !hasWorker)) return { close: async () => {} };
    const queue = createQueue(context, QUEUE, { ...KEEP_FEW, attempts: 1 });
    if (hasScheduler) {
      await queue.upsertJobScheduler('device-sync-tick', { every: options.tickMs ?? context.pace?.tickMs ?? 60_000 }, { name: TICK, opts: { ...KEEP_FEW, attempts: 1 } });
    }
    const db: AppDatabase = context.database.db;
    const ctx: UseCaseContext = { db, now: context.now };
    const worker = hasWorker ? createWorker(context, QUEUE, (job) => (job.name === TICK ? tick(ctx, context.config, client) : Promise.resolve(undefined))) : undefined;
    // A sync may be waiting on Tactical; abandoning it is safe (nothing is written until its one transaction).
    return { close: () => closeAll([worker], [queue], { force: true }) };
  };
}

export const deviceSync: JobModule = deviceSyncModule();
