/**
 * The sweep's write step, a pipeline: a page's planned runs are queued and go into Postgres in batches on two
 * connections (the unique key keeps them from colliding) while the sweep reads and plans its next page, and their
 * jobs go to Redis as they land, two bulks in flight (Redis runs one while this process builds the next). Nothing
 * waits for the stage before it unless that stage is a page behind: what is queued, and what waits for Redis, stays
 * under a bound, however large the fleet.
 */
import type { AppDatabase } from '../../db/client.ts';
import { insertRuns, RUNS_PER_STATEMENT, type NewRun } from '../../db/rollout-repo.ts';

/** A small first batch gets Redis busy sooner: its adding is the longest part of the sweep. */
const FIRST_BATCH = 250;
/**
 * Jobs per addBulk. Smaller bulks cost Redis no more per job, and the process holds less while building one: 100,000
 * jobs added 5,000 at a time peaked at ~250 MiB, 1,000 at a time at ~180 (bench rollout's machine).
 */
export const ADD_BULK_MAX = 1000;
const ADDS_IN_FLIGHT = 2;
const INSERT_LANES = 2;
/** Rows queued for Postgres (about a page) or ids waiting for Redis beyond this make the stage before wait. */
const QUEUED_MAX = 5000;

export interface RunsWritten {
  inserted: number;
  /** How many runs' jobs were added here (none when concurrency limits admit runs instead). */
  enqueued: number;
}

export class RunWriter {
  private readonly queued: NewRun[][] = [];
  private queuedRows = 0;
  /** Rows queued or being inserted, per release: a page of another release waits for them (`landed`). */
  private readonly unwritten = new Map<string, number>();
  private readonly pending: number[] = [];
  private lanes = 0;
  private adds = 0;
  private waiters: Array<() => void> = [];
  private insertError: unknown;
  private addError: unknown;
  private started = false;
  private inserted = 0;
  private enqueued = 0;

  constructor(
    private readonly db: AppDatabase,
    private readonly now: Date,
    /** Adds the jobs of these runs; undefined when per-client limits decide admission after the inserts. */
    private readonly addJobs: ((runIds: readonly number[]) => Promise<void>) | undefined,
  ) {}

  /** Queues one page's rows; answers once the queue is down to about a page. Throws what an insert threw. */
  async write(rows: readonly NewRun[]): Promise<void> {
    this.throwIfFailed();
    for (let at = 0; at < rows.length; ) {
      const size = this.started ? RUNS_PER_STATEMENT : FIRST_BATCH;
      this.started = true;
      const batch = rows.slice(at, at + size);
      at += size;
      this.queued.push(batch);
      this.queuedRows += batch.length;
      for (const row of batch) this.unwritten.set(row.releaseId, (this.unwritten.get(row.releaseId) ?? 0) + 1);
    }
    while (this.lanes < INSERT_LANES && this.queued.length > 0) void this.insertLane();
    while (this.queuedRows > QUEUED_MAX && this.insertError === undefined) await this.progress();
    this.throwIfFailed();
  }

  /**
   * Waits until every row of a release other than these is in Postgres: a device in two releases' gates may be
   * planned by both in one window, and the page planned later must see the run the earlier one wrote (the unique
   * key keeps one, and which must not depend on how far the inserts got).
   */
  async landed(releaseIds: ReadonlySet<string>): Promise<void> {
    const others = () => [...this.unwritten].some(([releaseId, n]) => n > 0 && !releaseIds.has(releaseId));
    while (others() && this.insertError === undefined) await this.progress();
    this.throwIfFailed();
  }

  /** Rows are still being inserted or jobs added in the background. */
  get busy(): boolean {
    return this.lanes > 0 || this.adds > 0;
  }

  /** Waits for the rows queued and the jobs still being added; throws what an insert or adding jobs threw. */
  async finish(): Promise<RunsWritten> {
    while (this.busy) await this.progress();
    this.throwIfFailed();
    if (this.addError !== undefined) throw this.addError;
    return { inserted: this.inserted, enqueued: this.enqueued };
  }

  private throwIfFailed(): void {
    if (this.insertError !== undefined) throw this.insertError;
  }

  /** Settles at the next step any stage takes (a batch inserted, a bulk added, a stage ending). */
  private progress(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private stepped(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Inserts queued batches until none is left; several run side by side on the pool's connections. */
  private async insertLane(): Promise<void> {
    this.lanes++;
    try {
      for (let batch = this.queued.shift(); batch; batch = this.queued.shift()) {
        this.queuedRows -= batch.length;
        // Redis a bulk behind: let it catch up, so the ids waiting for it do not grow with the fleet.
        while (this.pending.length >= QUEUED_MAX && this.adds > 0) await this.progress();
        const ids = await insertRuns(this.db, batch, this.now);
        for (const row of batch) this.unwritten.set(row.releaseId, this.unwritten.get(row.releaseId)! - 1);
        this.inserted += ids.length;
        this.enqueue(ids);
        this.stepped();
      }
    } catch (error) {
      // A sweep that dies between pages: what is in Postgres stays, the next sweep plans the rest.
      this.insertError ??= error;
      this.queued.length = 0;
      this.queuedRows = 0;
      this.unwritten.clear();
    } finally {
      this.lanes--;
      this.stepped();
    }
  }

  private enqueue(ids: readonly number[]): void {
    if (!this.addJobs || this.addError !== undefined || ids.length === 0) return;
    this.enqueued += ids.length;
    for (const id of ids) this.pending.push(id);
    while (this.adds < ADDS_IN_FLIGHT && this.pending.length > 0) void this.addBulk(this.addJobs);
  }

  /** Adds the pending jobs a bulk at a time until none is left. */
  private async addBulk(addJobs: (runIds: readonly number[]) => Promise<void>): Promise<void> {
    this.adds++;
    try {
      while (this.pending.length > 0 && this.addError === undefined) {
        await addJobs(this.pending.splice(0, ADD_BULK_MAX));
        this.stepped();
      }
    } catch (error) {
      // The runs are in Postgres: the next sweep adds their jobs.
      this.addError ??= error;
      this.enqueued -= this.pending.length;
      this.pending.length = 0;
    } finally {
      this.adds--;
      this.stepped();
    }
  }
}
