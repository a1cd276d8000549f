/**
 * Group commit of decisions (src/use-cases/decision-batch.ts): decisions that wait together share one transaction,
 * each still its own decision (its key, its result, its audit row, in order); a batch that fails commits nothing
 * and each of its decisions runs again alone, so the one that fails fails by itself and the others land.
 */
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { verifyDatabase } from '../../src/commands/audit-evidence.ts';
import { approve, hold, withdraw } from '../../src/use-cases/decisions.ts';
import { openTestDatabase } from '../support/db.ts';
import { seedWorld } from '../support/rollout-world.ts';

const AT = '2024-02-14T03:00:00Z';
const pat = { platform: 'cli' as const, id: 'pat' };
const KEYS = ['5034765', '5034770', '5034439'];

const open: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of open.splice(0).reverse()) await fn().catch(() => {});
});

async function world(): Promise<{ db: AppDatabase; now: Date }> {
  const database = await openTestDatabase();
  open.push(() => database.close());
  const now = new Date(AT);
  await seedWorld(database.db, { mspDevices: 1, clients: [{ id: 'acme', pilot: 1, broad: 1 }] }, now);
  await database.db.execute(sql`delete from decisions where idempotency_key = 'test-approve-release'`);
  return { db: database.db, now };
}

async function decisionsOf(db: AppDatabase): Promise<Array<{ key: string; actor: string; tx: string }>> {
  return rowsOf<{ key: string; actor: string; tx: string }>(
    await db.execute(sql`select detail ->> 'updateKey' as key, actor, xmin::text as tx from decisions where release_id = '2024-Feb' and kind = 'approve' order by id`),
  );
}

/** A decision by `mallory` fails in the database: a batch holding one fails as a whole. */
async function refuseMallory(db: AppDatabase): Promise<void> {
  await db.execute(
    sql.raw(`create function refuse_mallory() returns trigger language plpgsql as $$
      begin
        if new.actor = 'mallory' then raise exception 'mallory may not decide'; end if;
        return new;
      end $$`),
  );
  await db.execute(sql.raw(`create trigger refuse_mallory before insert on decisions for each row execute function refuse_mallory()`));
}

async function auditSubjects(db: AppDatabase): Promise<string[]> {
  const rows = rowsOf<{ subject: string }>(await db.execute(sql`select subject from audit_log where action = 'decision.approve' order by id`));
  return rows.map((r) => r.subject);
}

