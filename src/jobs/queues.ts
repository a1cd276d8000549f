/**
 * Queue and worker construction shared by the job modules, so every queue lives under the configured key
 * prefix on the one connection and closes the same way. Kept generic: a module names its queue and passes its
 * own job defaults and processor.
 */
import { Queue, Worker, type DefaultJobOptions, type Processor, type WorkerOptions } from 'bullmq';
import type { JobContext } from './context.ts';

/** Finished jobs are not history (Postgres is): keep a few for inspection, then let Redis drop them. */
export const KEEP_FEW: Pick<DefaultJobOptions, 'removeOnComplete' | 'removeOnFail'> = {
  removeOnComplete: { count: 50 },
  removeOnFail: { count: 200 },
};

type Connection = Pick<JobContext, 'redis' | 'prefix'>;

/** BullMQ names become Redis keys joined by ":", so a name carrying one would collide with another queue's keys. */
function checkName(name: string): void {
  if (name === '' || name.includes(':')) throw new Error(`queue name "${name}" must be non-empty and without ":"`);
}

export function createQueue<Data = unknown>(context: Connection, name: string, defaultJobOptions: DefaultJobOptions = KEEP_FEW): Queue<Data> {
  checkName(name);
  return new Queue<Data>(name, { connection: context.redis, prefix: context.prefix, defaultJobOptions });
}

export function createWorker<Data = unknown, Result = unknown>(
  context: Connection & Pick<JobContext, 'log'>,
  name: string,
  processor: Processor<Data, Result>,
  options: Omit<WorkerOptions, 'connection' | 'prefix'> = {},
): Worker<Data, Result> {
  checkName(name);
  const worker = new Worker<Data, Result>(name, processor, { concurrency: 1, ...options, connection: context.redis, prefix: context.prefix });
  // Without a listener an 'error' event would crash the process; a Redis blip is logged and BullMQ reconnects.
  worker.on('error', (error) => context.log.warn({ err: error, queue: name }, 'worker error'));
  worker.on('failed', (job, error) => context.log.warn({ err: error, queue: name, job: job?.id }, 'job failed'));
  return worker;
}

/**
 * Closes workers first, then queues; one failure does not stop the rest. Workers finish their current job
 * unless `force` is set, which suits jobs that are safe to abandon midway (one transaction, redone next tick).
 */
export async function closeAll(
  workers: ReadonlyArray<Worker | undefined>,
  queues: ReadonlyArray<Queue | undefined>,
  options: { force?: boolean } = {},
): Promise<void> {
  await Promise.allSettled(workers.filter((w) => w !== undefined).map((w) => w.close(options.force ?? false)));
  await Promise.allSettled(queues.filter((q) => q !== undefined).map((q) => q.close()));
}
