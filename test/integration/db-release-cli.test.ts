/**
 * `patchbay digest --cvrf FILE --post` and `--release ID` as a user runs them, against the test backend
 * (a scratch PostgreSQL database, or an embedded PGlite data dir with PATCHBAY_TEST_DB=pglite).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, serverUrl, testBackend, type ScratchDatabase } from '../support/db.ts';
import { cliTestTimeout } from '../support/cli.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(repoRoot, 'bin/patchbay.mjs');
const shared = path.resolve(repoRoot, '../shared/fixtures');
const hasShared = existsSync(path.join(shared, 'msrc/2024-Feb.json'));
if (!hasShared) console.warn(`[db-release-cli] ${shared} is absent: the CLI storage test is skipped`);

// Each case spawns the CLI several times, each opening the database (PGlite loads its WASM every time): on a busy
// two-core machine that alone can pass vitest's default 30 s.
describe.skipIf(!hasShared)(`patchbay digest with the database (${testBackend()})`, { timeout: cliTestTimeout(4) }, () => {
  let scratch: ScratchDatabase | undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-digest-db-'));
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', PATCHBAY_DATA_DIR: path.join(dir, 'data'), LOG_LEVEL: 'silent' };

  beforeAll(async () => {
    if (testBackend() === 'postgres') {
      scratch = await createScratchDatabase('patchbay_cli');
      env.DATABASE_URL = scratch.url;
    }
  });
  afterAll(async () => {
    await scratch?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [bin, 'digest', ...args], { cwd: repoRoot, env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  }

  const feb = path.join(shared, 'msrc/2024-Feb.json');
  const kev = path.join(shared, 'kev/known_exploited_vulnerabilities.json');

  it('--release before anything is stored says so', async () => {
    const none = await run(['--release', '2024-Feb', '--json']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/nothing is stored yet|2024-Feb is not stored/);
  });

  it('--post refuses a truncated document and stores nothing', async () => {
    const truncated = path.join(dir, 'cut.json');
    writeFileSync(truncated, readFileSync(feb, 'utf8').slice(0, 100_000));
    const cut = await run(['--cvrf', truncated, '--post']);
    expect(cut.code).toBe(1);
    expect(cut.stderr).toContain('cut.json');
  });

  it('--post stores the month, then says unchanged; --release renders it from the database like the offline digest', async () => {
    const first = await run(['--cvrf', feb, '--kev', kev, '--post', '--json', '--now', '2024-03-21T12:00:00Z']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ release: '2024-Feb', outcome: 'new', changes: [], queued: 0, notQueued: expect.stringContaining('no MSP channel') });
    const again = await run(['--cvrf', feb, '--post', '--now', '2024-03-22T12:00:00Z']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('2024-Feb (');
    expect(again.stdout).toContain('unchanged: nothing stored');

    const stored = await run(['--release', '2024-feb', '--json', '--now', '2024-03-22T12:00:00Z']);
    const offline = await run(['--cvrf', feb, '--kev', kev, '--json', '--now', '2024-03-22T12:00:00Z']);
    expect(stored.code).toBe(0);
    expect(JSON.parse(stored.stdout)).toEqual(JSON.parse(offline.stdout));
  });

  it('--fetch reads the month from MSRC_API_URL as the watcher would; a KEV download failure is only a warning', async () => {
    const server = http.createServer((request, response) => {
      if (request.url === '/cvrf/2024-Feb') response.writeHead(200, { 'content-type': 'application/json' }).end(readFileSync(feb, 'utf8'));
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    env.MSRC_API_URL = `${base}/`;
    env.KEV_URL = `${base}/kev.json`;
    try {
      const fetched = await run(['--fetch', '2024-Feb', '--json', '--now', '2024-03-23T12:00:00Z']);
      expect(fetched.code).toBe(0);
      const out = JSON.parse(fetched.stdout) as { outcome: string; warnings: string[] };
      expect(out.outcome).toBe('unchanged');
      expect(out.warnings.join(' ')).toMatch(/KEV catalog not refreshed.*404/);
      const missing = await run(['--fetch', '2024-Mar']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/--fetch 2024-Mar: .*404/);
    } finally {
      delete env.MSRC_API_URL;
      delete env.KEV_URL;
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('refuses mixed or missing sources with a usage error', async () => {
    expect((await run(['--json'])).stderr).toContain('--cvrf FILE, --release ID or --fetch');
    expect((await run(['--cvrf', feb, '--release', '2024-Feb'])).code).toBe(2);
    expect((await run(['--release', '2024-Feb', '--post'])).stderr).toContain('--post stores a document');
    expect((await run(['--release', 'Feb-2024'])).stderr).toContain('not a release id');
  });
});

/** What a person sees when the database cannot be opened: one line naming the cause, no stack, no SQL, no password. */
describe('patchbay digest --release when the database cannot be had', { timeout: cliTestTimeout(2) }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-digest-unavailable-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function digest(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
    return new Promise((resolve) => {
      const fullEnv = { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent', ...env };
      execFile(process.execPath, [bin, 'digest', '--release', '2024-Feb'], { cwd: repoRoot, env: fullEnv }, (error, _stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr });
      });
    });
  }

  it('the embedded data dir held by a running patchbay: names the holder, says what to do', async () => {
    const dataDir = path.join(dir, 'held');
    mkdirSync(path.join(dataDir, 'pglite'), { recursive: true });
    // This test's own process stands in for the running bot: alive, and not the CLI.
    writeFileSync(path.join(dataDir, 'patchbay.pid'), String(process.pid));
    const result = await digest({ PATCHBAY_DATA_DIR: dataDir });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`patchbay: the data dir ${dataDir} is in use by patchbay (pid ${process.pid}); stop it, or use DATABASE_URL\n`);
  });

  it('a PostgreSQL database that does not exist: names it and the server, never the password', async () => {
    const url = new URL(serverUrl());
    url.username = 'postgres';
    url.password = 'not-for-your-eyes';
    url.pathname = `/patchbay_missing_${process.pid}`;
    const result = await digest({ DATABASE_URL: url.toString() });
    expect(result.code).toBe(1);
    const server = `${url.protocol}//${url.hostname}:${url.port || 5432}`;
    expect(result.stderr).toBe(`patchbay: database "patchbay_missing_${process.pid}" does not exist at ${server} (check DATABASE_URL)\n`);
  });
});
