/**
 * The one way a use-case (or a job) writes: `withTransaction(ctx, work, options)`. The work runs in one transaction;
 * when another writer got in between its reads and its writes it runs again from the start, and only once a run of it
 * committed do the after-commit callbacks go (tell the outbox deliverer, enqueue a job): never for a rolled-back try.
 *
 * Lock order. Every writer takes its locks in this order, skipping the levels it does not need, so two writers wait
 * for each other instead of deadlocking:
 *   1. the release row (`lockRelease`, or `loadDecisionState` with `lock`): every decision a person takes on a
 *      release. A gate insert holds the same row's key-share lock (its foreign key), so it orders against these too;
 *   2. the release's gates (`loadBook` with `lock`, `for update` in id order);
 *   3. runs (`for update` in id order), and advisory locks on one window being retried;
 *   4. advisory locks on a message being edited (`edit:<subject>`), then outbox rows (inserts only);
 *   5. the audit chain's head row: the first audit insert takes it and holds it to commit (migration
 *      audit_hash_chain_trigger), so audit rows are best written after the locks above; all audit writers queue here.
 * The sweep's gate events start at level 2.
 *
 * What is retried: a serialization failure (40001), a deadlock (40P01), and the rollout repository's ConflictError
 * (a gate's compare-and-set found another version). Each retry reads everything again and decides afresh; after
 * `attempts` tries the last error is thrown.
 */
import type { AppDatabase } from '../db/client.ts';
import { ConflictError } from '../db/rollout-repo.ts';

export interface TransactionContext {
  db: AppDatabase;
  /** Called after the transaction committed, with the outbox rows it wrote (the deliverer is told at once). */
  onCommitted?: (outboxIds: number[]) => void | Promise<void>;
}

/** What the chat listeners, the Teams app and the CLI hand a use-case. */
export interface UseCaseContext extends TransactionContext {
  now: () => Date;
}

/** Handed to the work with its transaction: what to do once, after this try commits. */
export interface AfterCommit {
  /** Outbox rows this try wrote: the context's `onCommitted` hears of them after the commit. */
  outbox(ids: readonly number[]): void;
  /** Any other work that must wait for the commit (enqueue a job that reads the rows). */
  onCommitted(callback: () => void | Promise<void>): void;
}

export interface TransactionOptions {
  /** Tries in all, the first included (default 4). */
  attempts?: number;
  /** Another error worth a fresh try (e.g. `isUniqueViolation` where two requests race for one idempotency key). */
  alsoRetry?: (error: unknown) => boolean;
  /** Milliseconds to wait before try `attempt + 1` (default: 5, 10, 20 … at most 200, with jitter). */
  backoffMs?: (attempt: number) => number;
}

export const DEFAULT_ATTEMPTS = 4;

/** The SQLSTATE of a server error, through drizzle's wrapper (its `cause`) when there is one. */
export function sqlState(error: unknown): string | undefined {
  const own = (error as { code?: unknown } | undefined)?.code;
  if (typeof own === 'string') return own;
  const inner = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return typeof inner === 'string' ? inner : undefined;
}

/** Serialization failure, deadlock, or a gate changed underneath: the work may succeed if run again. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof ConflictError) return true;
  const code = sqlState(error);
  return code === '40001' || code === '40P01';
}

export function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === '23505';
}

const defaultBackoff = (attempt: number) => Math.min(200, 5 * 2 ** attempt) * (0.5 + Math.random() / 2);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function withTransaction<T>(
  ctx: TransactionContext,
  work: (tx: AppDatabase, after: AfterCommit) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  for (let attempt = 0; ; attempt++) {
    // Collected per try: a rolled-back try's rows do not exist, and its callbacks must not run.
    const outboxIds: number[] = [];
    const callbacks: Array<() => void | Promise<void>> = [];
    const after: AfterCommit = { outbox: (ids) => void outboxIds.push(...ids), onCommitted: (callback) => void callbacks.push(callback) };
    let result: T;
    try {
      result = await ctx.db.transaction((tx) => work(tx, after));
    } catch (error) {
      const again = isRetryable(error) || (options.alsoRetry?.(error) ?? false);
      if (!again || attempt + 1 >= attempts) throw error;
      await sleep((options.backoffMs ?? defaultBackoff)(attempt));
      continue;
    }
    await runAfterCommit(ctx, outboxIds, callbacks);
    return result;
  }
}

/**
 * The transaction is committed whatever happens here: a callback that fails is not the caller's failure. A notice
 * the deliverer was not told of waits for its sweep; a job not enqueued is put back by the next rollout sweep.
 */
export async function runAfterCommit(ctx: TransactionContext, outboxIds: number[], callbacks: Array<() => void | Promise<void>>): Promise<void> {
  const all = outboxIds.length > 0 && ctx.onCommitted ? [() => ctx.onCommitted!(outboxIds), ...callbacks] : callbacks;
  for (const callback of all) {
    try {
      await callback();
    } catch {
      /* swept later */
    }
  }
}
