/**
 * The scheduled ticks when there is nothing new to do, at MSP scale (issue 19): a tick that runs every 15 s or every
 * minute must cost next to nothing then, however large the fleet. Part of bench rollout (its fleet and release).
 *
 * Mid-window: every device's run planned and every plan posted; the sweep and the Teams tick run again. The day after
 * the window: every run settled, the first sweep and Teams tick after it (rings finish, summaries and sign-off cards
 * posted), then each again, which finds everything done. Also the user-DM tick and the outbox sweep's read then.
 * Each `*.steady-tick-N` figure's ratio is against a bare `select count(*) from runs` timed in the same run (a tick
 * that reads each run once costs at least that); the first ticks' ratio is against the same.
 */
import { sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import pino from 'pino';
import type { Config } from '../src/config.ts';
import type { Database, AppDatabase } from '../src/db/client.ts';
import { dueOutboxIds } from '../src/db/outbox-repo.ts';
import { RolloutEngine } from '../src/jobs/rollout/index.ts';
import { queueClientMessages } from '../src/jobs/teams.ts';
import { queueUserDms } from '../src/jobs/user-dm.ts';
import { refreshDigests } from '../src/use-cases/digest-refresh.ts';
import { SimulatedFleet } from '../src/adapters/deployers/simulated.ts';
import { report } from './lib.ts';

const MINUTE = 60_000;

export interface SteadyWorld {
  database: Database;
  redis: Redis;
  /** When the fleet's one nightly window is open; the world is seeded with its gates scheduled. */
  windowOpenAt: Date;
  /** After that window has closed, the same day. */
  dayAfter: Date;
}

/** Times one call, in ms. */
async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = performance.now();
  const result = await work();
  return { ms: performance.now() - t0, result };
}

export async function benchSteadyTicks(world: SteadyWorld, devices: number): Promise<void> {
  const { database, redis } = world;
  const db = database.db;
  let now = world.windowOpenAt;
  const context = { config: {} as Config, database, redis, prefix: 'steady', log: pino({ level: 'silent' }), roles: new Set(['worker' as const]), now: () => now };
  const engine = new RolloutEngine(context, { deployer: new SimulatedFleet({ seed: 1, clock: () => now }), pollMs: 1 });
  try {
    await championChats(db);
    const countRuns = async () => (await timed(() => db.execute(sql`select count(*) from runs`))).ms;
    const line = (name: string, ms: number, baseline: number) => report(`${name}-${devices}`, ms, 'ms', ms / baseline);

    const planned = await timed(() => engine.sweep());
    process.stderr.write(`steady: first sweep ${planned.ms.toFixed(0)} ms ${JSON.stringify(planned.result)}\n`);
    now = new Date(now.getTime() + MINUTE / 4);
    const teamsFirst = await timed(() => queueClientMessages(db, now));
    process.stderr.write(`steady: mid-window first Teams tick ${teamsFirst.ms.toFixed(0)} ms, ${teamsFirst.result.length} rows\n`);
    const base = await countRuns();
    report(`steady.count-runs-${devices}`, base, 'ms', 1);
    now = new Date(now.getTime() + MINUTE / 4);
    const sweepMid = await timed(() => engine.sweep());
    process.stderr.write(`steady: mid-window sweep again ${JSON.stringify(sweepMid.result)}\n`);
    line('steady.sweep-mid-window.steady-tick', sweepMid.ms, base);
    now = new Date(now.getTime() + MINUTE / 4);
    const teamsMid = await timed(() => queueClientMessages(db, now));
    if (teamsMid.result.length !== 0) throw new Error(`mid-window Teams tick queued ${teamsMid.result.length} rows again`);
    line('steady.teams-mid-window.steady-tick', teamsMid.ms, base);

    // The night went well: every run succeeded.
    await db.execute(sql`update runs set state = 'succeeded', finished_at = ${world.windowOpenAt.toISOString()}::timestamptz, updated_at = now()
      where state in ('scheduled', 'running')`);
    await engine.queue.obliterate({ force: true });
    now = world.dayAfter;
    const sweepFirst = await timed(() => engine.sweep());
    process.stderr.write(`steady: day-after first sweep ${JSON.stringify(sweepFirst.result)}\n`);
    line('steady.sweep-day-after.first-tick', sweepFirst.ms, base);
    now = new Date(now.getTime() + MINUTE / 4);
    const teamsFirstAfter = await timed(() => queueClientMessages(db, now));
    process.stderr.write(`steady: day-after first Teams tick queued ${teamsFirstAfter.result.length} rows\n`);
    line('steady.teams-day-after.first-tick', teamsFirstAfter.ms, base);
    // Everything queued so far went out.
    await db.execute(sql`update chat_outbox set state = 'sent', updated_at = now() where state <> 'sent'`);
    const again = await countRuns();
    report(`steady.count-runs-again-${devices}`, again, 'ms', again / base);
    now = new Date(now.getTime() + MINUTE / 4);
    const sweepAfter = await timed(() => engine.sweep());
    process.stderr.write(`steady: day-after sweep again ${JSON.stringify(sweepAfter.result)}\n`);
    line('steady.sweep-day-after.steady-tick', sweepAfter.ms, base);
    now = new Date(now.getTime() + MINUTE / 4);
    const teamsAfter = await timed(() => queueClientMessages(db, now));
    if (teamsAfter.result.length !== 0) throw new Error(`day-after Teams tick queued ${teamsAfter.result.length} rows again`);
    line('steady.teams-day-after.steady-tick', teamsAfter.ms, base);
    line('steady.user-dm-day-after.steady-tick', (await timed(() => queueUserDms(db, now))).ms, base);
    const outbox = await timed(async () => {
      await refreshDigests({ db, now: () => now });
      return dueOutboxIds(db, now, ['slack', 'teams']);
    });
    if (outbox.result.length !== 0) throw new Error(`outbox sweep found ${outbox.result.length} rows due`);
    line('steady.outbox-sweep.steady-tick', outbox.ms, base);
  } finally {
    await engine.queue.obliterate({ force: true }).catch(() => undefined);
    await engine.close();
  }
}

/** Every client's champions are in a Teams channel linked to it. */
async function championChats(db: AppDatabase): Promise<void> {
  await db.execute(sql`insert into teams_conversations (conversation_id, kind, client_id, reference)
    select '19:' || id || '@thread.tacv2', 'channel', id, '{}'::jsonb from clients`);
}
