/**
 * The rollout engine at MSP scale: 20,000 devices across 200 clients, then 100,000 across 1,000 (issue 19), every
 * one of them in an open window. BENCH_ROLLOUT_DEVICES / BENCH_ROLLOUT_CLIENTS run one size instead.
 *
 * - plan+enqueue: one sweep (gate events, planning from device OS to updates, runs inserted in Postgres, a job
 *   per run added to BullMQ), against the bare `Queue.addBulk` of the same jobs (same data, id
 *   and the run queue's job defaults) on the same Redis in the same process. Best of three each (BENCH_ROLLOUT_REPEATS), taking turns,
 *   each sweep from a clean slate.
 * - sweep peak RSS and end to end: one more sweep from a clean slate in a fresh process (bench/rollout-child.ts),
 *   whose peak resident set is the sweep's own (seeding the inventory here does not count), then every run it
 *   planned through a worker in that process on the simulated fleet with zero latency: runs per second and the
 *   process's peak memory.
 * - steady ticks (bench/steady-ticks.ts): the sweep, Teams, user-DM and outbox ticks when there is nothing new to
 *   do, mid-window and the day after, in a database of their own. BENCH_ROLLOUT_STEADY=only runs them alone.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs/promises';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import pino from 'pino';
import { Queue } from 'bullmq';
import { SimulatedFleet } from '../src/adapters/deployers/simulated.ts';
import { generateInventory } from '../src/adapters/inventory/generate.ts';
import type { Config } from '../src/config.ts';
import { openDatabase, type AppDatabase, type Database } from '../src/db/client.ts';
import { applyInventory } from '../src/db/inventory-repo.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { storeRelease } from '../src/use-cases/store-release.ts';
import { parseWindowSpec } from '../src/domain/window-spec.ts';
import { RolloutEngine } from '../src/jobs/rollout/index.ts';
import { startPrivateRedis } from '../src/runtime/redis-server.ts';
import { collectGarbage, measure, report, scratchPostgres, sized, type Measured } from './lib.ts';
import { benchRelease } from './release.ts';
import { benchSteadyTicks } from './steady-ticks.ts';

/** The sizes benched: BENCH_ROLLOUT_DEVICES/CLIENTS for one, else 20,000 over 200 clients then 100,000 over 1,000. */
const SIZES: Array<{ devices: number; clients: number }> = process.env.BENCH_ROLLOUT_DEVICES
  ? [{ devices: Number(process.env.BENCH_ROLLOUT_DEVICES), clients: Number(process.env.BENCH_ROLLOUT_CLIENTS ?? 200) }]
  : sized([{ devices: 20_000, clients: 200 }, { devices: 100_000, clients: 1_000 }], [{ devices: 200, clients: 5 }]);
/** Sweeps and baselines each; the best of each is reported. More on a busy machine. */
const REPEATS = Number(process.env.BENCH_ROLLOUT_REPEATS ?? sized(3, 1));
const NOW = new Date('2024-02-14T02:00:00Z');
/** Seven hours after the nightly window (01:00-05:00 UTC) closed. */
const DAY_AFTER = new Date('2024-02-14T12:00:00Z');
const CHILD = fileURLToPath(new URL('./rollout-child.ts', import.meta.url));

export default async function rolloutBench(): Promise<void> {
  // BENCH_ROLLOUT_STEADY=only: the steady ticks alone (bench/steady-ticks.ts), without the sweep-from-scratch figures.
  const steadyOnly = process.env.BENCH_ROLLOUT_STEADY === 'only';
  for (const size of SIZES) {
    if (!steadyOnly) await benchSize(size.devices, size.clients);
    await benchSteady(size.devices, size.clients);
  }
}

/** What a size's benches share: a scratch PostgreSQL seeded with the fleet in an open window, and a private Redis. */
interface World {
  databaseUrl: string;
  redisUrl: string;
  database: Database;
  redis: Redis;
}

/** Runs `work` in a world of its own, seeded with `devices` over `clients`, and removes the world after it. */
async function inSeededWorld(label: string, devices: number, clients: number, work: (world: World) => Promise<void>): Promise<void> {
  const scratch = await scratchPostgres(label);
  if (!scratch) return;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-bench-redis-'));
  const redisServer = await startPrivateRedis({ dir, appendOnly: false });
  const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 10 });
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  try {
    await migrateDatabase(database);
    const seeded = performance.now();
    await seedFleetInOpenWindow(database.db, devices, clients);
    process.stderr.write(`seeded ${devices} devices over ${clients} clients in ${((performance.now() - seeded) / 1000).toFixed(1)} s\n`);
    await work({ databaseUrl: scratch.url, redisUrl: redisServer.url, database, redis });
  } finally {
    redis.disconnect();
    await database.close();
    await redisServer.stop();
    await fs.rm(dir, { recursive: true, force: true });
    await scratch.drop();
  }
}

