/**
 * NinjaOne behind the Deployer port, mapped as ../shared/research/device-backends.md §2.8 says:
 *
 * - isOnline: `GET /v2/device/{id}` → `!offline`;
 * - install: maintenance on the device with PATCHING disabled, then patchbay's KB script
 *   (integrations/ninjaone/Install-PatchbayKBs.ps1, by its library id) through `POST /v2/device/{id}/script/run`
 *   with exactly the run's KBs; the handle is patchbay's key;
 * - status: the device's activities newer than the activity id read just before acting (NinjaOne has no job id),
 *   the script's COMPLETED activity deciding, `os.needsReboot` saying whether a restart is wanted;
 * - reboot: `POST /v2/device/{id}/reboot/NORMAL`, done on a `SYSTEM_REBOOTED` activity or `os.lastBootTime` moving
 *   on with the device online;
 * - verify: `POST …/patch/os/scan`, then `os-patch-installs?status=INSTALLED` by `kbNumber`.
 *
 * Why maintenance mode keeps NinjaOne's own patching out: `patch/os/apply` installs whatever the device's policy
 * approved, not patchbay's decision, and the API has no write for patch approvals or a policy's patch schedule
 * (policy overrides are read/delete only), so the adapter cannot make the policy manual as it does for Tactical.
 * Maintenance with PATCHING disabled is the one per-device lever the API gives: it leaves the MSP's policy as it
 * is outside patchbay's windows, and it has an end time, so if patchbay dies mid-window NinjaOne's patching comes
 * back by itself instead of staying off forever. It holds for `maintenanceMinutes` from the install.
 *
 * Idempotency lives in Postgres (deployer_operations, backend `ninjaone`), written before NinjaOne is asked: a
 * worker killed at any point asks again with the same key and resumes where the row says, never running the script
 * or rebooting twice. A script run NinjaOne never delivered shows as no activity at all: after `notStartedMinutes`
 * that is "not started", so the run retries inside its window or rolls to the next.
 */
import type { AppDatabase } from '../../db/client.ts';
import { claimOperation, findOperation, updateOperation, type OperationResult, type StoredOperation } from '../../db/deployer-operations-repo.ts';
import { NinjaOneClient, NinjaOneHttpError, type NinjaOneClientOptions } from './ninjaone-client.ts';
import type { Deployer, DeviceRef, OperationStatus, UpdateRef, Verification } from './port.ts';
import { kbOf } from './tactical-policy.ts';

/** The part of `GET /v2/device/{id}` (AgentDevice) the adapter reads. */
export interface NinjaDevice {
  id: number;
  systemName: string;
  offline: boolean;
  os?: { needsReboot?: boolean; lastBootTime?: number };
}

/** The fields of an Activity the adapter reads. */
export interface NinjaActivityRow {
  id: number;
  activityType: string;
  statusCode: string;
  activityResult?: string;
  message?: string;
  data?: Record<string, unknown>;
}

export type NinjaCrashPoint = 'before-script-post' | 'after-script-post' | 'before-reboot-post' | 'after-reboot-post';

export interface NinjaOneDeployerOptions {
  client: NinjaOneClient | NinjaOneClientOptions;
  db: AppDatabase;
  /** The library id of Install-PatchbayKBs.ps1 in the MSP's NinjaOne. */
  installScriptId: number;
  now?: () => Date;
  /** How long NinjaOne's own patching is held off from an install's start. Default 240. */
  maintenanceMinutes?: number;
  /** No activity from the script within this long: it never reached the device. Default 15. */
  notStartedMinutes?: number;
  /** A reboot with no sign of it within this long, the device online: not confirmed. Default 20. */
  rebootConfirmMinutes?: number;
  crashAt?: (point: NinjaCrashPoint) => void;
}

const BACKEND = 'ninjaone';

export class NinjaOneDeployer implements Deployer {
  readonly name = 'ninjaone';
  readonly client: NinjaOneClient;
  private readonly db: AppDatabase;
  private readonly now: () => Date;
  private readonly scriptId: number;
  private readonly maintenanceMs: number;
  private readonly notStartedMs: number;
  private readonly rebootConfirmMs: number;
  private readonly crashAt: (point: NinjaCrashPoint) => void;
  private deviceIds = new Map<string, number | 'ambiguous'>();
  private listedAt = 0;
  private listing: Promise<void> | undefined;

