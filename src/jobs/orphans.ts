/**
 * Jobs a killed patchbay left active in its private Redis. A process that dies with SIGKILL (or OOM) leaves each
 * job it was processing in BullMQ's active list under its lock. BullMQ gives such a job back only once the lock
 * has lapsed (lockDuration, 30 s) and two stalled checks have seen it (stalledInterval, 30 s; the first check
 * after a restart is skipped while the dead worker's `stalled-check` key, kept in the AOF, lives on): 30 to 90
 * real seconds in which the sweep cannot re-add the run either, its job id being taken. On the sandbox's clock
 * (60 clock seconds a second) that is an hour or more of a window with its runs standing still.
 *
 * A private Redis serves one process only (the data dir's lock), so at start every lock in it belongs to a
 * process that is gone: nothing is gained by waiting for the locks to lapse. The locks are dropped and the jobs
 * marked as the stalled check marks them, so the workers' first check (made as they start) hands them back at
 * once, counted as stalled as BullMQ would count them. With a shared Redis no process can know that another
 * one is dead, and BullMQ's timing stands.
 */
import type { Redis } from 'ioredis';

/** The keys BullMQ keeps per queue (its `QueueKeys`), named as `Queue.toKey` names them. */
const queueKey = (prefix: string, queue: string, key: string) => `${prefix}:${queue}:${key}`;

/** Queues that have an active list under `prefix`: queue names carry no `:` (src/jobs/queues.ts). */
async function queuesWithActiveJobs(redis: Redis, prefix: string): Promise<string[]> {
  const found = new Set<string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*:active`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const queue = key.slice(prefix.length + 1, -':active'.length);
      if (queue !== '' && !queue.includes(':')) found.add(queue);
    }
  } while (cursor !== '0');
  return [...found];
}

/**
 * Call before any worker starts, and only on a Redis no other process uses. Answers how many jobs each queue
 * had active (queues with none are left out).
 */
export async function releaseOrphanedJobs(redis: Redis, prefix: string): Promise<Record<string, number>> {
  const released: Record<string, number> = {};
  for (const queue of await queuesWithActiveJobs(redis, prefix)) {
    if ((await redis.type(queueKey(prefix, queue, 'active'))) !== 'list') continue;
    const active = await redis.lrange(queueKey(prefix, queue, 'active'), 0, -1);
    if (active.length === 0) continue;
    const multi = redis.multi();
    for (const id of active) multi.del(queueKey(prefix, queue, `${id}:lock`));
    multi.sadd(queueKey(prefix, queue, 'stalled'), ...active);
    multi.del(queueKey(prefix, queue, 'stalled-check'));
    await multi.exec();
    released[queue] = active.length;
  }
  return released;
}
