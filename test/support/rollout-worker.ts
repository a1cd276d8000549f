/**
 * A rollout worker in its own process, so tests can SIGKILL it mid-window or run two side by side. Settings come
 * from the environment; it prints `ready` once its worker is listening and does nothing else but process runs.
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import { SimulatedFleet } from '../../src/adapters/deployers/simulated.ts';
import type { Config } from '../../src/config.ts';
import { openDatabase } from '../../src/db/client.ts';
import { RolloutEngine, startRunWorker, type RolloutOptions } from '../../src/jobs/rollout/index.ts';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const clock = new Date(env('ROLLOUT_CLOCK'));
const database = await openDatabase({ kind: 'postgres', url: env('ROLLOUT_DATABASE_URL') }, { maxConnections: 8 });
const redis = new Redis(env('ROLLOUT_REDIS_URL'), { maxRetriesPerRequest: null });
const log = pino({ level: 'warn' });
const fleet = new SimulatedFleet({
  seed: 5,
  clock: () => clock,
  ledgerPath: env('ROLLOUT_LEDGER'),
  worker: env('ROLLOUT_WORKER'),
  fleet: { latencyMs: Number(process.env.ROLLOUT_LATENCY_MS ?? 0), rebootTwiceRate: 0.3 },
});
const options: RolloutOptions = { deployer: fleet, workerConcurrency: 4, pollMs: 10, lockDurationMs: 3000, stalledIntervalMs: 1000 };
const context = { config: {} as Config, database, redis, prefix: env('ROLLOUT_PREFIX'), log, roles: new Set(['worker' as const]), now: () => clock };
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