  constructor(options: NinjaOneDeployerOptions) {
    this.client = options.client instanceof NinjaOneClient ? options.client : new NinjaOneClient({ ...options.client, ...(options.now ? { now: options.now } : {}) });
    this.db = options.db;
    this.now = options.now ?? (() => new Date());
    this.scriptId = options.installScriptId;
    this.maintenanceMs = (options.maintenanceMinutes ?? 240) * 60_000;
    this.notStartedMs = (options.notStartedMinutes ?? 15) * 60_000;
    this.rebootConfirmMs = (options.rebootConfirmMinutes ?? 20) * 60_000;
    this.crashAt = options.crashAt ?? (() => {});
  }

  async isOnline(device: DeviceRef): Promise<boolean> {
    const id = await this.deviceFor(device);
    if (id === undefined) return false;
    return !(await this.device(id)).offline;
  }

  async install(device: DeviceRef, updates: readonly UpdateRef[], idempotencyKey: string): Promise<OperationStatus> {
    const known = await findOperation(this.db, idempotencyKey);
    if (known) return this.installStatus(known);
    const kbs = updates.map((u) => kbOf(u.kb ?? u.key));
    const id = await this.deviceFor(device);
    if (id === undefined) return this.refuse(idempotencyKey, 'install', device, '', `no NinjaOne device is named ${device.name}`, kbs);
    const detail = await this.device(id);
    if (detail.offline) return this.refuse(idempotencyKey, 'install', device, String(id), `not started: NinjaOne reports ${detail.systemName} offline`, kbs, true);
    const { operation, created } = await claimOperation(this.db, { key: idempotencyKey, backend: BACKEND, kind: 'install', device: device.name, target: String(id), updates: kbs, phase: 'preparing', at: this.now() });
    // Two workers racing on one key: only the one that wrote the row sends; the other polls it later.
    if (!created && !operation.result) return { handle: idempotencyKey, state: 'running' };
    return this.installStatus(operation);
  }

  async reboot(device: DeviceRef, idempotencyKey: string): Promise<OperationStatus> {
    const known = await findOperation(this.db, idempotencyKey);
    if (known) return this.rebootStatus(known);
    const id = await this.deviceFor(device);
    if (id === undefined) return this.refuse(idempotencyKey, 'reboot', device, '', `no NinjaOne device is named ${device.name}`);
    const detail = await this.device(id);
    if (detail.offline) return this.refuse(idempotencyKey, 'reboot', device, String(id), `not started: NinjaOne reports ${detail.systemName} offline`, [], true);
    const floor = await this.latestActivityId(id);
    // Written before the POST: whatever happens to this worker next, this key never sends a second reboot.
    const now = this.now();
    const { operation, created } = await claimOperation(this.db, {
      key: idempotencyKey, backend: BACKEND, kind: 'reboot', device: device.name, target: String(id), phase: 'sent', facts: { bootTimeBefore: detail.os?.lastBootTime ?? 0, activityFloor: floor }, sentAt: now, at: now,
    });
    if (!created) return this.rebootStatus(operation);
    this.crashAt('before-reboot-post');
    try {
      await this.client.post(`v2/device/${id}/reboot/NORMAL`, { reason: `patchbay ${idempotencyKey}` });
    } catch (error) {
      // A 4xx was refused, so nothing happened. A 5xx or silence is unclear: the activities and boot time decide.
      if (error instanceof NinjaOneHttpError) return this.finish(operation, { state: 'failed', error: `not started: ${error.message}`, notStarted: true });
    }
    this.crashAt('after-reboot-post');
    return { handle: idempotencyKey, state: 'running' };
  }

  async status(_device: DeviceRef, handle: string): Promise<OperationStatus> {
    const operation = await findOperation(this.db, handle);
    if (!operation) return { handle, state: 'failed', error: `no NinjaOne operation ${handle} is recorded` };
    return operation.kind === 'install' ? this.installStatus(operation) : this.rebootStatus(operation);
  }

  async verify(device: DeviceRef, updates: readonly UpdateRef[]): Promise<Verification> {
    const id = await this.deviceFor(device);
    if (id === undefined) return { missing: updates.map((u) => u.key), rebootPending: false };
    const detail = await this.device(id);
    if (!detail.offline) await this.scan(id);
    const installed = new Set((await this.client.get<Array<{ kbNumber?: string | null }>>(`v2/device/${id}/os-patch-installs?status=INSTALLED`)).flatMap((p) => (p.kbNumber ? [kbOf(p.kbNumber)] : [])));
    const pending = new Set((await this.client.get<Array<{ kbNumber?: string | null }>>(`v2/device/${id}/os-patches`)).flatMap((p) => (p.kbNumber ? [kbOf(p.kbNumber)] : [])));
    const has = (kb: string) => installed.has(kbOf(kb));
    // An update Windows Update no longer offers (superseded) counts installed when a successor is.
    const missing = updates.filter((u) => !has(u.kb ?? u.key) && !(!pending.has(kbOf(u.kb ?? u.key)) && (u.supersededBy ?? []).some(has)));
    return { missing: missing.map((u) => u.key), rebootPending: detail.os?.needsReboot ?? false };
  }