/** The ticks when there is nothing new to do, in a database of their own (bench/steady-ticks.ts). */
function benchSteady(devices: number, clients: number): Promise<void> {
  return inSeededWorld('steady', devices, clients, ({ database, redis }) => benchSteadyTicks({ database, redis, windowOpenAt: NOW, dayAfter: DAY_AFTER }, devices));
}

function benchSize(devices: number, clients: number): Promise<void> {
  return inSeededWorld('rollout', devices, clients, async ({ databaseUrl, redisUrl, database, redis }) => {
    const log = pino({ level: 'silent' });
    const fleet = new SimulatedFleet({ seed: 1, clock: () => NOW, fleet: { rebootTwiceRate: 0.1 } });
    const context = { config: {} as Config, database, redis, prefix: 'bench', log, roles: new Set(['worker' as const]), now: () => NOW };
    const engine = new RolloutEngine(context, { deployer: fleet, pollMs: 1 });
    const planned = await benchPlanEnqueue(engine, database.db, redis);
    // A fresh process sweeps once more from a clean slate, and (unless BENCH_ROLLOUT_E2E=0) drives every run.
    await resetRuns(engine, database.db);
    await engine.close();
    const e2e = process.env.BENCH_ROLLOUT_E2E !== '0';
    const child = await sweepInChild(databaseUrl, redisUrl, e2e);
    report(`rollout-sweep-${planned}-peak-rss`, child.sweepPeakRssMiB, 'MiB', 1);
    // Above what the process held before sweeping (node, modules, connections): what the sweep itself took.
    report(`rollout-sweep-${planned}-rss-growth`, child.sweepPeakRssMiB - child.baseRssMiB, 'MiB', 1);
    if (!e2e) return;
    const counts = child.counts ?? {};
    if ((counts.succeeded ?? 0) !== planned) process.stderr.write(`bench rollout: expected ${planned} succeeded, got ${JSON.stringify(counts)}\n`);
    report(`rollout-e2e-${planned}-runs-per-second`, planned / (child.e2eMs! / 1000), 'runs/s', 1);
    report(`rollout-e2e-${planned}-peak-rss`, child.e2ePeakRssMiB!, 'MiB', 1);
  });
}

interface ChildFigures {
  sweepMs: number;
  baseRssMiB: number;
  sweepPeakRssMiB: number;
  counts?: Record<string, number>;
  e2eMs?: number;
  e2ePeakRssMiB?: number;
}

async function sweepInChild(databaseUrl: string, redisUrl: string, e2e: boolean): Promise<ChildFigures> {
  const env = { ...process.env, ROLLOUT_DATABASE_URL: databaseUrl, ROLLOUT_REDIS_URL: redisUrl, ROLLOUT_PREFIX: 'bench', ROLLOUT_NOW: NOW.toISOString(), ROLLOUT_E2E: e2e ? '1' : '0' };
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD], { env, maxBuffer: 1 << 20 });
  const figures = JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildFigures & { sweep: unknown };
  process.stderr.write(`child sweep ${JSON.stringify(figures)}\n`);
  return figures;
}