describe('decisions waiting together', () => {
  it('commit in one transaction, each its own decision and audit row in arrival order; a resent click is a no-op', async () => {
    const { db, now } = await world();
    const ctx = { db, now: () => now };
    // Asked in one turn, as a burst of clicks arrives: they wait together.
    const results = await Promise.all([
      approve(ctx, { actor: pat, releaseId: '2024-Feb', updateKey: KEYS[0]! }),
      approve(ctx, { actor: pat, releaseId: '2024-Feb', updateKey: KEYS[1]! }),
      approve(ctx, { actor: pat, releaseId: '2024-Feb', updateKey: KEYS[0]! }),
      hold(ctx, { actor: pat, releaseId: '2024-Feb', updateKey: KEYS[2]!, clients: ['nobody'], reason: 'x', requestId: 'r1' }),
      approve(ctx, { actor: pat, releaseId: '2024-Feb', updateKey: KEYS[2]! }),
    ]);
    expect(results.map((r) => r.outcome)).toEqual(['applied', 'applied', 'noop', 'refused', 'applied']);
    const rows = await decisionsOf(db);
    expect(rows.map((r) => r.key)).toEqual([KEYS[0], KEYS[1], KEYS[2]]);
    expect(new Set(rows.map((r) => r.tx)).size).toBe(1);
    expect(await auditSubjects(db)).toEqual(KEYS.map((k) => `update:2024-Feb:${k}`));
    expect(await verifyDatabase(db, undefined)).toMatchObject({ ok: true });
  });

  it('approvals of one release in a batch reach its gates and its digest mark as they would one at a time', async () => {
    // The redraw after the commit clears the digest's mark: a trigger keeps every mark as it was written.
    const keepMarks = async (db: AppDatabase) =>
      db.execute(
        sql.raw(`create table kept_marks (id serial primary key, keys jsonb);
          create function keep_mark() returns trigger language plpgsql as $$
            begin
              if new.scope = 'digest-refresh' then insert into kept_marks (keys) values (new.result -> 'keys'); end if;
              return new;
            end $$;
          create trigger keep_mark after insert or update on idempotency_keys for each row execute function keep_mark();`),
      );
    const gatesAndMark = async (db: AppDatabase) => {
      const marks = rowsOf<{ keys: string[] }>(await db.execute(sql`select keys from kept_marks order by id`));
      return {
        gates: rowsOf(await db.execute(sql`select ring, client_id, state, state_detail from rollouts where release_id = '2024-Feb' order by id`)),
        marked: [...(marks.at(-1)?.keys ?? [])].sort(),
      };
    };
    const together = await world();
    await keepMarks(together.db);
    const ctxTogether = { db: together.db, now: () => together.now };
    await Promise.all(KEYS.map((key) => approve(ctxTogether, { actor: pat, releaseId: '2024-Feb', updateKey: key })));
    expect(new Set((await decisionsOf(together.db)).map((r) => r.tx)).size).toBe(1);
    const alone = await world();
    await keepMarks(alone.db);
    const ctxAlone = { db: alone.db, now: () => alone.now };
    for (const key of KEYS) await approve(ctxAlone, { actor: pat, releaseId: '2024-Feb', updateKey: key });
    expect(new Set((await decisionsOf(alone.db)).map((r) => r.tx)).size).toBe(KEYS.length);

    const batched = await gatesAndMark(together.db);
    expect(batched.gates).toEqual((await gatesAndMark(alone.db)).gates);
    expect(batched.gates).toEqual([expect.objectContaining({ ring: 'msp', state: 'scheduled' })]);
    expect(batched.marked).toEqual([...KEYS].sort());
  });

  it('a decision that fails leaves the others committed, and fails on its own', async () => {
    const { db, now } = await world();
    const ctx = { db, now: () => now };
    await refuseMallory(db);
    const mallory = { platform: 'cli' as const, id: 'mallory' };
    const settled = await Promise.allSettled([
      approve(ctx, { actor: pat, releaseId: '2024-Feb', updateKey: KEYS[0]! }),
      approve(ctx, { actor: mallory, releaseId: '2024-Feb', updateKey: KEYS[1]! }),
      approve(ctx, { actor: pat, releaseId: '2024-Feb', updateKey: KEYS[2]! }),
    ]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((settled[1] as PromiseRejectedResult).reason?.cause ?? (settled[1] as PromiseRejectedResult).reason)).toMatch(/mallory may not decide/);
    expect((await decisionsOf(db)).map((r) => [r.key, r.actor])).toEqual([
      [KEYS[0], 'pat'],
      [KEYS[2], 'pat'],
    ]);
    expect(await auditSubjects(db)).toEqual([`update:2024-Feb:${KEYS[0]}`, `update:2024-Feb:${KEYS[2]}`]);
    expect(await verifyDatabase(db, undefined)).toMatchObject({ ok: true });
  });

  it('run again alone after a failed batch, one release\u2019s decisions keep their order: an approval then its withdrawal ends withdrawn', async () => {
    const { db, now } = await world();
    const ctx = { db, now: () => now };
    await refuseMallory(db);
    // Run at once, these raced for the release row, and the order was the pool's (seen once in a full run).
    const target = { actor: pat, releaseId: '2024-Feb', updateKey: KEYS[0]! };
    const settled = await Promise.allSettled([
      approve(ctx, target),
      approve(ctx, { actor: { platform: 'cli', id: 'mallory' }, releaseId: '2024-Feb', updateKey: KEYS[1]! }),
      withdraw(ctx, target),
      approve(ctx, target),
      withdraw(ctx, target),
      approve(ctx, target),
      withdraw(ctx, target),
    ]);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value.outcome : 'rejected'))).toEqual(['applied', 'rejected', 'applied', 'applied', 'applied', 'applied', 'applied']);
    const kinds = rowsOf<{ kind: string }>(await db.execute(sql`select kind from decisions where release_id = '2024-Feb' and kind in ('approve', 'withdraw') order by id`));
    expect(kinds.map((k) => k.kind)).toEqual(['approve', 'withdraw', 'approve', 'withdraw', 'approve', 'withdraw']);
  });
});
