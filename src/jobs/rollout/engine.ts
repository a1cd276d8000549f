/**
 * The rollout engine on BullMQ. Two queues:
 *
 * - `rollout-sweep`: a job scheduler ticks it every few seconds. A sweep reads Postgres only: it opens windows for
 *   gates whose devices' windows are open (gate event + planned runs, ON CONFLICT DO NOTHING), moves gates on
 *   (finished rings, soak and auto-confirm deadlines), and re-adds a job for every unfinished run Postgres knows,
 *   admitted by the concurrency limits. The job id is the run's (`run-<id>`), so re-adding is a no-op while the
 *   job exists, and if Redis lost everything the next sweep puts it all back.
 * - `rollout-run`: one job per run (./run-driver.ts).
 *
 * Processors are thin: the rules live in src/domain (rollout.ts, run.ts, plan.ts).
 */
import type { Job, Queue } from 'bullmq';
import type { Deployer } from '../../adapters/deployers/port.ts';
import { SimulatedFleet } from '../../adapters/deployers/simulated.ts';
import type { AppDatabase } from '../../db/client.ts';
import { activeHolds } from '../../db/decisions-repo.ts';
import { loadRelease } from '../../db/release-repo.ts';
import { reopenStamp, restingReleaseIds, runConcurrencyLimits, unfinishedRunIds, unfinishedRuns } from '../../db/rollout-repo.ts';
import { admit } from '../../domain/plan.ts';
import type { Hold, RolloutEvent, RolloutTransition } from '../../domain/rollout.ts';
import { DEFAULT_RUN_POLICY, type Run, type RunPolicy } from '../../domain/run.ts';
import type { WindowRule } from '../../domain/window-spec.ts';
import { nextWindow, type MaintenanceWindow } from '../../domain/windows.ts';
import { reopenGatesWithWork } from '../../use-cases/reopen.ts';
import { withTransaction } from '../../use-cases/transaction.ts';
import type { JobContext } from '../context.ts';
import { createQueue } from '../queues.ts';
import { gateEvents, type GateEvents } from './gate-events.ts';
import { ADD_BULK_MAX } from './insert-runs.ts';
import { reportWindows } from './report-windows.ts';
import { processRun, type RunServices } from './run-driver.ts';
import { DeployerCalls, withSupersedence } from '../deployer-calls.ts';
import { sweep, type SweepReport } from './sweep.ts';
import type { Catalog } from './sweep-reads.ts';

export const RUN_QUEUE = 'rollout-run';

/** The limits map's key for the MSP's overall limit: no client id can be `*`, and null is the MSP's own machines. */
const OVERALL_LIMIT = '*';
/** A run's job id: one job per run, so adding it twice adds it once. */
const runJobId = (runId: number) => `run-${runId}`;

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
  /** Devices a sweep reads, plans and writes at a time (sweep.ts SWEEP_BATCH); tests make it small. */
  sweepBatch?: number;
}

export class RolloutEngine {
  readonly queue: Queue;
  readonly policy: RunPolicy;
  readonly deployer: Deployer;
  private readonly gates: GateEvents;
  /** One per engine: it remembers whether this worker saw the device manager down. */
  private readonly calls: DeployerCalls;
  private holdsCache: { at: number; holds: Hold[] } | undefined;
  private readonly catalogs = new Map<string, Promise<Catalog | undefined>>();
  private readonly nextWindows = new Map<string, string>();
  private lastReopenStamp: string | undefined;
  private stopping = false;

