/**
 * Digest redraws are coalesced: a decision only marks its release, and one redraw after the commit covers every
 * decision made since the last. Coalescing must never lose one: after a burst, the last edit of every message shows
 * every decision on it, with fewer redraws than decisions; and a decision committed while a redraw is reading still
 * ends up shown (that redraw leaves the mark, the next pass draws it).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type SQL } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { clients, devices, locations, msp } from '../../src/db/schema.ts';
import { markDigestDirty } from '../../src/db/digest-refresh-repo.ts';
import { approve, type UseCaseContext } from '../../src/use-cases/decisions.ts';
import { refreshDigests } from '../../src/use-cases/digest-refresh.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = parseCvrf(readFileSync(path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json'), 'utf8'));
const AT = new Date('2024-02-13T18:00:00Z');
const KEYS = ['5099001', '5099002', '5099003'];
const pat = { platform: 'cli' as const, id: 'pat' };

const open: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of open.splice(0).reverse()) await fn().catch(() => {});
});

/** One client with machines the fixture's three KBs patch (so each gets buttons), and `n` copies of the fixture posted as digests. */
async function world(n: number): Promise<{ database: TestDatabase; releases: string[] }> {
  const database = await openTestDatabase();
  open.push(() => database.close());
  const db = database.db;
  await db.insert(msp).values({ id: 1, name: 'Test MSP', timezone: 'America/Chicago', channel: 'C0PATCH', windows: {} });
  await db.insert(clients).values({ id: 'acme', name: 'Acme', timezone: 'America/Chicago', windows: { desktop: 'daily 01:00-05:00' } });
  await db.insert(locations).values({ clientId: 'acme', id: 'main', name: 'Main office' });
  await db.insert(devices).values([
    { name: 'ACME-WS1', clientId: 'acme', locationId: 'main', class: 'desktop', ring: 'pilot', os: 'Windows 11 Version 23H2 for x64-based Systems' },
    { name: 'ACME-SRV1', clientId: 'acme', locationId: 'main', class: 'server', ring: 'broad', os: 'Windows Server 2022' },
    { name: 'ACME-EX1', clientId: 'acme', locationId: 'main', class: 'server', ring: 'broad', os: 'Microsoft Exchange Server 2019 Cumulative Update 14' },
  ]);
  const releases = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun'].slice(0, n).map((month) => `2030-${month}`);
  for (const id of releases) await storeRelease(db, { ...fixture, id }, { fetchedAt: AT, now: AT });
  return { database, releases };
}

interface Row {
  id: number;
  key: string;
  subject: string;
  blocks: string;
}

/** Per digest message that shows one of KEYS: how many of them it shows, and its last edit (if any). */
async function lastEdits(db: AppDatabase, releaseId: string): Promise<Array<{ subject: string; shows: number; last: Row | undefined }>> {
  const rows = rowsOf<Row & { action: string }>(
    await db.execute(sql`select id, idempotency_key as key, subject, action, payload ->> 'blocks' as blocks from chat_outbox
      where subject = ${`digest:${releaseId}`} or subject like ${`digest:${releaseId}:thread:%`} order by id`),
  );
  return rows
    .filter((r) => r.action === 'post')
    .map((post) => ({
      subject: post.subject,
      shows: KEYS.filter((k) => post.blocks.includes(`actions:update:${k}`)).length,
      last: rows.filter((r) => r.action === 'update' && r.subject === post.subject).at(-1),
    }))
    .filter((m) => m.shows > 0);
}

const approvals = (row: Row | undefined) => (row?.blocks.match(/\*Approved\*/g) ?? []).length;
/** An edit's outbox key is `refresh:<cause>:<post id>`: the edits of one redraw share the cause. */
const redraws = async (db: AppDatabase) =>
  rowsOf<{ n: number }>(
    await db.execute(sql`select count(distinct regexp_replace(idempotency_key, ':[0-9]+$', ''))::int as n from chat_outbox where action = 'update'`),
  )[0]!.n;

