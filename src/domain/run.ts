/**
 * One run: one device in one window. online check -> install -> reboot (again while one is still pending,
 * bounded) -> verify -> record. Pure: `decide(run, env)` says what to do next, the job does it against the
 * Deployer, and `observe(run, action, outcome, env)` folds the answer back in. The job stores the run after every
 * decision and every observation, so a retried job resumes at the step it reached.
 *
 * Why the operation is stored before the device is touched: a worker can die between asking the device to
 * install (or reboot) and hearing back. The stored operation carries the idempotency key the device manager
 * was given, so the resumed job asks again with the same key and gets the same operation, not a second one.
 *
 * Safety: an install or a reboot starts only inside the window with at least its budget left (canStartStep,
 * exact on clock-change nights). A step already started finishes (a device half way through a reboot is not
 * abandoned); anything not yet started when the window runs short rolls to the device's next window.
 */
import { DateTime } from 'luxon';
import { canStartStep, type MaintenanceWindow } from './windows.ts';

export type RunStatus = 'scheduled' | 'running' | 'succeeded' | 'failed' | 'offline' | 'rolled' | 'skipped' | 'cancelled';
export type RunStep = 'online_check' | 'install' | 'reboot' | 'verify' | 'done';

export interface Operation {
  kind: 'install' | 'reboot';
  /** Given to the device manager; the same key always means the same operation. */
  key: string;
  /** The device manager's id for it, once it answered. */
  handle: string | null;
  startedAt: string;
}

export interface Run {
  id: string;
  status: RunStatus;
  step: RunStep;
  /** Updates (keys) this run installs, fixed when it was planned. */
  updates: string[];
  /** Failed attempts at the current kind of work (install or verify), for backoff and the give-up limit. */
  attempts: number;
  reboots: number;
  offlineChecks: number;
  installs: number;
  operation: Operation | null;
  /** Do nothing before this instant (backoff, or the next online check). */
  notBefore: string | null;
  error: string | null;
  /** Why it ended the way it did: `held`, `offline`, `window_short`, `window_ended`, `reboot_limit`… */
  reason: string | null;
  rolledTo: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface RunPolicy {
  installBudgetMinutes: number;
  rebootBudgetMinutes: number;
  /** Failed installs (or verifications) before the run is marked failed. */
  maxAttempts: number;
  /** Reboots in one run before giving up on a device that keeps asking for another. */
  maxReboots: number;
  /** Backoff after the n-th failure: base * 2^(n-1) minutes, capped. */
  backoffBaseMinutes: number;
  backoffMaxMinutes: number;
  offlineRecheckMinutes: number;
  /** Consecutive missed windows before engineers are told. */
  missedWindowLimit: number;
}

export const DEFAULT_RUN_POLICY: RunPolicy = {
  installBudgetMinutes: 60,
  rebootBudgetMinutes: 20,
  maxAttempts: 3,
  maxReboots: 3,
  backoffBaseMinutes: 2,
  backoffMaxMinutes: 30,
  offlineRecheckMinutes: 10,
  missedWindowLimit: 3,
};

export interface RunEnv {
  now: DateTime;
  window: MaintenanceWindow;
  /** Start of the device's next window (ISO), where a missed run rolls to. */
  nextWindowStart: string | null;
  /** A hold covers this run (its client, ring, release, or every update it carries). */
  held: boolean;
  /** Updates of this run a hold now covers: an install not yet started leaves them out. */
  heldUpdates?: ReadonlySet<string>;
  /** The device left the inventory (a re-import retired it): patchbay no longer manages it. */
  retired?: boolean;
  policy: RunPolicy;
}

export type Action =
  | { type: 'check_online' }
  | { type: 'install'; key: string; updates: string[] }
  | { type: 'reboot'; key: string }
  | { type: 'poll'; operation: Operation }
  | { type: 'verify'; updates: string[] };

export type Decision =
  /** Call the device manager, then `observe`. Store the run given here first: it records the operation. */
  | { type: 'act'; action: Action; run: Run }
  /** A change needing no device call (rolled, skipped, finished): store it. */
  | { type: 'become'; run: Run }
  | { type: 'wait'; until: DateTime }
  | { type: 'done' };

export type Outcome =
  | { type: 'online'; online: boolean }
  | { type: 'started'; handle: string }
  | { type: 'progress'; state: 'running' }
  | { type: 'succeeded'; rebootRequired: boolean }
  /** `notStarted`: it never reached the device (see the port's OperationStatus.notStarted). */
  | { type: 'failed'; error: string; notStarted?: boolean; refused?: boolean }
  | { type: 'verified'; missing: string[]; rebootPending: boolean }
  /**
   * The device manager itself did not answer (an outage, or it refused patchbay's credentials): nothing was learnt
   * of the device, and a start asked for was not sent (the port's DeployerUnavailable).
   */
  | { type: 'unavailable'; reason: string };

/**
 * A run waiting out its device manager's outage carries this reason until the manager answers again; one that the
 * outage made miss its window ends `rolled` with it. The device did nothing wrong: neither counts against it.
 */
export const PAUSED_BY_DEPLOYER = 'deployer_unavailable';

export const TERMINAL: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'offline', 'rolled', 'skipped', 'cancelled']);

