import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { afterRun, decide, DEFAULT_RUN_POLICY, newRun, observe, type Action, type Outcome, type Run, type RunEnv, type RunPolicy } from '../../src/domain/run.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { canStartStep, windowContaining, type MaintenanceWindow } from '../../src/domain/windows.ts';

const CHICAGO = 'America/Chicago';
const rule = (() => {
  const parsed = parseWindowSpec('daily 01:00-05:00');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
})();
const windowAt = (iso: string): MaintenanceWindow => windowContaining(rule, CHICAGO, DateTime.fromISO(iso, { zone: 'utc' }))!;

// Spring forward 2024-03-10: 01:00 CST = 07:00Z, 05:00 CDT = 10:00Z, three real hours.
const SPRING = windowAt('2024-03-10T07:30:00Z');
// Fall back 2024-11-03: 01:00 CDT = 06:00Z, 05:00 CST = 11:00Z, five real hours.
const FALL = windowAt('2024-11-03T06:30:00Z');

interface Device {
  online: boolean[];
  installFails: number;
  rebootsWanted: number;
  /** Installs the device manager lost on the way (it answers `notStarted` after a while). */
  lostInstalls?: number;
}

/** A scripted device and a clock the test controls; records every install and reboot with its instant. */
class Harness {
  run: Run;
  now: DateTime;
  readonly started: Array<{ kind: 'install' | 'reboot'; key: string; at: DateTime }> = [];
  readonly ops = new Map<string, { kind: 'install' | 'reboot'; pollsLeft: number; fails: boolean; result?: Outcome }>();
  rebootsPending = 0;
  installed = false;
  constructor(
    readonly window: MaintenanceWindow,
    readonly device: Device,
    readonly policy: RunPolicy = DEFAULT_RUN_POLICY,
    readonly stepMinutes = 1,
    readonly held = () => false,
  ) {
    this.run = newRun('r1', ['5034763', '5034765']);
    this.now = window.start;
  }
  env(): RunEnv {
    return { now: this.now, window: this.window, nextWindowStart: '2099-01-01T07:00:00.000Z', held: this.held(), policy: this.policy };
  }
  call(action: Action): Outcome {
    switch (action.type) {
      case 'check_online':
        return { type: 'online', online: this.device.online.shift() ?? true };
      case 'install':
      case 'reboot': {
        if (!this.ops.has(action.key)) {
          this.started.push({ kind: action.type, key: action.key, at: this.now });
          const fails = action.type === 'install' && this.device.installFails-- > 0;
          this.ops.set(action.key, { kind: action.type, pollsLeft: 2, fails });
        }
        return { type: 'started', handle: action.key };
      }
      case 'poll': {
        const op = this.ops.get(action.operation.handle!)!;
        if (op.pollsLeft-- > 0) return { type: 'progress', state: 'running' };
        // A finished operation answers the same every time it is asked, as a device manager's would.
        op.result ??= this.finish(op);
        return op.result;
      }
      case 'verify':
        return { type: 'verified', missing: this.installed ? [] : action.updates, rebootPending: this.rebootsPending > 0 };
    }
  }
  private finish(op: { kind: 'install' | 'reboot'; fails: boolean }): Outcome {
    {
      {
        if (op.kind === 'install' && (this.device.lostInstalls ?? 0) > 0) {
          this.device.lostInstalls!--;
          return { type: 'failed', error: 'not started: no result within 15 minutes', notStarted: true };
        }
        if (op.fails) return { type: 'failed', error: '0x80070005 access denied' };
        if (op.kind === 'install') {
          if (!this.installed) this.rebootsPending = this.device.rebootsWanted;
          this.installed = true;
          return { type: 'succeeded', rebootRequired: this.rebootsPending > 0 };
        }
        this.rebootsPending = Math.max(0, this.rebootsPending - 1);
        return { type: 'succeeded', rebootRequired: false };
      }
    }
  }
  /**
   * Drives the run to its end; `crashAt` drops the device's answer at those steps (a worker died); `lostAt` loses the
   * call itself at that step (the worker died after storing its intent, before the device manager heard of it), and
   * nothing runs for that many minutes.
   */
  drive(crashAt: ReadonlySet<number> = new Set(), lostAt: ReadonlyMap<number, number> = new Map()): Run {
    for (let i = 0; i < 10_000; i++) {
      const decision = decide(this.run, this.env());
      if (decision.type === 'done') return this.run;
      if (decision.type === 'become') this.run = decision.run;
      else if (decision.type === 'wait') this.now = decision.until > this.now ? decision.until : this.now.plus({ minutes: 1 });
      else if (lostAt.has(i)) {
        this.run = decision.run;
        this.now = this.now.plus({ minutes: lostAt.get(i)! });
      } else {
        this.run = decision.run; // stored before the device is called
        const outcome = this.call(decision.action);
        if (!crashAt.has(i)) this.run = observe(this.run, decision.action, outcome, this.env());
        this.now = this.now.plus({ minutes: this.stepMinutes });
      }
    }
    throw new Error('run did not finish');
  }
}

