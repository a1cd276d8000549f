/**
 * What the worker-process scripts (rollout-worker.ts on the simulated fleet, rmm-worker.ts on a device manager's
 * emulator) share: settings from the environment, their connections, and a run worker that prints `ready` once it
 * listens and closes cleanly on SIGTERM.
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import type { Config } from '../../src/config.ts';
import { openDatabase, type Database } from '../../src/db/client.ts';
import { RolloutEngine, startRunWorker, type RolloutOptions } from '../../src/jobs/rollout/index.ts';

export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

export interface WorkerConnections {
  database: Database;
  redis: Redis;
}

/** PostgreSQL and Redis as the test named them (ROLLOUT_DATABASE_URL, ROLLOUT_REDIS_URL). */
export async function connectFromEnv(): Promise<WorkerConnections> {
  const database = await openDatabase({ kind: 'postgres', url: requiredEnv('ROLLOUT_DATABASE_URL') }, { maxConnections: 8 });
  const redis = new Redis(requiredEnv('ROLLOUT_REDIS_URL'), { maxRetriesPerRequest: null });
  return { database, redis };
}

/** Runs the rollout's run worker on these connections until SIGTERM. */
export async function serveRunWorker({ database, redis }: WorkerConnections, now: () => Date, options: RolloutOptions): Promise<void> {
  const log = pino({ level: 'warn' });
  const context = { config: {} as Config, database, redis, prefix: requiredEnv('ROLLOUT_PREFIX'), log, roles: new Set(['worker' as const]), now };
  const engine = new RolloutEngine(context, options);
  const worker = startRunWorker(context, engine, options);
  await worker.waitUntilReady();
  process.stdout.write('ready\n');
  process.on('SIGTERM', async () => {
    await worker.close();
    await engine.close();
    redis.disconnect();
    await database.close();
    process.exit(0);
  });
}
