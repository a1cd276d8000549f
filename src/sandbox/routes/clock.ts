/** The page's clock controls: the rate, and jumps to the next moment something happens. */
import { DateTime } from 'luxon';
import { z } from 'zod';
import { ownersWithActiveRollouts } from '../../db/page-repo.ts';
import { JUMPS, jumpTarget, type Jump } from '../../domain/sandbox-jumps.ts';
import type { SandboxAnswer } from '../api-types.ts';
import { loadDirectory } from '../directory.ts';
import type { RouteDeps, Router } from './deps.ts';

const clockRequest = z.object({ jump: z.enum(JUMPS.map((j) => j.jump) as [Jump, ...Jump[]]).optional(), rate: z.number().positive().optional() });

export function register(router: Router, deps: RouteDeps): void {
  router.set('/sandbox/api/clock', deps.post(clockRequest, (input) => moveClock(deps, input)));
}

async function moveClock(deps: RouteDeps, input: z.infer<typeof clockRequest>): Promise<SandboxAnswer> {
  const { clock } = deps.sandbox;
  if (input.rate !== undefined) {
    try {
      clock.setRate(input.rate);
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  }
  if (input.jump === undefined) return { ok: true, detail: `the clock runs at ${clock.rate}x` };
  deps.directory = await loadDirectory(deps.options.database.db);
  const target = jumpTarget(input.jump, DateTime.fromJSDate(clock.now()), await ownersWithWork(deps, input.jump), deps.directory.msp.timezone);
  if (!target) return { ok: false, error: input.jump === 'window-end' ? 'no maintenance window is open now' : 'nothing to jump to' };
  clock.jumpTo(target.at.toJSDate());
  await deps.sandbox.wakeDelayedRuns();
  deps.log.info({ jump: input.jump, to: target.at.toISO() }, `sandbox clock: ${target.detail}`);
  return { ok: true, detail: target.detail };
}

/**
 * "Next window" means the next window where something will happen: the owners with a ring scheduled or running
 * (the MSP for ring msp, a client for its pilot or broad ring). With nothing under way, any owner's window.
 */
async function ownersWithWork(deps: RouteDeps, jump: Jump) {
  const owners = deps.directory.jumpOwners();
  if (jump !== 'next-window' && jump !== 'window-end') return owners;
  const active = await ownersWithActiveRollouts(deps.options.database.db);
  const busy = owners.filter((o) => active.includes(o.id));
  return busy.length > 0 ? busy : owners;
}