describe('run step machine, by example', () => {
  it('installs, reboots twice while a reboot is still pending, verifies', () => {
    const h = new Harness(SPRING, { online: [true], installFails: 0, rebootsWanted: 2 });
    const run = h.drive();
    expect(run).toMatchObject({ status: 'succeeded', reboots: 2, error: null });
    expect(h.started.map((s) => s.kind)).toEqual(['install', 'reboot', 'reboot']);
  });

  it('retries a failed install with backoff, then fails with the device error text', () => {
    const h = new Harness(FALL, { online: [true], installFails: 5, rebootsWanted: 0 });
    const run = h.drive();
    expect(run).toMatchObject({ status: 'failed', error: '0x80070005 access denied', attempts: 3 });
    const installs = h.started.filter((s) => s.kind === 'install');
    expect(installs).toHaveLength(3);
    // Backoff: 2 then 4 minutes between the failure and the next try, at least.
    expect(installs[1]!.at.diff(installs[0]!.at, 'minutes').minutes).toBeGreaterThanOrEqual(2);
    expect(installs[2]!.at.diff(installs[1]!.at, 'minutes').minutes).toBeGreaterThanOrEqual(4);
  });

  it('an install that never reached the device is not a failed attempt: rechecked and retried in the window', () => {
    const h = new Harness(FALL, { online: [true, true, true, true], installFails: 0, rebootsWanted: 0, lostInstalls: 3 }, DEFAULT_RUN_POLICY, 5);
    const run = h.drive();
    expect(run).toMatchObject({ status: 'succeeded', attempts: 0, error: null });
    const installs = h.started.filter((s) => s.kind === 'install');
    expect(installs.map((s) => s.key)).toEqual(['r1-install-1', 'r1-install-2', 'r1-install-3', 'r1-install-4']);
  });

  it('installs lost again and again roll to the next window, never fail the run', () => {
    const h = new Harness(SPRING, { online: Array(100).fill(true), installFails: 0, rebootsWanted: 0, lostInstalls: 100 }, DEFAULT_RUN_POLICY, 5);
    const run = h.drive();
    expect(run).toMatchObject({ status: 'rolled', reason: 'window_short', attempts: 0 });
    expect(h.started.filter((s) => s.kind === 'install').length).toBeGreaterThan(3);
  });

  it('an offline device is rechecked until the window ends, then rolls to its next window', () => {
    const h = new Harness(SPRING, { online: Array(100).fill(false), installFails: 0, rebootsWanted: 0 });
    const run = h.drive();
    expect(run).toMatchObject({ status: 'offline', rolledTo: '2099-01-01T07:00:00.000Z', reason: 'offline' });
    expect(run.offlineChecks).toBe(18); // every 10 minutes for the 3 real hours of spring-forward night
    expect(h.started).toEqual([]);
  });

  it('on spring-forward night the install budget is counted in real minutes (3 hours, not 4)', () => {
    // The online check at 04:00 CDT takes a minute, so the install would start at 04:01 CDT (09:01Z) with 59
    // real minutes left. Start + the rule's nominal 4 hours (07:00Z + 4 h = 11:00Z) would see 119 minutes.
    const h = new Harness(SPRING, { online: [], installFails: 0, rebootsWanted: 1 });
    h.now = DateTime.fromISO('2024-03-10T09:00:00Z', { zone: 'utc' });
    const run = h.drive();
    expect(run).toMatchObject({ status: 'rolled', reason: 'window_short' });
    expect(h.started).toEqual([]);
    // One minute earlier there is room for exactly the 60-minute budget.
    const h2 = new Harness(SPRING, { online: [], installFails: 0, rebootsWanted: 0 });
    h2.now = DateTime.fromISO('2024-03-10T08:59:00Z', { zone: 'utc' });
    expect(h2.drive().status).toBe('succeeded');
  });

  it('on fall-back night the fifth hour is usable', () => {
    // 03:30 CST is 09:30Z; the window closes at 11:00Z, 90 real minutes later.
    const h = new Harness(FALL, { online: [], installFails: 0, rebootsWanted: 1 });
    h.now = DateTime.fromISO('2024-11-03T09:30:00Z', { zone: 'utc' });
    expect(h.drive()).toMatchObject({ status: 'succeeded', reboots: 1 });
  });

  it('a reboot is not started with less than its budget left; the run rolls with the install done', () => {
    const policy = { ...DEFAULT_RUN_POLICY, installBudgetMinutes: 60, rebootBudgetMinutes: 20 };
    // Each device call takes 15 minutes: install starts 08:59Z (61 min left), finishes 09:59Z (1 min left).
    const h = new Harness(SPRING, { online: [], installFails: 0, rebootsWanted: 1 }, policy, 15);
    h.now = DateTime.fromISO('2024-03-10T08:44:00Z', { zone: 'utc' });
    const run = h.drive();
    expect(run).toMatchObject({ status: 'rolled', reason: 'window_short' });
    expect(h.started.map((s) => s.kind)).toEqual(['install']);
  });

  it('a hold stops a run that has not touched the device, not one already installing', () => {
    let held = false;
    const h = new Harness(SPRING, { online: [true], installFails: 0, rebootsWanted: 1 }, DEFAULT_RUN_POLICY, 1, () => held);
    held = true;
    expect(h.drive()).toMatchObject({ status: 'skipped', reason: 'held' });
    held = false;
    const h2 = new Harness(SPRING, { online: [true], installFails: 0, rebootsWanted: 1 }, DEFAULT_RUN_POLICY, 1, () => held);
    for (;;) {
      const d = decide(h2.run, h2.env());
      if (d.type !== 'act') throw new Error('expected to act');
      h2.run = d.run;
      h2.run = observe(h2.run, d.action, h2.call(d.action), h2.env());
      if (h2.run.installs > 0) break;
    }
    held = true;
    expect(h2.drive()).toMatchObject({ status: 'succeeded', reboots: 1 });
  });

  it('a hold placed after a failed install stops the retry: a retry is a new install of the held update', () => {
    let held = false;
    const h = new Harness(FALL, { online: [true], installFails: 5, rebootsWanted: 0 }, DEFAULT_RUN_POLICY, 1, () => held);
    for (;;) {
      const d = decide(h.run, h.env());
      if (d.type === 'wait') h.now = d.until;
      if (d.type === 'become') h.run = d.run;
      if (d.type !== 'act') continue;
      h.run = d.run;
      h.run = observe(h.run, d.action, h.call(d.action), h.env());
      h.now = h.now.plus({ minutes: 1 });
      if (h.run.attempts > 0) break;
    }
    held = true;
    expect(h.drive()).toMatchObject({ status: 'skipped', reason: 'held', error: '0x80070005 access denied' });
    expect(h.started.filter((s) => s.kind === 'install')).toHaveLength(1);
  });

  it('a hold on one of its updates, placed after planning, leaves that update out of the install; on all of them, stops the run', () => {
    const h = new Harness(SPRING, { online: [true], installFails: 0, rebootsWanted: 0 });
    const partly = { ...h.env(), heldUpdates: new Set(['5034765']) };
    const check = decide(h.run, partly);
    if (check.type !== 'act') throw new Error(`expected the online check, got ${check.type}`);
    expect(check.action).toEqual({ type: 'check_online' });
    h.run = observe(check.run, check.action, { type: 'online', online: true }, partly);
    const d = decide(h.run, partly);
    expect(d).toMatchObject({ type: 'act', action: { type: 'install', updates: ['5034763'] }, run: { updates: ['5034763'] } });
    expect(decide(h.run, { ...h.env(), heldUpdates: new Set(['5034763', '5034765']) })).toMatchObject({ type: 'become', run: { status: 'skipped', reason: 'held' } });
  });

  it('a device retired before its install gets no install, and one retired after its install gets no reboot (found by the rollout model, I4)', () => {
    const h = new Harness(SPRING, { online: [true], installFails: 0, rebootsWanted: 1 });
    const check = decide(h.run, h.env());
    if (check.type !== 'act') throw new Error(`expected the online check, got ${check.type}`);
    h.run = observe(check.run, check.action, { type: 'online', online: true }, h.env());
    expect(decide(h.run, { ...h.env(), retired: true })).toMatchObject({ type: 'become', run: { status: 'skipped', reason: 'retired' } });

    const later = new Harness(SPRING, { online: [true], installFails: 0, rebootsWanted: 1 });
    for (;;) {
      const d = decide(later.run, later.env());
      if (d.type === 'wait') later.now = d.until;
      if (d.type === 'become') later.run = d.run;
      if (d.type !== 'act') continue;
      if (d.action.type === 'reboot') break;
      later.run = observe(d.run, d.action, later.call(d.action), later.env());
      later.now = later.now.plus({ minutes: 1 });
    }
    expect(later.run.step).toBe('reboot');
    expect(decide(later.run, { ...later.env(), retired: true })).toMatchObject({ type: 'become', run: { status: 'skipped', reason: 'retired' } });
    expect(later.started.filter((s) => s.kind === 'reboot')).toHaveLength(0);
  });

  it('a device that never comes back from a reboot fails the run instead of holding it forever', () => {
    const h = new Harness(FALL, { online: [true], installFails: 0, rebootsWanted: 1 });
    const call = h.call.bind(h);
    h.call = (action) => (action.type === 'poll' && action.operation.kind === 'reboot' ? { type: 'progress', state: 'running' } : call(action));
    expect(h.drive()).toMatchObject({ status: 'failed', reason: 'timeout' });
  });

  it('counts missed windows and flags at the limit', () => {
    const rolled = { ...newRun('x', []), status: 'rolled' as const };
    expect(afterRun(rolled, 1, DEFAULT_RUN_POLICY)).toEqual({ consecutiveMissed: 2, flag: false });
    expect(afterRun(rolled, 2, DEFAULT_RUN_POLICY)).toEqual({ consecutiveMissed: 3, flag: true });
    expect(afterRun({ ...rolled, status: 'succeeded' }, 2, DEFAULT_RUN_POLICY)).toEqual({ consecutiveMissed: 0, flag: false });
    // A user's deferral rolls the run on purpose: it neither counts as a miss nor flags the device.
    expect(afterRun({ ...rolled, reason: 'deferred' }, 2, DEFAULT_RUN_POLICY)).toEqual({ consecutiveMissed: 2, flag: false });
  });
});

