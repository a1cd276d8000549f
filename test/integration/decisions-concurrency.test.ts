/**
 * Engineers' decisions racing other writers of the same release, on real PostgreSQL (and PGlite where the race needs
 * no second connection). The approval starts the rollout in its own transaction; when another writer changes ring msp
 * between the approval's read and its write, the approval must read again and apply, never commit without it.
 */
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { loadBook, saveGates } from '../../src/db/rollout-repo.ts';
import { transition, type Book, type RolloutEvent } from '../../src/domain/rollout.ts';
import { approve, hold } from '../../src/use-cases/decisions.ts';
import { openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';
import { seedWorld } from '../support/rollout-world.ts';

const cli = { platform: 'cli' as const, id: 'pat' };
const AT = '2024-02-14T03:00:00Z';

const open: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of open.splice(0).reverse()) await fn().catch(() => {});
});

/** The seeded world with nothing approved yet (seedWorld approves the whole release for tests that start later). */
async function world(): Promise<{ database: TestDatabase; db: AppDatabase; now: Date }> {
  const database = await openTestDatabase();
  open.push(() => database.close());
  const now = new Date(AT);
  await seedWorld(database.db, { mspDevices: 1, clients: [{ id: 'acme', pilot: 1, broad: 1 }] }, now);
  await database.db.execute(sql`delete from decisions where idempotency_key = 'test-approve-release'`);
  return { database, db: database.db, now };
}

/** Applies the events as one writer would, with the repository's compare-and-set, inside the given transaction. */
async function writeGates(tx: AppDatabase, events: RolloutEvent[], now: Date): Promise<void> {
  const before = await loadBook(tx, '2024-Feb', true);
  let book: Book = before;
  const changed = new Set<string>();
  for (const event of events) {
    const t = transition(book, event, now);
    if (t.outcome !== 'applied') throw new Error(`${event.type}: ${t.outcome}`);
    book = t.book;
    t.changed.forEach((k) => changed.add(k));
  }
  await saveGates(tx, before, book, [...changed], now);
}

async function waitForLockWaiter(db: AppDatabase): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const [row] = rowsOf<{ n: number }>(
      await db.execute(sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`),
    );
    if (Number(row?.n) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the approval never waited on the other writer');
}

describe('decisions racing other writers', () => {
  it('a late approval whose ring msp write loses the compare-and-set reads again and lands: the rested ring reopens', async () => {
    const { db, now } = await world();
    const ctx = { db, now: () => now };
    expect(await approve(ctx, { actor: cli, releaseId: '2024-Feb', updateKey: '5034770' })).toMatchObject({ outcome: 'applied' });
    await db.transaction((tx) =>
      writeGates(
        tx,
        [
          { type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2024-02-14T07:00:00.000Z', holds: [] },
          { type: 'ring_finished', ring: 'msp', clientId: null, soakHours: 24 },
        ],
        now,
      ),
    );
    // Today two locks keep another writer out between the approval's read of ring msp and its write (the release row,
    // and the gate row itself), so the test loses the first write the way a writer that skipped them would make it
    // lose: the compare-and-set finds no row to update, once (a sequence is not rolled back with the transaction).
    await db.execute(sql`create sequence lose_msp_once`);
    await db.execute(sql.raw(`create function lose_msp_once() returns trigger language plpgsql as $$
      begin
        if old.ring = 'msp' and nextval('lose_msp_once') = 1 then return null; end if;
        return new;
      end $$`));
    await db.execute(sql`create trigger lose_msp_once before update on rollouts for each row execute function lose_msp_once()`);

    expect(await approve(ctx, { actor: cli, releaseId: '2024-Feb', updateKey: '5034765' })).toMatchObject({ outcome: 'applied' });
    const msp = (await loadBook(db, '2024-Feb')).gates.msp!;
    // Swallowing the ConflictError committed the approval with ring msp left soaking: KB5034765 never ran anywhere.
    expect(msp.state).toBe('scheduled');
    expect(msp.applied).toContain('approve:2024-Feb:5034765:0');
  });

  it.skipIf(testBackend() === 'pglite')('an approval waits for another writer of the release\'s gates, then applies to what it wrote', async () => {
    const { db, now } = await world();
    // Another writer (the engine applying an earlier approval, through to its soak) creates ring msp and holds it
    // uncommitted. Its insert holds the release row's key-share lock, so the approval's release lock waits for it.
    let commit!: () => void;
    const held = new Promise<void>((resolve) => (commit = resolve));
    const other = db.transaction(async (tx) => {
      await writeGates(
        tx,
        [
          { type: 'approved', id: 'earlier-approval' },
          { type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2024-02-14T07:00:00.000Z', holds: [] },
          { type: 'ring_finished', ring: 'msp', clientId: null, soakHours: 24 },
        ],
        now,
      );
      await held;
    });
    const approval = approve({ db, now: () => now }, { actor: cli, releaseId: '2024-Feb', updateKey: '5034765' });
    await waitForLockWaiter(db);
    commit();
    await other;
    expect(await approval).toMatchObject({ outcome: 'applied' });
    const msp = (await loadBook(db, '2024-Feb')).gates.msp!;
    expect(msp.state).toBe('scheduled');
    expect(msp.applied).toEqual(['earlier-approval', 'approve:2024-Feb:5034765:0']);
  });

  it('two engineers approving and holding one release at once both land', async () => {
    const { db, now } = await world();
    const ctx = { db, now: () => now };
    const [a, b, c] = await Promise.all([
      approve(ctx, { actor: cli, releaseId: '2024-Feb', updateKey: '5034765' }),
      approve(ctx, { actor: cli, releaseId: '2024-Feb', updateKey: '5034770' }),
      hold(ctx, { actor: cli, releaseId: '2024-Feb', updateKey: '5034439', clients: ['acme'], reason: 'breaks the EMR', requestId: 'h1' }),
    ]);
    expect([a.outcome, b.outcome, c.outcome]).toEqual(['applied', 'applied', 'applied']);
    const kinds = rowsOf<{ kind: string }>(await db.execute(sql`select kind from decisions where release_id = '2024-Feb' order by kind`)).map((r) => r.kind);
    expect(kinds).toEqual(['approve', 'approve', 'hold']);
    expect((await loadBook(db, '2024-Feb')).gates.msp!.state).toBe('scheduled');
  });
});
