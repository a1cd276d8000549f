/**
 * One run job, driven as far as it can go now: load it, ask the step machine (src/domain/run.ts) what to do, store
 * the decision, ask the device manager, observe the answer, and so on to the end. Every store is compare-and-set
 * on the run's seq, so two processors of one run cannot both act; every device call carries the step's key.
 */
import { DelayedError, type Job } from 'bullmq';
import { DateTime } from 'luxon';
import type { DeviceRef } from '../../adapters/deployers/port.ts';
import { notify } from '../../chat/notify.ts';
import type { AppDatabase } from '../../db/client.ts';
import { deviceRetired, loadRunContext, saveRun, updateDeviceMisses, type RunContext } from '../../db/rollout-repo.ts';
import { windowRuleOf } from '../../domain/plan.ts';
import { isHeld, type Hold } from '../../domain/rollout.ts';
import { afterRun, decide, observe, TERMINAL, type Action, type Decision, type Run, type RunEnv, type RunPolicy } from '../../domain/run.ts';
import type { WindowRule } from '../../domain/window-spec.ts';
import type { MaintenanceWindow } from '../../domain/windows.ts';
import type { Catalog } from './sweep-reads.ts';
import type { DeployerCalls } from '../deployer-calls.ts';

/** What the engine lends a run's driver. */
export interface RunServices {
  db: AppDatabase;
  clock(): Date;
  /** The device manager, as the run step machine reads its answers (outages and refusals told to the engineers). */
  deployer: DeployerCalls;
  /** `fresh`: read the holds from Postgres, not the worker's short-lived copy. */
  holds(fresh?: boolean): Promise<readonly Hold[]>;
  catalog(releaseId: string): Promise<Catalog | undefined>;
  policyFor(missedWindowLimit: number | null): RunPolicy;
  nextWindowStart(rule: WindowRule | undefined, timezone: string, windowStart: string, window: MaintenanceWindow): string | null;
  /** Real milliseconds until the clock reaches `until` (a fast clock shrinks them). */
  realDelayMs(until: Date, now: Date): number;
  /** Real milliseconds between polls of an operation in progress. */
  pollMs: number;
  /** True once the process is stopping: a run waiting on its device gives its slot back instead of polling on. */
  stopping(): boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Drives one run. Returns the run as stored last, or undefined when another processor holds it. With a BullMQ job,
 * a wait longer than a poll moves the job to delayed instead of holding a slot.
 */
export async function processRun(services: RunServices, runId: number, job?: Job, token?: string): Promise<Run | undefined> {
  const loaded = await loadRunContext(services.db, runId);
  if (!loaded || TERMINAL.has(loaded.run.status)) return loaded?.run;
  const catalog = loaded.releaseId ? await services.catalog(loaded.releaseId) : undefined;
  return new RunDriver(services, loaded, catalog).drive(job, token);
}

/** What a step tells the loop: go on deciding, or stop with this answer. */
type StepEnd = 'again' | { result: Run | undefined };

class RunDriver {
  private readonly window: MaintenanceWindow;
  private readonly nextWindowStart: string | null;
  private readonly device: DeviceRef;
  private readonly policy: RunPolicy;
  private current: Run;
  private seq: number;
  /** What a step learned is not stored yet (see `act`). */
  private dirty = false;

  constructor(
    private readonly services: RunServices,
    private readonly loaded: RunContext,
    private readonly catalog: Catalog | undefined,
  ) {
    this.window = { start: DateTime.fromISO(loaded.windowStart, { zone: loaded.timezone }), end: DateTime.fromISO(loaded.windowEnd, { zone: loaded.timezone }), day: '' };
    this.nextWindowStart = services.nextWindowStart(windowRuleOf(loaded.windowSpec), loaded.timezone, loaded.windowStart, this.window);
    this.device = { id: loaded.device.id, name: loaded.device.name, os: loaded.device.os ?? undefined };
    this.policy = services.policyFor(loaded.missedWindowLimit);
    this.current = loaded.run;
    this.seq = loaded.seq;
  }

  async drive(job?: Job, token?: string): Promise<Run | undefined> {
    for (let guard = 0; guard < 10_000; guard++) {
      const decision = await this.decideNext();
      let end: StepEnd;
      if (decision.type === 'done') end = { result: (await this.flush()) ? this.current : undefined };
      else if (decision.type === 'become') end = await this.become(decision.run);
      else if (decision.type === 'wait') end = await this.wait(decision.until, job, token);
      else end = await this.act(decision.action, decision.run, job, token);
      if (end !== 'again') return end.result;
    }
    throw new Error(`run ${this.loaded.id} did not settle in 10000 steps`);
  }

  /**
   * Nothing held installs once the hold has committed, and nothing starts on a retired device: a new install or
   * reboot is decided again on the holds and the inventory as stored.
   */
  private async decideNext(): Promise<Decision> {
    const decision = decide(this.current, await this.env());
    const starts = decision.type === 'act' && (decision.action.type === 'install' || decision.action.type === 'reboot') && this.current.operation === null;
    return starts ? decide(this.current, await this.env(true)) : decision;
  }

