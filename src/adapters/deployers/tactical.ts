/**
 * Tactical RMM behind the Deployer port, mapped as ../shared/research/device-backends.md §1.8 says:
 *
 * - isOnline: `GET /agents/{agent_id}/` status (computed from last_seen);
 * - install: approve exactly the run's KBs on the agent (`PUT /winupdate/{pk}/`, any other approved row back to
 *   `nothing`), a live `/ping/`, then `POST /winupdate/{agent_id}/install/`; the handle is patchbay's key;
 * - status: the rows' `result`/`installed`, then the agent's `needs_reboot`;
 * - reboot: `POST /agents/{agent_id}/reboot/`, done when `boot_time` has moved on and the agent is online;
 * - verify: `POST …/scan/` and the rows' `installed`; `needs_reboot` for a pending reboot.
 *
 * Tactical has no idempotency, no job id and no error codes, so this adapter keeps the key -> operation mapping in
 * Postgres (deployer_operations), written before Tactical is asked: a worker killed at any point asks again with
 * the same key and resumes where the row says, never sending a second install or reboot. An install Tactical
 * never delivered (its publish to an offline agent is lost) shows as no result at all: after `notStartedMinutes`
 * that is "not started", so the run retries inside its window or rolls to the next. A failure is only ever
 * "failed": Tactical carries no Windows error code.
 *
 * Before acting on an agent its effective patch policy is read; one that would approve, install or reboot by
 * itself is refused (tactical-policy.ts), answered `refused` so the run leaves the agent alone.
 *
 * Tactical down (no answer, 5xx beyond the client's retries) or refusing the key (401/403) is the port's
 * DeployerUnavailable from every call: the run pauses. An operation already sent answers `running` instead, so the
 * run keeps following it under its key.
 */
import type { AppDatabase } from '../../db/client.ts';
import { claimOperation, findOperation, updateOperation, type OperationResult, type StoredOperation } from '../../db/deployer-operations-repo.ts';
import { claimPreparedOperation } from '../../db/deployer-operations-repo.ts';
import { DeployerUnavailable, type Deployer, type DeviceRef, type OperationStatus, type UpdateRef, type Verification } from './port.ts';
import { TACTICAL, TacticalClient, TacticalHttpError, type TacticalClientOptions } from './tactical-client.ts';
import { approvalPlan, kbOf, policyProblems, policyRefusal, progressOf, type TacticalPatchPolicy, type WinUpdateRow } from './tactical-policy.ts';

/** The part of `GET /agents/{agent_id}/` (AgentSerializer) the adapter reads. */
export interface TacticalAgent {
  agent_id: string;
  hostname: string;
  status: 'online' | 'offline' | 'overdue';
  boot_time: number;
  needs_reboot: boolean;
  effective_patch_policy: TacticalPatchPolicy;
}

/** Points at which a test can make the adapter die, as a SIGKILLed worker would. */
export type CrashPoint = 'approved' | 'before-install-post' | 'after-install-post' | 'before-reboot-post' | 'after-reboot-post';

export interface TacticalDeployerOptions {
  client: TacticalClient | TacticalClientOptions;
  db: AppDatabase;
  now?: () => Date;
  /** No result for any of an install's rows within this long: it never reached the agent. Default 15. */
  notStartedMinutes?: number;
  /** A reboot whose boot_time has not moved within this long, on an agent still online: not confirmed. Default 20. */
  rebootConfirmMinutes?: number;
  /** After the last row's result, how long to wait for the agent's needs_reboot report (it follows ~5 s later). */
  settleSeconds?: number;
  crashAt?: (point: CrashPoint) => void;
}

const BACKEND = 'tactical';

export class TacticalDeployer implements Deployer {
  readonly name = 'tactical';
  readonly client: TacticalClient;
  private readonly db: AppDatabase;
  private readonly now: () => Date;
  private readonly notStartedMs: number;
  private readonly rebootConfirmMs: number;
  private readonly settleMs: number;
  private readonly crashAt: (point: CrashPoint) => void;
  private agentIds = new Map<string, string | 'ambiguous'>();
  /** When the agent list was last read (real time): a name Tactical does not know must not re-read it per call. */
  private listedAt = 0;
  private listing: Promise<void> | undefined;

