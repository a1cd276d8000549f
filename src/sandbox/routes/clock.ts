/** The page's clock controls: the rate, and jumps to the next moment something happens. */
import { DateTime } from 'luxon';
import { z } from 'zod';
import { setTimeout as sleep } from 'node:timers/promises';
import { ownersWithActiveRollouts, runsAtWorkNow } from '../../db/page-repo.ts';
import { JUMPS, jumpTarget, type Jump } from '../../domain/sandbox-jumps.ts';
import type { SandboxAnswer } from '../api-types.ts';
import { loadDirectory } from '../directory.ts';
import { DEFAULT_DEMO_SPEED } from '../demo-script.ts';
import type { SandboxClock } from '../clock.ts';
import type { RouteDeps, Router } from './deps.ts';

/** Clock ms per real ms while an open window's work plays out before a jump: the demo's pace with work in flight. */
const PLAY_RATE = DEFAULT_DEMO_SPEED;
const PLAY_CHECK_MS = 200;

/** Clocks playing a window out before their jump: a second jump waits for the first. */
const playing = new WeakSet<SandboxClock>();

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
  if (playing.has(clock)) return { ok: false, error: 'the clock is still playing out an open window before the last jump; try again in a few seconds' };
  const atWork = await runsAtWorkNow(deps.options.database.db, clock.now());
  if (atWork > 0) {
    void playThenJump(deps, target.at.toJSDate(), target.detail).catch((error: unknown) => deps.log.error({ err: error }, 'sandbox clock: playing the window out failed'));
    const machines = atWork === 1 ? '1 machine is' : `${atWork} machines are`;
    return { ok: true, detail: `${target.detail}. ${machines} still at work in an open window: it plays out first, ${PLAY_RATE} times faster, so the jump cuts no update short` };
  }
  clock.jumpTo(target.at.toJSDate());
  await deps.sandbox.wakeDelayedRuns();
  deps.log.info({ jump: input.jump, to: target.at.toISO() }, `sandbox clock: ${target.detail}`);
  return { ok: true, detail: target.detail };
}

/**
 * Runs the clock fast until no machine is at work in an open window (or the jump's target is reached), then jumps.
 * A jump straight over a window rolled every machine still at work to its next window ("window ended first"), which
 * no real night does: the sandbox must show what the product does with time, not with time skipped.
 */
async function playThenJump(deps: RouteDeps, target: Date, detail: string): Promise<void> {
  const { clock } = deps.sandbox;
  const db = deps.options.database.db;
  const rate = clock.rate;
  const fast = Math.max(rate, PLAY_RATE);
  playing.add(clock);
  try {
    clock.setRate(fast);
    await deps.sandbox.wakeDelayedRuns();
    while (clock.now() < target && (await runsAtWorkNow(db, clock.now())) > 0) await sleep(Math.max(10, Math.min(PLAY_CHECK_MS, clock.realDelayMs(target))));
    // The page's own rate, unless someone set another meanwhile.
    if (clock.rate === fast) clock.setRate(rate);
    if (clock.now() < target) clock.jumpTo(target);
    await deps.sandbox.wakeDelayedRuns();
    deps.log.info({ to: target.toISOString() }, `sandbox clock: ${detail} (after the open window played out)`);
  } finally {
    playing.delete(clock);
  }
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
