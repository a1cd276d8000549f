/** Starts every job module, in order; on shutdown closes them in reverse. */
import type { JobContext, JobModule, RunningJobs } from './context.ts';
import { deviceSync } from './device-sync.ts';
import { outboxJobs } from './outbox.ts';
import { releaseWatch } from './release-watch.ts';
import { reportSchedule } from './report-schedule.ts';
import { rollout } from './rollout/index.ts';
import { teamsClients } from './teams.ts';
import { userDm } from './user-dm.ts';

const modules: JobModule[] = [releaseWatch, outboxJobs, rollout, teamsClients, userDm, deviceSync, reportSchedule];

export async function startJobs(context: JobContext): Promise<RunningJobs> {
  const running: RunningJobs[] = [];
  try {
    for (const start of modules) running.push(await start(context));
  } catch (error) {
    await Promise.allSettled(running.map((r) => r.close()));
    throw error;
  }
  return {
    async close() {
      // Workers finish their current step before closing: nothing is left half-done in Redis.
      await Promise.allSettled(running.reverse().map((r) => r.close()));
    },
  };
}
