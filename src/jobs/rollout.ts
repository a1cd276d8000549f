/**
 * The rollout engine on BullMQ. Two queues:
 *
 * - `rollout-sweep`: a job scheduler ticks it every few seconds. A sweep reads Postgres only: it opens windows for
 *   gates whose devices' windows are open (gate event + planned runs, ON CONFLICT DO NOTHING), moves gates on
 *   (finished rings, soak and auto-confirm deadlines), and re-adds a job for every unfinished run Postgres knows,
 *   admitted by the concurrency limits. The job id is the run's (`run-<id>`), so re-adding is a no-op while the
 *   job exists, and if Redis lost everything the next sweep puts it all back.
 * - `rollout-run`: one job per run. It loads the run, asks the step machine what to do, stores the decision, calls
 *   the Deployer, stores the answer, and so on to the end. Every store is compare-and-set on the run's seq, so
 *   two processors of one run cannot both act; every device call carries the step's idempotency key.
 *
 * Processors are thin: the rules live in src/domain (rollout.ts, run.ts, plan.ts).
 */
import { DelayedError, type Job, type Queue } from 'bullmq';
import { DateTime } from 'luxon';
import { toOutcome, type Deployer, type DeviceRef, type UpdateRef } from '../adapters/deployers/port.ts';
import { SimulatedFleet } from '../adapters/deployers/simulated.ts';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import { activeHolds, effectiveApprovals } from '../db/decisions-repo.ts';
import { enqueueOutbox, type OutboxItem } from '../db/outbox-repo.ts';
import { loadRelease } from '../db/release-repo.ts';
import {
  ConflictError,
  devicesSettled,
  finishedGates,
  gateDevices,
  insertRuns,
  loadBook,
  loadRunContext,
  openGates,
  persistRowEffects,
  saveGates,
  saveRun,
  unfinishedRuns,
  updateDeviceMisses,
  type NewRun,
  type RunContext,
} from '../db/rollout-repo.ts';
import { sql } from 'drizzle-orm';
import { admit, planWindow, type PlanUpdate } from '../domain/plan.ts';
import { gatesTouched, isHeld, transition, type Hold, type RolloutEffect, type RolloutEvent, type RolloutTransition } from '../domain/rollout.ts';
import { afterRun, decide, DEFAULT_RUN_POLICY, observe, TERMINAL, type Action, type Outcome, type Run, type RunEnv, type RunPolicy } from '../domain/run.ts';
import { parseWindowSpec, type WindowRule } from '../domain/window-spec.ts';
import { nextWindow, windowContaining, type MaintenanceWindow } from '../domain/windows.ts';
import type { Product } from '../domain/release.ts';
import type { JobContext, JobModule } from './index.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';

export const SWEEP_QUEUE = 'rollout-sweep';
export const RUN_QUEUE = 'rollout-run';
const SWEEP_SCHEDULER_ID = 'rollout-sweep-tick';

