/**
 * The sweep reads, plans and writes a page of devices at a time (issue 19: nothing proportional to the fleet held at
 * once). Pages must cover every device once, and a sweep cut into pages must leave exactly what one page does: one
 * run per device and window, one job per run, nothing added twice by a sweep that dies between pages and the one
 * that resumes after it.
 */
import { sql, type SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { insertRuns, openGateDevices, plannedDevices, sweepGates } from '../../src/db/rollout-repo.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { devicePages } from '../../src/jobs/rollout/sweep-step.ts';
import { ADD_BULK_MAX, RunWriter } from '../../src/jobs/rollout/insert-runs.ts';
import type { NewRun } from '../../src/db/rollout-repo.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { scheduleGate, seedWorld, worldInventory } from '../support/rollout-world.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';

/** 02:00 in Chicago: every client's desktop window is open. */
const NOW = new Date('2024-02-14T08:00:00Z');
const log = pino({ level: 'silent' });

let redis: TestRedis;
const open: Array<() => Promise<unknown>> = [];
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close();
});

/** Three clients' broad rings (5 machines each, more than a page of 4) and a fourth client's pilot ring (3), all open. */
async function world(): Promise<TestDatabase> {
  const database = await openTestDatabase();
  open.push(() => database.close());
  const clients = ['acme', 'globex', 'initech'].map((id) => ({ id, pilot: 1, broad: 5 }));
  await seedWorld(database.db, { mspDevices: 0, clients: [...clients, { id: 'umbrella', pilot: 3, broad: 0 }] }, NOW);
  for (const { id } of clients) await scheduleGate(database.db, 'broad', id, NOW);
  await scheduleGate(database.db, 'pilot', 'umbrella', NOW);
  return database;
}

let engines = 0;
/** An engine on its own queue, or on `prefix`'s (a restarted process finds the queue as it was). */
function engine(db: AppDatabase, sweepBatch: number, prefix = `${redis.prefix}p${++engines}`): RolloutEngine {
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const made = new RolloutEngine({ config: {} as Config, database: { db } as never, redis: connection, prefix, log, roles: new Set(['worker']), now: () => NOW }, { sweepBatch });
  open.push(async () => {
    await made.close();
    connection.disconnect();
  });
  return made;
}

/** A database whose `n`th statement inserting runs fails: the process dying between two pages of a sweep. */
function failingOnRunInsert(db: AppDatabase, n: number): AppDatabase {
  const dialect = new PgDialect();
  let inserts = 0;
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop !== 'execute') return Reflect.get(target, prop, receiver);
      return async (query: SQL) => {
        if (dialect.sqlToQuery(query).sql.includes('insert into runs') && ++inserts === n) throw new Error('the sweep died here');
        return target.execute(query);
      };
    },
  });
}

/** Each run as (device, window, state, updates), and the device of each job in the queue. */
async function outcome(db: AppDatabase, queue: RolloutEngine['queue']) {
  const runs = rowsOf<{ id: number; name: string; window_start: unknown; state: string; updates: string[] }>(
    await db.execute(sql`select r.id, d.name, r.window_start, r.state, r.updates from runs r join devices d on d.id = r.device_id order by d.name`),
  );
  const nameOf = new Map(runs.map((r) => [`run-${r.id}`, r.name]));
  const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized', 'active']);
  return {
    runs: runs.map((r) => `${r.name} ${new Date(String(r.window_start)).toISOString()} ${r.state} ${[...r.updates].sort().join(',')}`),
    jobs: jobs.map((j) => nameOf.get(j.id!) ?? `unknown ${j.id}`).sort(),
  };
}