export function newRun(id: string, updates: string[]): Run {
  return {
    id,
    status: 'scheduled',
    step: 'online_check',
    updates: [...updates],
    attempts: 0,
    reboots: 0,
    offlineChecks: 0,
    installs: 0,
    operation: null,
    notBefore: null,
    error: null,
    reason: null,
    rolledTo: null,
    startedAt: null,
    finishedAt: null,
  };
}

export function backoffMinutes(policy: RunPolicy, failures: number): number {
  return Math.min(policy.backoffMaxMinutes, policy.backoffBaseMinutes * 2 ** Math.max(0, failures - 1));
}

function finish(run: Run, env: RunEnv, status: RunStatus, reason: string, error: string | null = run.error): Run {
  const rolls = status === 'rolled' || status === 'offline';
  return {
    ...run,
    status,
    step: 'done',
    operation: null,
    notBefore: null,
    reason,
    error,
    rolledTo: rolls ? env.nextWindowStart : null,
    finishedAt: env.now.toUTC().toISO(),
  };
}

/** Has the device been touched yet? Before that, a hold simply stops the run. */
function untouched(run: Run): boolean {
  return run.installs === 0 && run.reboots === 0 && run.operation === null;
}

/**
 * A hold stops every install that has not started: the first, and a retry after a failed one (that is a new
 * install of the held update). Work already on the device (an install to follow, a reboot it asked for) goes on.
 */
function stoppedByHold(run: Run): boolean {
  return untouched(run) || (run.step === 'install' && run.operation === null);
}

export function decide(run: Run, env: RunEnv): Decision {
  if (TERMINAL.has(run.status) || run.step === 'done') return { type: 'done' };
  const { now, window, policy } = env;
  const nowMs = now.toMillis();

  // Work in flight is followed to its end, whatever the clock or holds say: it has started.
  if (run.operation) {
    // An outage interrupted following it: wait it out (the step goes on, so the window does not matter).
    if (run.notBefore !== null && nowMs < Date.parse(run.notBefore)) return { type: 'wait', until: DateTime.fromISO(run.notBefore, { zone: 'utc' }) };
    if (run.operation.handle === null) {
      // Died between storing the intent and hearing back: ask again with the same key, while the step could still
      // start now. The device manager may never have heard of it, and sent after its time it would install or reboot
      // outside the window (the process was down past the step's budget): the device waits for its next window.
      const budget = run.operation.kind === 'install' ? policy.installBudgetMinutes : policy.rebootBudgetMinutes;
      if (!canStartStep(window, now, budget)) return { type: 'become', run: finish(run, env, 'rolled', nowMs >= window.end.toMillis() ? 'window_ended' : 'window_short') };
      const action: Action =
        run.operation.kind === 'install' ? { type: 'install', key: run.operation.key, updates: run.updates } : { type: 'reboot', key: run.operation.key };
      return { type: 'act', action, run };
    }
    return { type: 'act', action: { type: 'poll', operation: run.operation }, run };
  }

  // Nothing new starts on a machine that left the inventory: not its install, and not the reboot an install
  // already on it asked for (the engineers removed it; it is no longer ours to restart).
  if (env.retired) return { type: 'become', run: finish(run, env, 'skipped', 'retired') };
  if (env.held && stoppedByHold(run)) return { type: 'become', run: finish(run, env, 'skipped', 'held') };
  if (nowMs < window.start.toMillis()) return { type: 'wait', until: window.start };
  if (run.notBefore !== null && nowMs < Date.parse(run.notBefore)) {
    const until = DateTime.fromISO(run.notBefore, { zone: 'utc' });
    // A wait that outlasts the window is a miss now, not later.
    if (until.toMillis() >= window.end.toMillis()) return { type: 'become', run: missed(run, env) };
    return { type: 'wait', until };
  }
  if (nowMs >= window.end.toMillis()) return { type: 'become', run: missed(run, env) };

  const started = run.startedAt ?? now.toUTC().toISO();
  switch (run.step) {
    case 'online_check':
      return { type: 'act', action: { type: 'check_online' }, run: { ...run, notBefore: null } };
    case 'install': {
      if (run.updates.length === 0) return { type: 'become', run: { ...run, step: 'verify', notBefore: null } };
      // A hold on some of its updates, placed after the run was planned, drops them from the install.
      const updates = env.heldUpdates?.size ? run.updates.filter((key) => !env.heldUpdates!.has(key)) : run.updates;
      if (updates.length === 0) return { type: 'become', run: finish(run, env, 'skipped', 'held') };
      if (!canStartStep(window, now, policy.installBudgetMinutes)) return { type: 'become', run: finish(run, env, 'rolled', rollReason(run, 'window_short')) };
      const key = `${run.id}-install-${run.installs + 1}`;
      const operation: Operation = { kind: 'install', key, handle: null, startedAt: now.toUTC().toISO()! };
      return {
        type: 'act',
        action: { type: 'install', key, updates },
        run: { ...run, updates, status: 'running', startedAt: started, operation, installs: run.installs + 1, notBefore: null },
      };
    }
    case 'reboot': {
      if (run.reboots >= policy.maxReboots) {
        return { type: 'become', run: finish(run, env, 'failed', 'reboot_limit', `still asks for a reboot after ${run.reboots} reboots`) };
      }
      if (!canStartStep(window, now, policy.rebootBudgetMinutes)) return { type: 'become', run: finish(run, env, 'rolled', rollReason(run, 'window_short')) };
      const key = `${run.id}-reboot-${run.reboots + 1}-${run.attempts}`;
      const operation: Operation = { kind: 'reboot', key, handle: null, startedAt: now.toUTC().toISO()! };
      return { type: 'act', action: { type: 'reboot', key }, run: { ...run, status: 'running', startedAt: started, operation, notBefore: null } };
    }
    case 'verify':
      return { type: 'act', action: { type: 'verify', updates: run.updates }, run: { ...run, notBefore: null } };
  }
}