export interface RolloutOptions {
  /** Default: a simulated fleet on the context's clock (the local demo; real deployers come with their issue). */
  deployer?: Deployer;
  policy?: Partial<RunPolicy>;
  sweepEveryMs?: number;
  /** Run jobs in flight per worker process (the overall limit per process). */
  workerConcurrency?: number;
  /** Real milliseconds between polls of an operation in progress. */
  pollMs?: number;
  /** Real milliseconds to wait for a clock instant; tests with a fast clock shrink it. */
  realDelayMs?: (until: Date, now: Date) => number;
  /** How long a worker trusts its copy of the holds: a hold stops new work within this. */
  holdsCacheMs?: number;
  /** BullMQ's lock on an active job, and how often stalled jobs (a worker died holding them) are taken back. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

export interface SweepReport {
  windowsOpened: number;
  held: number;
  runsPlanned: number;
  jobsAdded: number;
  gatesFinished: number;
}

interface Catalog {
  products: Product[];
  updates: PlanUpdate[];
  byKey: Map<string, UpdateRef>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function parseRule(spec: string | null | undefined): WindowRule | undefined {
  if (!spec) return undefined;
  const parsed = parseWindowSpec(spec);
  return parsed.ok ? parsed.value : undefined;
}

export class RolloutEngine {
  readonly queue: Queue;
  readonly policy: RunPolicy;
  readonly deployer: Deployer;
  private holdsCache: { at: number; holds: Hold[] } | undefined;
  private readonly catalogs = new Map<string, Promise<Catalog | undefined>>();

  constructor(
    private readonly context: JobContext,
    private readonly options: RolloutOptions = {},
  ) {
    this.queue = createQueue(context, RUN_QUEUE, { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: 'exponential', delay: 1000 } });
    this.policy = { ...DEFAULT_RUN_POLICY, ...options.policy };
    this.deployer = options.deployer ?? new SimulatedFleet({ clock: context.now });
  }

  private get db(): AppDatabase {
    return this.context.database.db;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }

  async holds(fresh = false): Promise<Hold[]> {
    const ttl = this.options.holdsCacheMs ?? 1000;
    if (!fresh && this.holdsCache && Date.now() - this.holdsCache.at < ttl) return this.holdsCache.holds;
    const holds = (await activeHolds(this.db)).map((h) => ({ scope: h.scope, releaseId: h.releaseId, updateKey: h.updateKey, clientId: h.clientId, ring: h.ring }));
    this.holdsCache = { at: Date.now(), holds };
    return holds;
  }

  private catalog(releaseId: string): Promise<Catalog | undefined> {
    let cached = this.catalogs.get(releaseId);
    if (!cached) {
      cached = loadRelease(this.db, releaseId).then((release) => {
        if (!release) return undefined;
        const updates = release.updates.map((u) => ({ key: u.id, productIds: u.productIds, restartRequired: u.restartRequired }));
        return {
          products: release.products,
          updates,
          byKey: new Map(release.updates.map((u) => [u.id, { key: u.id, kb: u.kb, restartRequired: u.restartRequired }])),
        };
      });
      this.catalogs.set(releaseId, cached);
      // A revision may add or drop updates: do not keep the model for long.
      setTimeout(() => this.catalogs.delete(releaseId), 60_000).unref();
    }
    return cached;
  }

  /** Applies one gate event in one transaction (compare-and-set on each gate's version), with its row effects. */
  async applyEvent(releaseId: string, event: RolloutEvent): Promise<RolloutTransition> {
    const now = this.context.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.db.transaction(async (tx) => {
          const book = await loadBook(tx, releaseId, true, gatesTouched(event));
          const result = transition(book, event, now);
          if (result.outcome !== 'applied') return result;
          await saveGates(tx, book, result.book, result.changed, now);
          await persistRowEffects(tx, releaseId, result.effects, now);
          await enqueueOutbox(tx, await this.chatFor(tx, releaseId, result.effects), now);
          return result;
        });
      } catch (error) {
        // Another worker moved a gate between our read and write: read again and decide afresh.
        if (error instanceof ConflictError && attempt < 3) continue;
        throw error;
      }
    }
  }

  /** Plain messages to the engineers' channel for the gate effects people act on; rich cards come later. */
  private async chatFor(tx: AppDatabase, releaseId: string, effects: readonly RolloutEffect[]): Promise<OutboxItem[]> {
    const wanted = effects.filter((e) => e.type === 'offer_promotion' || e.type === 'alert_engineers' || e.type === 'ask_confirmation');
    if (wanted.length === 0) return [];
    const channel = rowsOf<{ channel: string }>(await tx.execute(sql`select channel from msp where id = 1`))[0]?.channel;
    if (!channel) return [];
    return wanted.map((effect): OutboxItem => {
      switch (effect.type) {
        case 'offer_promotion':
          return {
            key: `rollout:${releaseId}:offer-promotion`,
            channel,
            action: 'post',
            subject: `rollout:${releaseId}:promote`,
            payload: { text: `${releaseId}: ring msp finished and soaked. Ready to promote to pilot.`, threadSubject: `digest:${releaseId}` },
          };
        case 'alert_engineers':
          return {
            key: `rollout:${releaseId}:problem:${effect.clientId}`,
            channel,
            action: 'post',
            subject: `rollout:${releaseId}:problem:${effect.clientId}`,
            payload: { text: `${releaseId}: ${effect.clientId} reported a pilot problem; the client is held.`, threadSubject: `digest:${releaseId}` },
          };
        default:
          return {
            key: `rollout:${releaseId}:pilot-finished:${(effect as { clientId: string }).clientId}`,
            channel,
            action: 'post',
            subject: `rollout:${releaseId}:pilot:${(effect as { clientId: string }).clientId}`,
            payload: { text: `${releaseId}: pilot finished for ${(effect as { clientId: string }).clientId}; waiting for the champion.`, threadSubject: `digest:${releaseId}` },
          };
      }
    });
  }

  /** Everything Postgres says should be happening now; safe to run any number of times, from any process. */
  async sweep(): Promise<SweepReport> {
    const nowDate = this.context.now();
    const now = DateTime.fromJSDate(nowDate, { zone: 'utc' });
    const report: SweepReport = { windowsOpened: 0, held: 0, runsPlanned: 0, jobsAdded: 0, gatesFinished: 0 };
    const holds = await this.holds(true);
    const approvalsByRelease = new Map<string, ReadonlySet<string> | 'all'>();

    for (const gate of await openGates(this.db)) {
      const owned = await gateDevices(this.db, gate);
      if (!owned) continue;
      const byClass = new Map<string, typeof owned.devices>();
      for (const device of owned.devices) {
        const list = byClass.get(device.class);
        if (list) list.push(device);
        else byClass.set(device.class, [device]);
      }
      for (const [deviceClass, devices] of byClass) {
        const rule = parseRule(owned.windows[deviceClass]);
        if (!rule) continue;
        const window = windowContaining(rule, owned.timezone, now);
        if (!window) continue;
        const windowStart = window.start.toUTC().toISO()!;
        if (isHeld(holds, { releaseId: gate.releaseId, ring: gate.ring, clientId: gate.clientId })) {
          report.held++;
          continue;
        }
        if (gate.state === 'scheduled') {
          const opened = await this.applyEvent(gate.releaseId, { type: 'window_opened', ring: gate.ring, clientId: gate.clientId, windowStart, holds });
          if (opened.outcome === 'refused') continue;
          gate.state = 'running';
          report.windowsOpened++;
        }
        const catalog = await this.catalog(gate.releaseId);
        if (!catalog) continue;
        let approved = approvalsByRelease.get(gate.releaseId);
        if (!approved) {
          const approvals = await effectiveApprovals(this.db, gate.releaseId);
          approved = approvals.some((a) => a.updateKey === null) ? 'all' : new Set(approvals.map((a) => a.updateKey!));
          approvalsByRelease.set(gate.releaseId, approved);
        }
        const settled = await devicesSettled(this.db, gate.releaseId, devices.map((d) => d.id), windowStart);
        const plan = planWindow({
          releaseId: gate.releaseId,
          ring: gate.ring,
          clientId: gate.clientId,
          devices: devices.filter((d) => !settled.planned.has(d.id)),
          products: catalog.products,
          updates: catalog.updates,
          approved,
          holds,
          done: settled.done,
        });
        const rows: NewRun[] = plan.runs.map((r) => ({
          deviceId: r.deviceId,
          releaseId: gate.releaseId,
          rolloutId: gate.id,
          windowStart,
          windowEnd: window.end.toUTC().toISO()!,
          updates: r.updates,
        }));
        report.runsPlanned += await insertRuns(this.db, rows, nowDate);
      }
    }

    report.jobsAdded = await this.enqueueUnfinished();

    for (const gate of await finishedGates(this.db)) {
      const settings = await this.settingsFor(gate.clientId);
      const result = await this.applyEvent(gate.releaseId, {
        type: 'ring_finished',
        ring: gate.ring,
        clientId: gate.clientId,
        soakHours: settings.soakHours,
        autoConfirmHours: settings.autoConfirmHours,
      });
      if (result.outcome === 'applied') report.gatesFinished++;
    }
    const waiting = rowsOf<{ release_id: string }>(
      await this.db.execute(sql`select distinct release_id from rollouts where state in ('soaking', 'awaiting_confirmation')`),
    );
    for (const { release_id } of waiting) await this.applyEvent(release_id, { type: 'tick' });
    return report;
  }

  private async settingsFor(clientId: string | null): Promise<{ soakHours?: number; autoConfirmHours?: number }> {
    const msp = rowsOf<{ settings: { soakHours?: number } }>(await this.db.execute(sql`select settings from msp where id = 1`))[0];
    if (clientId === null) return { soakHours: msp?.settings.soakHours };
    const client = rowsOf<{ settings: { autoConfirmHours?: number } }>(await this.db.execute(sql`select settings from clients where id = ${clientId}`))[0];
    return { soakHours: msp?.settings.soakHours, autoConfirmHours: client?.settings.autoConfirmHours };
  }

  /** Adds a job for every unfinished run the limits admit; jobs already in Redis are left as they are. */
  async enqueueUnfinished(): Promise<number> {
    const unfinished = await unfinishedRuns(this.db);
    if (unfinished.length === 0) return 0;
    const limits = await this.clientLimits();
    const admitted = admit(unfinished, (clientId) => limits.get(clientId) ?? Infinity);
    const chunk = 5000;
    for (let i = 0; i < admitted.length; i += chunk) {
      await this.queue.addBulk(admitted.slice(i, i + chunk).map((r) => ({ name: 'run', data: { runId: r.id }, opts: { jobId: `run-${r.id}` } })));
    }
    return admitted.length;
  }

  private async clientLimits(): Promise<Map<string | null, number>> {
    const rows = rowsOf<{ id: string | null; limit: number | null }>(
      await this.db.execute(sql`select id, (settings ->> 'runConcurrency')::int as limit from clients where settings ? 'runConcurrency'
        union all select null, (settings ->> 'runConcurrency')::int from msp where settings ? 'runConcurrency'`),
    );
    return new Map(rows.filter((r) => r.limit !== null).map((r) => [r.id, Number(r.limit)]));
  }

  /**
   * Drives one run as far as it can go now. Returns the run as stored last, or undefined when another processor
   * holds it. With a BullMQ job, a wait longer than a poll moves the job to delayed instead of holding a slot.
   */
  async processRun(runId: number, job?: Job, token?: string): Promise<Run | undefined> {
    const loaded = await loadRunContext(this.db, runId);
    if (!loaded || TERMINAL.has(loaded.run.status)) return loaded?.run;
    const rule = parseRule(loaded.windowSpec);
    const window: MaintenanceWindow = {
      start: DateTime.fromISO(loaded.windowStart, { zone: loaded.timezone }),
      end: DateTime.fromISO(loaded.windowEnd, { zone: loaded.timezone }),
      day: '',
    };
    const nextWindowStart = rule ? nextWindow(rule, loaded.timezone, window.start).start.toUTC().toISO() : null;
    const device: DeviceRef = { id: loaded.device.id, name: loaded.device.name, os: loaded.device.os ?? undefined };
    const catalog = loaded.releaseId ? await this.catalog(loaded.releaseId) : undefined;
    const updates: UpdateRef[] = loaded.run.updates.map((key) => catalog?.byKey.get(key) ?? { key });
    let run = loaded.run;
    let seq = loaded.seq;

    const env = async (): Promise<RunEnv> => {
      const holds = await this.holds();
      const target = { releaseId: loaded.releaseId ?? '', ring: loaded.ring, clientId: loaded.clientId };
      const held = isHeld(holds, target) || (run.updates.length > 0 && run.updates.every((key) => isHeld(holds, { ...target, updateKey: key })));
      return { now: DateTime.fromJSDate(this.context.now(), { zone: 'utc' }), window, nextWindowStart, held, policy: this.policy };
    };
    const store = async (next: Run): Promise<boolean> => {
      const saved = await saveRun(this.db, runId, seq, next, this.context.now());
      if (saved === undefined) return false;
      seq = saved;
      run = next;
      if (TERMINAL.has(next.status)) await this.finished(loaded, next);
      return true;
    };

    for (let guard = 0; guard < 10_000; guard++) {
      const decision = decide(run, await env());
      if (decision.type === 'done') return run;
      if (decision.type === 'become') {
        if (!(await store(decision.run))) return undefined;
        continue;
      }
      if (decision.type === 'wait') {
        const nowDate = this.context.now();
        const delay = this.options.realDelayMs?.(decision.until.toJSDate(), nowDate) ?? decision.until.toMillis() - nowDate.getTime();
        if (delay <= 0) continue;
        if (job && token && delay > (this.options.pollMs ?? 2000)) {
          await job.moveToDelayed(Date.now() + delay, token);
          throw new DelayedError();
        }
        await sleep(delay);
        continue;
      }
      // Store the intent (and the operation's key) before the device hears of it. Online checks, polls and
      // verifications change nothing on the device, so they need no intent stored: a repeat is harmless.
      const sideEffect = decision.action.type === 'install' || decision.action.type === 'reboot';
      if (sideEffect && !(await store(decision.run))) return undefined;
      if (!sideEffect) run = decision.run;
      const outcome = await this.call(device, updates, decision.action);
      if (!(await store(observe(run, decision.action, outcome, await env())))) return undefined;
      if (outcome.type === 'progress' || (outcome.type === 'online' && !outcome.online)) {
        if (outcome.type === 'progress') await sleep(this.options.pollMs ?? 2000);
      }
    }
    throw new Error(`run ${runId} did not settle in 10000 steps`);
  }

  private async call(device: DeviceRef, updates: UpdateRef[], action: Action): Promise<Outcome> {
    switch (action.type) {
      case 'check_online':
        return { type: 'online', online: await this.deployer.isOnline(device) };
      case 'install':
        return toOutcome(await this.deployer.install(device, updates, action.key), true);
      case 'reboot':
        return toOutcome(await this.deployer.reboot(device, action.key), true);
      case 'poll':
        return toOutcome(await this.deployer.status(device, action.operation.handle!), false);
      case 'verify': {
        const verified = await this.deployer.verify(device, updates);
        return { type: 'verified', missing: verified.missing, rebootPending: verified.rebootPending };
      }
    }
  }

  private async finished(loaded: RunContext, run: Run): Promise<void> {
    const { consecutiveMissed, flag } = afterRun(run, loaded.device.consecutiveMissedWindows, this.policy);
    if (consecutiveMissed !== loaded.device.consecutiveMissedWindows || flag) {
      await updateDeviceMisses(this.db, loaded.device.id, consecutiveMissed, flag, this.context.now());
    }
  }
}

