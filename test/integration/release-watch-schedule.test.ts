/**
 * The watcher's ticks on BullMQ follow the cadence, not the heartbeat: a real redis-server, two job modules sharing
 * it (a restart that overlaps, or a second worker), and a clock running 20x real time with the job context's pace.
 * The heartbeat is set to a minute of real time (20 simulated minutes), so every poll seen here came from the
 * delayed job each tick leaves for the next due instant.
 */
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { msp } from '../../src/db/schema.ts';
import { patchTuesday } from '../../src/domain/calendar.ts';
import type { JobContext, RunningJobs } from '../../src/jobs/context.ts';
import { NEXT_PREFIX, RELEASE_WATCH_QUEUE, releaseWatchModule } from '../../src/jobs/release-watch.ts';
import { startSampleMsrc, type SampleMsrc } from '../../src/sandbox/sample-msrc.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';

const SPEED = 20;
const START = patchTuesday(2024, 5).plus({ minutes: 1 }).toMillis(); // 10:01 Pacific: in the 30 s burst

describe('release watch scheduling on BullMQ', () => {
  let database: TestDatabase;
  let redisServer: TestRedis;
  let redis: Redis;
  let msrc: SampleMsrc;
  let queue: Queue;
  const jobs: RunningJobs[] = [];
  const polls: number[] = [];
  const realStart = Date.now();
  const clock = () => new Date(START + (Date.now() - realStart) * SPEED);

  beforeAll(async () => {
    [database, redisServer] = await Promise.all([openTestDatabase(), startTestRedis()]);
    await database.db.insert(msp).values({ id: 1, name: 'Example IT', timezone: 'America/Chicago', channel: 'C0PATCH', windows: {} });
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    // Microsoft is late: the index never lists May during the test, so every poll is one index request.
    msrc = await startSampleMsrc({
      clock,
      release: { id: '2024-May', publishAt: new Date(START + 86_400_000) },
      onRequest: (hit) => void (hit.path === '/msrc/updates' && polls.push(hit.at.getTime())),
    });
    queue = new Queue(RELEASE_WATCH_QUEUE, { connection: redis, prefix: redisServer.prefix });
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(jobs.map((j) => j.close()));
    await queue?.close();
    await redis?.quit();
    await redisServer?.stop();
    await msrc?.close();
    await database?.close();
  });

  it('polls every 30 simulated seconds from delayed jobs, and two modules on one Redis do not double them', async () => {
    const context: JobContext = {
      config: loadConfig({ MSRC_API_URL: msrc.msrcUrl, KEV_URL: msrc.kevUrl }),
      database,
      redis,
      prefix: redisServer.prefix,
      log: pino({ level: 'silent' }, new Writable({ write: (_c, _e, done) => done() })),
      roles: new Set(['scheduler', 'worker']),
      now: clock,
      pace: { tickMs: 60_000, realDelayMs: (until, now) => (until.getTime() - now.getTime()) / SPEED },
    };
    const module = releaseWatchModule({ fetch: { attempts: 1, timeoutMs: 5000 } });
    jobs.push(await module(context));
    jobs.push(await module(context));

    const delayedCounts: number[] = [];
    const deadline = Date.now() + 10_000; // 200 simulated seconds
    for (let round = 0; Date.now() < deadline; round++) {
      // Extra ticks between the cadence's, as a restart's or the heartbeat's would be: each plans the same next instant.
      if (round % 7 === 3) await queue.add('tick', {});
      const delayed = await queue.getDelayed();
      delayedCounts.push(delayed.filter((job) => job.id?.startsWith(NEXT_PREFIX)).length);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const span = (polls.at(-1)! - polls[0]!) / 1000;
    const gaps = polls.slice(1).map((at, i) => (at - polls[i]!) / 1000);
    console.log(`[release-watch-schedule] ${polls.length} polls over ${span.toFixed(0)} simulated s; gaps ${gaps.map((g) => g.toFixed(1)).join(' ')}`);
    // Every 30 s: about 7 polls in 200 s (the first tick is the heartbeat's); a tick's real time is 20x here.
    expect(polls.length).toBeGreaterThanOrEqual(5);
    expect(polls.length).toBeLessThanOrEqual(8);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(29.5);
      expect(gap).toBeLessThan(40);
    }
    // One chain, however many modules add to it.
    expect(Math.max(...delayedCounts)).toBeLessThanOrEqual(1);
  }, 60_000);
});