  private async env(fresh = false): Promise<RunEnv> {
    const { loaded, current } = this;
    const holds = await this.services.holds(fresh);
    const target = { releaseId: loaded.releaseId ?? '', ring: loaded.ring, clientId: loaded.clientId };
    const heldUpdates = new Set(current.updates.filter((key) => isHeld(holds, { ...target, updateKey: key })));
    const held = isHeld(holds, target) || (current.updates.length > 0 && heldUpdates.size === current.updates.length);
    // Retirement is read as stored only where it matters, before something new starts on the device.
    const retired = fresh ? await deviceRetired(this.services.db, loaded.device.id) : false;
    const now = DateTime.fromJSDate(this.services.clock(), { zone: 'utc' });
    return { now, window: this.window, nextWindowStart: this.nextWindowStart, held, heldUpdates, retired, policy: this.policy };
  }

  private async become(run: Run): Promise<StepEnd> {
    this.current = run;
    this.dirty = false;
    return (await this.store(run)) ? 'again' : { result: undefined };
  }

  private async wait(until: DateTime, job?: Job, token?: string): Promise<StepEnd> {
    if (!(await this.flush())) return { result: undefined };
    const delay = this.services.realDelayMs(until.toJSDate(), this.services.clock());
    if (delay <= 0) {
      if (this.services.clock().getTime() >= until.toMillis()) return 'again';
      // A clock that does not move with real time (tests, the sandbox): come back when it has.
      return { result: this.current };
    }
    if (job && token && (delay > this.services.pollMs || this.services.stopping())) {
      await job.moveToDelayed(Date.now() + delay, token);
      throw new DelayedError();
    }
    await sleep(delay);
    return 'again';
  }

  /**
   * A stop waits for every job in flight, and an install can take an hour: a run polling its device while the
   * process stops is stored and handed back to the queue, to be picked up by the next worker that starts.
   */
  private async yieldWhileStopping(job?: Job, token?: string): Promise<StepEnd> {
    if (!(await this.flush())) return { result: undefined };
    if (job && token) {
      await job.moveToDelayed(Date.now() + this.services.pollMs, token);
      throw new DelayedError();
    }
    return { result: this.current };
  }

  /**
   * What a step learned is stored lazily: before the next step that touches the device (with its intent), before
   * any wait, when a failure counts, and at the end. A crash in between only repeats harmless reads (an online
   * check, a poll, a verification) or asks again with the key already stored.
   */
  private async act(action: Action, run: Run, job?: Job, token?: string): Promise<StepEnd> {
    this.current = run;
    if (action.type === 'install' || action.type === 'reboot') {
      // The intent (and the operation's key) is stored before the device hears of it.
      this.dirty = false;
      if (!(await this.store(run))) return { result: undefined };
    } else {
      this.dirty = true;
    }
    const keys = action.type === 'install' ? action.updates : run.updates;
    const outcome = await this.services.deployer.ask(this.device, keys.map((key) => this.catalog?.byKey.get(key) ?? { key }), action, this.loaded);
    this.current = observe(run, action, outcome, await this.env());
    if (this.current !== run) this.dirty = true;
    if (this.current.attempts !== run.attempts || TERMINAL.has(this.current.status)) {
      if (!(await this.flush())) return { result: undefined };
    }
    if (outcome.type !== 'progress') return 'again';
    if (this.services.stopping()) return this.yieldWhileStopping(job, token);
    await sleep(this.services.pollMs);
    return 'again';
  }

  private async flush(): Promise<boolean> {
    if (!this.dirty) return true;
    this.dirty = false;
    return this.store(this.current);
  }

  /** Stores `next` over the run as last stored; false when another processor stored it first. */
  private async store(next: Run): Promise<boolean> {
    const { db, clock } = this.services;
    const now = clock();
    const misses = TERMINAL.has(next.status) ? afterRun(next, this.loaded.device.consecutiveMissedWindows, this.policy) : undefined;
    // The run's end and the device's missed-window count (and any flag for the engineers) commit together.
    const missesChange = misses !== undefined && (misses.flag || misses.consecutiveMissed !== this.loaded.device.consecutiveMissedWindows);
    const saved = missesChange
      ? await db.transaction(async (tx) => {
          const stored = await saveRun(tx, this.loaded.id, this.seq, next, now);
          if (stored !== undefined) await this.recordMisses(tx, misses, now);
          return stored;
        })
      : await saveRun(db, this.loaded.id, this.seq, next, now);
    if (saved === undefined) return false;
    this.seq = saved;
    return true;
  }

  private async recordMisses(tx: AppDatabase, misses: { consecutiveMissed: number; flag: boolean }, now: Date): Promise<void> {
    const { device, windowStart, clientId } = this.loaded;
    const newlyFlagged = await updateDeviceMisses(tx, device.id, misses.consecutiveMissed, misses.flag, now);
    if (!newlyFlagged) return;
    await notify(tx, [{ kind: 'device_flagged', deviceId: device.id, deviceName: device.name, clientId, windowStart, missed: misses.consecutiveMissed }], now);
  }
}