describe('run step machine, by property', () => {
  const windows = [SPRING, FALL, windowAt('2024-06-01T07:30:00Z')];
  it('never starts an install or reboot without its budget left in the window, never repeats an operation after a crash, always ends', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...windows),
        fc.record({
          online: fc.array(fc.boolean(), { maxLength: 20 }),
          installFails: fc.integer({ min: 0, max: 4 }),
          rebootsWanted: fc.integer({ min: 0, max: 5 }),
        }),
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 1, max: 30 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 60 }), { maxLength: 6 }),
        (window, device, startOffset, stepMinutes, crashes) => {
          const h = new Harness(window, device, DEFAULT_RUN_POLICY, stepMinutes);
          h.now = window.start.plus({ minutes: startOffset - 30 });
          const run = h.drive(new Set(crashes));
          expect(['succeeded', 'failed', 'offline', 'rolled']).toContain(run.status);
          for (const s of h.started) {
            const budget = s.kind === 'install' ? DEFAULT_RUN_POLICY.installBudgetMinutes : DEFAULT_RUN_POLICY.rebootBudgetMinutes;
            expect(canStartStep(window, s.at, budget), `${s.kind} at ${s.at.toISO()}`).toBe(true);
          }
          // Each key started once (the harness records a key the first time only, so compare with calls):
          // a crash-resumed run asks again with the stored key instead of starting another operation.
          expect(h.started.filter((s) => s.kind === 'reboot').length).toBeLessThanOrEqual(DEFAULT_RUN_POLICY.maxReboots + DEFAULT_RUN_POLICY.maxAttempts);
          expect(h.started.filter((s) => s.kind === 'install').length).toBeLessThanOrEqual(DEFAULT_RUN_POLICY.maxAttempts);
          if (run.status === 'succeeded') expect(h.rebootsPending).toBe(0);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('a request lost with its worker is not sent again once its step could no longer start: no install or reboot outside the window', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 6 * 60 }), fc.integer({ min: 0, max: 3 }), (lostStep, downMinutes, rebootsWanted) => {
        const h = new Harness(FALL, { online: [true], installFails: 0, rebootsWanted });
        const run = h.drive(new Set(), new Map([[lostStep, downMinutes]]));
        for (const s of h.started) {
          const budget = s.kind === 'install' ? DEFAULT_RUN_POLICY.installBudgetMinutes : DEFAULT_RUN_POLICY.rebootBudgetMinutes;
          expect(canStartStep(FALL, s.at, budget), `${s.kind} at ${s.at.toISO()} after ${downMinutes} min down`).toBe(true);
        }
        if (run.status === 'rolled') expect(run.operation).toBeNull();
      }),
      { numRuns: 500 },
    );
  });

  it('a crash between storing the intent and hearing back resumes with the same key', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 3 }), (crashStep, rebootsWanted) => {
        const clean = new Harness(FALL, { online: [true], installFails: 0, rebootsWanted });
        clean.drive();
        const crashed = new Harness(FALL, { online: [true], installFails: 0, rebootsWanted });
        crashed.drive(new Set([crashStep]));
        // The same operations, by key, as a run that never crashed: nothing installed or rebooted twice.
        expect(crashed.started.map((s) => s.key)).toEqual(clean.started.map((s) => s.key));
      }),
    );
  });
});
