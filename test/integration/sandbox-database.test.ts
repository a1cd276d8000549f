/**
 * The sandbox writes a made-up release, fake Teams conversations and audit rows, and its page acts as anyone: it
 * may run only on a database it claimed while empty, and never on one with someone's history or one that has
 * since carried real chat (issue 12). Real PostgreSQL (or PGlite with PATCHBAY_TEST_DB=pglite).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { startApp } from '../../src/app.ts';
import { importInventoryFile } from '../../src/commands/import.ts';
import { loadConfig } from '../../src/config.ts';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { LIVE_CHAT, SANDBOX_CLAIM, recordLiveChat } from '../../src/db/sandbox-repo.ts';
import { createLogger } from '../../src/log.ts';
import { checkSandboxDatabase } from '../../src/sandbox/database-check.ts';
import { SAMPLE_INVENTORY } from '../../src/sandbox/sandbox.ts';
import { createScratchDatabase, openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';
import { startTestRedis } from '../support/redis.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const NOW = new Date('2026-12-07T15:00:00Z');
const opened: TestDatabase[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
});

async function fresh(): Promise<TestDatabase> {
  const database = await openTestDatabase();
  opened.push(database);
  return database;
}

const auditActions = async (db: AppDatabase) => rowsOf<{ action: string }>(await db.execute(sql`select action from audit_log order by id`)).map((r) => r.action);

describe('which database the sandbox may use', () => {
  it('claims an empty database before writing anything else, and lets itself back in after a restart', async () => {
    const database = await fresh();
    expect(await checkSandboxDatabase(database, NOW)).toEqual({ ok: true });
    expect(await auditActions(database.db)).toEqual([SANDBOX_CLAIM]);
    await importInventoryFile(database, SAMPLE_INVENTORY, { dryRun: false, now: NOW, actor: 'sandbox' });
    expect(await checkSandboxDatabase(database, NOW)).toEqual({ ok: true });
    expect((await auditActions(database.db)).filter((a) => a === SANDBOX_CLAIM)).toHaveLength(1);
  });

  it('refuses a database with an inventory someone imported, names what is there, and writes nothing', async () => {
    const database = await fresh();
    await importInventoryFile(database, path.join(repo, 'examples/inventory.yaml'), { dryRun: false, now: NOW, actor: 'alice' });
    const before = await auditActions(database.db);
    const verdict = await checkSandboxDatabase(database, NOW);
    expect(verdict.ok).toBe(false);
    expect(!verdict.ok && verdict.why).toMatch(/history the sandbox did not write \(.*clients rows.*audit log rows/);
    expect(await auditActions(database.db)).toEqual(before);
  });

  it('refuses its own database once real chat has run on it, for good', async () => {
    const database = await fresh();
    await checkSandboxDatabase(database, NOW);
    await importInventoryFile(database, SAMPLE_INVENTORY, { dryRun: false, now: NOW, actor: 'sandbox' });
    expect(await recordLiveChat(database.db, NOW, ['slack'])).toBe(true);
    expect(await recordLiveChat(database.db, NOW, ['slack'])).toBe(false);
    const verdict = await checkSandboxDatabase(database, NOW);
    expect(!verdict.ok && verdict.why).toMatch(/has run with real Slack or Teams/);
  });

  it('adopts a sandbox database from before the claim existed: its first act was importing the sample inventory', async () => {
    const database = await fresh();
    await importInventoryFile(database, SAMPLE_INVENTORY, { dryRun: false, now: NOW, actor: 'sandbox' });
    expect(await checkSandboxDatabase(database, NOW)).toEqual({ ok: true });
    expect(await auditActions(database.db)).toEqual(['inventory.import', SANDBOX_CLAIM]);
  });

  it('leaves a database the sandbox never had untouched when real chat starts on it', async () => {
    const database = await fresh();
    expect(await recordLiveChat(database.db, NOW, ['teams'])).toBe(false);
    expect(await auditActions(database.db)).toEqual([]);
  });
});

describe.skipIf(testBackend() === 'pglite')('patchbay with real chat on a database the sandbox once claimed', () => {
  it('records that it went live, so a later start without credentials does not bring the sandbox back', async () => {
    const scratch = await createScratchDatabase('patchbay_golive');
    const redis = await startTestRedis();
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-golive-'));
    try {
      const base = { DATABASE_URL: scratch.url, REDIS_URL: redis.url, REDIS_PREFIX: `golive${process.pid}`, PATCHBAY_DATA_DIR: dataDir, MSRC_API_URL: 'file:///nonexistent/', KEV_URL: 'file:///nonexistent/kev.json' };
      const log = createLogger('silent');
      const claimed = await startApp(loadConfig({ ...base, PATCHBAY_SANDBOX: 'on' }), log, { roles: new Set(['web', 'worker', 'scheduler']), port: 0, sandboxTickMs: 60_000 });
      expect(claimed.chat.mode).toBe('sandbox');
      await claimed.stop();

      const live = await startApp(loadConfig({ ...base, TEAMS_APP_ID: 'app', TEAMS_APP_PASSWORD: 'secret' }), log, { roles: new Set(['web']), port: 0 });
      expect(live.chat.mode).toBe('connected');
      expect(await auditActions(live.database.db)).toContain(LIVE_CHAT);
      await live.stop();

      await expect(startApp(loadConfig({ ...base, PATCHBAY_SANDBOX: 'on' }), log, { roles: new Set(['web', 'worker', 'scheduler']), port: 0 })).rejects.toThrow(
        /^PATCHBAY_SANDBOX=on, but the sandbox will not run: this database has run with real Slack or Teams credentials/,
      );
    } finally {
      await redis.stop();
      await scratch.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
