/** The page's clock controls: the rate, and jumps to the next moment something happens. */
import { DateTime } from 'luxon';
import { z } from 'zod';
import { setTimeout as sleep } from 'node:timers/promises';
import { dueOutboxCount } from '../../db/demo-repo.ts';
import { classesWithWork, runsAtWorkNow } from '../../db/page-repo.ts';
import { JUMPS, jumpTarget, ownersWithWorkIn, type Jump } from '../../domain/sandbox-jumps.ts';
import type { SandboxAnswer } from '../api-types.ts';
import { loadDirectory } from '../directory.ts';
import type { SandboxClock } from '../clock.ts';
import type { RouteDeps, Router } from './deps.ts';

/** Clock ms per real ms while an open window's work plays out before a jump: the demo's pace with work in flight (DEFAULT_DEMO_SPEED). */
const PLAY_RATE = 600;
const PLAY_CHECK_MS = 200;
/** Ticks the jobs get to notice a jump (a DM time reached queues its DMs) before the next jump may pass it. */
const SETTLE_TICKS = 2.5;
/** The most a jump waits for the messages due to go out: a platform that refuses them must not hold the clock. */
const DRAIN_LIMIT_MS = 15_000;

/** Clocks getting ready for a jump: a second jump waits for the first. */
const preparing = new WeakSet<SandboxClock>();
/** When each clock last jumped, in real ms. */
const lastJumps = new WeakMap<SandboxClock, number>();

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
  if (preparing.has(clock)) return { ok: false, error: 'the clock is still getting ready for the last jump; try again in a few seconds' };
  const db = deps.options.database.db;
  const atWork = await runsAtWorkNow(db, clock.now());
  const settleMs = SETTLE_TICKS * deps.sandbox.pace.tickMs - (Date.now() - (lastJumps.get(clock) ?? 0));
  if (atWork === 0 && settleMs <= 0 && (await dueOutboxCount(db, clock.now())) === 0) {
    await jumpNow(deps, target.at.toJSDate(), target.detail);
    return { ok: true, detail: target.detail };
  }
  void prepareThenJump(deps, target.at.toJSDate(), target.detail, { playFirst: atWork > 0, settleMs: Math.max(0, settleMs) }).catch((error: unknown) => deps.log.error({ err: error }, 'sandbox clock: the jump failed'));
  if (atWork === 0) return { ok: true, detail: `${target.detail}, once what is due now (users' DMs among it) has gone out` };
  const machines = atWork === 1 ? '1 machine is' : `${atWork} machines are`;
  return { ok: true, detail: `${target.detail}. ${machines} still at work in an open window: it plays out first, ${PLAY_RATE} times faster, so the jump cuts no update short` };
}

async function jumpNow(deps: RouteDeps, target: Date, detail: string): Promise<void> {
  const { clock } = deps.sandbox;
  if (clock.now() < target) clock.jumpTo(target);
  lastJumps.set(clock, Date.now());
  await deps.sandbox.wakeDelayedRuns();
  deps.log.info({ to: target.toISOString() }, `sandbox clock: ${detail}`);
}

/**
 * A jump passes over time in which the product would have worked, so first: the open windows' work plays out (the
 * clock runs fast until no machine is at work, or the target is reached), the jobs get a few ticks to notice the
 * last jump, and what is due goes out. A jump straight over a window rolled every machine still at work ("window
 * ended first"), and one pressed right after a DM time skipped the DMs it had just queued, so the users' machines
 * were left out of the window (and, sent late, the DMs promised a night that did not come). The sandbox must show
 * what the product does with time, not with time skipped.
 */
async function prepareThenJump(deps: RouteDeps, target: Date, detail: string, how: { playFirst: boolean; settleMs: number }): Promise<void> {
  const { clock } = deps.sandbox;
  const db = deps.options.database.db;
  const rate = clock.rate;
  const fast = Math.max(rate, PLAY_RATE);
  preparing.add(clock);
  try {
    let settle = how.settleMs;
    if (how.playFirst) {
      // The sweep then finishes what the window did (its summary, the ring's end): ticks to notice that too.
      settle = SETTLE_TICKS * deps.sandbox.pace.tickMs;
      clock.setRate(fast);
      await deps.sandbox.wakeDelayedRuns();
      while (clock.now() < target && (await runsAtWorkNow(db, clock.now())) > 0) await sleep(Math.max(10, Math.min(PLAY_CHECK_MS, clock.realDelayMs(target))));
      // The page's own rate, unless someone set another meanwhile.
      if (clock.rate === fast) clock.setRate(rate);
    }
    await sleep(settle);
    const drainUntil = Date.now() + DRAIN_LIMIT_MS;
    while (clock.now() < target && Date.now() < drainUntil && (await dueOutboxCount(db, clock.now())) > 0) await sleep(PLAY_CHECK_MS);
    await jumpNow(deps, target, detail);
  } finally {
    preparing.delete(clock);
  }
}

/** "Next window" and "End of window" mean a window where something will happen (ownersWithWorkIn). */
async function ownersWithWork(deps: RouteDeps, jump: Jump) {
  const owners = deps.directory.jumpOwners();
  if (jump !== 'next-window' && jump !== 'window-end') return owners;
  return ownersWithWorkIn(owners, await classesWithWork(deps.options.database.db));
}
