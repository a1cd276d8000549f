/**
 * The sweep's write step: the planned runs go into Postgres in batches on two connections at once (the unique key
 * keeps them from colliding), and each batch's jobs go to Redis as it lands, so Postgres and Redis work side by
 * side. Batches that land while Redis is busy are added together: fewer, larger addBulk calls, as the benchmark's
 * baseline makes.
 */
import type { AppDatabase } from '../../db/client.ts';
import { insertRuns, RUNS_PER_STATEMENT, type NewRun } from '../../db/rollout-repo.ts';

/** A small first batch gets Redis busy sooner: its adding is the longest part of the sweep. */
const FIRST_BATCH = 250;
export const ADD_BULK_MAX = 5000;

export interface RunsWritten {
  inserted: number;
  /** Runs whose jobs were added here (none when concurrency limits admit runs instead). */
  enqueued: Set<number>;
}

export class RunWriter {
  private readonly enqueued = new Set<number>();
  private readonly pending: number[] = [];
  private adding: Promise<void> | undefined;
  private addError: unknown;
  private next = 0;
  private inserted = 0;

  constructor(
    private readonly db: AppDatabase,
    private readonly rows: readonly NewRun[],
    private readonly now: Date,
    /** Adds the jobs of these runs; undefined when per-client limits decide admission after the inserts. */
    private readonly addJobs: ((runIds: readonly number[]) => Promise<void>) | undefined,
  ) {}

  /** Writes every row; throws what adding jobs threw once the inserts are done (the next sweep adds those jobs). */
  async write(): Promise<RunsWritten> {
    await Promise.all([this.insertBatches(), this.insertBatches()]);
    await this.adding;
    if (this.addError !== undefined) throw this.addError;
    return { inserted: this.inserted, enqueued: this.enqueued };
  }

  private async insertBatches(): Promise<void> {
    while (this.next < this.rows.length) {
      const size = this.next === 0 ? FIRST_BATCH : RUNS_PER_STATEMENT;
      const batch = this.rows.slice(this.next, this.next + size);
      this.next += size;
      const ids = await insertRuns(this.db, batch, this.now);
      this.inserted += ids.length;
      if (!this.addJobs) continue;
      for (const id of ids) this.enqueued.add(id);
      if (this.addError !== undefined) continue;
      this.pending.push(...ids);
      this.adding ??= this.drain(this.addJobs);
    }
  }

  private async drain(addJobs: (runIds: readonly number[]) => Promise<void>): Promise<void> {
    try {
      while (this.pending.length > 0) await addJobs(this.pending.splice(0, ADD_BULK_MAX));
    } catch (error) {
      // The runs are in Postgres: the next sweep adds their jobs.
      this.addError ??= error;
      this.pending.length = 0;
    } finally {
      this.adding = undefined;
    }
  }
}
