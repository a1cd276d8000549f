/**
 * The audit log's hash chain on a real database (PostgreSQL, or PGlite with PATCHBAY_TEST_DB=pglite): the insert
 * trigger builds it the way src/domain/audit-chain.ts defines it, under concurrent writers; tampering is found with
 * the right row; exports round-trip through csv-parse and line-by-line JSON and verify offline; a large range is read
 * and written in bounded batches.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parse } from 'csv-parse/sync';
import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, rowsOf, type AppDatabase, type Database } from '../../src/db/client.ts';
import { MIGRATIONS_FOLDER, migrateDatabase } from '../../src/db/migrate.ts';
import { auditLog } from '../../src/db/schema.ts';
import { exportAuditToFile, exportAudit, manifestPath, verifyDatabase, verifyExportFile } from '../../src/commands/audit-evidence.ts';
import { buildProgram } from '../../src/cli.ts';
import { CliError } from '../../src/commands/cli-error.ts';
import { AUDIT_GENESIS_HASH, fromSpreadsheetCell } from '../../src/domain/audit-chain.ts';
import { appDatabaseEnv, openTestDatabase, serverUrl, testBackend, type TestDatabase } from '../support/db.ts';

const backend = testBackend();
const EVERYTHING = { from: new Date('2000-01-01T00:00:00Z'), to: new Date('2100-01-01T00:00:00Z') };

async function append(db: AppDatabase, n: number, over: Partial<typeof auditLog.$inferInsert> = {}): Promise<void> {
  for (let i = 0; i < n; i++) {
    await db.insert(auditLog).values({ actor: 'U0ENG1', action: 'test.append', subject: `s${i}`, source: 'cli', detail: { i }, ...over });
  }
}

/** Runs `work` in a transaction that is always rolled back: tampering seen by the verifier, then undone. */
async function rolledBack(db: AppDatabase, work: (tx: AppDatabase) => Promise<void>): Promise<void> {
  const undo = new Error('undo');
  await db.transaction(async (tx) => {
    await work(tx);
    throw undo;
  }).catch((error: unknown) => {
    if (error !== undo) throw error;
  });
}

/** As a superuser (the tests' role owns the table) who sets the append-only trigger aside. */
async function tamper(tx: AppDatabase, statement: ReturnType<typeof sql>): Promise<void> {
  await tx.execute(sql`alter table audit_log disable trigger audit_log_no_update_or_delete`);
  await tx.execute(statement);
  await tx.execute(sql`alter table audit_log enable trigger audit_log_no_update_or_delete`);
}

const ids = async (db: AppDatabase): Promise<number[]> => rowsOf<{ id: string }>(await db.execute(sql`select id::text as id from audit_log order by audit_log.id`)).map((r) => Number(r.id));

