/**
 * The runs' outcomes are read again only when a stamp says they changed (src/db/outcome-cache.ts, migration 0012):
 * a change the stamp missed would leave a ring that never finishes, or a sign-off card listing what did not install.
 * Every way a run or a device's OS is written is checked to be seen on the next read; a write that bypasses the
 * triggers (replica mode) is checked NOT to be seen, which proves the reads really come from the cache.
 */
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedFleet } from '../../src/adapters/deployers/simulated.ts';
import type { Config } from '../../src/config.ts';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { loadBook, updateOutcomes } from '../../src/db/rollout-repo.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { seedWorld } from '../support/rollout-world.ts';

let database: TestDatabase;
let redisServer: TestRedis;
beforeAll(async () => {
  [database, redisServer] = await Promise.all([openTestDatabase(), startTestRedis()]);
  await seedWorld(database.db, { mspDevices: 3 }, new Date('2024-02-13T12:00:00Z'));
});
afterAll(async () => {
  await redisServer?.stop();
  await database?.close();
});

const WINDOW = '2024-02-14T07:00:00Z';

/** Outcomes as `device update outcome os`, sorted. */
async function outcomes(db: AppDatabase): Promise<string[]> {
  const all = (await updateOutcomes(db, ['2024-Feb'])).get('2024-Feb') ?? [];
  return all.map((o) => `${o.deviceId} ${o.updateKey} ${o.outcome} ${o.os}`).sort();
}

/** Writes with the triggers off, as nothing in the product does: what a missed stamp would look like. */
async function behindTheStampsBack(db: AppDatabase, statement: ReturnType<typeof sql>): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`set local session_replication_role = replica`);
    await tx.execute(statement);
  });
}

describe('outcomes under a stamp', () => {
  let db: AppDatabase;
  let devices: number[];
  let gate: number;
  beforeAll(async () => {
    db = database.db;
    devices = rowsOf<{ id: number }>(await db.execute(sql`select id from devices order by id`)).map((r) => Number(r.id));
    gate = Number(rowsOf<{ id: number }>(await db.execute(sql`insert into rollouts (release_id, ring, client_id, state) values ('2024-Feb', 'msp', null, 'running') returning id`))[0]!.id);
  });
  // The next describe's engine makes ring msp's gate itself.
  afterAll(async () => {
    await db.execute(sql`delete from runs`);
    await db.execute(sql`delete from rollouts`);
  });

  const insertRun = (deviceId: number, state: string, start = WINDOW) =>
    db.execute(sql`insert into runs (device_id, release_id, rollout_id, window_start, window_end, updates, state, scheduled_at, finished_at)
      values (${deviceId}, '2024-Feb', ${gate}, ${start}::timestamptz, ${start}::timestamptz + interval '4 hours', '["5034765"]'::jsonb, ${state}, now(), now())`);

  it('sees every kind of write to a run, and a device changing OS; serves what nothing changed from the cache', async () => {
    const [a, b, c] = devices as [number, number, number];
    expect(await outcomes(db)).toEqual([]);
    await insertRun(a, 'succeeded');
    const first = await outcomes(db);
    expect(first).toHaveLength(1);
    // Inserted as scheduled, then settled by an update (the run worker's path).
    await insertRun(b, 'scheduled');
    expect(await outcomes(db)).toEqual(first);
    await db.execute(sql`update runs set state = 'failed' where device_id = ${b}`);
    expect((await outcomes(db)).filter((o) => o.includes(' failed '))).toHaveLength(1);
    // Retry failed moves a failed run back to scheduled: its failure no longer counts.
    await db.execute(sql`update runs set state = 'scheduled' where device_id = ${b}`);
    expect(await outcomes(db)).toEqual(first);
    await insertRun(c, 'succeeded');
    expect(await outcomes(db)).toHaveLength(2);
    await db.execute(sql`delete from runs where device_id = ${c}`);
    expect(await outcomes(db)).toEqual(first);
    // An outcome carries its device's OS.
    await db.execute(sql`update devices set os = 'Windows 10 Version 22H2 for x64-based Systems' where id = ${a}`);
    expect((await outcomes(db))[0]).toContain('Windows 10');

    // The control: a change the triggers never saw is not read, so the reads above came from the cache.
    const before = await outcomes(db);
    await behindTheStampsBack(db, sql`update runs set state = 'failed' where device_id = ${a}`);
    expect(await outcomes(db)).toEqual(before);
    await db.execute(sql`update runs set updated_at = now() where device_id = ${a}`);
    expect((await outcomes(db))[0]).toContain(' failed ');
    await db.execute(sql`delete from runs`);
    await db.execute(sql`update devices d set os = w.os from devices w where w.id = ${devices[1]!} and d.id = ${a}`);
  });

  it('does not keep what a transaction read and then rolled back', async () => {
    const [a] = devices as [number];
    expect(await outcomes(db)).toEqual([]);
    await db
      .transaction(async (tx) => {
        await tx.execute(sql`insert into runs (device_id, release_id, rollout_id, window_start, window_end, updates, state, scheduled_at)
          values (${a}, '2024-Feb', ${gate}, ${WINDOW}::timestamptz, ${WINDOW}::timestamptz + interval '4 hours', '["5034765"]'::jsonb, 'succeeded', now())`);
        expect((await updateOutcomes(tx, ['2024-Feb'])).get('2024-Feb')).toHaveLength(1);
        throw new Error('rolled back');
      })
      .catch(() => undefined);
    expect(await outcomes(db)).toEqual([]);
    // Committed by another writer afterwards: the stamp it reaches is new, whatever the rolled-back one was.
    await insertRun(a, 'failed');
    expect(await outcomes(db)).toHaveLength(1);
    await db.execute(sql`delete from runs`);
  });

  it('sees a transaction that settles several runs, one of them after a savepoint rolled back', async () => {
    const [a, b, c] = devices as [number, number, number];
    for (const device of [a, b, c]) await insertRun(device, 'running');
    expect(await outcomes(db)).toEqual([]);
    await db.transaction(async (tx) => {
      await tx.execute(sql`update runs set state = 'succeeded' where device_id = ${a}`);
      await tx.execute(sql`update runs set state = 'succeeded' where device_id = ${b}`);
    });
    expect(await outcomes(db)).toHaveLength(2);
    await db.transaction(async (tx) => {
      // Settled, then undone to the savepoint: the stamp's bump is undone with it, and the next settle bumps again.
      await tx
        .transaction(async (savepoint) => {
          await savepoint.execute(sql`update runs set state = 'failed' where device_id = ${a}`);
          throw new Error('rolled back to the savepoint');
        })
        .catch(() => undefined);
      await tx.execute(sql`update runs set state = 'succeeded' where device_id = ${c}`);
    });
    const after = await outcomes(db);
    expect(after).toHaveLength(3);
    expect(after.filter((o) => o.includes(' failed '))).toEqual([]);
    await db.execute(sql`delete from runs`);
  });

  it('does not serve outcomes from before the stamps were emptied and rebuilt (a database reset between sequences)', async () => {
    const [a] = devices as [number];
    await insertRun(a, 'succeeded');
    expect(await outcomes(db)).toHaveLength(1);
    // Emptied with the triggers off, as the model test's reset does; then the same history written again.
    await behindTheStampsBack(db, sql`delete from outcome_stamps`);
    await behindTheStampsBack(db, sql`delete from runs`);
    await insertRun(a, 'failed');
    expect((await outcomes(db))[0]).toContain(' failed ');
    await db.execute(sql`delete from runs`);
  });
});

