/**
 * The run step machine when the device manager itself is down (src/domain/run.ts `unavailable`): a run pauses,
 * never fails and never counts an attempt or a missed window against the device; inside its window it carries on
 * when the manager answers, else it rolls. And a device the manager refuses to act on is left alone, not failed.
 */
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { afterRun, decide, DEFAULT_RUN_POLICY, newRun, observe, PAUSED_BY_DEPLOYER, type Action, type Outcome, type Run, type RunEnv } from '../../src/domain/run.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { canStartStep, windowContaining, type MaintenanceWindow } from '../../src/domain/windows.ts';

const rule = (() => {
  const parsed = parseWindowSpec('daily 01:00-05:00');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
})();
const WINDOW = windowContaining(rule, 'America/Chicago', DateTime.fromISO('2024-06-01T07:30:00Z', { zone: 'utc' }))!;
const NEXT = '2099-01-01T07:00:00.000Z';

/** A device that installs and reboots fine, behind a manager that is down during `outages` (minutes from the window's start). */
class OutageHarness {
  run: Run = newRun('r1', ['5034763']);
  now: DateTime;
  readonly started: Array<{ kind: 'install' | 'reboot'; key: string; at: DateTime }> = [];
  /** Every key the manager heard of, with the polls left before it finishes. */
  private readonly ops = new Map<string, number>();
  private installed = false;
  private rebootPending = false;
  constructor(
    readonly window: MaintenanceWindow,
    readonly outages: ReadonlyArray<readonly [number, number]>,
    readonly refuses = false,
  ) {
    this.now = window.start;
  }
  private down(): boolean {
    const minute = this.now.diff(this.window.start, 'minutes').minutes;
    return this.outages.some(([from, to]) => minute >= from && minute < to);
  }
  env(): RunEnv {
    return { now: this.now, window: this.window, nextWindowStart: NEXT, held: false, policy: DEFAULT_RUN_POLICY };
  }
  call(action: Action): Outcome {
    // Down: nothing is read, and a start is not sent (the port's DeployerUnavailable promise).
    if (this.down()) return { type: 'unavailable', reason: 'HTTP 503' };
    switch (action.type) {
      case 'check_online':
        return { type: 'online', online: true };
      case 'install':
      case 'reboot':
        if (action.type === 'install' && this.refuses) return { type: 'failed', error: 'refused: its effective patch policy has reboot_after_install: always', refused: true };
        if (!this.ops.has(action.key)) {
          this.started.push({ kind: action.type, key: action.key, at: this.now });
          this.ops.set(action.key, 2);
        }
        return { type: 'started', handle: action.key };
      case 'poll': {
        const left = this.ops.get(action.operation.handle!)!;
        this.ops.set(action.operation.handle!, left - 1);
        if (left > 0) return { type: 'progress', state: 'running' };
        if (action.operation.kind === 'install') {
          this.installed = true;
          this.rebootPending = true;
          return { type: 'succeeded', rebootRequired: true };
        }
        this.rebootPending = false;
        return { type: 'succeeded', rebootRequired: false };
      }
      case 'verify':
        return { type: 'verified', missing: this.installed ? [] : action.updates, rebootPending: this.rebootPending };
    }
  }
  drive(stepMinutes = 5): Run {
    for (let i = 0; i < 10_000; i++) {
      const decision = decide(this.run, this.env());
      if (decision.type === 'done') return this.run;
      if (decision.type === 'become') this.run = decision.run;
      else if (decision.type === 'wait') this.now = decision.until > this.now ? decision.until : this.now.plus({ minutes: 1 });
      else {
        this.run = decision.run;
        this.run = observe(this.run, decision.action, this.call(decision.action), this.env());
        this.now = this.now.plus({ minutes: stepMinutes });
      }
    }
    throw new Error('run did not finish');
  }
}