  // ---- install ----

  private async installStatus(op: StoredOperation): Promise<OperationStatus> {
    if (op.result) return toStatus(op.key, op.result);
    if (op.phase === 'preparing') return this.sendInstall(op);
    return this.pollInstall(op);
  }

  /** Holds NinjaOne's patching off, notes the activity floor and runs the script. Safe to repeat until sent. */
  private async sendInstall(op: StoredOperation): Promise<OperationStatus> {
    const now = this.now();
    await this.client.put(`v2/device/${op.target}/maintenance`, {
      disabledFeatures: ['PATCHING'],
      start: Math.floor(now.getTime() / 1000),
      end: Math.floor((now.getTime() + this.maintenanceMs) / 1000),
      reasonMessage: `patchbay is installing ${op.updates.join(', ')}`,
    });
    const floor = await this.latestActivityId(Number(op.target));
    await updateOperation(this.db, op.key, { phase: 'sent', facts: { activityFloor: floor }, sentAt: now, at: now });
    this.crashAt('before-script-post');
    try {
      await this.client.post(`v2/device/${op.target}/script/run`, { type: 'SCRIPT', id: this.scriptId, parameters: op.updates.join(' '), runAs: 'system' });
    } catch (error) {
      if (error instanceof NinjaOneHttpError) return this.finish(op, { state: 'failed', error: `not started: ${error.message}`, notStarted: true });
      // Unclear whether it went out: the activities will tell, and silence becomes "not started".
    }
    this.crashAt('after-script-post');
    return { handle: op.key, state: 'running' };
  }

  private async pollInstall(op: StoredOperation): Promise<OperationStatus> {
    const activities = await this.activitiesSince(Number(op.target), Number(op.facts.activityFloor ?? 0));
    const mine = activities.filter((a) => isScriptActivity(a, this.scriptId));
    const done = mine.find((a) => a.statusCode === 'COMPLETED');
    if (done) {
      if (done.activityResult !== 'SUCCESS') return this.finish(op, { state: 'failed', error: scriptFailure(done.message ?? '') });
      const detail = await this.device(Number(op.target));
      // The script asks Windows first-hand; os.needsReboot may lag until the agent's next system report.
      return this.finish(op, { state: 'succeeded', rebootRequired: scriptWantsReboot(done.message ?? '') || (detail.os?.needsReboot ?? false) });
    }
    const waited = this.now().getTime() - (op.sentAt ?? op.createdAt).getTime();
    if (mine.length === 0 && waited >= this.notStartedMs) {
      return this.finish(op, {
        state: 'failed',
        error: `not started: no activity from the install script within ${Math.round(this.notStartedMs / 60_000)} minutes (a script sent to a device that went away never runs)`,
        notStarted: true,
      });
    }
    return { handle: op.key, state: 'running' };
  }

  // ---- reboot ----

  private async rebootStatus(op: StoredOperation): Promise<OperationStatus> {
    if (op.result) return toStatus(op.key, op.result);
    const id = Number(op.target);
    const detail = await this.device(id);
    const before = Number(op.facts.bootTimeBefore ?? 0);
    const rebooted = (await this.activitiesSince(id, Number(op.facts.activityFloor ?? 0))).some((a) => a.statusCode === 'SYSTEM_REBOOTED');
    const bootMoved = (detail.os?.lastBootTime ?? 0) > before;
    if (!detail.offline && (rebooted || bootMoved)) return this.finish(op, { state: 'succeeded' });
    const waited = this.now().getTime() - (op.sentAt ?? op.createdAt).getTime();
    if (waited >= this.rebootConfirmMs && !detail.offline) {
      return this.finish(op, { state: 'failed', error: `reboot not confirmed: ${detail.systemName} is online and its boot time has not changed in ${Math.round(waited / 60_000)} minutes` });
    }
    return { handle: op.key, state: 'running' };
  }

  // ---- shared ----

  private async finish(op: StoredOperation, result: OperationResult): Promise<OperationStatus> {
    await updateOperation(this.db, op.key, { phase: 'done', result, at: this.now() });
    return toStatus(op.key, result);
  }