export function runWorkerOptions(options: RolloutOptions): { concurrency: number; lockDuration?: number; stalledInterval?: number } {
  return {
    concurrency: options.workerConcurrency ?? 50,
    ...(options.lockDurationMs !== undefined ? { lockDuration: options.lockDurationMs } : {}),
    ...(options.stalledIntervalMs !== undefined ? { stalledInterval: options.stalledIntervalMs } : {}),
  };
}

/** A worker for run jobs only, for tests and benchmarks that drive sweeps themselves. */
export function startRunWorker(context: JobContext, engine: RolloutEngine, options: RolloutOptions = {}) {
  return createWorker<{ runId: number }>(
    context,
    RUN_QUEUE,
    async (job, token) => {
      const run = await engine.processRun(job.data.runId, job, token);
      return run ? { status: run.status, reboots: run.reboots } : { status: 'elsewhere' };
    },
    runWorkerOptions(options),
  );
}

export function rolloutModule(options: RolloutOptions = {}): JobModule {
  return async (context) => {
    const hasScheduler = context.roles.has('scheduler');
    const hasWorker = context.roles.has('worker');
    if (!hasScheduler && !hasWorker) return { close: async () => {} };
    const engine = new RolloutEngine(context, options);
    const sweepQueue = createQueue(context, SWEEP_QUEUE, { ...KEEP_FEW, attempts: 1 });
    if (hasScheduler) {
      await sweepQueue.upsertJobScheduler(SWEEP_SCHEDULER_ID, { every: options.sweepEveryMs ?? 15_000 }, { name: 'sweep', opts: { ...KEEP_FEW, attempts: 1 } });
    }
    const workers = hasWorker
      ? [
          createWorker(context, SWEEP_QUEUE, async () => engine.sweep(), { concurrency: 1 }),
          createWorker<{ runId: number }>(
            context,
            RUN_QUEUE,
            async (job, token) => {
              const run = await engine.processRun(job.data.runId, job, token);
              return run ? { status: run.status, reboots: run.reboots } : { status: 'elsewhere' };
            },
            runWorkerOptions(options),
          ),
        ]
      : [];
    return {
      async close() {
        await closeAll(workers, [sweepQueue]);
        await engine.close();
      },
    };
  };
}

export const rollout: JobModule = rolloutModule();
