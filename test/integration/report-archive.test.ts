/**
 * The report archive: a sent report's files come back byte for byte (every byte value, CRLFs, a NUL), their
 * SHA-256 is checked on the way out, a second archive of one delivery key writes nothing, and the table refuses
 * UPDATE and DELETE like the audit log. `patchbay report fetch` writes the same bytes (on PostgreSQL: the CLI opens
 * the scratch database by DATABASE_URL; with PATCHBAY_TEST_DB=pglite the repository half runs on PGlite).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archivedKeysSince, archiveReport, ArchiveIntegrityError, fetchArchived, filesOfDelivery, listArchive, sha256Hex } from '../../src/db/report-archive-repo.ts';
import { openDatabase } from '../../src/db/client.ts';
import { migrateDatabase } from '../../src/db/migrate.ts';
import { createScratchDatabase, openTestDatabase, testBackend, type ScratchDatabase, type TestDatabase } from '../support/db.ts';
import { cliTestTimeout } from '../support/cli.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(repoRoot, 'bin/patchbay.mjs');
const ALL_BYTES = Uint8Array.from({ length: 512 }, (_, i) => i % 256);
const CSV = Buffer.from('device,note\r\nPC-1,"=HYPERLINK(""x"")"\r\n\u00e9\r\n', 'utf8');
const SENT_AT = new Date('2026-12-01T14:00:00Z');

const request = (key: string) => ({
  deliveryKey: key,
  clientId: 'acme',
  periodId: '2026-Nov',
  kind: 'monthly' as const,
  files: [
    { name: 'a.pdf', mimeType: 'application/pdf', format: 'pdf', bytes: ALL_BYTES },
    { name: 'a.csv', mimeType: 'text/csv', format: 'csv', bytes: CSV },
  ],
  sentTo: ['slack:C0ENG', 'teams:19:abc'],
  sentAt: SENT_AT,
});

describe(`report archive (${testBackend()})`, () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await openTestDatabase();
  });
  afterAll(async () => {
    await database.close();
  });

  it('gives back each file unchanged with its SHA-256, and archives one delivery key once', async () => {
    const first = await archiveReport(database.db, request('report:monthly:acme:2026-Nov'));
    expect(first.fresh).toBe(true);
    expect(first.ids).toHaveLength(2);
    const again = await archiveReport(database.db, request('report:monthly:acme:2026-Nov'));
    expect(again).toEqual({ fresh: false, ids: [] });

    const pdf = await fetchArchived(database.db, first.ids[0]!);
    expect(Buffer.compare(pdf!.bytes, Buffer.from(ALL_BYTES))).toBe(0);
    expect(pdf!.sha256).toBe(sha256Hex(ALL_BYTES));
    expect(pdf).toMatchObject({ clientId: 'acme', periodId: '2026-Nov', kind: 'monthly', fileName: 'a.pdf', size: 512, sentTo: ['slack:C0ENG', 'teams:19:abc'], sentAt: SENT_AT });
    const files = await filesOfDelivery(database.db, 'report:monthly:acme:2026-Nov');
    expect(files.map((f) => [f.fileName, f.bytes.equals(f.fileName === 'a.csv' ? CSV : Buffer.from(ALL_BYTES))])).toEqual([['a.pdf', true], ['a.csv', true]]);
    expect((await listArchive(database.db, { clientId: 'acme' })).map((r) => r.fileName)).toEqual(['a.csv', 'a.pdf']);
    expect(await archivedKeysSince(database.db, new Date('2026-11-30T00:00:00Z'), ['monthly'])).toEqual(new Set(['report:monthly:acme:2026-Nov']));
    expect(await archivedKeysSince(database.db, new Date('2026-11-30T00:00:00Z'), ['release'])).toEqual(new Set());
    expect(await fetchArchived(database.db, 999_999)).toBeUndefined();
  });

  it('refuses to change or remove an archived file, and a file altered behind its back fails the hash check', async () => {
    const { ids } = await archiveReport(database.db, request('report:monthly:acme:2026-Oct'));
    await expect(database.db.execute(sql`update report_archive set content = ${Buffer.from('forged')} where id = ${ids[0]!}`)).rejects.toThrow();
    await expect(database.db.execute(sql`delete from report_archive where id = ${ids[0]!}`)).rejects.toThrow();
    // Someone with the table owner's rights switches the guard off and rewrites the bytes: fetch must notice.
    await database.db.execute(sql`alter table report_archive disable trigger report_archive_no_update_or_delete`);
    await database.db.execute(sql`update report_archive set content = ${Buffer.from('forged')} where id = ${ids[0]!}`);
    await database.db.execute(sql`alter table report_archive enable trigger report_archive_no_update_or_delete`);
    await expect(fetchArchived(database.db, ids[0]!)).rejects.toBeInstanceOf(ArchiveIntegrityError);
  });
});

describe.skipIf(testBackend() === 'pglite')('patchbay report fetch (postgres)', { timeout: cliTestTimeout(3) }, () => {
  let scratch: ScratchDatabase;
  let id: number;
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-archive-'));
  beforeAll(async () => {
    scratch = await createScratchDatabase('patchbay_archive_cli');
    const database = await openDatabase({ kind: 'postgres', url: scratch.url });
    await migrateDatabase(database);
    id = (await archiveReport(database.db, request('report:monthly:acme:2026-Nov'))).ids[0]!;
    await database.close();
  });
  afterAll(async () => {
    await scratch.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> =>
    new Promise((resolve) => {
      const env = { PATH: process.env.PATH ?? '', DATABASE_URL: scratch.url, LOG_LEVEL: 'silent', PATCHBAY_DATA_DIR: path.join(dir, 'data') };
      execFile(process.execPath, [bin, 'report', ...args], { cwd: repoRoot, env, encoding: 'buffer' }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString('utf8') }),
      );
    });

  it('writes the archived bytes unchanged, to a file or to standard output, and names a missing id', async () => {
    const out = path.join(dir, 'copy.pdf');
    const toFile = await run(['fetch', String(id), '--out', out]);
    expect(toFile.stderr + toFile.stdout.toString('utf8')).toContain(sha256Hex(ALL_BYTES));
    expect(toFile.code).toBe(0);
    expect(readFileSync(out).equals(Buffer.from(ALL_BYTES))).toBe(true);
    const toStdout = await run(['fetch', String(id)]);
    expect(toStdout.stdout.equals(Buffer.from(ALL_BYTES))).toBe(true);
    const missing = await run(['fetch', '424242']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no archived report file 424242');
  });
});
