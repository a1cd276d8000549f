/**
 * Group commit for decisions: the decisions that are waiting when a transaction can start are taken together, in
 * one transaction, instead of one transaction each. Under a burst of clicks each decision used to pay a BEGIN and a
 * COMMIT, and every one of them queued on the audit chain's head (taken by the first audit insert, held to commit,
 * migration audit_hash_chain_trigger) across two round trips through a busy event loop; a batch takes the head
 * once, for all of its audit rows.
 *
 * In the batch's transaction, in the lock order (transaction.ts):
 *   1. every release row the batch decides on, in one statement, in id order;
 *   2. the decisions, in rounds: round n takes the n-th decision of every release (a release's decisions run in
 *      arrival order, each reading what the one before wrote, so a second click on an approved update is the
 *      domain's no-op, and a resent hold is found by its key). A round reads the state of all of its releases in one
 *      statement (BatchShared.state), its decisions run alongside, and the rows they queue (BatchShared.queue: their
 *      decision rows) are written in one statement at the end of the round, before the next round reads;
 *   3. what the decisions gathered to write once per batch (BatchShared.gather: the digests' redraw marks, the ring
 *      msp gates' approvals), each kind in one go;
 *   4. their audit rows, in arrival order, in one insert.
 * Under a burst of clicks on many releases this is a handful of statements per batch, not four per decision: each
 * statement costs the event loop, which is also receiving the clicks, far more than a row in it costs PostgreSQL.
 * Each decision keeps its own idempotency key and its own result. When the batch fails in any way (a deadlock, a
 * gate changed underneath, one decision's error) nothing of it committed, and each decision is run again alone (one release's in arrival order), in
 * its own transaction with withTransaction's retries: the failing one fails (or is refused) on its own, the others
 * commit. That costs a failed batch its work twice, and costs a batch that succeeds no savepoint round trips.
 */
import type { AuditEntry } from '../db/audit-repo.ts';
import { appendAudits } from '../db/audit-repo.ts';
import type { AppDatabase } from '../db/client.ts';
import { loadDecisionStates, lockReleases, type LoadedRelease } from '../db/decisions-repo.ts';
import { runAfterCommit, type AfterCommit, type TransactionContext } from './transaction.ts';

export interface BatchedWork<T> {
  releaseId: string;
  /**
   * The decision in the batch's transaction, its release row already locked; returns its audit rows unwritten (they
   * may wait for rows it queued, so they are awaited only once the round is written).
   */
  inBatch: (tx: AppDatabase, after: AfterCommit, shared: BatchShared) => Promise<{ result: T; audits: Promise<AuditEntry[]> }>;
  /** The same decision in a transaction of its own, should the batch fail. */
  alone: () => Promise<T>;
}

/** What the decisions of one batch read once, and write once, between them. */
export interface BatchShared {
  /** The first read under `key` in this batch's transaction, shared with every later one. */
  once<V>(key: string, read: () => Promise<V>): Promise<V>;
  /**
   * Adds `item` to the batch's list under `key`. Once every decision of the batch has run, before the audit rows,
   * `write` (the first caller's) runs once with the whole list, in arrival order: rows that each decision on a
   * release would otherwise write one after another (its digest's redraw mark, its ring msp gate) written once.
   */
  gather<I>(key: string, item: I, write: (items: I[]) => Promise<void>): void;
  /** The release's decision state as this round found it (read with every other release of the round, at once). */
  state(releaseId: string): Promise<LoadedRelease | undefined>;
  /**
   * Adds `item` to the round's list under `key`; at the end of the round `write` (the first caller's) writes the whole
   * list and answers one result per item, in order. The promise settles then: a decision must not await it.
   */
  queue<I, R>(key: string, item: I, write: (items: I[]) => Promise<R[]>): Promise<R>;
}

interface Gathered {
  items: unknown[];
  write: (items: unknown[]) => Promise<void>;
}

interface Queued {
  items: unknown[];
  settles: Array<{ resolve: (value: unknown) => void; reject: (error: unknown) => void }>;
  write: (items: unknown[]) => Promise<unknown[]>;
}

