/**
 * A device manager sync's writes, in one transaction each: the merged inventory applied (as `patchbay import` does),
 * the sync's bookkeeping, and the engineers told what changed. The reading (the inventory file, Tactical RMM or NinjaOne)
 * is the caller's (src/jobs/device-sync.ts, `patchbay devices sync`); so is the device manager's client and its key.
 *
 * Told at most once per sync and only when something changed: devices added, retired or restored, or a list of what
 * is still wrong (unmapped OSes, unlinked users, problems) that differs from the one posted last. A failed read is
 * told once until a sync works again, and changes nothing: no device is retired because the device manager did not answer.
 */
import { createHash } from 'node:crypto';
import { applyInventory, type InventoryChanges } from '../db/inventory-repo.ts';
import { appendAudit } from '../db/audit-repo.ts';
import { loadMsp } from '../db/msp-repo.ts';
import { liveDeviceNames, loadTacticalSyncState, saveTacticalSyncState, type TacticalSyncState } from '../db/tactical-sync-repo.ts';
import type { Inventory } from '../domain/inventory.ts';
import { syncDue } from '../domain/device-sync.ts';
import type { DeviceSyncChanges, DeviceSyncNotice, SyncedManager } from '../chat/notices/device-sync.ts';
import { notify } from '../chat/notify.ts';
import { withTransaction, type UseCaseContext } from './transaction.ts';
import { findEngineer, type Actor, type DecisionResult } from './decisions.ts';

/** What the caller read and merged (`SyncResult` of src/adapters/deployers/tactical-sync.ts or ninjaone-sync.ts). */
export interface SyncedInventory extends Omit<DeviceSyncChanges, 'retired' | 'restored'> {
  inventory: Inventory;
}

export interface SyncOptions {
  /** What was synced, for the audit row: `inventory.yaml + Tactical RMM`. */
  subject: string;
  /** The device manager read, named in the channel's post. */
  manager?: SyncedManager;
  actor: string;
  source: 'cli' | 'slack' | 'system';
}

/** The list of what is still wrong, as a short fingerprint: an unchanged list is not posted again every morning. */
function issuesOf(synced: Pick<SyncedInventory, 'unmapped' | 'unlinked' | 'problems'>): string {
  const issues = [...synced.unmapped.map((u) => `os ${u.client}/${u.device} ${u.os}`), ...synced.unlinked.map((u) => `user ${u.client}/${u.device} ${u.username} ${u.why}`), ...synced.problems].sort();
  return createHash('sha256').update(issues.join('\n')).digest('hex').slice(0, 24);
}

const NO_ISSUES = issuesOf({ unmapped: [], unlinked: [], problems: [] });

/** Applies the synced inventory; returns its changes and whether the engineers were told. */
export async function applyDeviceSync(ctx: UseCaseContext, synced: SyncedInventory, options: SyncOptions): Promise<{ changes: InventoryChanges; told: boolean }> {
  const now = ctx.now();
  return withTransaction(ctx, async (tx, after) => {
    const liveBefore = await liveDeviceNames(tx);
    const changes = await applyInventory(tx, synced.inventory, now, options);
    const state = (await loadTacticalSyncState(tx, { lock: true })) ?? {};
    // `added` is relative to the file (agents it does not name); the channel hears of machines new to patchbay.
    const restored = new Set(changes.restoredDevices.map((name) => name.toLowerCase()));
    const added = synced.added.filter((key) => {
      const name = key.slice(key.indexOf('/') + 1).toLowerCase();
      return !liveBefore.has(name) && !restored.has(name);
    });
    const issues = issuesOf(synced);
    const changed = added.length + changes.retiredDevices.length + changes.restoredDevices.length > 0 || issues !== (state.reportedIssues ?? NO_ISSUES);
    const { failingSince: _recovered, ...rest } = state;
    await saveTacticalSyncState(tx, { ...rest, syncedAt: now.toISOString(), reportedIssues: issues });
    if (!changed) return { changes, told: false };
    const notice: DeviceSyncNotice = {
      kind: 'device_sync_changed',
      at: now.toISOString(),
      ...(options.manager ? { manager: options.manager } : {}),
      added,
      retired: changes.retiredDevices,
      restored: changes.restoredDevices,
      unmapped: synced.unmapped.map(({ client, device, os }) => ({ client, device, os })),
      unlinked: synced.unlinked,
      problems: synced.problems,
    };
    after.outbox(await notify(tx, [notice], now));
    return { changes, told: true };
  });
}

