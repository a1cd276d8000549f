import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

export class RedisServerUnavailableError extends Error {
  constructor() {
    super(
      'redis-server was not found on PATH. Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) ' +
        'or set REDIS_URL to a Redis you run yourself (e.g. REDIS_URL=redis://127.0.0.1:6379).',
    );
    this.name = 'RedisServerUnavailableError';
  }
}

export interface PrivateRedisOptions {
  /** Where the AOF and the log live. */
  dir: string;
  /** Append-only file on (production) or off (tests, where losing data is the point of some tests). */
  appendOnly: boolean;
  /** 0 picks a free port. */
  port?: number;
  binary?: string;
  startTimeoutMs?: number;
  /**
   * Its own process group (patchbay start): Ctrl-C, `timeout` and service managers signal the whole group, and a
   * Redis stopped before patchbay leaves the jobs it is closing with nothing to talk to. Tests leave it in theirs,
   * so an interrupted test run takes its Redis with it.
   */
  ownProcessGroup?: boolean;
}

export interface PrivateRedis {
  url: string;
  port: number;
  pid: number;
  /** The pid of a server a killed patchbay left on this directory, stopped before this one started. */
  stoppedLeftover?: number;
  /** Stops the server, waiting for it to exit (SIGTERM lets it flush the AOF). */
  stop(): Promise<void>;
  /** Kills it with SIGKILL: for tests that lose Redis mid-flight. */
  kill(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('could not pick a free port');
  return address.port;
}

async function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(500);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) {
        socket.destroy();
        resolve(answer.startsWith('+PONG'));
      }
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Alive and not a zombie waiting for a parent that does not reap it (a container's init may not). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (macOS): kill(pid, 0) is all there is
  }
}

async function waitUntilGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isRunning(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

interface PidRecord {
  pid: number;
  port: number;
}

const pidFileOf = (dir: string) => path.join(dir, 'redis-server.pid');

/** The recorded server, when it still answers on its port as that pid, serving this directory. */
async function isOurLeftover(record: PidRecord, dir: string): Promise<boolean> {
  if (!isRunning(record.pid)) return false;
  const client = new Redis({ host: '127.0.0.1', port: record.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 2_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const info = await client.info('server');
    const [, served] = (await client.config('GET', 'dir')) as [string, string];
    const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
    return pid === record.pid && (await fs.realpath(served)) === (await fs.realpath(dir));
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * A patchbay killed outright (kill -9, OOM) leaves its Redis running on the AOF directory; a second server on the
 * same files would fight over them. The leftover is stopped (SIGTERM, so it flushes its AOF) before ours starts.
 * A pid file naming anything else (the pid reused by an unrelated process) is only removed.
 */
async function stopLeftover(dir: string): Promise<number | undefined> {
  const text = await fs.readFile(pidFileOf(dir), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let record: PidRecord | undefined;
  try {
    const parsed = JSON.parse(text) as Partial<PidRecord>;
    if (Number.isInteger(parsed.pid) && Number.isInteger(parsed.port)) record = parsed as PidRecord;
  } catch {
    // Unreadable: nothing to identify, nothing to stop.
  }
  let stopped: number | undefined;
  if (record && (await isOurLeftover(record, dir))) {
    process.kill(record.pid, 'SIGTERM');
    if (!(await waitUntilGone(record.pid, 15_000))) {
      process.kill(record.pid, 'SIGKILL');
      await waitUntilGone(record.pid, 5_000);
    }
    stopped = record.pid;
  }
  await fs.rm(pidFileOf(dir), { force: true });
  return stopped;
}

/**
 * Starts a redis-server of our own: BullMQ needs `maxmemory-policy noeviction` (an evicted job key is lost work),
 * and the data stays under our data dir so nothing collides with another Redis on the machine.
 */
export async function startPrivateRedis(options: PrivateRedisOptions): Promise<PrivateRedis> {
  const binary = options.binary ?? 'redis-server';
  await fs.mkdir(options.dir, { recursive: true });
  const leftover = await stopLeftover(options.dir);
  const port = options.port || (await freePort());
  const args = [
    '--bind', '127.0.0.1',
    '--port', String(port),
    '--dir', options.dir,
    '--maxmemory-policy', 'noeviction',
    '--save', '',
    '--appendonly', options.appendOnly ? 'yes' : 'no',
    '--appendfsync', 'everysec',
    '--logfile', path.join(options.dir, 'redis.log'),
    '--daemonize', 'no',
    '--protected-mode', 'yes',
  ];
  const child: ChildProcess = spawn(binary, args, { stdio: 'ignore', detached: options.ownProcessGroup ?? false });
  let exited = false;
  let notFound = false;
  child.once('exit', () => {
    exited = true;
  });
  child.once('error', (error: NodeJS.ErrnoException) => {
    exited = true;
    notFound = error.code === 'ENOENT';
  });
  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  while (!(await ping(port))) {
    if (notFound) throw new RedisServerUnavailableError();
    if (exited) {
      const log = await fs.readFile(path.join(options.dir, 'redis.log'), 'utf8').catch(() => '');
      throw new Error(`redis-server exited while starting on port ${port}:\n${log.split('\n').slice(-5).join('\n')}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on 127.0.0.1:${port} within ${options.startTimeoutMs ?? 10_000} ms`);
    }
    await sleep(25);
  }
  const pid = child.pid ?? -1;
  await fs.writeFile(pidFileOf(options.dir), JSON.stringify({ pid, port } satisfies PidRecord));
  // A patchbay that dies of an uncaught error or process.exit takes its Redis with it (kill -9 cannot be caught:
  // the pid file lets the next start find that one).
  const onExit = () => {
    if (!exited) child.kill('SIGTERM');
  };
  process.on('exit', onExit);
  const waitForExit = async (signal: NodeJS.Signals) => {
    process.off('exit', onExit);
    if (!exited) {
      const gone = once(child, 'exit');
      child.kill(signal);
      await gone;
    }
    await fs.rm(pidFileOf(options.dir), { force: true });
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid,
    ...(leftover ? { stoppedLeftover: leftover } : {}),
    stop: () => waitForExit('SIGTERM'),
    kill: () => waitForExit('SIGKILL'),
  };
}