/** Offline, or out of time with work left: the device tries again in its next window. */
function missed(run: Run, env: RunEnv): Run {
  if (run.reason === PAUSED_BY_DEPLOYER) return finish(run, env, 'rolled', PAUSED_BY_DEPLOYER);
  if (run.step === 'online_check' && run.offlineChecks > 0) return finish(run, env, 'offline', 'offline');
  return finish(run, env, 'rolled', 'window_ended');
}

/** A run the device manager's outage left short of time rolls for that reason, not the window's. */
function rollReason(run: Run, reason: string): string {
  return run.reason === PAUSED_BY_DEPLOYER ? PAUSED_BY_DEPLOYER : reason;
}

/**
 * The device manager did not answer: pause, never fail. Nothing is counted against the device; the run asks
 * again after the offline recheck interval, inside its window, or rolls to the next one as an offline device
 * does. Work already on the device stays followed (its operation is kept); a start the manager never heard of is
 * dropped, so the step is decided again (window budget, holds) when it answers.
 */
function paused(run: Run, action: Action, env: RunEnv): Run {
  const notBefore = env.now.plus({ minutes: env.policy.offlineRecheckMinutes }).toUTC().toISO();
  const unsent = (action.type === 'install' || action.type === 'reboot') && run.operation?.handle === null;
  return { ...run, notBefore, reason: PAUSED_BY_DEPLOYER, ...(unsent ? { operation: null } : {}) };
}

/**
 * Back from an outage: the run is no longer paused, and an operation in flight gets its budget again from now (it
 * may have finished long ago; the outage only hid it).
 */
function resumed(run: Run, env: RunEnv): Run {
  if (run.reason !== PAUSED_BY_DEPLOYER) return run;
  const operation = run.operation ? { ...run.operation, startedAt: env.now.toUTC().toISO()! } : null;
  return { ...run, reason: null, operation };
}

function failure(run: Run, env: RunEnv, error: string, retryStep: RunStep): Run {
  const attempts = run.attempts + 1;
  if (attempts >= env.policy.maxAttempts) return { ...finish(run, env, 'failed', 'failed', error), attempts };
  const notBefore = env.now.plus({ minutes: backoffMinutes(env.policy, attempts) }).toUTC().toISO();
  return { ...run, attempts, error, operation: null, step: retryStep, notBefore };
}

/**
 * An install that never reached the device did nothing: not a failed attempt. The run goes back to checking the
 * device is online (as if it had been found offline), so it retries inside the window and otherwise rolls. The
 * next install gets a new key (`installs` counted this one). Reboots are not treated so: a reboot not confirmed
 * may have happened, and its key must change with each retry (attempts), so it stays a counted failure.
 */
function notStarted(run: Run, env: RunEnv, error: string): Run {
  const notBefore = env.now.plus({ minutes: env.policy.offlineRecheckMinutes }).toUTC().toISO();
  return { ...run, operation: null, step: 'online_check', error, notBefore };
}