  constructor(options: TacticalDeployerOptions) {
    this.client = options.client instanceof TacticalClient ? options.client : new TacticalClient(options.client);
    this.db = options.db;
    this.now = options.now ?? (() => new Date());
    this.notStartedMs = (options.notStartedMinutes ?? 15) * 60_000;
    this.rebootConfirmMs = (options.rebootConfirmMinutes ?? 20) * 60_000;
    this.settleMs = (options.settleSeconds ?? 30) * 1000;
    this.crashAt = options.crashAt ?? (() => {});
  }

  async isOnline(device: DeviceRef): Promise<boolean> {
    return this.unavailableAsOutage(async () => {
      const agentId = await this.agentFor(device);
      if (!agentId) return false;
      return (await this.agent(agentId)).status === 'online';
    });
  }

  async install(device: DeviceRef, updates: readonly UpdateRef[], idempotencyKey: string): Promise<OperationStatus> {
    return this.unavailableAsOutage(() => this.startInstall(device, updates, idempotencyKey));
  }

  private async startInstall(device: DeviceRef, updates: readonly UpdateRef[], idempotencyKey: string): Promise<OperationStatus> {
    const known = await findOperation(this.db, idempotencyKey);
    if (known) return known.phase === 'preparing' ? this.installStatus(known) : this.runningThroughOutage(known, () => this.installStatus(known));
    const kbs = updates.map((u) => kbOf(u.kb ?? u.key));
    const agentId = await this.agentFor(device);
    if (!agentId) return this.refuse(idempotencyKey, 'install', device, '', `no Tactical RMM agent is named ${device.name}`, kbs);
    const agent = await this.agent(agentId);
    const problems = policyProblems(agent.effective_patch_policy ?? {});
    if (problems.length > 0) return this.refuse(idempotencyKey, 'install', device, agentId, policyRefusal(agent.hostname, problems), kbs, { refused: true });
    if (agent.status !== 'online') return this.refuse(idempotencyKey, 'install', device, agentId, `not started: Tactical RMM reports ${agent.hostname} ${agent.status}`, kbs, { notStarted: true });
    const { operation } = await claimOperation(this.db, { key: idempotencyKey, backend: BACKEND, kind: 'install', device: device.name, target: agentId, updates: kbs, phase: 'preparing', at: this.now() });
    return this.installStatus(operation);
  }

  async reboot(device: DeviceRef, idempotencyKey: string): Promise<OperationStatus> {
    return this.unavailableAsOutage(() => this.startReboot(device, idempotencyKey));
  }

  private async startReboot(device: DeviceRef, idempotencyKey: string): Promise<OperationStatus> {
    const known = await findOperation(this.db, idempotencyKey);
    if (known && known.phase !== 'preparing') return this.runningThroughOutage(known, () => this.rebootStatus(known));
    const agentId = await this.agentFor(device);
    if (!agentId) return this.refuse(idempotencyKey, 'reboot', device, '', `no Tactical RMM agent is named ${device.name}`);
    const agent = await this.agent(agentId);
    if (agent.status !== 'online') return this.refuse(idempotencyKey, 'reboot', device, agentId, `not started: Tactical RMM reports ${agent.hostname} ${agent.status}`, [], { notStarted: true });
    // Written before the POST: whatever happens to this worker next, this key never sends a second reboot. A key
    // whose POST Tactical refused (the API key) is `preparing` again, and only one asker may take it back to `sent`.
    const now = this.now();
    const claim = { key: idempotencyKey, backend: BACKEND, kind: 'reboot' as const, device: device.name, target: agentId, phase: 'sent' as const, facts: { bootTimeBefore: agent.boot_time }, sentAt: now, at: now };
    const { operation, created } = known ? await claimPreparedOperation(this.db, claim) : await claimOperation(this.db, claim);
    if (!created) return this.rebootStatus(operation);
    this.crashAt('before-reboot-post');
    try {
      await this.client.post(`agents/${agentId}/reboot/`, 'never');
    } catch (error) {
      // 400 "Unable to contact the agent": the agent did not answer, so it did not reboot. 401/403: Tactical refused
      // the key, so nothing was done and the key may send once the key works. Anything else (5xx, a timeout) is
      // unclear: the machine may be going down, so boot_time decides, never a second POST.
      if (error instanceof TacticalHttpError && error.status === 400) return this.finish(operation, { state: 'failed', error: `not started: ${error.detail}`, notStarted: true });
      if (error instanceof TacticalHttpError && isKeyRefused(error)) await updateOperation(this.db, operation.key, { phase: 'preparing', at: this.now() });
      if (error instanceof TacticalHttpError) throw error;
    }
    this.crashAt('after-reboot-post');
    return { handle: idempotencyKey, state: 'running' };
  }

