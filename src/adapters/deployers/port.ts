/**
 * The Deployer port: what patchbay asks of whatever manages the devices. Shaped for the two families it must fit:
 *
 * - a REST RMM (Tactical RMM, NinjaOne): "run Windows updates now / reboot now" on an agent, answered with a job
 *   or activity id that is then polled; devices report online status and installed KBs;
 * - Microsoft Graph's Windows Update deployment service: a deployment of catalog content to an audience of
 *   Entra devices, answered with a deployment id; its per-device state is read back later; restart behaviour is
 *   part of the deployment's settings.
 *
 * Both are asynchronous, so `install` and `reboot` start an operation and return its handle (or, for a manager
 * that finishes at once, its result); `status` polls it. Neither family offers request idempotency, so the port
 * takes an idempotency key per run step and an adapter must keep the key -> operation mapping itself (an RMM
 * adapter in Postgres, keyed like runs are): asking twice with one key returns the first operation, never a
 * second install or reboot. That is what lets a job killed mid-step simply ask again.
 */
import type { Outcome } from '../../domain/run.ts';

export interface DeviceRef {
  id: number;
  /** Device managers address machines by name (the inventory's name). */
  name: string;
  os?: string | undefined;
}

export interface UpdateRef {
  /** The release model's update id: the KB number, or a slug for a fix without one. */
  key: string;
  kb?: string | undefined;
  /** MSRC's `Yes` / `No` / `Maybe` / `unknown`: whether the device will want a restart. */
  restartRequired?: string | undefined;
  /**
   * KBs of later updates that replace this one (MSRC's supersedence, from the release model): a device manager
   * that stops listing a superseded update (Tactical deletes its row) counts it installed when one of these is.
   */
  supersededBy?: readonly string[] | undefined;
}

export type OperationState = 'queued' | 'running' | 'succeeded' | 'failed';

export interface OperationStatus {
  /** The manager's id for the operation (job, activity, deployment). */
  handle: string;
  state: OperationState;
  /** For an install that finished: the device now wants a restart. */
  rebootRequired?: boolean;
  /** The device's own error text when it failed, e.g. `0x80070643 Fatal error during installation`. */
  error?: string;
  /**
   * With `failed`: the operation never reached the device, so nothing was done (an RMM that loses commands to
   * offline agents, and only says so by silence). The run treats it like finding the device offline: it tries
   * again inside the window, else rolls to the next, instead of counting a failed install.
   */
  notStarted?: boolean;
  /**
   * With `failed`: the manager's own settings for this device would act outside patchbay's windows (Tactical's
   * patch policy auto-approving, auto-installing or auto-rebooting), so the adapter refused to touch it. Nothing
   * was done; asking again does not help until an engineer changes those settings.
   */
  refused?: boolean;
}

/**
 * Thrown by any Deployer call when the device manager itself cannot be used: it does not answer (timeouts, 5xx
 * beyond the adapter's retries) or refuses patchbay's credentials (401/403). It says nothing about the device, so
 * a run pauses instead of failing (src/domain/run.ts). From `install` and `reboot` it also promises that nothing
 * was sent under that key (an adapter that may have sent it answers `running` and lets `status` tell).
 *
 * Its text is what the engineers read: the manager, its host and what it answered; never a URL's path, query or
 * credentials.
 */
export class DeployerUnavailable extends Error {
  constructor(
    /** The manager as people call it: `Tactical RMM`. */
    readonly manager: string,
    /** Where it runs, host (and port) only: `rmm.example.com`. */
    readonly host: string,
    /** What it answered: `HTTP 503`, `no answer within 30000 ms`, `HTTP 401: the API key was refused`. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${manager} at ${host} is unavailable (${reason})`, options);
    this.name = 'DeployerUnavailable';
  }
}

export interface Verification {
  /** Update keys the device does not report as installed. */
  missing: string[];
  rebootPending: boolean;
}

export interface Deployer {
  readonly name: string;
  isOnline(device: DeviceRef): Promise<boolean>;
  /** Starts installing; the same key returns the same operation. */
  install(device: DeviceRef, updates: readonly UpdateRef[], idempotencyKey: string): Promise<OperationStatus>;
  /** Starts a reboot; the same key returns the same operation (never a second reboot). */
  reboot(device: DeviceRef, idempotencyKey: string): Promise<OperationStatus>;
  status(device: DeviceRef, handle: string): Promise<OperationStatus>;
  verify(device: DeviceRef, updates: readonly UpdateRef[]): Promise<Verification>;
}

/** An operation's status as the run step machine reads it. */
export function toOutcome(status: OperationStatus, justStarted: boolean): Outcome {
  switch (status.state) {
    case 'queued':
    case 'running':
      return justStarted ? { type: 'started', handle: status.handle } : { type: 'progress', state: 'running' };
    case 'succeeded':
      return { type: 'succeeded', rebootRequired: status.rebootRequired ?? false };
    case 'failed':
      return {
        type: 'failed',
        error: status.error ?? 'failed without an error message',
        ...(status.notStarted ? { notStarted: true } : {}),
        ...(status.refused ? { refused: true } : {}),
      };
  }
}