export function observe(run: Run, action: Action, outcome: Outcome, env: RunEnv): Run {
  if (outcome.type === 'unavailable') return paused(run, action, env);
  return observeAnswer(resumed(run, env), action, outcome, env);
}

function observeAnswer(run: Run, action: Action, outcome: Outcome, env: RunEnv): Run {
  switch (action.type) {
    case 'check_online': {
      if (outcome.type !== 'online') throw new TypeError(`check_online answered ${outcome.type}`);
      if (outcome.online) return { ...run, step: 'install', status: 'running', startedAt: run.startedAt ?? env.now.toUTC().toISO() };
      const notBefore = env.now.plus({ minutes: env.policy.offlineRecheckMinutes }).toUTC().toISO();
      return { ...run, offlineChecks: run.offlineChecks + 1, notBefore };
    }
    case 'install':
    case 'reboot': {
      const operation = run.operation;
      if (!operation) throw new TypeError('an operation was started without being recorded first');
      if (outcome.type === 'started') return { ...run, operation: { ...operation, handle: outcome.handle } };
      // The manager refuses to act on this device (its own policy would act outside the window): nothing was done,
      // and asking again will not help until someone changes it. Not a failure of the update on the device.
      if (outcome.type === 'failed' && outcome.refused) return finish(run, env, 'skipped', 'refused', outcome.error);
      if (outcome.type === 'failed' && outcome.notStarted && operation.kind === 'install') return notStarted(run, env, outcome.error);
      if (outcome.type === 'failed') return operation.kind === 'install' ? failure(run, env, outcome.error, 'install') : failure(run, env, outcome.error, 'reboot');
      // Some managers finish at once and answer with the result instead of a handle.
      return completed(run, operation, outcome);
    }
    case 'poll': {
      const operation = run.operation;
      if (!operation) return run;
      if (outcome.type === 'progress') {
        // A device that never finishes (or never comes back from a reboot) must not hold the run forever.
        const budget = operation.kind === 'install' ? env.policy.installBudgetMinutes : env.policy.rebootBudgetMinutes;
        const elapsedMinutes = (env.now.toMillis() - Date.parse(operation.startedAt)) / 60_000;
        if (elapsedMinutes <= budget * 2) return run;
        const error = operation.kind === 'reboot' ? `did not come back within ${budget * 2} minutes of a reboot` : `install still running after ${budget * 2} minutes`;
        return finish({ ...run, attempts: run.attempts + 1 }, env, 'failed', 'timeout', error);
      }
      if (outcome.type === 'failed' && outcome.refused) return finish(run, env, 'skipped', 'refused', outcome.error);
      if (outcome.type === 'failed' && outcome.notStarted && operation.kind === 'install') return notStarted(run, env, outcome.error);
      if (outcome.type === 'failed') return failure(run, env, outcome.error, operation.kind);
      return completed(run, operation, outcome);
    }
    case 'verify': {
      if (outcome.type !== 'verified') throw new TypeError(`verify answered ${outcome.type}`);
      if (outcome.rebootPending) return { ...run, step: 'reboot' };
      if (outcome.missing.length > 0) return failure(run, env, `not installed after install: ${outcome.missing.join(', ')}`, 'install');
      return finish({ ...run, error: null }, env, 'succeeded', 'verified');
    }
  }
}

function completed(run: Run, operation: Operation, outcome: Outcome): Run {
  if (operation.kind === 'install') {
    const rebootRequired = outcome.type === 'succeeded' && outcome.rebootRequired;
    return { ...run, operation: null, step: rebootRequired ? 'reboot' : 'verify' };
  }
  return { ...run, operation: null, reboots: run.reboots + 1, step: 'verify' };
}

/** A device's missed-window count after a run ends, and whether engineers must now be told. */
export function afterRun(run: Run, consecutiveMissed: number, policy: RunPolicy): { consecutiveMissed: number; flag: boolean } {
  // A user who deferred their machine asked for the next window: that is a plan, not a missed window.
  if (run.reason === 'deferred') return { consecutiveMissed, flag: false };
  // Rolled because the device manager was down: the device was not missing, patchbay could not reach it.
  if (run.reason === PAUSED_BY_DEPLOYER) return { consecutiveMissed, flag: false };
  if (run.status === 'offline' || run.status === 'rolled') {
    const count = consecutiveMissed + 1;
    return { consecutiveMissed: count, flag: count >= policy.missedWindowLimit };
  }
  if (run.status === 'succeeded') return { consecutiveMissed: 0, flag: false };
  return { consecutiveMissed, flag: false };
}
