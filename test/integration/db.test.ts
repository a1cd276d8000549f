import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.ts';
import { migrateDatabase, rowsOf } from '../../src/db/migrate.ts';
import { auditLog, clients, decisions, devices, runs } from '../../src/db/schema.ts';
import { createScratchDatabase, openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';

const backend = testBackend();

/** drizzle wraps a driver error ("Failed query: …"); the database's own message is in its cause. */
async function failureText(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause;
    return `${(error as Error).message} ${cause?.message ?? ''}`;
  }
  return 'did not fail';
}

describe(`storage on ${backend}`, () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await openTestDatabase();
  });
  afterAll(async () => {
    await database?.close();
  });

  it('applies every migration, and a second migrate applies nothing', async () => {
    const tables = rowsOf<{ table_name: string }>(
      await database.db.execute(sql`select table_name from information_schema.tables where table_schema = 'public'`),
    ).map((row) => row.table_name);
    for (const table of ['clients', 'devices', 'runs', 'decisions', 'chat_outbox', 'audit_log', 'releases', 'updates', 'cves']) {
      expect(tables).toContain(table);
    }
    const again = await migrateDatabase(database);
    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied).toBeGreaterThanOrEqual(2);
  });

  it('answers ping', async () => {
    await expect(database.ping()).resolves.toBeUndefined();
  });

  it('keeps the audit log append-only: UPDATE, DELETE and TRUNCATE are refused', async () => {
    await database.db.insert(auditLog).values({ actor: 'U0ENG1', action: 'test.write', subject: 'audit-test', source: 'cli' });
    expect(await failureText(database.db.update(auditLog).set({ actor: 'someone-else' }))).toMatch(/append-only: UPDATE refused/);
    expect(await failureText(database.db.delete(auditLog))).toMatch(/append-only: DELETE refused/);
    expect(await failureText(database.db.execute(sql`truncate audit_log`))).toMatch(/append-only: TRUNCATE refused/);
    const rows = await database.db.select().from(auditLog);
    expect(rows.filter((row) => row.subject === 'audit-test')).toHaveLength(1);
    expect(rows.find((row) => row.subject === 'audit-test')?.actor).toBe('U0ENG1');
  });

  it('refuses a second run for the same device and window', async () => {
    const [client] = await database.db
      .insert(clients)
      .values({ id: 'run-key-client', name: 'Run Key', timezone: 'America/Chicago', windows: {} })
      .returning();
    const [device] = await database.db
      .insert(devices)
      .values({ name: 'RUNKEY-01', clientId: client!.id, class: 'desktop', ring: 'broad' })
      .returning();
    const windowStart = new Date('2025-03-09T07:00:00Z');
    const run = { deviceId: device!.id, windowStart, windowEnd: new Date('2025-03-09T10:00:00Z'), scheduledAt: windowStart };
    await database.db.insert(runs).values(run);
    expect(await failureText(database.db.insert(runs).values(run))).toMatch(/runs_device_window_key/);
    const inserted = await database.db.insert(runs).values(run).onConflictDoNothing().returning();
    expect(inserted).toEqual([]);
  });

  it('refuses a second decision with the same idempotency key', async () => {
    const decision = { kind: 'approve' as const, actor: 'U0ENG1', source: 'slack' as const, idempotencyKey: 'click-1', createdAt: new Date() };
    await database.db.insert(decisions).values(decision);
    expect(await failureText(database.db.insert(decisions).values(decision))).toMatch(/decisions_idempotency_key/);
  });

  it('refuses an MSP device that names a client, and a client device in ring msp', async () => {
    await database.db.insert(clients).values({ id: 'ring-client', name: 'Ring', timezone: 'UTC', windows: {} }).onConflictDoNothing();
    const mspRingWithClient = database.db.insert(devices).values({ name: 'BAD-1', clientId: 'ring-client', class: 'desktop', ring: 'msp' });
    expect(await failureText(mspRingWithClient)).toMatch(/devices_ring_owner_check/);
    const clientRingWithoutClient = database.db.insert(devices).values({ name: 'BAD-2', class: 'desktop', ring: 'pilot' });
    expect(await failureText(clientRingWithoutClient)).toMatch(/devices_ring_owner_check/);
  });
});

describe.skipIf(backend !== 'postgres')('concurrent migrate on one fresh PostgreSQL database', () => {
  it('lets two processes migrate at once: both succeed, each migration applied once', async () => {
    const scratch = await createScratchDatabase('patchbay_test_concurrent');
    const first = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 2 });
    const second = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 2 });
    try {
      const outcomes = await Promise.all([migrateDatabase(first), migrateDatabase(second)]);
      const appliedTags = outcomes.flatMap((outcome) => outcome.applied);
      // One of them did the work and the other waited on the lock and found nothing to do.
      expect(new Set(appliedTags).size).toBe(appliedTags.length);
      expect(outcomes.map((o) => o.applied.length).sort()).toEqual([0, appliedTags.length]);
      const recorded = rowsOf<{ n: string | number }>(await first.db.execute(sql`select count(*) as n from drizzle.__drizzle_migrations`));
      expect(Number(recorded[0]?.n)).toBe(appliedTags.length);
      expect(appliedTags.length).toBeGreaterThanOrEqual(2);
    } finally {
      await first.close();
      await second.close();
      await scratch.drop();
    }
  });
});

// With the PGlite suite (npm run test:pglite) only: the embedded database is the same whichever server the
// suite tests, and what a newcomer runs.
describe.skipIf(backend !== 'pglite')('embedded PGlite on disk', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'patchbay-pglite-settings-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function sharedBuffers(dataDir: string): Promise<string> {
    const database = await openDatabase({ kind: 'embedded', dataDir });
    try {
      return rowsOf<{ shared_buffers: string }>(await database.db.execute(sql`show shared_buffers`))[0]!.shared_buffers;
    } finally {
      await database.close();
    }
  }

  it('creates a new database with small shared buffers written into its postgresql.conf', async () => {
    const dataDir = path.join(dir, 'new');
    expect(await sharedBuffers(dataDir)).toBe('16MB');
    expect(await readFile(path.join(dataDir, 'postgresql.conf'), 'utf8')).toMatch(/^shared_buffers = 16MB/m);
  });

  it('runs a database created with PostgreSQL\u2019s defaults (128MB) with small shared buffers too', async () => {
    const dataDir = path.join(dir, 'old');
    const { PGlite } = await import('@electric-sql/pglite');
    await (await PGlite.create(dataDir)).close();
    expect(await readFile(path.join(dataDir, 'postgresql.conf'), 'utf8')).toMatch(/^shared_buffers = 128MB/m);
    expect(await sharedBuffers(dataDir)).toBe('16MB');
  });
});