  async status(_device: DeviceRef, handle: string): Promise<OperationStatus> {
    const operation = await findOperation(this.db, handle);
    if (!operation) return { handle, state: 'failed', error: `no Tactical RMM operation ${handle} is recorded` };
    return this.unavailableAsOutage(() => (operation.kind === 'install' ? this.installStatus(operation) : this.rebootStatus(operation)));
  }

  async verify(device: DeviceRef, updates: readonly UpdateRef[]): Promise<Verification> {
    return this.unavailableAsOutage(() => this.verifyRows(device, updates));
  }

  private async verifyRows(device: DeviceRef, updates: readonly UpdateRef[]): Promise<Verification> {
    const agentId = await this.agentFor(device);
    if (!agentId) return { missing: updates.map((u) => u.key), rebootPending: false };
    const agent = await this.agent(agentId);
    // A scan refreshes what Windows Update offers for the next look; results of installs are already in the rows.
    if (agent.status === 'online') await this.client.post(`winupdate/${agentId}/scan/`, 'safe');
    const rows = await this.rows(agentId);
    const progress = progressOf(rows, updates.flatMap((u) => [u.kb ?? u.key, ...(u.supersededBy ?? [])]));
    const installed = (kb: string) => progress.get(kbOf(kb)) === 'installed';
    // Tactical deletes the row of an update Windows Update stopped offering: installed if a successor is.
    const missing = updates.filter((u) => !installed(u.kb ?? u.key) && !(progress.get(kbOf(u.kb ?? u.key)) === 'absent' && (u.supersededBy ?? []).some(installed)));
    return { missing: missing.map((u) => u.key), rebootPending: agent.needs_reboot };
  }

  // ---- install ----

  private async installStatus(op: StoredOperation): Promise<OperationStatus> {
    if (op.result) return toStatus(op.key, op.result);
    if (op.phase === 'preparing') return this.sendInstall(op);
    return this.pollInstall(op);
  }

  /** Approves exactly the run's KBs, checks the agent answers, and sends the install. Safe to repeat until sent. */
  private async sendInstall(op: StoredOperation): Promise<OperationStatus> {
    const plan = approvalPlan(await this.rows(op.target), op.updates);
    if (plan.toInstall.length === 0) {
      // Nothing left to install (done earlier, or not offered): verify judges what is missing.
      const agent = await this.agent(op.target);
      return this.finish(op, { state: 'succeeded', rebootRequired: agent.needs_reboot });
    }
    for (const id of plan.unapprove) await this.client.put(`winupdate/${id}/`, { action: 'nothing' });
    for (const id of plan.approve) await this.client.put(`winupdate/${id}/`, { action: 'approve', result: 'n/a' });
    this.crashAt('approved');
    // status comes from last_seen and lags up to 4 minutes; a live ping avoids sending an install that is lost.
    const ping = await this.client.get<{ status?: string }>(`agents/${op.target}/ping/`);
    if (ping?.status !== 'online') return this.finish(op, { state: 'failed', error: `not started: ${op.device} did not answer Tactical RMM's ping`, notStarted: true });
    await updateOperation(this.db, op.key, { phase: 'sent', sentAt: this.now(), at: this.now() });
    this.crashAt('before-install-post');
    try {
      await this.client.post(`winupdate/${op.target}/install/`, 'on-5xx');
    } catch (error) {
      if (error instanceof TacticalHttpError) throw error;
      // Unclear whether it went out: the rows will tell, and silence becomes "not started".
    }
    this.crashAt('after-install-post');
    return { handle: op.key, state: 'running' };
  }

