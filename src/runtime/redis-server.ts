import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

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
}

export interface PrivateRedis {
  url: string;
  port: number;
  pid: number;
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

/**
 * Starts a redis-server of our own: BullMQ needs `maxmemory-policy noeviction` (an evicted job key is lost work),
 * and the data stays under our data dir so nothing collides with another Redis on the machine.
 */
export async function startPrivateRedis(options: PrivateRedisOptions): Promise<PrivateRedis> {
  const binary = options.binary ?? 'redis-server';
  await fs.mkdir(options.dir, { recursive: true });
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
  const child: ChildProcess = spawn(binary, args, { stdio: 'ignore' });
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
  const waitForExit = async (signal: NodeJS.Signals) => {
    if (exited) return;
    const gone = once(child, 'exit');
    child.kill(signal);
    await gone;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
    stop: () => waitForExit('SIGTERM'),
    kill: () => waitForExit('SIGKILL'),
  };
}
