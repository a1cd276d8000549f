/**
 * The rollout engine: the sweep (./sweep.ts, in named steps) and the run jobs (./run-driver.ts) on BullMQ, as the
 * job module `rollout`. What other modules import comes from here.
 */
export { RolloutEngine, RUN_QUEUE, type RolloutOptions } from './engine.ts';
export { rollout, rolloutModule, runWorkerOptions, startRunWorker, SWEEP_QUEUE } from './module.ts';
export type { SweepReport } from './sweep.ts';
// The planner's input for a gate moved to the domain (the hold-release use-case plans with it too).
export { gatePlanInput } from '../../domain/eligibility.ts';