describe('a device manager outage pauses runs, never fails them', () => {
  it('down while an install runs: the run waits, follows the same install when it answers, and succeeds with no attempt counted', () => {
    const h = new OutageHarness(WINDOW, [[12, 100]]);
    const run = h.drive();
    expect(run).toMatchObject({ status: 'succeeded', attempts: 0, error: null, reason: 'verified' });
    expect(h.started.map((s) => s.key)).toEqual(['r1-install-1', 'r1-reboot-1-0']);
    // Nothing was asked of the device while the manager was down.
    expect(h.started.every((s) => s.at.diff(WINDOW.start, 'minutes').minutes >= 100 || s.kind === 'install')).toBe(true);
  });

  it('down for the whole window: rolled to the next window for that reason, nothing started, not a missed window', () => {
    const h = new OutageHarness(WINDOW, [[0, 24 * 60]]);
    const run = h.drive();
    expect(run).toMatchObject({ status: 'rolled', reason: PAUSED_BY_DEPLOYER, rolledTo: NEXT, attempts: 0 });
    expect(h.started).toEqual([]);
    expect(afterRun(run, 2, DEFAULT_RUN_POLICY)).toEqual({ consecutiveMissed: 2, flag: false });
  });

  it('a start refused by the outage is dropped, and decided again (with the window budget) when the manager answers', () => {
    const h = new OutageHarness(WINDOW, [[4, 150]]);
    const run = h.drive();
    // Back at 2h30 into the 4-hour window: 90 minutes left, so the install (60) starts, then its reboot (20).
    expect(run).toMatchObject({ status: 'succeeded', attempts: 0 });
    expect(h.started.map((s) => s.kind)).toEqual(['install', 'reboot']);
    for (const s of h.started) expect(s.at.diff(WINDOW.start, 'minutes').minutes).toBeGreaterThanOrEqual(150);

    // Back with 50 minutes left: no install starts; the run rolls, for the outage's sake.
    const late = new OutageHarness(WINDOW, [[4, 190]]);
    expect(late.drive()).toMatchObject({ status: 'rolled', reason: PAUSED_BY_DEPLOYER, attempts: 0 });
    expect(late.started).toEqual([]);
  });

  it('by property: whatever the outages, no run fails or counts an attempt, every start fits its window, and an outage roll is never a miss', () => {
    const outage = fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 300 })).map(([from, length]) => [from, from + length] as const);
    fc.assert(
      fc.property(fc.array(outage, { maxLength: 4 }), fc.integer({ min: 1, max: 20 }), (outages, stepMinutes) => {
        const h = new OutageHarness(WINDOW, outages);
        const run = h.drive(stepMinutes);
        expect(['succeeded', 'rolled']).toContain(run.status);
        expect(run.attempts).toBe(0);
        for (const s of h.started) {
          const budget = s.kind === 'install' ? DEFAULT_RUN_POLICY.installBudgetMinutes : DEFAULT_RUN_POLICY.rebootBudgetMinutes;
          expect(canStartStep(WINDOW, s.at, budget), `${s.kind} at ${s.at.toISO()}`).toBe(true);
        }
        expect(new Set(h.started.map((s) => s.key)).size).toBe(h.started.length);
        if (run.reason === PAUSED_BY_DEPLOYER) expect(afterRun(run, 1, DEFAULT_RUN_POLICY)).toEqual({ consecutiveMissed: 1, flag: false });
        if (outages.length === 0) expect(run.status).toBe('succeeded');
      }),
      { numRuns: 800 },
    );
  });
});

describe('a device its manager would act on by itself', () => {
  it('is left alone: the run ends skipped (refused) with the reason, no install, no attempt, no missed window', () => {
    const h = new OutageHarness(WINDOW, [], true);
    const run = h.drive();
    expect(run).toMatchObject({ status: 'skipped', reason: 'refused', attempts: 0, error: expect.stringMatching(/^refused: .*reboot_after_install/) });
    expect(h.started).toEqual([]);
    expect(afterRun(run, 1, DEFAULT_RUN_POLICY)).toEqual({ consecutiveMissed: 1, flag: false });
  });
});
