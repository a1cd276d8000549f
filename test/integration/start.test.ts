import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { openDatabase, rowsOf } from '../../src/db/client.ts';
import { migrateDatabase } from '../../src/db/migrate.ts';
import { importInventoryFile } from '../../src/commands/import.ts';
import { createScratchDatabase, testBackend, type ScratchDatabase } from '../support/db.ts';
import { CLI_TEST_TIMEOUT_MS, cliTestTimeout } from '../support/cli.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const children: ChildProcessWithoutNullStreams[] = [];
const dirs: string[] = [];
const scratches: ScratchDatabase[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null) continue;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  await Promise.all(dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
  await Promise.all(scratches.splice(0).map((s) => s.drop()));
});

/** Runs `patchbay start` as a user would, with a clean environment but for what the test sets. */
async function startPatchbay(env: Record<string, string>) {
  const child = spawn(process.execPath, ['bin/patchbay.mjs', 'start', '--port', '0'], {
    cwd: repo,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'info', ...env },
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const deadline = Date.now() + CLI_TEST_TIMEOUT_MS;
  while (!/http:\/\/localhost:(\d+)/.test(stdout)) {
    if (child.exitCode !== null) throw new Error(`patchbay exited ${child.exitCode}:\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`patchbay did not start:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const port = Number(/http:\/\/localhost:(\d+)/.exec(stdout)![1]);
  return { child, port, logs: () => stderr, stdout: () => stdout };
}

describe('patchbay start on the embedded defaults', () => {
  it('migrates, starts its own Redis, serves health, readiness and metrics, and cleans up on SIGTERM', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-start-'));
    dirs.push(dataDir);
    // The release watcher starts with the app: keep it off the network (these machines have none).
    const offline = pathToFileURL(path.join(dataDir, 'no-feeds')).href;
    const { child, port, logs, stdout } = await startPatchbay({
      PATCHBAY_DATA_DIR: dataDir,
      MSRC_API_URL: `${offline}/`,
      KEV_URL: `${offline}/kev.json`,
    });
    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: [{ name: 'database', ok: true }, { name: 'redis', ok: true }] });
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('patchbay_nodejs_heap_size_total_bytes');
    // With no chat credentials it is the sandbox: the page is served and its address printed.
    expect(stdout()).toContain(`open http://localhost:${port}/`);
    expect(logs()).toContain('"msg":"mode: sandbox, because no Slack or Teams credentials, on the embedded database"');
    expect(await (await fetch(`${base}/`)).text()).toContain('/sandbox/assets/app.js');

    const redisPid = Number(/"pid":(\d+),"msg":"started a private redis-server/.exec(logs())?.[1]);
    expect(redisPid).toBeGreaterThan(0);
    expect(await fs.readFile(path.join(dataDir, 'patchbay.pid'), 'utf8')).toBe(String(child.pid));

    // A second start on the same data dir must be refused, not corrupt PGlite.
    const second = spawn(process.execPath, ['bin/patchbay.mjs', 'start', '--port', '0'], {
      cwd: repo,
      env: { PATH: process.env.PATH ?? '', PATCHBAY_DATA_DIR: dataDir, LOG_LEVEL: 'silent' },
    });
    let secondErr = '';
    second.stderr.on('data', (c) => (secondErr += c));
    const [secondCode] = await once(second, 'exit');
    expect(secondCode).toBe(1);
    expect(secondErr).toContain(`another patchbay (pid ${child.pid})`);

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(() => process.kill(redisPid, 0)).toThrow();
    await expect(fs.access(path.join(dataDir, 'patchbay.pid'))).rejects.toThrow();
    // The database survived: a restart finds it migrated and the Redis AOF where it left it.
    await expect(fs.access(path.join(dataDir, 'redis', 'appendonlydir'))).resolves.toBeUndefined();
  }, cliTestTimeout(3));

  it('refuses bad configuration with a line naming the variable', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const child = spawn(process.execPath, ['bin/patchbay.mjs', 'start'], {
      cwd: repo,
      env: { PATH: process.env.PATH ?? '', PORT: 'eighty' },
    });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const [code] = await once(child, 'exit');
    expect(code).toBe(2);
    expect(stderr).toContain('PORT: expected a port number from 0 to 65535 (got "eighty")');
  });
});

/** Rows in the tables the sandbox would fill (sample inventory, release, Teams links, outbox, audit). */
async function historyRows(url: string): Promise<Record<string, number>> {
  const database = await openDatabase({ kind: 'postgres', url });
  try {
    const counts: Record<string, number> = {};
    for (const table of ['msp', 'clients', 'people', 'releases', 'decisions', 'teams_conversations', 'chat_outbox', 'audit_log']) {
      counts[table] = Number(rowsOf<{ n: number }>(await database.db.execute(sql.raw(`select count(*)::int as n from ${table}`)))[0]!.n);
    }
    return counts;
  } finally {
    await database.close();
  }
}

describe.skipIf(testBackend() === 'pglite')('patchbay start on an external PostgreSQL with no chat credentials', () => {
  async function scratchSetup(prefix: string) {
    const scratch = await createScratchDatabase(prefix);
    scratches.push(scratch);
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
    dirs.push(dataDir);
    const offline = pathToFileURL(path.join(dataDir, 'no-feeds')).href;
    return { scratch, env: { DATABASE_URL: scratch.url, PATCHBAY_DATA_DIR: dataDir, MSRC_API_URL: `${offline}/`, KEV_URL: `${offline}/kev.json` } };
  }

  it('runs with chat off, says why, and writes no sample data (a secrets store that failed to load is not a sandbox)', async () => {
    const { scratch, env } = await scratchSetup('patchbay_nochat');
    const { port, logs, stdout } = await startPatchbay(env);
    expect(stdout()).toMatch(/chat off \(.*DATABASE_URL.*PATCHBAY_SANDBOX=on/);
    expect(logs()).toMatch(/"msg":"mode: chat off, because no Slack or Teams credentials, and DATABASE_URL is set/);
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
    expect(Object.values(await historyRows(scratch.url)).every((n) => n === 0)).toBe(true);
  }, cliTestTimeout(1));

  it('PATCHBAY_SANDBOX=on refuses a database with real history in one line, and writes nothing', async () => {
    const { scratch, env } = await scratchSetup('patchbay_realdb');
    const database = await openDatabase({ kind: 'postgres', url: scratch.url });
    try {
      await migrateDatabase(database);
      const imported = await importInventoryFile(database, path.join(repo, 'examples/inventory.yaml'), { dryRun: false, now: new Date(), actor: 'alice' });
      expect(imported.ok).toBe(true);
    } finally {
      await database.close();
    }
    const before = await historyRows(scratch.url);
    expect(before.clients).toBeGreaterThan(0);

    const child = spawn(process.execPath, ['bin/patchbay.mjs', 'start', '--port', '0'], {
      cwd: repo,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'silent', PATCHBAY_SANDBOX: 'on', ...env },
    });
    children.push(child);
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.stdout.on('data', (c) => (stdout += c));
    const [code] = await once(child, 'exit');
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/PATCHBAY_SANDBOX=on, but the sandbox will not run: this database has history the sandbox did not write \(.*clients/);
    expect(await historyRows(scratch.url)).toEqual(before);
  }, cliTestTimeout(1));
});
