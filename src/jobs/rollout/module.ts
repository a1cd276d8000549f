/** The rollout engine as a job module: the sweep's scheduler and worker, and the run worker, by the process's roles. */
import type { JobContext, JobModule } from '../context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from '../queues.ts';
import { RolloutEngine, RUN_QUEUE, type RolloutOptions } from './engine.ts';

export const SWEEP_QUEUE = 'rollout-sweep';
const SWEEP_SCHEDULER_ID = 'rollout-sweep-tick';

export function runWorkerOptions(options: RolloutOptions): { concurrency: number; lockDuration?: number; stalledInterval?: number } {
  return {
    concurrency: options.workerConcurrency ?? 50,
    ...(options.lockDurationMs !== undefined ? { lockDuration: options.lockDurationMs } : {}),
    ...(options.stalledIntervalMs !== undefined ? { stalledInterval: options.stalledIntervalMs } : {}),
  };
}

/** A worker for run jobs only, for tests and benchmarks that drive sweeps themselves. */
export function startRunWorker(context: JobContext, engine: RolloutEngine, options: RolloutOptions = {}) {
  return createWorker<{ runId: number }>(
    context,
    RUN_QUEUE,
    async (job, token) => {
      const run = await engine.processRun(job.data.runId, job, token);
      return run ? { status: run.status, reboots: run.reboots } : { status: 'elsewhere' };
    },
    runWorkerOptions(options),
  );
}

export function rolloutModule(options: RolloutOptions = {}): JobModule {
  return async (context) => {
    const hasScheduler = context.roles.has('scheduler');
    const hasWorker = context.roles.has('worker');
    if (!hasScheduler && !hasWorker) return { close: async () => {} };
    if (!options.deployer && !context.deployer && hasWorker) {
      context.log.warn('no device manager is configured: rollout runs go to a simulated fleet (the local demo), not to real machines');
    }
    const engine = new RolloutEngine(context, options);
    const sweepQueue = createQueue(context, SWEEP_QUEUE, { ...KEEP_FEW, attempts: 1 });
    if (hasScheduler) {
      await sweepQueue.upsertJobScheduler(SWEEP_SCHEDULER_ID, { every: options.sweepEveryMs ?? context.pace?.tickMs ?? 15_000 }, { name: 'sweep', opts: { ...KEEP_FEW, attempts: 1 } });
    }
    const workers = hasWorker ? [createWorker(context, SWEEP_QUEUE, async () => engine.sweep(), { concurrency: 1 }), startRunWorker(context, engine, options)] : [];
    return {
      async close() {
        engine.beginStop();
        await closeAll(workers, [sweepQueue]);
        await engine.close();
      },
    };
  };
}

export const rollout: JobModule = rolloutModule();