describe(`audit hash chain on ${backend}`, () => {
  let database: TestDatabase;
  let dir: string;

  beforeAll(async () => {
    database = await openTestDatabase();
    dir = await mkdtemp(join(tmpdir(), 'patchbay-audit-'));
  });
  afterAll(async () => {
    await database?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('chains what the database computes exactly as the domain defines it, whatever the text', async () => {
    const db = database.db;
    await db.execute(sql`insert into audit_log (at, actor, action, subject, detail, source)
      values ('2026-03-08 08:59:59.123456+00', 'ünïcødé "quoted" \\ back', E'tab\\tnew\\nline\\u0001', '=cmd|'' /c calc''!A1', '{"z": 1.50, "a": [1e21, -0.5, null, true], "ü": {"y": "x"}}', 'slack')`);
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'grapheme' }), fc.jsonValue(), async (text, detail) => {
        // PostgreSQL's text and jsonb hold no NUL character.
        const clean = text.replaceAll('\0', '');
        const value = JSON.parse(JSON.stringify(detail, (_k, v: unknown) => (typeof v === 'string' ? v.replaceAll('\0', '') : v)).replaceAll('\\u0000', '')) as unknown;
        await db.insert(auditLog).values({ actor: clean, action: 'property', subject: clean, source: 'teams', detail: { value } as Record<string, unknown> });
      }),
      { numRuns: 40 },
    );
    const outcome = await verifyDatabase(db, undefined);
    expect(outcome).toMatchObject({ ok: true, rows: 41 });
    // The first row chains from the genesis value.
    const [first] = rowsOf<{ prev_hash: string }>(await db.execute(sql`select prev_hash from audit_log order by id limit 1`));
    expect(first!.prev_hash).toBe(AUDIT_GENESIS_HASH);
  });

  it('stays one chain, in id order, under concurrent appends from several connections', async () => {
    const others: Database[] = [];
    if (database.backend === 'postgres') {
      const url = new URL(serverUrl());
      url.pathname = `/${rowsOf<{ db: string }>(await database.db.execute(sql`select current_database() as db`))[0]!.db}`;
      for (let i = 0; i < 3; i++) others.push(await openDatabase({ kind: 'postgres', url: url.toString() }, { maxConnections: 4 }));
    }
    const writers = [database.db, ...others.map((o) => o.db)];
    const before = (await ids(database.db)).length;
    try {
      await Promise.all(
        Array.from({ length: 24 }, (_, w) =>
          writers[w % writers.length]!.transaction(async (tx) => {
            await append(tx, 3, { actor: `writer-${w}` });
            await tx.execute(sql`select pg_sleep(0.01)`);
            await append(tx, 2, { actor: `writer-${w}` });
          }),
        ),
      );
    } finally {
      for (const o of others) await o.close();
    }
    const all = await ids(database.db);
    expect(all.length).toBe(before + 24 * 5);
    // One writer's rows are consecutive: appends are serialised for a whole transaction, so ids are commit order.
    const actors = rowsOf<{ actor: string }>(await database.db.execute(sql`select actor from audit_log where actor like 'writer-%' order by id`)).map((r) => r.actor);
    for (let i = 0; i < actors.length; i += 5) expect(new Set(actors.slice(i, i + 5)).size).toBe(1);
    expect(await verifyDatabase(database.db, undefined)).toMatchObject({ ok: true, rows: all.length });
  });

  it('keeps the chain whole when a savepoint with audit rows is rolled back', async () => {
    const before = await ids(database.db);
    await database.db.transaction(async (tx) => {
      await append(tx, 1, { actor: 'kept' });
      await tx.transaction(async (inner) => {
        await append(inner, 2, { actor: 'rolled-back' });
        inner.rollback();
      }).catch(() => {});
      await append(tx, 1, { actor: 'kept' });
    });
    const after = await ids(database.db);
    const last = before.at(-1) ?? 0;
    expect(after.slice(before.length)).toEqual([last + 1, last + 2]);
    expect(await verifyDatabase(database.db, undefined)).toMatchObject({ ok: true });
  });

  it('finds a row changed behind the append-only trigger, by its id', async () => {
    await append(database.db, 12);
    const all = await ids(database.db);
    const target = all[Math.floor(all.length / 2)]!;
    await rolledBack(database.db, async (tx) => {
      await tamper(tx, sql`update audit_log set actor = 'someone-else' where id = ${target}`);
      const outcome = await verifyDatabase(tx, undefined, 7);
      expect(outcome).toMatchObject({ ok: false, break: { id: target, field: 'row_hash' } });
      expect(outcome.ok ? '' : outcome.problem).toContain(`audit row ${target}: row_hash is not the hash of the row as stored`);
    });
    await rolledBack(database.db, async (tx) => {
      await tamper(tx, sql`update audit_log set detail = '{"i": 99}' where id = ${target}`);
      expect(await verifyDatabase(tx, undefined)).toMatchObject({ ok: false, break: { id: target, field: 'row_hash' } });
    });
  });

  it('finds a removed row by the row after it, and a removed last row by the head', async () => {
    await append(database.db, 12);
    const all = await ids(database.db);
    const target = all[10]!;
    await rolledBack(database.db, async (tx) => {
      await tamper(tx, sql`delete from audit_log where id = ${target}`);
      const outcome = await verifyDatabase(tx, undefined);
      expect(outcome).toMatchObject({ ok: false, break: { id: all[11], field: 'prev_hash' } });
    });
    await rolledBack(database.db, async (tx) => {
      await tamper(tx, sql`delete from audit_log where id = ${all.at(-1)!}`);
      const outcome = await verifyDatabase(tx, undefined);
      expect(outcome.ok ? '' : outcome.problem).toContain(`the chain head says the last row is ${all.at(-1)}`);
    });
    expect(await verifyDatabase(database.db, undefined)).toMatchObject({ ok: true });
  });

  it('refuses a row the trigger did not chain', async () => {
    await rolledBack(database.db, async (tx) => {
      await tx.execute(sql`alter table audit_log disable trigger audit_log_chain`);
      await expect(append(tx, 1)).rejects.toThrow();
    });
  });

  it('exports a range as JSONL and CSV that re-read to the rows stored and verify offline', async () => {
    const db = database.db;
    await db.insert(auditLog).values([
      { at: new Date('2025-06-01T10:00:00Z'), actor: '=HYPERLINK("http://evil")', action: "'quoted", subject: '-1', source: 'system', detail: { note: 'line1\nline2, "x"' } },
      { at: new Date('2025-06-02T10:00:00Z'), actor: '@SUM(A1)', action: 'x', subject: '+1', source: 'system', detail: {} },
      { at: new Date('2025-06-03T10:00:00Z'), actor: 'U0ENG1', action: 'x', subject: 'y', source: 'system', detail: { n: 1 } },
    ]);
    const range = { from: new Date('2025-06-01T00:00:00Z'), to: new Date('2025-06-03T00:00:00Z') };
    const stored = rowsOf<Record<string, string>>(
      await db.execute(sql`select id::text as id, actor, action, subject, detail::text as detail, prev_hash, row_hash from audit_log where at >= ${range.from.toISOString()}::timestamptz and at < ${range.to.toISOString()}::timestamptz order by audit_log.id`),
    );
    expect(stored).toHaveLength(2);
    const now = new Date();

    const jsonl = join(dir, 'range.jsonl');
    const manifest = await exportAuditToFile(db, jsonl, { ...range, format: 'jsonl', now });
    expect(manifest).toMatchObject({ rows: 2, firstId: Number(stored[0]!.id), lastId: Number(stored[1]!.id), anchorHash: stored[0]!.prev_hash, headHash: stored[1]!.row_hash });
    const lines = (await readFile(jsonl, 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.type)).toEqual(['header', 'row', 'row', 'trailer']);
    expect(lines[1]).toMatchObject({ id: Number(stored[0]!.id), actor: stored[0]!.actor, detail: stored[0]!.detail, row_hash: stored[0]!.row_hash });
    expect(lines[3]).toMatchObject({ rows: 2, headHash: stored[1]!.row_hash });
    expect(await verifyExportFile(jsonl)).toMatchObject({ ok: true, rows: 2 });

    const csv = join(dir, 'range.csv');
    await exportAuditToFile(db, csv, { ...range, format: 'csv', now });
    const text = await readFile(csv, 'utf8');
    const records = parse(text, { columns: true }) as Array<Record<string, string>>;
    expect(records).toHaveLength(2);
    // Spreadsheet-safe: nothing a spreadsheet would run as a formula.
    expect(records[0]!.actor).toBe(`'=HYPERLINK("http://evil")`);
    expect(records[0]!.subject).toBe("'-1");
    expect(records[1]!.actor).toBe("'@SUM(A1)");
    for (const [i, record] of records.entries()) {
      const back = Object.fromEntries(Object.entries(record).map(([k, v]) => [k, fromSpreadsheetCell(v)]));
      expect(back).toMatchObject({ id: stored[i]!.id, actor: stored[i]!.actor, action: stored[i]!.action, subject: stored[i]!.subject, detail: stored[i]!.detail, prev_hash: stored[i]!.prev_hash, row_hash: stored[i]!.row_hash });
    }
    expect(JSON.parse(await readFile(manifestPath(csv), 'utf8'))).toMatchObject({ rows: 2, headHash: stored[1]!.row_hash });
    expect(await verifyExportFile(csv)).toMatchObject({ ok: true, rows: 2 });
  });

  it('verify --file fails after one byte of a row is edited, naming the row', async () => {
    await append(database.db, 12);
    const now = new Date();
    for (const format of ['jsonl', 'csv'] as const) {
      const file = join(dir, `all.${format}`);
      await exportAuditToFile(database.db, file, { ...EVERYTHING, format, now });
      const clean = await readFile(file, 'utf8');
      await expect(verifyFile(file)).resolves.toMatch(/^audit chain verified: \d+ rows/);
      // The detail {"i": 1} of the first 'test.append' row becomes {"i": 2}: one byte.
      const at = clean.indexOf('{\\"i\\": 1}') >= 0 ? clean.indexOf('{\\"i\\": 1}') : clean.indexOf('{""i"": 1}');
      expect(at).toBeGreaterThan(0);
      const digit = clean.indexOf('1', at);
      const edited = `${clean.slice(0, digit)}2${clean.slice(digit + 1)}`;
      await writeFile(file, edited);
      const lineOfEdit = edited.slice(0, digit).split('\n').length;
      const editedId = /(?:"id":|^)(\d+)/.exec(edited.split('\n')[lineOfEdit - 1]!)![1];
      const failure = await verifyFile(file);
      expect(failure).toBeInstanceOf(CliError);
      expect((failure as CliError).exitCode).toBe(1);
      expect((failure as CliError).message).toContain(`audit row ${editedId}: row_hash is not the hash of the row as stored`);
      // A row removed from the file is found too.
      const lines = clean.split('\n');
      await writeFile(file, [...lines.slice(0, 3), ...lines.slice(4)].join('\n'));
      expect(((await verifyFile(file)) as CliError).message).toMatch(/prev_hash is not the hash of row \d+/);
    }
  });

  it('verify --file names a missing CSV manifest, and --file with --from', async () => {
    const file = join(dir, 'orphan.csv');
    await cp(join(dir, 'range.csv'), file);
    expect(((await verifyFile(file)) as CliError).message).toContain(`${file}.manifest.json is missing`);
    expect(((await cli('audit', 'verify', '--file', file, '--from', '2026-01-01')) as CliError).message).toContain('--file verifies the whole export');
    expect(((await cli('audit', 'export', '--format', 'xml')) as CliError).message).toContain('--format is "xml": use csv or jsonl');
  });
});

