/**
 * The jobs' contract (JobContext, JobModule, roles), re-exported for the modules that still import it from here:
 * src/jobs/rollout.ts (whose rewrite is in progress elsewhere) and the tests. New code imports ./context.ts;
 * startJobs is in ./start.ts. This file must not import a job module: that was the cycle.
 */
export * from './context.ts';
