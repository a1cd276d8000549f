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
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { seedWorld, worldRelease } from '../support/rollout-world.ts';

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

const RELEASES = ['2024-Feb', '2024-Mar', '2024-Apr'];

/** The world with two more releases (copies of its own), so that one batch decides on several. */
async function worldOfReleases(): Promise<{ db: AppDatabase; now: Date }> {
  const w = await world();
  for (const id of RELEASES.slice(1)) await storeRelease(w.db, { ...worldRelease(), id }, { fetchedAt: w.now, now: w.now });
  await keepMarks(w.db);
  return w;
}

/** The redraw after the commit clears a digest's mark: a trigger keeps every mark as it was written. */
async function keepMarks(db: AppDatabase): Promise<void> {
  // One statement per call: PGlite's driver takes no more.
  await db.execute(sql.raw(`create table kept_marks (id serial primary key, release_id text, keys jsonb)`));
  await db.execute(
    sql.raw(`create function keep_mark() returns trigger language plpgsql as $$
        begin
          if new.scope = 'digest-refresh' then insert into kept_marks (release_id, keys) values (new.result ->> 'releaseId', new.result -> 'keys'); end if;
          return new;
        end $$`),
  );
  await db.execute(sql.raw(`create trigger keep_mark after insert or update on idempotency_keys for each row execute function keep_mark()`));
}

/** Everything a decision writes, per release in the order it was written (row ids aside). */
async function decidedRows(db: AppDatabase): Promise<Record<string, unknown>> {
  const rows = async (q: ReturnType<typeof sql>) => rowsOf<Record<string, unknown>>(await db.execute(q));
  const marks = await rows(sql`select release_id, keys from kept_marks order by id`);
  return {
    decisions: await rows(sql`select release_id, kind, detail, actor, reason, idempotency_key, (hold_id is null) as no_hold from decisions
      where idempotency_key <> 'test-approve-release' order by release_id, id`),
    holds: await rows(sql`select release_id, scope, client_id, reason, placed_by, released_at is null as active from holds order by release_id, id`),
    gates: await rows(sql`select release_id, ring, client_id, state, state_detail, version from rollouts order by release_id, ring, client_id`),
    // One at a time, a redraw may clear a mark before the next decision marks it again: what must agree is that every
    // key decided on was marked.
    marked: Object.fromEntries(RELEASES.map((id) => [id, [...new Set(marks.filter((m) => m.release_id === id).flatMap((m) => m.keys as Array<string | null>))].sort()])),
    audits: await rows(sql`select action, subject, actor from audit_log where action like 'decision.%' order by id`),
  };
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

  it('a burst over several releases, decided in rounds, writes what the same decisions one at a time write', async () => {
    const [feb, mar, apr] = RELEASES as [string, string, string];
    const [k0, k1, k2] = KEYS as [string, string, string];
    const sam = { platform: 'cli' as const, id: 'sam' };
    // Arrival order: some releases get one decision, others several that read what the one before wrote (a second
    // approval is a no-op, a withdrawal follows an approval, a hold's resend is found by its key).
    const burst = (ctx: { db: AppDatabase; now: () => Date }) => [
      () => approve(ctx, { actor: pat, releaseId: feb, updateKey: k0 }),
      () => approve(ctx, { actor: sam, releaseId: mar, updateKey: k0 }),
      () => hold(ctx, { actor: pat, releaseId: apr, updateKey: k1, clients: ['acme'], reason: 'EMR vendor says wait', requestId: 'h1' }),
      () => approve(ctx, { actor: sam, releaseId: feb, updateKey: k1 }),
      () => withdraw(ctx, { actor: pat, releaseId: mar, updateKey: k0 }),
      () => approve(ctx, { actor: pat, releaseId: feb, updateKey: k0 }),
      () => hold(ctx, { actor: pat, releaseId: apr, updateKey: k1, clients: ['acme'], reason: 'EMR vendor says wait', requestId: 'h1' }),
      () => approve(ctx, { actor: sam, releaseId: mar, updateKey: k0 }),
      () => approve(ctx, { actor: pat, releaseId: apr, updateKey: k2 }),
      () => approve(ctx, { actor: pat, releaseId: feb, updateKey: null }),
      () => hold(ctx, { actor: sam, releaseId: mar, updateKey: k2, clients: 'all', reason: 'known issue', requestId: 'h2' }),
    ];
    const together = await worldOfReleases();
    const ctxTogether = { db: together.db, now: () => together.now };
    const batched = await Promise.all(burst(ctxTogether).map((ask) => ask()));
    const alone = await worldOfReleases();
    const ctxAlone = { db: alone.db, now: () => alone.now };
    const oneByOne = [];
    for (const ask of burst(ctxAlone)) oneByOne.push(await ask());

    expect(batched.map((r) => r.outcome)).toEqual(oneByOne.map((r) => r.outcome));
    expect(batched.map((r) => r.outcome)).toEqual(['applied', 'applied', 'applied', 'applied', 'applied', 'noop', 'noop', 'applied', 'applied', 'applied', 'applied']);
    const written = await decidedRows(together.db);
    expect(written).toEqual(await decidedRows(alone.db));
    expect(written.marked).toEqual({ [feb]: [k0, k1, null].sort(), [mar]: [k0, k2].sort(), [apr]: [k1, k2].sort() });
    // Together, each release's mark was written once, with each key once.
    const writes = rowsOf<{ release_id: string; keys: string[] }>(await together.db.execute(sql`select release_id, keys from kept_marks order by id`));
    expect(writes.map((w) => w.release_id).sort()).toEqual([...RELEASES].sort());
    for (const w of writes) expect(new Set(w.keys).size).toBe(w.keys.length);
    // One transaction for the burst, several for the same decisions one at a time.
    const txs = async (db: AppDatabase) => new Set(rowsOf<{ tx: string }>(await db.execute(sql`select xmin::text as tx from decisions where idempotency_key <> 'test-approve-release'`)).map((r) => r.tx)).size;
    expect(await txs(together.db)).toBe(1);
    expect(await txs(alone.db)).toBe(9);
    expect(await verifyDatabase(together.db, undefined)).toMatchObject({ ok: true });
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