describe('a sweep in pages', { timeout: 120_000 }, () => {
  it('reads every device of the open gates once, in pages of at most the batch, whatever the batch', async () => {
    const { db } = await world();
    const all = (await openGateDevices(db)).map((d) => `${d.gateId}/${d.id}`);
    expect(all).toHaveLength(18);
    for (const batch of [1, 4, 5, 7, 100]) {
      const pages: string[][] = [];
      for await (const page of devicePages(db, await sweepGates(db), batch)) pages.push(page.map((d) => `${d.gateId}/${d.id}`));
      expect(Math.max(...pages.map((p) => p.length)), `batch ${batch}`).toBeLessThanOrEqual(batch);
      expect(pages.flat(), `batch ${batch}`).toEqual(all);
    }
  });

  it('plans and enqueues what one page does; dying between pages, the next sweep adds the rest and nothing twice', async () => {
    const whole = await world();
    const unpaged = engine(whole.db, 10_000);
    const once = await unpaged.sweep();
    // More than the 18 above: the sweep reopens the confirmed pilots first, as their machines have work.
    expect(once.runsPlanned).toBeGreaterThan(8);
    const expected = await outcome(whole.db, unpaged.queue);
    expect(expected.jobs).toHaveLength(once.runsPlanned);

    const paged = await world();
    // Pages of at most 4: the second page's insert fails, after the first page's runs are in (only those).
    const prefix = `${redis.prefix}crash`;
    await expect(engine(failingOnRunInsert(paged.db, 2), 4, prefix).sweep()).rejects.toThrow('the sweep died here');
    const [runs] = rowsOf<{ count: number }>(await paged.db.execute(sql`select count(*)::int as count from runs`));
    const first = runs?.count ?? 0;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(4);

    const resumed = engine(paged.db, 4, prefix);
    const after = await resumed.sweep();
    expect(after.runsPlanned).toBe(once.runsPlanned - first);
    expect(await outcome(paged.db, resumed.queue)).toEqual(expected);
    const again = await resumed.sweep();
    expect(again.runsPlanned).toBe(0);
    expect(await outcome(paged.db, resumed.queue)).toEqual(expected);
  });

  it('a page whose runs a concurrent sweep already inserted adds no job and leaves the writer idle', async () => {
    const database = await world();
    await engine(database.db, 4).sweep();
    const stored = rowsOf<{ device_id: number; release_id: string; rollout_id: number; window_start: Date | string; window_end: Date | string; updates: string[] }>(
      await database.db.execute(sql`select device_id, release_id, rollout_id, window_start, window_end, updates from runs order by id`),
    );
    expect(stored.length).toBeGreaterThan(0);
    const iso = (value: Date | string) => new Date(value).toISOString();
    const again: NewRun[] = stored.map((r) => ({ deviceId: Number(r.device_id), releaseId: r.release_id, rolloutId: Number(r.rollout_id), windowStart: iso(r.window_start), windowEnd: iso(r.window_end), updates: r.updates }));
    const added: number[] = [];
    const writer = new RunWriter(database.db, NOW, async (ids) => void added.push(...ids));
    await writer.write(again);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Before, a drain with nothing to add finished before it was stored as the one running, and stayed stored:
    // `finish` then waited on it for ever, spinning (a sweep racing another one hung at 100% CPU).
    expect(writer.busy).toBe(false);
    expect(await writer.finish()).toEqual({ inserted: 0, enqueued: 0 });
    expect(added).toEqual([]);
  });

  it('finds which devices of a page have a run in its windows, and only those', async () => {
    const { db } = await world();
    const run = await aRun(db);
    const later = new Date(NOW.getTime() + 86_400_000).toISOString();
    const [other] = (await openGateDevices(db)).filter((d) => d.id !== run.deviceId);
    await insertRuns(db, [run, { ...run, deviceId: other!.id, windowStart: later, windowEnd: new Date(NOW.getTime() + 90_000_000).toISOString() }], NOW);
    // The keys are the caller's own window strings: that is how the planner looks them up.
    expect(await plannedDevices(db, [run.windowStart], [run.deviceId, other!.id])).toEqual(new Set([`${run.deviceId}/${run.windowStart}`]));
    expect(await plannedDevices(db, [run.windowStart, later], [other!.id])).toEqual(new Set([`${other!.id}/${later}`]));
    expect(await plannedDevices(db, [run.windowStart, later], [])).toEqual(new Set());
  });

  it('mid-window reads again only the devices of a running gate without a run in a window open now: a machine imported since is planned', async () => {
    const database = await world();
    const sweeper = engine(database.db, 4);
    const first = await sweeper.sweep();
    expect(first.runsPlanned).toBeGreaterThan(0);
    const running = (await sweepGates(database.db)).filter((g) => g.state === 'running').map((g) => g.id);
    expect(running.length).toBeGreaterThan(0);
    const skipPlanned = { gateIds: running, at: NOW };
    expect(await openGateDevices(database.db, { gateIds: running, skipPlanned })).toEqual([]);
    // Without the skip, every device of those gates is read as before.
    expect((await openGateDevices(database.db, { gateIds: running })).length).toBeGreaterThan(0);

    const clients = ['acme', 'globex', 'initech'].map((id) => ({ id, pilot: 1, broad: id === 'acme' ? 6 : 5 }));
    await applyInventory(database.db, worldInventory({ mspDevices: 0, clients: [...clients, { id: 'umbrella', pilot: 3, broad: 0 }] }), NOW);
    const unplanned = await openGateDevices(database.db, { gateIds: running, skipPlanned });
    expect(unplanned.map((d) => d.name)).toEqual(['ACME-PC-00006']);
    expect(await sweeper.sweep()).toMatchObject({ runsPlanned: 1 });
    expect(await openGateDevices(database.db, { gateIds: running, skipPlanned })).toEqual([]);
    expect(await sweeper.sweep()).toMatchObject({ runsPlanned: 0 });
  });

  it('plans a page of another release only once the rows queued before it are in; of the same release, at once', async () => {
    // Inserts wait until let through: the rows of release 2024-Feb are queued, not yet in Postgres.
    let letThrough!: () => void;
    const held = new Promise<void>((resolve) => (letThrough = resolve));
    const db = { execute: async () => (await held, []) } as unknown as AppDatabase;
    const writer = new RunWriter(db, NOW, undefined);
    const row = (deviceId: number): NewRun => ({ deviceId, releaseId: '2024-Feb', rolloutId: 1, windowStart: NOW.toISOString(), windowEnd: new Date(NOW.getTime() + 3600_000).toISOString(), updates: ['KB1'] });
    await writer.write([row(1), row(2)]);
    await writer.landed(new Set(['2024-Feb']));
    let landed = false;
    const otherRelease = writer.landed(new Set(['2024-Mar'])).then(() => (landed = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    // A device in both releases' gates: planned for 2024-Mar now, it would not see the 2024-Feb run still queued.
    expect(landed).toBe(false);
    letThrough();
    await otherRelease;
    expect(writer.busy).toBe(false);
  });

  it('adds the jobs of the runs it inserts a bulk at a time, two bulks in flight at most', async () => {
    const { db } = await world();
    const template = await aRun(db);
    // One device in 3,010 windows: more than three bulks of runs.
    const runs = Array.from({ length: 3 * ADD_BULK_MAX + 10 }, (_, i) => ({ ...template, windowStart: new Date(NOW.getTime() - (i + 1) * 60_000).toISOString() }));
    let letThrough!: () => void;
    const held = new Promise<void>((resolve) => (letThrough = resolve));
    let inFlight = 0;
    let most = 0;
    const bulks: number[] = [];
    const writer = new RunWriter(db, NOW, async (ids) => {
      most = Math.max(most, ++inFlight);
      bulks.push(ids.length);
      await held;
      inFlight--;
    });
    await writer.write(runs);
    // Every run in Postgres while Redis is held: two bulks started, none more.
    for (let n = 0; n < runs.length; n = Number(rowsOf<{ n: number }>(await db.execute(sql`select count(*)::int as n from runs`))[0]!.n)) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(bulks).toHaveLength(2);
    letThrough();
    expect(await writer.finish()).toEqual({ inserted: runs.length, enqueued: runs.length });
    expect(bulks.reduce((a, b) => a + b, 0)).toBe(runs.length);
    expect(Math.max(...bulks)).toBeLessThanOrEqual(ADD_BULK_MAX);
    expect(most).toBe(2);
  });
});

/** A run for a device of the world's open gates, not inserted: a template for rows of a test's own. */
async function aRun(db: AppDatabase): Promise<NewRun> {
  const [gate] = rowsOf<{ id: number; release_id: string; device_id: number }>(
    await db.execute(sql`select g.id, g.release_id, d.id as device_id from rollouts g join devices d on d.client_id = g.client_id and d.ring = g.ring limit 1`),
  );
  return { deviceId: Number(gate!.device_id), releaseId: gate!.release_id, rolloutId: Number(gate!.id), windowStart: NOW.toISOString(), windowEnd: new Date(NOW.getTime() + 3600_000).toISOString(), updates: ['KB1'] };
}