describe('a sweep that read the outcomes before a run settled', () => {
  it('finishes the ring once the last run settles between two sweeps, with the outcome of that run', async () => {
    const db = database.db;
    await db.execute(sql`delete from runs`);
    const clock = { now: new Date('2024-02-14T07:30:00Z') };
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    const fleet = new SimulatedFleet({ clock: () => clock.now });
    const context = { config: {} as Config, database, redis, prefix: `${redisServer.prefix}stamps`, log: pino({ level: 'silent' }), roles: new Set(['worker' as const]), now: () => clock.now };
    const engine = new RolloutEngine(context, { deployer: fleet, pollMs: 1, realDelayMs: () => 0 });
    try {
      await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-stamps' });
      expect(await engine.sweep()).toMatchObject({ runsPlanned: 3 });
      const ids = rowsOf<{ id: number }>(await db.execute(sql`select id from runs where state = 'scheduled' order by id`)).map((r) => Number(r.id));
      for (const id of ids.slice(0, -1)) expect((await engine.processRun(id))?.status).toBe('succeeded');
      // This sweep reads (and keeps) the outcomes with one run still to go: the ring stays open.
      expect(await engine.sweep()).toMatchObject({ gatesFinished: 0 });
      expect(await engine.sweep()).toMatchObject({ gatesFinished: 0 });
      expect((await engine.processRun(ids.at(-1)!))?.status).toBe('succeeded');
      expect(await engine.sweep()).toMatchObject({ gatesFinished: 1 });
      const msp = (await loadBook(db, '2024-Feb')).gates.msp;
      expect(msp?.state).not.toBe('running');
      const installed = (await updateOutcomes(db, ['2024-Feb'])).get('2024-Feb')!.filter((o) => o.outcome === 'installed');
      expect(new Set(installed.map((o) => o.deviceId)).size).toBe(3);
    } finally {
      await engine.queue.obliterate({ force: true }).catch(() => undefined);
      await engine.close();
      redis.disconnect();
    }
  });
});
