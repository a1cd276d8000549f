import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { lockDataDir } from '../../src/runtime/data-dir-lock.ts';
import { createHttpServer, createMetricsRegistry, createMetricsServer, DEFAULT_HTTP_LIMITS } from '../../src/runtime/http.ts';
import { isRunning, RedisServerUnavailableError, startPrivateRedis } from '../../src/runtime/redis-server.ts';

const log = createLogger('silent');
const repo = path.resolve(import.meta.dirname, '../..');

/** A logger whose lines the test can read. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}
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

  it('stops when the process that started it dies of an uncaught error', async () => {
    const dir = await tempDir();
    // A separate Node process: its crash must not be this test runner's.
    const script = `import { startPrivateRedis } from ${JSON.stringify(path.join(repo, 'src/runtime/redis-server.ts'))};
      const server = await startPrivateRedis({ dir: ${JSON.stringify(dir)}, appendOnly: false, ownProcessGroup: true });
      console.log(server.pid);
      setTimeout(() => { throw new Error('boom'); }, 50);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const [code] = await once(child, 'exit');
    expect(code).not.toBe(0);
    const pid = Number(out.trim());
    expect(pid).toBeGreaterThan(0);
    await expect.poll(() => isRunning(pid), { timeout: 15_000 }).toBe(false);
  });

  it('leaves alone a live process that its pid file names but that is not its Redis', async () => {
    const dir = await tempDir();
    // Alive, and not a redis-server on this directory: a pid reused after a reboot, say.
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
    const other = await startPrivateRedis({ dir: await tempDir(), appendOnly: false });
    try {
      for (const record of [{ pid: stranger.pid, port: 1 }, { pid: stranger.pid, port: other.port }, { pid: other.pid, port: other.port }]) {
        await fs.writeFile(path.join(dir, 'redis-server.pid'), JSON.stringify(record));
        const server = await startPrivateRedis({ dir, appendOnly: false });
        try {
          expect(server.stoppedLeftover).toBeUndefined();
          expect(JSON.parse(await fs.readFile(path.join(dir, 'redis-server.pid'), 'utf8'))).toEqual({ pid: server.pid, port: server.port });
        } finally {
          await server.stop();
        }
        await expect(fs.access(path.join(dir, 'redis-server.pid'))).rejects.toThrow();
      }
      // Neither the stranger nor another directory's Redis was touched.
      expect(isRunning(stranger.pid!)).toBe(true);
      expect(isRunning(other.pid)).toBe(true);
    } finally {
      stranger.kill('SIGKILL');
      await other.stop();
    }
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

  it('is freed when the process holding it dies of an uncaught error', async () => {
    const dir = await tempDir();
    const script = `import { lockDataDir } from ${JSON.stringify(path.join(repo, 'src/runtime/data-dir-lock.ts'))};
      await lockDataDir(${JSON.stringify(dir)});
      console.log('locked');
      setTimeout(() => { throw new Error('boom'); }, 50);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const [code] = await once(child, 'exit');
    expect(out).toContain('locked');
    expect(code).not.toBe(0);
    await expect(fs.access(path.join(dir, 'patchbay.pid'))).rejects.toThrow();
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

describe('HTTP server robustness', () => {
  it('answers 500 to a request whose handler throws at once, logs it, and keeps serving', async () => {
    const { log: captured, lines } = capturingLogger();
    const server = createHttpServer({ log: captured, readiness: [] });
    server.mount('/throws', () => {
      throw new Error('synchronous failure');
    });
    server.mount('/rejects', async () => {
      throw new Error('asynchronous failure');
    });
    const port = await server.listen(0, '127.0.0.1');
    const base = `http://127.0.0.1:${port}`;
    try {
      expect((await fetch(`${base}/throws`)).status).toBe(500);
      expect((await fetch(`${base}/rejects`)).status).toBe(500);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect(lines.filter((l) => l.msg === 'request handler failed').map((l) => (l.err as { message: string }).message)).toEqual([
        'synchronous failure',
        'asynchronous failure',
      ]);
    } finally {
      await server.close();
    }
  });

  it('cuts off a client that sends its headers and then stalls, instead of holding it for minutes', async () => {
    // The defaults: a body must arrive within 30 s (Node's own default is 300 s).
    const defaults = createHttpServer({ log, readiness: [] });
    expect(defaults.server.requestTimeout).toBe(30_000);
    expect(defaults.server.headersTimeout).toBeLessThanOrEqual(30_000);
    expect(DEFAULT_HTTP_LIMITS.requestTimeoutMs).toBe(30_000);

    const server = createHttpServer({ log, readiness: [], limits: { requestTimeoutMs: 1_000, headersTimeoutMs: 1_000 } });
    server.mount('/slow', async (req, res) => {
      for await (const chunk of req) void chunk;
      res.end('read it all');
    });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const socket = net.connect(port, '127.0.0.1');
      await once(socket, 'connect');
      let answer = '';
      socket.on('data', (c) => (answer += c));
      socket.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly a little');
      const closed = once(socket, 'close');
      // Generous for a loaded machine, and still far below the 300 s Node would wait.
      const waited = await Promise.race([closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 20_000))]);
      socket.destroy();
      expect(waited).toBe('closed');
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      await server.close();
    }
  });

  it('ends answers that never finish when it stops: first through its hooks, then by cutting them', async () => {
    const server = createHttpServer({ log, readiness: [], limits: { closeGraceMs: 500 } });
    const streams = new Set<import('node:http').ServerResponse>();
    const stream = (keep: boolean) => (_req: unknown, res: import('node:http').ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'keep-alive' });
      res.write('event: change\ndata: {}\n\n');
      if (keep) streams.add(res);
    };
    server.mount('/events', stream(true));
    server.mount('/forgotten', stream(false));
    let hooked = 0;
    server.beforeClose(() => {
      hooked += 1;
      for (const res of streams) res.end();
    });
    const port = await server.listen(0, '127.0.0.1');
    const open = async (p: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${p}`);
      const reader = res.body!.getReader();
      await reader.read();
      return reader;
    };
    const events = await open('/events');
    const forgotten = await open('/forgotten');
    const ended = events.read();
    await server.close();
    expect(hooked).toBe(1);
    expect((await ended).done).toBe(true);
    await expect(forgotten.read()).rejects.toThrow();
  });
});

describe('metrics on a port of their own', () => {
  it('serves /metrics only on the metrics server when the public one is told not to', async () => {
    const metrics = createMetricsRegistry();
    const server = createHttpServer({ log, readiness: [], metrics, serveMetrics: false });
    const metricsServer = createMetricsServer({ log, metrics });
    const port = await server.listen(0, '127.0.0.1');
    const metricsPort = await metricsServer.listen(0, '127.0.0.1');
    try {
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).toMatch(/^# HELP patchbay_process_cpu_user_seconds_total/m);
      expect((await fetch(`http://127.0.0.1:${metricsPort}/slack/events`)).status).toBe(404);
    } finally {
      await Promise.all([server.close(), metricsServer.close()]);
    }
  });
});