interface SharedWork extends BatchShared {
  gathered: Map<string, Gathered>;
  /** The next round's releases: `state` reads them all at its first call. */
  beginRound(releaseIds: readonly string[]): void;
  /** Writes what the round queued, each key's in one go, in key order. */
  endRound(): Promise<void>;
}

function sharedWork(tx: AppDatabase): SharedWork {
  const reads = new Map<string, Promise<unknown>>();
  const gathered = new Map<string, Gathered>();
  let queued = new Map<string, Queued>();
  let round = { n: -1, releaseIds: [] as readonly string[] };
  const once = <V>(key: string, read: () => Promise<V>): Promise<V> => {
    if (!reads.has(key)) reads.set(key, read());
    return reads.get(key) as Promise<V>;
  };
  return {
    gathered,
    once,
    gather<I>(key: string, item: I, write: (items: I[]) => Promise<void>): void {
      const list = gathered.get(key);
      if (list) list.items.push(item);
      else gathered.set(key, { items: [item], write: write as (items: unknown[]) => Promise<void> });
    },
    async state(releaseId: string): Promise<LoadedRelease | undefined> {
      const { n, releaseIds } = round;
      return (await once(`state:${n}`, () => loadDecisionStates(tx, releaseIds))).get(releaseId);
    },
    queue<I, R>(key: string, item: I, write: (items: I[]) => Promise<R[]>): Promise<R> {
      const list = queued.get(key) ?? { items: [], settles: [], write: write as (items: unknown[]) => Promise<unknown[]> };
      queued.set(key, list);
      list.items.push(item);
      const settled = new Promise<R>((resolve, reject) => list.settles.push({ resolve: resolve as (value: unknown) => void, reject }));
      // Handled here: a failed write fails the batch, and a decision that never awaited its row must not crash the process.
      settled.catch(() => {});
      return settled;
    },
    beginRound(releaseIds: readonly string[]): void {
      round = { n: round.n + 1, releaseIds };
    },
    async endRound(): Promise<void> {
      const lists = [...queued].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, q]) => q);
      queued = new Map();
      const written = await Promise.allSettled(lists.map((q) => q.write(q.items)));
      lists.forEach((q, i) => {
        const w = written[i]!;
        q.settles.forEach((s, j) => (w.status === 'fulfilled' ? s.resolve(w.value[j]) : s.reject(w.reason)));
      });
      const failed = written.find((w) => w.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}

interface Waiting {
  work: BatchedWork<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export interface BatcherOptions {
  /** Batch transactions open at once (each holds a pooled connection; the rest of the process needs some too). */
  maxBatches: number;
  /** Decisions in one batch at most: a longer batch holds its release rows longer. */
  maxBatchSize: number;
}

const DEFAULTS: BatcherOptions = { maxBatches: 3, maxBatchSize: 64 };

export class DecisionBatcher {
  private waiting: Waiting[] = [];
  /** Releases a running batch has locked. */
  private readonly busy = new Set<string>();
  private running = 0;
  private scheduled = false;

  constructor(
    private readonly ctx: TransactionContext,
    private readonly options: BatcherOptions = DEFAULTS,
  ) {}

  submit<T>(work: BatchedWork<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ work: work as BatchedWork<unknown>, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** On the next turn: the decisions submitted in this one (a burst's clicks arrive together) share a batch. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.startBatches();
    });
  }

  private startBatches(): void {
    while (this.running < this.options.maxBatches) {
      const batch = this.nextBatch();
      if (batch.length === 0) return;
      const releases = new Set(batch.map((w) => w.work.releaseId));
      for (const id of releases) this.busy.add(id);
      this.running++;
      void this.runBatch(batch).finally(() => {
        this.running--;
        for (const id of releases) this.busy.delete(id);
        if (this.waiting.length > 0) this.schedule();
      });
    }
  }

  /**
   * The oldest waiting decisions whose releases no running batch holds: a batch that took one of those would only
   * wait in the database for that batch's commit, holding its other releases meanwhile. A release's decisions stay
   * in arrival order (a later one is not taken while an earlier one waits).
   */
  private nextBatch(): Waiting[] {
    const batch: Waiting[] = [];
    const skipped = new Set<string>();
    this.waiting = this.waiting.filter((w) => {
      const id = w.work.releaseId;
      if (batch.length >= this.options.maxBatchSize || this.busy.has(id) || skipped.has(id)) {
        skipped.add(id);
        return true;
      }
      batch.push(w);
      return false;
    });
    return batch;
  }

