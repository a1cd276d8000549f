import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_TEST_TIMEOUT_MS, cliTestTimeout } from '../support/cli.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const children: ChildProcessWithoutNullStreams[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.all(dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
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