  private async pollInstall(op: StoredOperation): Promise<OperationStatus> {
    const rows = await this.rows(op.target);
    const progress = progressOf(rows, op.updates);
    const states = [...progress.values()];
    const now = this.now();
    if (states.includes('pending')) {
      const heard = states.some((s) => s !== 'pending');
      const waited = now.getTime() - (op.sentAt ?? op.createdAt).getTime();
      if (!heard && waited >= this.notStartedMs) {
        await this.withdraw(rows, op.updates);
        return this.finish(op, {
          state: 'failed',
          error: `not started: no result from Tactical RMM within ${Math.round(this.notStartedMs / 60_000)} minutes (an install sent while the agent was away is lost)`,
          notStarted: true,
        });
      }
      return { handle: op.key, state: 'running' };
    }
    // Every row has its result; the agent reports needs_reboot about 5 s after its last one.
    const allDoneAt = typeof op.facts.allDoneAt === 'string' ? Date.parse(op.facts.allDoneAt) : undefined;
    if (allDoneAt === undefined) {
      await updateOperation(this.db, op.key, { facts: { allDoneAt: now.toISOString() }, at: now });
      return { handle: op.key, state: 'running' };
    }
    if (now.getTime() - allDoneAt < this.settleMs) return { handle: op.key, state: 'running' };
    const failed = [...progress].filter(([, s]) => s === 'failed').map(([kb]) => kb);
    if (failed.length > 0) {
      await this.withdraw(rows, failed);
      return this.finish(op, { state: 'failed', error: `${failed.join(', ')} failed (Tactical gives no error code)` });
    }
    const agent = await this.agent(op.target);
    return this.finish(op, { state: 'succeeded', rebootRequired: agent.needs_reboot });
  }

  /** Approvals left behind would be installed by whoever next presses "install" in Tactical: take them back. */
  private async withdraw(rows: readonly WinUpdateRow[], kbs: readonly string[]): Promise<void> {
    const wanted = new Set(kbs.map(kbOf));
    for (const row of rows) {
      if (row.kb && wanted.has(kbOf(row.kb)) && row.action === 'approve' && !row.installed) await this.client.put(`winupdate/${row.id}/`, { action: 'nothing' });
    }
  }

  // ---- reboot ----

  private async rebootStatus(op: StoredOperation): Promise<OperationStatus> {
    if (op.result) return toStatus(op.key, op.result);
    const agent = await this.agent(op.target);
    const before = Number(op.facts.bootTimeBefore ?? 0);
    // boot_time comes with the agent's checkin after it started again: proof the machine went down and came back.
    if (agent.boot_time > before && agent.status === 'online') return this.finish(op, { state: 'succeeded' });
    const waited = this.now().getTime() - (op.sentAt ?? op.createdAt).getTime();
    if (waited >= this.rebootConfirmMs && agent.status === 'online' && agent.boot_time === before) {
      return this.finish(op, { state: 'failed', error: `reboot not confirmed: ${agent.hostname} is online and its boot time has not changed in ${Math.round(waited / 60_000)} minutes` });
    }
    return { handle: op.key, state: 'running' };
  }

  // ---- shared ----