  constructor(
    private readonly context: JobContext,
    private readonly options: RolloutOptions = {},
  ) {
    this.queue = createQueue(context, RUN_QUEUE, { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: 'exponential', delay: 1000 } });
    this.policy = { ...DEFAULT_RUN_POLICY, ...options.policy };
    this.deployer = options.deployer ?? context.deployer ?? new SimulatedFleet({ clock: context.now });
    this.gates = gateEvents(context.database.db, () => context.now());
    this.calls = new DeployerCalls(this.deployer, context.database.db, () => context.now());
  }

  private get db(): AppDatabase {
    return this.context.database.db;
  }

  /** Said before the workers close: runs in flight hand their jobs back rather than poll through the stop. */
  beginStop(): void {
    this.stopping = true;
  }

  async close(): Promise<void> {
    this.stopping = true;
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
      cached = loadRelease(this.db, releaseId).then(async (release) => {
        if (!release) return undefined;
        const updates = release.updates.map((u) => ({ key: u.id, productIds: u.productIds, restartRequired: u.restartRequired }));
        return {
          products: release.products,
          updates,
          byKey: await withSupersedence(this.db, new Map(release.updates.map((u) => [u.id, { key: u.id, kb: u.kb, restartRequired: u.restartRequired }]))),
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
    return this.gates.apply(releaseId, event);
  }

  /** Applies events to one release's gates in order, in one transaction: a window opening for 400 clients at once. */
  async applyEvents(releaseId: string, events: readonly RolloutEvent[]): Promise<RolloutTransition[]> {
    return this.gates.applyAll(releaseId, events);
  }

  /** Everything Postgres says should be happening now; safe to run any number of times, from any process. */
  async sweep(): Promise<SweepReport> {
    return sweep({
      db: this.db,
      now: this.context.now(),
      reopenResting: (now) => this.reopenResting(now),
      gates: this.gates,
      holds: (fresh) => this.holds(fresh),
      catalog: (releaseId) => this.catalog(releaseId),
      clientLimits: () => this.clientLimits(),
      addRunJobs: (ids) => this.addRunJobs(ids),
      enqueueUnfinished: (upTo, limits) => this.enqueueUnfinished(upTo, limits),
      installBudgetMinutes: this.policy.installBudgetMinutes,
      ...(this.options.sweepBatch !== undefined ? { batch: this.options.sweepBatch } : {}),
    });
  }

  /** The sweep's report step on its own: the window messages due at `now`; returns how many were queued. */
  async reportWindows(now: Date): Promise<number> {
    return reportWindows(this.db, now);
  }

  /**
   * A gate at rest reopens when it has eligible work again: a device added by a re-import to a ring that had
   * finished, a hold released (the use-case reopens at once; this catches any other path), a ring skipped for an
   * update after its promotion. Checked only when what that depends on changed (reopenStamp), so flagged devices
   * and devices with nothing to install never make a gate reopen and re-finish on every sweep.
   */
  private async reopenResting(now: Date): Promise<void> {
    // Nothing at rest (a month's first nights, the benchmark): no stamp to read over every device.
    const releaseIds = await restingReleaseIds(this.db, now);
    if (releaseIds.length === 0) return;
    const stamp = await reopenStamp(this.db);
    if (stamp === this.lastReopenStamp) return;
    for (const releaseId of releaseIds) {
      // A gate moved by another writer meanwhile is read again (withTransaction retries a lost compare-and-set).
      await withTransaction({ db: this.db }, (tx) => reopenGatesWithWork(tx, releaseId, now));
    }
    this.lastReopenStamp = stamp;
  }

  /**
   * Adds a job for every unfinished run the limits admit; jobs already in Redis stay as they are. Without limits,
   * `upTo` leaves out the runs with higher ids (a sweep has just enqueued the ones it inserted); with limits, every
   * unfinished run counts against them.
   */
  async enqueueUnfinished(upTo?: number, limits?: Map<string | null, number>): Promise<number> {
    const perClient = limits ?? (await this.clientLimits());
    if (perClient.size === 0) return this.enqueueAllUnfinished(upTo);
    const unfinished = await unfinishedRuns(this.db);
    if (unfinished.length === 0) return 0;
    const admitted = admit(unfinished, (clientId) => perClient.get(clientId) ?? Infinity, perClient.get(OVERALL_LIMIT) ?? Infinity);
    return this.addMissingRunJobs(admitted.map((r) => r.id), await this.heldJobIds());
  }

  /** No limits: every unfinished run is admitted, read and added a bulk at a time by id (a keyset), whatever their number. */
  private async enqueueAllUnfinished(upTo: number | undefined): Promise<number> {
    let added = 0;
    let held: ReadonlySet<string> | undefined;
    for (let after = 0; ; ) {
      const ids = await unfinishedRunIds(this.db, { after, ...(upTo !== undefined ? { upTo } : {}), limit: ADD_BULK_MAX });
      if (ids.length === 0) return added;
      // Read once the first page shows there is something to look for: most sweeps outside a window have nothing.
      held ??= await this.heldJobIds();
      added += await this.addMissingRunJobs(ids, held);
      after = ids.at(-1)!;
    }
  }

  /**
   * The ids of every job the run queue holds, in whatever state, read in one MULTI (one consistent picture) from the
   * lists and sorted sets BullMQ keeps them in. Mid-window every sweep (15 s) asks about every unfinished run:
   * adding all 100,000 again, each a duplicate BullMQ ignores, took 7 s; one pipelined EXISTS each, ~1.3 s; these
   * few replies, a fraction of that. A list this misses would only make a job look missing: adding it again is a
   * no-op while BullMQ holds its id.
   */
  private async heldJobIds(): Promise<ReadonlySet<string>> {
    const { keys } = this.queue;
    const replies = (await this.context.redis
      .multi()
      .lrange(keys.wait!, 0, -1)
      .lrange(keys.active!, 0, -1)
      .lrange(keys.paused!, 0, -1)
      .zrange(keys.delayed!, '0', '-1')
      .zrange(keys.prioritized!, '0', '-1')
      .zrange(keys['waiting-children']!, '0', '-1')
      .zrange(keys.completed!, '0', '-1')
      .zrange(keys.failed!, '0', '-1')
      .exec()) ?? [];
    const held = new Set<string>();
    for (const [error, ids] of replies) {
      if (error) throw error;
      for (const id of ids as string[]) held.add(id);
    }
    return held;
  }

  /**
   * Adds the jobs Redis does not hold (lost with a Redis that restarted empty, never added by a process that died,
   * or failed for good while their run is unfinished); answers how many. A job that finishes between the read of
   * `held` and this is not added again; its run ended.
   */
  private async addMissingRunJobs(ids: readonly number[], held: ReadonlySet<string>): Promise<number> {
    const missing = ids.filter((id) => !held.has(runJobId(id)));
    await this.addRunJobs(missing);
    return missing.length;
  }

  private async addRunJobs(ids: readonly number[]): Promise<void> {
    for (let i = 0; i < ids.length; i += ADD_BULK_MAX) {
      await this.queue.addBulk(ids.slice(i, i + ADD_BULK_MAX).map((id) => ({ name: 'run', data: { runId: id }, opts: { jobId: runJobId(id) } })));
    }
  }

  private clientLimits(): Promise<Map<string | null, number>> {
    return runConcurrencyLimits(this.db, OVERALL_LIMIT);
  }

  /**
   * Drives one run as far as it can go now. Returns the run as stored last, or undefined when another processor
   * holds it. With a BullMQ job, a wait longer than a poll moves the job to delayed instead of holding a slot.
   */
  async processRun(runId: number, job?: Job, token?: string): Promise<Run | undefined> {
    return processRun(this.runServices(), runId, job, token);
  }

  private runServices(): RunServices {
    const { context, options } = this;
    return {
      db: this.db,
      clock: () => context.now(),
      deployer: this.calls,
      holds: (fresh) => this.holds(fresh),
      catalog: (releaseId) => this.catalog(releaseId),
      // The MSP's missed-window limit (inventory `msp.missed_window_limit`) unless the engine was given one.
      policyFor: (limit) => (limit === null || options.policy?.missedWindowLimit !== undefined ? this.policy : { ...this.policy, missedWindowLimit: limit }),
      nextWindowStart: (rule, timezone, windowStart, window) => this.nextWindowStart(rule, timezone, windowStart, window),
      realDelayMs: (until, now) => (options.realDelayMs ?? context.pace?.realDelayMs)?.(until, now) ?? until.getTime() - now.getTime(),
      pollMs: options.pollMs ?? 2000,
      stopping: () => this.stopping,
    };
  }

  /** A window's successor, computed once per owner and window: thousands of runs share a handful of windows. */
  private nextWindowStart(rule: WindowRule | undefined, timezone: string, windowStart: string, window: MaintenanceWindow): string | null {
    if (!rule) return null;
    const key = `${rule.spec} ${timezone} ${windowStart}`;
    let next = this.nextWindows.get(key);
    if (next === undefined) {
      if (this.nextWindows.size > 10_000) this.nextWindows.clear();
      next = nextWindow(rule, timezone, window.start).start.toUTC().toISO()!;
      this.nextWindows.set(key, next);
    }
    return next;
  }
}
