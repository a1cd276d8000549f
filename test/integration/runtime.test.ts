import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { lockDataDir } from '../../src/runtime/data-dir-lock.ts';
import { createHttpServer } from '../../src/runtime/http.ts';
import { RedisServerUnavailableError, startPrivateRedis } from '../../src/runtime/redis-server.ts';

const log = createLogger('silent');
const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-rt-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

describe('private redis-server', () => {
  it('starts with noeviction and an append-only file, and stops', async () => {
    const dir = await tempDir();
    const server = await startPrivateRedis({ dir, appendOnly: true });
    const client = new Redis(server.url, { maxRetriesPerRequest: null });
    try {
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      await client.set('k', 'v');
    } finally {
      client.disconnect();
      await server.stop();
    }
    expect(() => process.kill(server.pid, 0)).toThrow();
  });

  it('says how to install it or set REDIS_URL when redis-server is missing', async () => {
    const dir = await tempDir();
    const failure = startPrivateRedis({ dir, appendOnly: false, binary: 'redis-server-that-does-not-exist' });
    await expect(failure).rejects.toBeInstanceOf(RedisServerUnavailableError);
    await expect(failure).rejects.toThrow(/apt-get install redis-server.*REDIS_URL/);
  });
});

describe('data dir lock', () => {
  it('refuses a second holder while the first is alive, and frees on release', async () => {
    const dir = await tempDir();
    const first = await lockDataDir(dir);
    // Pretend another live process holds it: our parent is alive and is not us.
    await fs.writeFile(path.join(dir, 'patchbay.pid'), String(process.ppid));
    await expect(lockDataDir(dir)).rejects.toThrow(new RegExp(`pid ${process.ppid}`));
    await first.release();
    const second = await lockDataDir(dir);
    await second.release();
  });

  it('takes over a lock left by a dead process', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'patchbay.pid'), '999999');
    const lock = await lockDataDir(dir);
    expect(await fs.readFile(path.join(dir, 'patchbay.pid'), 'utf8')).toBe(String(process.pid));
    await lock.release();
  });
});

describe('HTTP server', () => {
  it('answers health, readiness (naming what is down) and Prometheus metrics', async () => {
    let redisUp = true;
    const server = createHttpServer({
      log,
      readiness: [
        { name: 'database', check: async () => 'ok' },
        { name: 'redis', check: async () => { if (!redisUp) throw new Error('connection refused'); } },
      ],
    });
    const port = await server.listen(0, '127.0.0.1');
    const base = `http://127.0.0.1:${port}`;
    try {
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      redisUp = false;
      const notReady = await fetch(`${base}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.json()).toMatchObject({
        checks: [{ name: 'database', ok: true }, { name: 'redis', ok: false, error: 'connection refused' }],
      });
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^# HELP patchbay_process_cpu_user_seconds_total/m);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
