/**
 * withTransaction on real PostgreSQL and on PGlite: what is tried again (a serialization failure, a deadlock, a gate's
 * lost compare-and-set), how often, and that the after-commit work runs once, only for the try that committed.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { ConflictError, loadBook, saveGates } from '../../src/db/rollout-repo.ts';
import { emptyBook, transition } from '../../src/domain/rollout.ts';
import { withTransaction, type AfterCommit } from '../../src/use-cases/transaction.ts';
import { openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';

let database: TestDatabase;
let db: AppDatabase;
beforeAll(async () => {
  database = await openTestDatabase();
  db = database.db;
  await db.execute(sql`create table tx_probe (n integer not null)`);
});
afterAll(async () => {
  await database?.close();
});
beforeEach(async () => {
  await db.execute(sql`delete from tx_probe`);
});

const noWait = { backoffMs: () => 0 };
const probeRows = async () => rowsOf<{ n: number }>(await db.execute(sql`select n from tx_probe order by n`)).map((r) => Number(r.n));

/** What the after-commit hooks saw: the context's outbox notification and the work's own callbacks. */
function recorder() {
  const told: number[][] = [];
  const ran: string[] = [];
  const ctx = { db, onCommitted: (ids: number[]) => void told.push(ids) };
  const register = (after: AfterCommit, label: string, outbox: number[]) => {
    after.outbox(outbox);
    after.onCommitted(() => void ran.push(label));
  };
  return { told, ran, ctx, register };
}

async function raise(tx: AppDatabase, errcode: 'serialization_failure' | 'deadlock_detected'): Promise<never> {
  await tx.execute(sql.raw(`do $$ begin raise exception 'forced by the test' using errcode = '${errcode}'; end $$`));
  throw new Error('the server did not raise');
}

describe(`withTransaction (${testBackend()})`, () => {
  it.each(['serialization_failure', 'deadlock_detected'] as const)('a %s from the server is tried again; only the committed try is told', async (errcode) => {
    const { told, ran, ctx, register } = recorder();
    let tries = 0;
    const result = await withTransaction(
      ctx,
      async (tx, after) => {
        tries++;
        await tx.execute(sql`insert into tx_probe (n) values (${tries})`);
        register(after, `try ${tries}`, [tries]);
        if (tries === 1) await raise(tx, errcode);
        return 'done';
      },
      noWait,
    );
    expect(result).toBe('done');
    expect(tries).toBe(2);
    expect(await probeRows()).toEqual([2]);
    expect(told).toEqual([[2]]);
    expect(ran).toEqual(['try 2']);
  });

  it("a gate's lost compare-and-set (ConflictError) is read again and applied", async () => {
    await db.execute(sql`insert into releases (id, initial_release_date, current_release_date, revision, document_hash, model, fetched_at)
      values ('tx-test', now(), now(), '1', 'x', '{}'::jsonb, now()) on conflict do nothing`);
    const now = new Date('2024-02-14T03:00:00Z');
    // Another writer created ring msp after this one's first read: the first try inserts on a stale (empty) book.
    const created = transition(emptyBook('tx-test'), { type: 'approved', id: 'a1' }, now);
    if (created.outcome !== 'applied') throw new Error('approved should apply');
    await saveGates(db, { ...emptyBook('tx-test'), ids: {} }, created.book, created.changed, now);
    const { told, ran, ctx, register } = recorder();
    let tries = 0;
    const errors: unknown[] = [];
    await withTransaction(
      ctx,
      async (tx, after) => {
        tries++;
        const before = tries === 1 ? { ...emptyBook('tx-test'), ids: {} } : await loadBook(tx, 'tx-test', true);
        const t = transition(before, { type: 'approved', id: 'a2' }, now);
        register(after, `try ${tries}`, []);
        if (t.outcome !== 'applied') return;
        try {
          await saveGates(tx, before, t.book, t.changed, now);
        } catch (error) {
          errors.push(error);
          throw error;
        }
      },
      noWait,
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ConflictError);
    expect(tries).toBe(2);
    expect(told).toEqual([]);
    expect(ran).toEqual(['try 2']);
  });

  it('an error that is not a conflict rolls back, is thrown at once, and nothing after-commit runs', async () => {
    const { told, ran, ctx, register } = recorder();
    let tries = 0;
    const failing = withTransaction(ctx, async (tx, after) => {
      tries++;
      await tx.execute(sql`insert into tx_probe (n) values (1)`);
      register(after, 'never', [1]);
      throw new Error('the work failed');
    });
    await expect(failing).rejects.toThrow('the work failed');
    expect(tries).toBe(1);
    expect(await probeRows()).toEqual([]);
    expect(told).toEqual([]);
    expect(ran).toEqual([]);
  });

  it('gives up after the bounded number of tries with the last error', async () => {
    const { ran, ctx, register } = recorder();
    let tries = 0;
    const always = withTransaction(
      ctx,
      async (tx, after) => {
        tries++;
        register(after, `try ${tries}`, []);
        return raise(tx, 'serialization_failure');
      },
      { attempts: 3, backoffMs: () => 1 },
    );
    await expect(always).rejects.toMatchObject({ cause: expect.objectContaining({ code: '40001' }) });
    expect(tries).toBe(3);
    expect(ran).toEqual([]);
  });

  it('a failing after-commit callback does not fail the committed work, and the others still run once', async () => {
    const ran: string[] = [];
    const result = await withTransaction({ db, onCommitted: () => Promise.reject(new Error('deliverer down')) }, async (tx, after) => {
      await tx.execute(sql`insert into tx_probe (n) values (7)`);
      after.outbox([7]);
      after.onCommitted(() => {
        throw new Error('queue down');
      });
      after.onCommitted(() => void ran.push('enqueued'));
      return 'kept';
    });
    expect(result).toBe('kept');
    expect(await probeRows()).toEqual([7]);
    expect(ran).toEqual(['enqueued']);
  });

  it.skipIf(testBackend() === 'pglite')('two serializable transactions that read what the other writes: the loser is tried again and both land', async () => {
    const { told, ctx } = recorder();
    let reads = 0;
    let bothRead!: () => void;
    const barrier = new Promise<void>((resolve) => (bothRead = resolve));
    const tries = [0, 0];
    // Each counts the rows, then inserts the count: run side by side, one of them must see the other's row.
    const writer = (who: 0 | 1) =>
      withTransaction(
        ctx,
        async (tx, after) => {
          tries[who]!++;
          await tx.execute(sql`set transaction isolation level serializable`);
          const [row] = rowsOf<{ n: number }>(await tx.execute(sql`select count(*)::int as n from tx_probe`));
          if (tries[who] === 1 && ++reads === 2) bothRead();
          if (tries[who] === 1) await barrier;
          await tx.execute(sql`insert into tx_probe (n) values (${Number(row!.n)})`);
          after.outbox([who]);
        },
        noWait,
      );
    await Promise.all([writer(0), writer(1)]);
    expect(await probeRows()).toEqual([0, 1]);
    expect(tries.slice().sort()).toEqual([1, 2]);
    expect(told.flat().sort()).toEqual([0, 1]);
  });
});