async function cli(...args: string[]): Promise<unknown> {
  const program = buildProgram();
  const writes: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => writes.push(chunk) > 0) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
    return writes.join('');
  } catch (error) {
    return error;
  } finally {
    process.stdout.write = write;
  }
}

const verifyFile = (file: string): Promise<unknown> => cli('audit', 'verify', '--file', file);

describe(`patchbay audit on ${backend}`, () => {
  it('export writes the file and verify exits 1 naming the row changed in the database', async () => {
    const app = await appDatabaseEnv('patchbay_audit_cli');
    const dataDir = await mkdtemp(join(tmpdir(), 'patchbay-audit-cli-'));
    const env = { ...app.env, PATCHBAY_DATA_DIR: dataDir };
    const saved = { DATABASE_URL: process.env.DATABASE_URL, PATCHBAY_DATA_DIR: process.env.PATCHBAY_DATA_DIR };
    try {
      const database = await openDatabase(env.DATABASE_URL ? { kind: 'postgres', url: env.DATABASE_URL } : { kind: 'embedded', dataDir: join(dataDir, 'pglite') });
      await migrateDatabase(database);
      await append(database.db, 5);
      await database.close();
      Object.assign(process.env, env);
      if (!env.DATABASE_URL) delete process.env.DATABASE_URL;
      const file = join(dataDir, 'all.jsonl');
      expect(await cli('audit', 'export', '--format', 'jsonl', '--out', file)).toMatch(/all\.jsonl: 5 audit rows \(1\.\.5\), head [0-9a-f]{64}/);
      expect(await cli('audit', 'verify')).toMatch(/^audit chain verified: 5 rows, ids 1\.\.5/);
      const again = await openDatabase(env.DATABASE_URL ? { kind: 'postgres', url: env.DATABASE_URL } : { kind: 'embedded', dataDir: join(dataDir, 'pglite') });
      await again.db.transaction((tx) => tamper(tx, sql`update audit_log set subject = 'rewritten' where id = 3`));
      await again.close();
      const failure = await cli('audit', 'verify', '--from', '2000-01-01');
      expect(failure).toBeInstanceOf(CliError);
      expect((failure as CliError).exitCode).toBe(1);
      expect((failure as CliError).message).toMatch(/^audit chain broken: audit row 3: row_hash is not the hash of the row as stored: the row was changed \(row_hash expected [0-9a-f]{64}, stored [0-9a-f]{64}\)$/);
      expect(await cli('audit', 'verify', '--file', file)).toMatch(/^audit chain verified: 5 rows/);
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      await app.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe(`audit chain migration and large exports on ${backend}`, () => {
  it('chains the rows that were there before the migration, in id order', async () => {
    const partial = await mkdtemp(join(tmpdir(), 'patchbay-migrations-'));
    const database = await openTestDatabase({ migrate: false });
    try {
      await cp(MIGRATIONS_FOLDER, partial, { recursive: true });
      const journal = JSON.parse(await readFile(join(partial, 'meta/_journal.json'), 'utf8')) as { entries: Array<{ tag: string }> };
      const upTo = journal.entries.findIndex((e) => e.tag.endsWith('_audit_hash_chain_trigger'));
      await writeFile(join(partial, 'meta/_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, upTo) }));
      await migrateDatabase(database, partial);
      await database.db.execute(sql`insert into audit_log (at, actor, action, subject, source) values (now(), 'a', 'old', 's1', 'cli'), (now() - interval '1 day', 'b', 'old', 's2', 'cli')`);
      await migrateDatabase(database);
      const rows = rowsOf<{ id: string; prev_hash: string; row_hash: string }>(await database.db.execute(sql`select id::text as id, prev_hash, row_hash from audit_log order by audit_log.id`));
      expect(rows[0]!.prev_hash).toBe(AUDIT_GENESIS_HASH);
      expect(rows[1]!.prev_hash).toBe(rows[0]!.row_hash);
      await append(database.db, 2);
      expect(await verifyDatabase(database.db, undefined)).toMatchObject({ ok: true, rows: 4 });
    } finally {
      await database.close();
      await rm(partial, { recursive: true, force: true });
    }
  });

  it('exports 50,000 rows in bounded batches, and verifies them', async () => {
    const database = await openTestDatabase();
    try {
      await database.db.execute(sql`insert into audit_log (at, actor, action, subject, detail, source)
        select timestamptz '2021-01-01 00:00:00+00' + make_interval(mins => g), 'U0ENG' || (g % 7), 'bulk', 'subject-' || g, jsonb_build_object('g', g), 'system'
        from generate_series(1, 50000) as g`);
      const batches: number[] = [];
      let writes = 0;
      let bytes = 0;
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          writes++;
          bytes += chunk.length;
          done();
        },
      });
      const manifest = await exportAudit(database.db, sink, { ...EVERYTHING, format: 'jsonl', now: new Date(), batchSize: 2000, onBatch: (n) => batches.push(n) });
      expect(manifest.rows).toBe(50_000);
      // 25 full batches and the empty read that ends the walk: never more than one batch held.
      expect(batches).toEqual([...Array<number>(25).fill(2000), 0]);
      expect(writes).toBeGreaterThanOrEqual(25);
      expect(bytes).toBeGreaterThan(50_000 * 200);
      expect(await verifyDatabase(database.db, { from: new Date('2021-01-10T00:00:00Z'), to: new Date('2021-01-20T00:00:00Z') })).toMatchObject({ ok: true, rows: 14_400 });
      expect(await verifyDatabase(database.db, undefined, 5000)).toMatchObject({ ok: true, rows: 50_000 });
    } finally {
      await database.close();
    }
  }, 180_000);
});

