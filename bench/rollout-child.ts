/**
 * One sweep, then (ROLLOUT_E2E=1) every run it planned through a run worker, in a process of its own: bench
 * rollout's memory figures are this process's peak resident set, which seeding the inventory in the bench's own
 * process cannot pollute. Prints one JSON line: the sweep's report, its time and peak RSS, and the end to end
 * figures. Settings come from the environment (ROLLOUT_DATABASE_URL, ROLLOUT_REDIS_URL, ROLLOUT_PREFIX, ROLLOUT_NOW).
 */
import { readFileSync } from 'node:fs';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { SimulatedFleet } from '../src/adapters/deployers/simulated.ts';
import type { Config } from '../src/config.ts';
import { openDatabase, type AppDatabase } from '../src/db/client.ts';
import { runCounts } from '../src/db/rollout-repo.ts';
import { RolloutEngine, startRunWorker } from '../src/jobs/rollout/index.ts';
import { limitHeapGrowth } from '../src/runtime/heap-growth.ts';

// As `patchbay start` does for the process this one stands for (a worker and scheduler).
limitHeapGrowth();

const KiB_PER_MiB = 1024;
/**
 * Peak resident set so far (the kernel's high-water mark, VmHWM), in MiB. Not resourceUsage().maxRSS: Linux carries
 * that across fork and exec, so this child would report the bench process's peak (it seeded the fleet) when higher.
 */
function maxRssMiB(): number {
  const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return (hwm ? Number(hwm[1]) : process.resourceUsage().maxRSS) / KiB_PER_MiB;
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

/**
 * Waits until no run is left to drive. Redis's job counts are asked first: counting 100,000 runs in Postgres five
 * times a second takes CPU from the worker being measured; Postgres has the last word once the queue is empty.
 */
async function settled(db: AppDatabase, queue: Queue): Promise<Record<string, number>> {
  for (;;) {
    const jobs = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    if (Object.values(jobs).every((n) => n === 0)) {
      const counts = await runCounts(db);
      if ((counts.scheduled ?? 0) + (counts.running ?? 0) === 0) return counts;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const now = new Date(env('ROLLOUT_NOW'));
const database = await openDatabase({ kind: 'postgres', url: env('ROLLOUT_DATABASE_URL') }, { maxConnections: 10 });
const redis = new Redis(env('ROLLOUT_REDIS_URL'), { maxRetriesPerRequest: null });
const fleet = new SimulatedFleet({ seed: 1, clock: () => now, fleet: { rebootTwiceRate: 0.1 } });
const context = { config: {} as Config, database, redis, prefix: env('ROLLOUT_PREFIX'), log: pino({ level: 'silent' }), roles: new Set(['worker' as const]), now: () => now };
const engine = new RolloutEngine(context, { deployer: fleet, pollMs: 1 });
// What the process holds before the sweep (node, the modules, the connections): the sweep's growth is above it.
(globalThis as { gc?: () => void }).gc?.();
const baseRssMiB = process.memoryUsage.rss() / KiB_PER_MiB / KiB_PER_MiB;
const started = performance.now();
const sweep = await engine.sweep();
const out: Record<string, unknown> = { sweep, sweepMs: performance.now() - started, baseRssMiB, sweepPeakRssMiB: maxRssMiB() };
if (process.env.ROLLOUT_E2E === '1') {
  const worker = startRunWorker(context, engine, { workerConcurrency: 100, pollMs: 1 });
  const t0 = performance.now();
  out.counts = await settled(database.db, engine.queue);
  out.e2eMs = performance.now() - t0;
  out.e2ePeakRssMiB = maxRssMiB();
  await worker.close();
}
await engine.close();
redis.disconnect();
await database.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