  /** A request refused before touching the device, recorded so the same key keeps its answer. */
  private async refuse(key: string, kind: 'install' | 'reboot', device: DeviceRef, target: string, error: string, kbs: string[] = [], notStarted = false): Promise<OperationStatus> {
    const { operation } = await claimOperation(this.db, { key, backend: BACKEND, kind, device: device.name, target, updates: kbs, phase: 'done', at: this.now() });
    if (operation.result) return toStatus(key, operation.result);
    return this.finish(operation, { state: 'failed', error, ...(notStarted ? { notStarted } : {}) });
  }

  private device(id: number): Promise<NinjaDevice> {
    return this.client.get<NinjaDevice>(`v2/device/${id}`);
  }

  /** A scan refreshes what the device reports; its answer is not needed, so an unclear one is not an error. */
  private async scan(id: number): Promise<void> {
    try {
      await this.client.post(`v2/device/${id}/patch/os/scan`);
    } catch (error) {
      if (error instanceof NinjaOneHttpError && error.status !== 400) throw error;
    }
  }

  /** The newest activity id on the device now: what happens next is newer than it (ids, not times). */
  private async latestActivityId(id: number): Promise<number> {
    const page = await this.client.get<{ activities?: NinjaActivityRow[] }>(`v2/device/${id}/activities?pageSize=10`);
    return Math.max(0, ...(page.activities ?? []).map((a) => a.id));
  }

  /** Newest first, up to NinjaOne's page maximum: far more than a device logs while one install or reboot runs. */
  private async activitiesSince(id: number, floor: number): Promise<NinjaActivityRow[]> {
    const page = await this.client.get<{ activities?: NinjaActivityRow[] }>(`v2/device/${id}/activities?newerThan=${floor}&pageSize=1000`);
    return page.activities ?? [];
  }

  /** Devices are addressed by system name; the list is read again (keyset pages) when a name is not known yet. */
  private async deviceFor(device: DeviceRef): Promise<number | undefined> {
    const name = device.name.toLowerCase();
    if (!this.deviceIds.has(name) && !this.listing && Date.now() - this.listedAt >= 60_000) {
      this.listedAt = Date.now();
      this.listing = this.listDevices().finally(() => (this.listing = undefined));
    }
    if (!this.deviceIds.has(name) && this.listing) await this.listing;
    const id = this.deviceIds.get(name);
    if (id === 'ambiguous') throw new Error(`several NinjaOne devices are named ${device.name}: patchbay cannot tell which machine is meant`);
    return id;
  }

  private async listDevices(): Promise<void> {
    const ids = new Map<string, number | 'ambiguous'>();
    const pageSize = 1000;
    for (let after = 0; ; ) {
      const page = await this.client.get<Array<{ id: number; systemName?: string | null }>>(`v2/devices?pageSize=${pageSize}&after=${after}`);
      for (const d of page) {
        const name = (d.systemName ?? '').toLowerCase();
        if (name !== '') ids.set(name, ids.has(name) ? 'ambiguous' : d.id);
      }
      if (page.length < pageSize) break;
      after = page.at(-1)!.id;
    }
    this.deviceIds = ids;
  }
}

function isScriptActivity(a: NinjaActivityRow, scriptId: number): boolean {
  return (a.activityType === 'ACTION' || a.activityType === 'SCRIPTING') && (a.data?.scriptId === undefined || Number(a.data.scriptId) === scriptId);
}

/** The script's failure lines (`PATCHBAY KB… FAILED <code>`), or its message when it died before printing any. */
export function scriptFailure(output: string): string {
  const failed = output.split('\n').map((l) => /^PATCHBAY (KB\d+) FAILED ?(.*)$/.exec(l.trim())).filter((m) => m !== null);
  if (failed.length > 0) return failed.map((m) => `${m[1]} failed${m[2] ? `: ${m[2]}` : ''}`).join('; ');
  const text = output.trim();
  return text === '' ? 'the install script failed without output' : `the install script failed: ${text.slice(0, 300)}`;
}

export function scriptWantsReboot(output: string): boolean {
  return /^PATCHBAY REBOOT_REQUIRED YES$/m.test(output);
}

function toStatus(handle: string, result: OperationResult): OperationStatus {
  return {
    handle,
    state: result.state,
    ...(result.rebootRequired !== undefined ? { rebootRequired: result.rebootRequired } : {}),
    ...(result.error !== undefined ? { error: result.error } : {}),
    ...(result.notStarted ? { notStarted: true } : {}),
  };
}