/** The fleet, a month approved, and pilot and broad open for every client, all in one open window at NOW. */
async function seedFleetInOpenWindow(db: AppDatabase, devices: number, clients: number): Promise<void> {
  // Every client in UTC with one nightly window, so the whole fleet is in one open window at NOW.
  const inventory = generateInventory({ clients, devices, seed: 42 });
  const nightly = parseWindowSpec('daily 01:00-05:00');
  if (!nightly.ok) throw new Error(nightly.error);
  for (const client of inventory.clients) {
    client.timezone = 'UTC';
    for (const deviceClass of Object.keys(client.windows)) client.windows[deviceClass] = nightly.value;
    // Planning throughput, not the notice rule: a machine with a user waits for its DM (measured by user-dm.bench).
    for (const location of client.locations) for (const device of location.devices) device.user = undefined;
  }
  await applyInventory(db, inventory, NOW);
  const osNames = [...new Set(inventory.clients.flatMap((c) => c.locations.flatMap((l) => l.devices.map((d) => d.os ?? ''))))].filter(Boolean);
  const release = benchRelease(osNames.map((name, i) => ({ id: `P${i}`, name, family: 'Windows' })));
  await storeRelease(db, release, { fetchedAt: NOW, now: NOW });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'bench', 'cli', 'bench-approve', now())`);
  await openClientRings(db, release.updates.map((u) => u.id));
}

/**
 * Both client rings open at once: pilot and broad gates for every client. Each update has passed the rings
 * before (an audited skip, as an engineer's /patch skip records it), so every device has work.
 */
async function openClientRings(db: AppDatabase, keys: string[]): Promise<void> {
  const skips = JSON.stringify(keys.map((updateKey) => ({ updateKey, by: 'bench', at: NOW.toISOString(), reason: 'bench starts past this ring' })));
  const promotions = JSON.stringify([{ id: 'bench-promote', by: 'bench', at: NOW.toISOString(), updates: keys }]);
  await db.execute(sql`insert into rollouts (release_id, ring, client_id, state, state_detail, version)
    values ('2024-Feb', 'msp', null, 'promoted', jsonb_build_object('ring', 'msp', 'clientId', null, 'state', 'promoted', 'version', 0,
      'lastWindowStart', null, 'finishedAt', null, 'soakUntil', null, 'promotedAt', null, 'promotedBy', null, 'autoConfirmAt', null,
      'confirmation', null, 'problem', null, 'applied', '[]'::jsonb, 'skips', ${skips}::jsonb, 'promotions', ${promotions}::jsonb), 0)`);
  await db.execute(sql`insert into rollouts (release_id, ring, client_id, state, state_detail, version)
    select '2024-Feb', ring, id, 'scheduled',
      jsonb_build_object('ring', ring, 'clientId', id, 'state', 'scheduled', 'version', 0, 'lastWindowStart', null, 'finishedAt', null,
        'soakUntil', null, 'promotedAt', null, 'promotedBy', null, 'autoConfirmAt', null, 'confirmation', null, 'problem', null,
        'applied', '[]'::jsonb, 'skips', case when ring = 'pilot' then ${skips}::jsonb else '[]'::jsonb end), 0
    from clients cross join (values ('pilot'), ('broad')) as r(ring)`);
}

/**
 * A sweep also moves gates on and reports windows to the channel; plan+enqueue is its first two phases.
 * Sweep and baseline take turns, so a neighbour's burst on a shared machine weighs on both alike. Answers the
 * runs planned (the last sweep's stay in place).
 */
async function benchPlanEnqueue(engine: RolloutEngine, db: AppDatabase, redis: Redis): Promise<number> {
  let sweep: Measured<unknown> | undefined;
  let bulk: Measured<unknown> | undefined;
  let planEnqueueMs = Infinity;
  let planned = 0;
  for (let i = 0; i < REPEATS; i++) {
    await resetRuns(engine, db);
    collectGarbage();
    const run = await measure(() => engine.sweep());
    const result = run.result as { runsPlanned: number; ms: { open: number; enqueue: number } };
    planned = result.runsPlanned;
    planEnqueueMs = Math.min(planEnqueueMs, result.ms.open + result.ms.enqueue);
    process.stderr.write(`sweep ${JSON.stringify(run.result)}\n`);
    if (!sweep || run.ms < sweep.ms) sweep = run;
    await db.execute(sql`delete from chat_outbox`);
    const added = await addBulkBaseline(engine, redis, i, planned);
    process.stderr.write(`addBulk ${added.ms.toFixed(0)} ms\n`);
    if (!bulk || added.ms < bulk.ms) bulk = added;
  }
  report(`rollout-addBulk-${planned}`, bulk!.ms, 'ms', 1);
  report(`rollout-plan-enqueue-${planned}`, planEnqueueMs, 'ms', planEnqueueMs / bulk!.ms);
  report(`rollout-sweep-with-reporting-${planned}`, sweep!.ms, 'ms', sweep!.ms / bulk!.ms);
  return planned;
}

async function resetRuns(engine: RolloutEngine, db: AppDatabase): Promise<void> {
  await engine.queue.obliterate({ force: true });
  await db.execute(sql`delete from runs`);
  await db.execute(sql`update rollouts set state = 'scheduled', version = 0,
    state_detail = state_detail || '{"state":"scheduled","lastWindowStart":null,"version":0}'::jsonb`);
}

async function addBulkBaseline(engine: RolloutEngine, redis: Redis, i: number, count: number): Promise<Measured<unknown>> {
  // The engine's own job defaults (attempts, backoff, removeOn*): they are stored with every job, so without
  // them the baseline's jobs would be smaller than the engine's and the ratio would not compare like with like.
  const queue = new Queue(`bench-baseline-${i}`, { connection: redis, prefix: 'bench', defaultJobOptions: engine.queue.defaultJobOptions });
  const jobs = Array.from({ length: count }, (_, n) => ({ name: 'run', data: { runId: n + 1 }, opts: { jobId: `run-${n + 1}` } }));
  collectGarbage();
  const run = await measure(async () => {
    for (let k = 0; k < jobs.length; k += 5000) await queue.addBulk(jobs.slice(k, k + 5000));
  });
  await queue.obliterate({ force: true });
  await queue.close();
  return run;
}
