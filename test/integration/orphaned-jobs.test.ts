/**
 * releaseOrphanedJobs on a real redis-server with BullMQ's own scripts: a job a dead worker holds goes to the next
 * worker at its first stalled check, without waiting for the dead worker's lock to lapse; another prefix (another
 * patchbay sharing the server) is left alone.
 */
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { releaseOrphanedJobs } from '../../src/jobs/orphans.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';

let redisServer: TestRedis;
let redis: Redis;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redisServer = await startTestRedis();
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  redis.disconnect();
  await redisServer.stop();
});

async function waitFor(what: string, check: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A worker that takes one job and never finishes it, then stops renewing its lock: a process killed mid-job. */
async function deadWorkerHolding(prefix: string, name: string): Promise<string> {
  const queue = new Queue(name, { connection: redis, prefix });
  closers.push(() => queue.close());
  const job = await queue.add('work', {}, { jobId: 'job-1' });
  let taken!: () => void;
  const started = new Promise<void>((resolve) => (taken = resolve));
  const dying = new Worker(
    name,
    async () => {
      taken();
      await new Promise(() => {});
    },
    // A lock far longer than this test: only releaseOrphanedJobs can hand the job on in time.
    { connection: redis, prefix, lockDuration: 600_000 },
  );
  await started;
  await dying.close(true);
  expect(await redis.exists(`${prefix}:${name}:${job.id}:lock`), 'the dead worker left its lock').toBe(1);
  return job.id!;
}

it('hands a dead worker\u2019s active job to the next worker at once, and leaves another prefix alone', async () => {
  const ours = `${redisServer.prefix}a`;
  const theirs = `${redisServer.prefix}b`;
  const id = await deadWorkerHolding(ours, 'rollout-run');
  await deadWorkerHolding(theirs, 'rollout-run');

  expect(await releaseOrphanedJobs(redis, ours)).toEqual({ 'rollout-run': 1 });

  const done: string[] = [];
  const next = new Worker('rollout-run', async (job: Job) => void done.push(job.id!), { connection: redis, prefix: ours });
  closers.push(() => next.close());
  await waitFor('the next worker to finish the job', () => done.includes(id));
  expect(await redis.lrange(`${theirs}:rollout-run:active`, 0, -1), 'the other prefix keeps its job where it is').toEqual([id]);
  expect(await redis.exists(`${theirs}:rollout-run:${id}:lock`)).toBe(1);
  // Nothing is left to hand on a second time.
  expect(await releaseOrphanedJobs(redis, ours)).toEqual({});
});