describe('coalesced digest redraws', () => {
  it('a burst of decisions on several releases: every message ends showing all of its approvals, in fewer redraws', async () => {
    const { database, releases } = await world(3);
    const ctx: UseCaseContext = { db: database.db, now: () => AT };
    const results = await Promise.all(releases.flatMap((releaseId) => KEYS.map((updateKey) => approve(ctx, { actor: pat, releaseId, updateKey }))));
    expect(results.map((r) => r.outcome)).toEqual(results.map(() => 'applied'));
    for (const releaseId of releases) {
      const messages = await lastEdits(database.db, releaseId);
      expect(messages.reduce((sum, m) => sum + m.shows, 0)).toBe(KEYS.length);
      for (const m of messages) expect(approvals(m.last), m.subject).toBe(m.shows);
    }
    expect(await redraws(database.db)).toBeLessThan(results.length);
    // Nothing is left marked once every caller heard back.
    expect(rowsOf(await database.db.execute(sql`select 1 from idempotency_keys where scope = 'digest-refresh'`))).toEqual([]);
  }, 90_000);

  it('a mark no redraw followed (the process died after the commit) is drawn by the next pass, then cleared', async () => {
    const { database, releases } = await world(1);
    const ctx: UseCaseContext = { db: database.db, now: () => AT };
    await markDigestDirty(database.db, releases[0]!, [KEYS[0]!], AT);
    await refreshDigests(ctx);
    const edited = (await lastEdits(database.db, releases[0]!)).filter((m) => m.last !== undefined);
    expect(edited).toHaveLength(1);
    expect(rowsOf(await database.db.execute(sql`select 1 from idempotency_keys where scope = 'digest-refresh'`))).toEqual([]);
  });

  // A second connection must commit while the redraw's transaction is open: PGlite has one.
  it.skipIf(testBackend() === 'pglite')('a decision committed while a redraw is reading is drawn by the next redraw', async () => {
    const { database, releases } = await world(1);
    const releaseId = releases[0]!;
    let racing: Promise<unknown> | undefined;
    // Just before the first redraw clears its mark (it has read the standings), the second approval commits.
    const db = beforeFirst(database.db, /delete from idempotency_keys/, async () => {
      racing = approve(ctx, { actor: pat, releaseId, updateKey: KEYS[1]! });
      await committed(database.db, releaseId, 2);
    });
    const ctx: UseCaseContext = { db, now: () => AT };
    await approve(ctx, { actor: pat, releaseId, updateKey: KEYS[0]! });
    expect(racing).toBeDefined();
    await racing;
    const shown = (await lastEdits(database.db, releaseId)).filter((m) => m.shows > 0);
    const approved = shown.reduce((sum, m) => sum + approvals(m.last), 0);
    expect(approved).toBe(2);
  });
});

/** Waits until `n` approvals of the release are committed (read on another connection). */
async function committed(db: AppDatabase, releaseId: string, n: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const [row] = rowsOf<{ n: number }>(await db.execute(sql`select count(*)::int as n from decisions where release_id = ${releaseId} and kind = 'approve'`));
    if (Number(row?.n) >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the racing approval never committed');
}

/** The database, except that the first transaction statement matching `pattern` runs `hook` first. */
function beforeFirst(db: AppDatabase, pattern: RegExp, hook: () => Promise<void>): AppDatabase {
  let fired = false;
  const text = (query: unknown) => {
    try {
      return JSON.stringify((query as SQL).queryChunks);
    } catch {
      return '';
    }
  };
  const wrap = (tx: AppDatabase): AppDatabase =>
    new Proxy(tx, {
      get(target, prop) {
        if (prop !== 'execute') return Reflect.get(target, prop, target) as unknown;
        return async (query: SQL) => {
          if (!fired && pattern.test(text(query))) {
            fired = true;
            await hook();
          }
          return target.execute(query);
        };
      },
    });
  return new Proxy(db, {
    get(target, prop) {
      if (prop !== 'transaction') return Reflect.get(target, prop, target) as unknown;
      return (work: (tx: AppDatabase) => Promise<unknown>, config?: unknown) => (target.transaction as (w: typeof work, c?: unknown) => Promise<unknown>)((tx) => work(wrap(tx)), config);
    },
  });
}