  /**
   * Resolves once the batch's transaction is over, which frees its place: what follows the commit (telling the
   * deliverer, the digest redraw each decision waits for) and the fallback run alone do not hold it.
   */
  private async runBatch(batch: Waiting[]): Promise<void> {
    const afters = batch.map(() => collector());
    let results: unknown[];
    try {
      results = await this.ctx.db.transaction((tx) => decideAll(tx, batch, afters));
    } catch {
      // Alone, but still one release's decisions in arrival order (an approval then a withdrawal run the other way
      // round would end approved); releases side by side. Run all at once, the order was the pool's (a test saw it).
      const rerun = [...releaseGroups(batch).values()].map(async (indexes) => {
        for (const i of indexes) await settle(batch[i]!, () => batch[i]!.work.alone());
      });
      void Promise.all(rerun);
      return;
    }
    batch.forEach((w, i) => void settle(w, async () => {
      await runAfterCommit(this.ctx, afters[i]!.outboxIds, afters[i]!.callbacks);
      return results[i];
    }));
  }
}

/** The batch's positions per release, each release's in arrival order (the order its decisions run in). */
function releaseGroups(batch: readonly Waiting[]): Map<string, number[]> {
  const byRelease = new Map<string, number[]>();
  batch.forEach((w, i) => byRelease.set(w.work.releaseId, [...(byRelease.get(w.work.releaseId) ?? []), i]));
  return byRelease;
}

async function settle(w: Waiting, run: () => Promise<unknown>): Promise<void> {
  try {
    w.resolve(await run());
  } catch (error) {
    w.reject(error);
  }
}

interface Collected {
  after: AfterCommit;
  outboxIds: number[];
  callbacks: Array<() => void | Promise<void>>;
}

function collector(): Collected {
  const c: Collected = { outboxIds: [], callbacks: [], after: { outbox: (ids) => void c.outboxIds.push(...ids), onCommitted: (cb) => void c.callbacks.push(cb) } };
  return c;
}

async function decideAll(tx: AppDatabase, batch: Waiting[], afters: Collected[]): Promise<unknown[]> {
  const byRelease = releaseGroups(batch);
  await lockReleases(tx, [...byRelease.keys()]);
  const decided: Array<{ result: unknown; audits: Promise<AuditEntry[]> }> = [];
  const shared = sharedWork(tx);
  const groups = [...byRelease.values()];
  for (let n = 0; groups.some((g) => n < g.length); n++) {
    const members = groups.filter((g) => n < g.length).map((g) => g[n]!);
    shared.beginRound(members.map((i) => batch[i]!.work.releaseId));
    // Settled, not all: a decision that fails must not let the transaction end while others still send statements
    // on its connection (they would run after the rollback, outside any transaction).
    const outcomes = await Promise.allSettled(
      members.map(async (i) => {
        decided[i] = await batch[i]!.work.inBatch(tx, afters[i]!.after, shared);
        // Awaited once the rounds are written; should a round's write fail, the batch fails first, and these with it.
        decided[i].audits.catch(() => {});
      }),
    );
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) throw failed.reason;
    await shared.endRound();
  }
  // Settled for the same reason; in key order, so the statements reach the connection in the same order every time.
  const written = await Promise.allSettled([...shared.gathered].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, g]) => g.write(g.items)));
  const unwritten = written.find((o) => o.status === 'rejected');
  if (unwritten) throw unwritten.reason;
  await appendAudits(tx, (await Promise.all(decided.map((d) => d.audits))).flat());
  return decided.map((d) => d.result);
}

const batchers = new WeakMap<TransactionContext, DecisionBatcher>();

/** One batcher per context (the Slack app's, the Teams app's): a batch tells its own context's deliverer. */
export function batcherFor(ctx: TransactionContext): DecisionBatcher {
  let batcher = batchers.get(ctx);
  if (!batcher) batchers.set(ctx, (batcher = new DecisionBatcher(ctx)));
  return batcher;
}
