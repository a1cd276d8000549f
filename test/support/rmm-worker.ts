/**
 * A rollout worker in its own process driving a device manager (ROLLOUT_DEPLOYER: `tactical` or `ninjaone`, an
 * emulator the test serves) through the real adapter, so a test can SIGKILL it mid-step and start
 * another. Its clock is the test's (file-clock.ts), read at every look, so the worker, the test's scheduler and the
 * emulator's machines share one fast clock.
 *
 * PAUSE_AT names an adapter crash point (tactical.ts CrashPoint, ninjaone.ts NinjaCrashPoint): the first time the
 * worker reaches it, it prints `paused <point>` and stops dead (its whole event loop blocked) until it is killed, as
 * a worker whose machine died at that instant would leave things.
 */
import fs from 'node:fs';
import { NinjaOneClient } from '../../src/adapters/deployers/ninjaone-client.ts';
import { NinjaOneDeployer } from '../../src/adapters/deployers/ninjaone.ts';
import type { Deployer } from '../../src/adapters/deployers/port.ts';
import { TacticalClient } from '../../src/adapters/deployers/tactical-client.ts';
import { TacticalDeployer } from '../../src/adapters/deployers/tactical.ts';
import type { AppDatabase } from '../../src/db/client.ts';
import type { RolloutOptions } from '../../src/jobs/rollout/index.ts';
import { readFileClock } from './file-clock.ts';
import { connectFromEnv, requiredEnv as env, serveRunWorker } from './worker-process.ts';

const now = readFileClock(env('ROLLOUT_CLOCK_FILE'));
const rate = Number(env('ROLLOUT_CLOCK_RATE'));
const pauseAt = process.env.PAUSE_AT;
let paused = false;
const crashAt = (point: string) => {
  if (point !== pauseAt || paused) return;
  paused = true;
  // Pipes are written synchronously on Linux: the test hears this before the process stops.
  fs.writeSync(1, `paused ${point}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
};

const connections = await connectFromEnv();
const deployer = deployerFor(connections.database.db);
// The shared clock runs `rate` times faster than real time: waits shrink by as much.
const options: RolloutOptions = {
  deployer,
  workerConcurrency: 4,
  pollMs: 20,
  realDelayMs: (until, at) => Math.max(0, (until.getTime() - at.getTime()) / rate),
  lockDurationMs: 3000,
  stalledIntervalMs: 1000,
};
await serveRunWorker(connections, now, options);

function deployerFor(db: AppDatabase): Deployer {
  const crash = pauseAt ? { crashAt } : {};
  if (env('ROLLOUT_DEPLOYER') === 'tactical') {
    const client = new TacticalClient({ url: env('TACTICAL_URL'), apiKey: env('TACTICAL_API_KEY'), requestsPerSecond: 1000, timeoutMs: 5_000 });
    return new TacticalDeployer({ client, db, now, ...crash });
  }
  // Enough retries that a storm of 429s is waited out rather than turned into failed steps.
  const client = new NinjaOneClient({ url: env('NINJAONE_URL'), clientId: env('NINJAONE_CLIENT_ID'), clientSecret: env('NINJAONE_CLIENT_SECRET'), requestsPerSecond: 1000, timeoutMs: 5_000, retries: 10, now });
  return new NinjaOneDeployer({ client, db, now, installScriptId: Number(env('NINJAONE_INSTALL_SCRIPT_ID')), ...crash });
}