  /** Tactical refusing the key is an outage of Tactical for patchbay, like Tactical not answering: the port's error. */
  private async unavailableAsOutage<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof TacticalHttpError && isKeyRefused(error)) {
        const why = error.status === 401 ? 'the API key was refused' : "the API key's role lacks a permission patchbay needs";
        throw new DeployerUnavailable(TACTICAL, this.client.host, `HTTP ${error.status}: ${why}`, { cause: error });
      }
      throw error;
    }
  }

  /** An operation Tactical may have received: an outage while reading it back is "still running", never a new start. */
  private async runningThroughOutage(op: StoredOperation, read: () => Promise<OperationStatus>): Promise<OperationStatus> {
    try {
      return await this.unavailableAsOutage(read);
    } catch (error) {
      if (error instanceof DeployerUnavailable) return { handle: op.key, state: 'running' };
      throw error;
    }
  }

  private async finish(op: StoredOperation, result: OperationResult): Promise<OperationStatus> {
    await updateOperation(this.db, op.key, { phase: 'done', result, at: this.now() });
    return toStatus(op.key, result);
  }

  /** A request refused before touching the device, recorded so the same key keeps its answer. */
  private async refuse(
    key: string,
    kind: 'install' | 'reboot',
    device: DeviceRef,
    target: string,
    error: string,
    kbs: string[] = [],
    why: { notStarted?: true; refused?: true } = {},
  ): Promise<OperationStatus> {
    const { operation } = await claimOperation(this.db, { key, backend: BACKEND, kind, device: device.name, target, updates: kbs, phase: 'done', at: this.now() });
    if (operation.result) return toStatus(key, operation.result);
    return this.finish(operation, { state: 'failed', error, ...why });
  }

  private async agent(agentId: string): Promise<TacticalAgent> {
    return this.client.get<TacticalAgent>(`agents/${agentId}/`);
  }

  private async rows(agentId: string): Promise<WinUpdateRow[]> {
    return this.client.get<WinUpdateRow[]>(`winupdate/${agentId}/`);
  }

  /** Devices are addressed by hostname; the list is read again when a name is not known yet. */
  private async agentFor(device: DeviceRef): Promise<string | undefined> {
    const name = device.name.toLowerCase();
    // Many runs start at once: they share one read of the list rather than each reading (or missing) it.
    if (!this.agentIds.has(name) && !this.listing && Date.now() - this.listedAt >= 60_000) {
      this.listedAt = Date.now();
      this.listing = this.listAgents()
        .catch((error: unknown) => {
          // Not read (Tactical down, or the key refused): the next call reads it again rather than taking every name as unknown.
          this.listedAt = 0;
          throw error;
        })
        .finally(() => (this.listing = undefined));
    }
    if (!this.agentIds.has(name) && this.listing) await this.listing;
    const id = this.agentIds.get(name);
    if (id === 'ambiguous') throw new Error(`several Tactical RMM agents are named ${device.name}: patchbay cannot tell which machine is meant`);
    return id;
  }

  private async listAgents(): Promise<void> {
    const agents = await this.client.get<Array<{ hostname: string; agent_id: string }>>('agents/?detail=false');
    const ids = new Map<string, string | 'ambiguous'>();
    for (const a of agents) ids.set(a.hostname.toLowerCase(), ids.has(a.hostname.toLowerCase()) ? 'ambiguous' : a.agent_id);
    this.agentIds = ids;
  }
}

function toStatus(handle: string, result: OperationResult): OperationStatus {
  return {
    handle,
    state: result.state,
    ...(result.rebootRequired !== undefined ? { rebootRequired: result.rebootRequired } : {}),
    ...(result.error !== undefined ? { error: result.error } : {}),
    ...(result.notStarted ? { notStarted: true } : {}),
    ...(result.refused ? { refused: true } : {}),
  };
}

/** 401: the key is wrong, expired or its user inactive; 403: its role lacks a permission (research §1.1). */
function isKeyRefused(error: TacticalHttpError): boolean {
  return error.status === 401 || error.status === 403;
}
