/**
 * A rollout worker in its own process, so tests can SIGKILL it mid-window or run two side by side. Settings come
 * from the environment; it prints `ready` once its worker is listening and does nothing else but process runs.
 */
import { SimulatedFleet } from '../../src/adapters/deployers/simulated.ts';
import type { RolloutOptions } from '../../src/jobs/rollout/index.ts';
import { connectFromEnv, requiredEnv as env, serveRunWorker } from './worker-process.ts';

const clock = new Date(env('ROLLOUT_CLOCK'));
const connections = await connectFromEnv();
const fleet = new SimulatedFleet({
  seed: 5,
  clock: () => clock,
  ledgerPath: env('ROLLOUT_LEDGER'),
  worker: env('ROLLOUT_WORKER'),
  fleet: { latencyMs: Number(process.env.ROLLOUT_LATENCY_MS ?? 0), rebootTwiceRate: 0.3 },
});
const options: RolloutOptions = { deployer: fleet, workerConcurrency: 4, pollMs: 10, lockDurationMs: 3000, stalledIntervalMs: 1000 };
await serveRunWorker(connections, () => clock, options);
