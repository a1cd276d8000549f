/**
 * The sweep's write step: each page's planned runs go into Postgres in batches on two connections at once (the
 * unique key keeps them from colliding), and their jobs go to Redis as they land, in the background while the
 * sweep reads and plans its next page, so Postgres and Redis work side by side. Batches that land while Redis is
 * busy are added together: fewer, larger addBulk calls, as the benchmark's baseline makes. What waits for Redis
 * stays under two bulks: a page waits for Redis before inserting more.
 */
import type { AppDatabase } from '../../db/client.ts';
import { insertRuns, RUNS_PER_STATEMENT, type NewRun } from '../../db/rollout-repo.ts';

/** A small first batch gets Redis busy sooner: its adding is the longest part of the sweep. */
const FIRST_BATCH = 250;
export const ADD_BULK_MAX = 5000;

export interface RunsWritten {
  inserted: number;
  /** How many runs' jobs were added here (none when concurrency limits admit runs instead). */
  enqueued: number;
}

export class RunWriter {
  private readonly pending: number[] = [];
  private adding: Promise<void> | undefined;
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

  /** Inserts one page's rows; their jobs are added while the caller goes on (`finish` waits for them). */
  async write(rows: readonly NewRun[]): Promise<void> {
    // Redis a bulk behind: let it catch up, so the ids waiting for it do not grow with the fleet.
    while (this.adding && this.pending.length >= ADD_BULK_MAX) await this.adding;
    const cursor = { next: 0 };
    await Promise.all([this.insertBatches(rows, cursor), this.insertBatches(rows, cursor)]);
  }

  /** Jobs are still being added in the background. */
  get busy(): boolean {
    return this.adding !== undefined;
  }

  /** Waits for the jobs still being added; throws what adding jobs threw (the next sweep adds those jobs). */
  async finish(): Promise<RunsWritten> {
    while (this.adding) await this.adding;
    if (this.addError !== undefined) throw this.addError;
    return { inserted: this.inserted, enqueued: this.enqueued };
  }

  private async insertBatches(rows: readonly NewRun[], cursor: { next: number }): Promise<void> {
    while (cursor.next < rows.length) {
      const size = this.started ? RUNS_PER_STATEMENT : FIRST_BATCH;
      this.started = true;
      const batch = rows.slice(cursor.next, cursor.next + size);
      cursor.next += size;
      const ids = await insertRuns(this.db, batch, this.now);
      this.inserted += ids.length;
      if (!this.addJobs || this.addError !== undefined) continue;
      this.enqueued += ids.length;
      for (const id of ids) this.pending.push(id);
      if (this.pending.length > 0) this.adding ??= this.drain(this.addJobs);
    }
  }

  private async drain(addJobs: (runIds: readonly number[]) => Promise<void>): Promise<void> {
    // Never settles before the caller has stored it in `adding`: a drain that ran to its end synchronously would
    // clear `adding` first and then be stored there for good, and `finish` would wait on it for ever (a batch
    // whose runs all existed, inserted by a concurrent sweep, returns no ids: that spun a sweep at 100% CPU).
    await Promise.resolve();
    try {
      while (this.pending.length > 0) await addJobs(this.pending.splice(0, ADD_BULK_MAX));
    } catch (error) {
      // The runs are in Postgres: the next sweep adds their jobs.
      this.addError ??= error;
      this.enqueued -= this.pending.length;
      this.pending.length = 0;
    } finally {
      this.adding = undefined;
    }
  }
}