/** A sync that could not read the device manager: recorded, and told once until a sync works again. */
export async function recordDeviceSyncFailure(ctx: UseCaseContext, error: string, manager?: SyncedManager): Promise<{ told: boolean }> {
  const now = ctx.now();
  return withTransaction(ctx, async (tx, after) => {
    const state = await loadTacticalSyncState(tx, { lock: true });
    if (state === undefined) return { told: false };
    // The failed try counts as the day's sync (it is not retried every tick), and serves any pending request.
    const next: TacticalSyncState = { ...state, syncedAt: now.toISOString(), failingSince: state.failingSince ?? now.toISOString() };
    await saveTacticalSyncState(tx, next);
    if (state.failingSince !== undefined) return { told: false };
    after.outbox(await notify(tx, [{ kind: 'device_sync_failed', since: next.failingSince!, error, ...(manager ? { manager } : {}) }], now));
    return { told: true };
  });
}

/**
 * Claims the sync due now, if one is (the daily time in the MSP's zone has passed since the last one, or an engineer
 * asked): the claim is the start stamp, written under the MSP row's lock, so a second worker's tick during a long
 * sync finds nothing due. Undefined before any inventory is imported: there is nothing to sync into.
 */
export async function claimDeviceSync(ctx: UseCaseContext, time: string): Promise<'requested' | 'scheduled' | undefined> {
  const now = ctx.now();
  return withTransaction(ctx, async (tx) => {
    const state = await loadTacticalSyncState(tx, { lock: true });
    if (state === undefined) return undefined;
    const due = syncDue(state, now, (await loadMsp(tx))?.timezone ?? 'UTC', time);
    if (due === undefined) return undefined;
    const { requestedAt: _served, ...rest } = state;
    await saveTacticalSyncState(tx, { ...rest, syncedAt: now.toISOString() });
    return due;
  });
}

/** `/patch sync`: an engineer asks for a sync now; the sync job serves it at its next tick. Audited. */
export async function requestDeviceSync(ctx: UseCaseContext, input: { actor: Actor }): Promise<DecisionResult> {
  const now = ctx.now();
  return withTransaction(ctx, async (tx) => {
    const engineer = await findEngineer(tx, input.actor);
    if (!engineer) return { outcome: 'refused', code: 'not_engineer', message: 'Only the MSP’s engineers can start a device sync.', zone: 'UTC' };
    const state = await loadTacticalSyncState(tx, { lock: true });
    if (state === undefined) return { outcome: 'refused', message: 'No inventory is imported yet: run `patchbay import` first.', zone: engineer.zone };
    await saveTacticalSyncState(tx, { ...state, requestedAt: now.toISOString() });
    await appendAudit(tx, { at: now, actor: `${input.actor.platform}:${input.actor.id}`, action: 'devices.sync_requested', subject: 'tactical', detail: {}, source: input.actor.platform });
    // The sync runs only with a device manager configured; this use-case cannot see the configuration, so it says so.
    return {
      outcome: 'applied',
      message: 'Device sync from the device manager asked for: this channel hears what changed within a few minutes (nothing, if nothing did; nothing either if patchbay runs without DEPLOYER=tactical or DEPLOYER=ninjaone).',
      zone: engineer.zone,
    };
  });
}
