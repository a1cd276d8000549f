/**
 * A simulated fleet behind the Deployer port, for tests, benchmarks and the local demo. Seeded: every random
 * choice is a hash of (seed, device, what is decided), so the same fleet answers the same way whatever order the
 * calls come in, and after a restart.
 *
 * Per device or fleet-wide: latency of each call (real time), how long operations take (on the fleet's clock, so
 * a test's controlled clock drives it), install failure rate, offline rate, reboot-twice rate, and devices that
 * never come back from a reboot.
 *
 * It records every install and reboot it actually started, per device, with the clock's instant, so a test can
 * assert "no second reboot" and "nothing outside a window". With `ledgerPath` the record is also appended to a
 * file as it happens (one JSON line each) and replayed on construction: a worker process killed and restarted
 * sees the operations it had started, and a test in another process can read what every worker did.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { Deployer, DeviceRef, OperationStatus, UpdateRef, Verification } from './port.ts';

export interface SimulatedBehaviour {
  /** Real milliseconds each call takes. */
  latencyMs: number;
  /** Clock milliseconds an install or a reboot takes to finish. */
  operationMs: number;
  installFailureRate: number;
  offlineRate: number;
  rebootTwiceRate: number;
  /** The device goes down on its first reboot and is never heard from again. */
  neverComesBack: boolean;
}

export const DEFAULT_BEHAVIOUR: SimulatedBehaviour = {
  latencyMs: 0,
  operationMs: 0,
  installFailureRate: 0,
  offlineRate: 0,
  rebootTwiceRate: 0,
  neverComesBack: false,
};

export interface SimulatedFleetOptions {
  seed?: number;
  fleet?: Partial<SimulatedBehaviour>;
  /** By device name. */
  devices?: Record<string, Partial<SimulatedBehaviour>>;
  clock?: () => Date;
  ledgerPath?: string;
  /** Written into each ledger line, so a test can tell which process did what. */
  worker?: string;
}

export interface LedgerEntry {
  kind: 'install' | 'reboot';
  device: string;
  key: string;
  at: string;
  worker: string;
  /** For installs: how many reboots the device will want afterwards (0 when it will fail). */
  rebootsWanted?: number;
  fails?: boolean;
  updates?: string[];
}

interface Operation extends LedgerEntry {
  handle: string;
  doneAtMs: number;
}

interface DeviceState {
  installed: Set<string>;
  rebootsPending: number;
  gone: boolean;
}

const INSTALL_ERRORS = ['0x80070643 Fatal error during installation', '0x800f0922 CBS servicing failed', '0x80240017 Update not applicable'];

export class SimulatedFleet implements Deployer {
  readonly name = 'simulated';
  private readonly seed: number;
  private readonly fleet: SimulatedBehaviour;
  private readonly perDevice: Record<string, Partial<SimulatedBehaviour>>;
  private readonly clock: () => Date;
  private readonly ledgerPath: string | undefined;
  private readonly worker: string;
  private readonly operations = new Map<string, Operation>();
  private readonly devices = new Map<string, DeviceState>();
  private readonly offlineOverride = new Map<string, boolean>();
  /** Every operation started, in order. */
  readonly ledger: LedgerEntry[] = [];
  /** Every call made, including repeats with a known key (those start nothing). */
  calls = 0;

  constructor(options: SimulatedFleetOptions = {}) {
    this.seed = options.seed ?? 1;
    this.fleet = { ...DEFAULT_BEHAVIOUR, ...options.fleet };
    this.perDevice = options.devices ?? {};
    this.clock = options.clock ?? (() => new Date());
    this.ledgerPath = options.ledgerPath;
    this.worker = options.worker ?? String(process.pid);
    if (this.ledgerPath && existsSync(this.ledgerPath)) {
      for (const line of readFileSync(this.ledgerPath, 'utf8').split('\n')) {
        if (line.trim() !== '') this.apply(JSON.parse(line) as LedgerEntry, false);
      }
    }
  }

  behaviour(device: string): SimulatedBehaviour {
    return { ...this.fleet, ...this.perDevice[device] };
  }

  /** Takes a device off the network (or brings it back), whatever its offline rate says. */
  setOnline(device: string, online: boolean): void {
    this.offlineOverride.set(device, online);
  }

  installsOf(device: string): LedgerEntry[] {
    return this.ledger.filter((e) => e.device === device && e.kind === 'install');
  }

  rebootsOf(device: string): LedgerEntry[] {
    return this.ledger.filter((e) => e.device === device && e.kind === 'reboot');
  }

  /** A number in [0, 1) fixed by the seed and the words given. */
  private draw(...words: string[]): number {
    const digest = createHash('sha256').update(`${this.seed}\0${words.join('\0')}`).digest();
    return digest.readUInt32BE(0) / 2 ** 32;
  }

  private state(device: string): DeviceState {
    let state = this.devices.get(device);
    if (!state) {
      state = { installed: new Set(), rebootsPending: 0, gone: false };
      this.devices.set(device, state);
    }
    return state;
  }

  private async latency(device: string): Promise<void> {
    this.calls++;
    const ms = this.behaviour(device).latencyMs;
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  }

  private apply(entry: LedgerEntry, write: boolean): Operation {
    const operation: Operation = {
      ...entry,
      handle: entry.key,
      doneAtMs: Date.parse(entry.at) + this.behaviour(entry.device).operationMs,
    };
    this.operations.set(entry.key, operation);
    this.ledger.push(entry);
    const state = this.state(entry.device);
    if (entry.kind === 'install' && !entry.fails) {
      for (const update of entry.updates ?? []) state.installed.add(update);
      state.rebootsPending = Math.max(state.rebootsPending, entry.rebootsWanted ?? 0);
    }
    if (entry.kind === 'reboot') {
      if (this.behaviour(entry.device).neverComesBack) state.gone = true;
      else state.rebootsPending = Math.max(0, state.rebootsPending - 1);
    }
    // appendFileSync: the line is in the kernel before the call returns, so a SIGKILL right after loses nothing.
    if (write && this.ledgerPath) appendFileSync(this.ledgerPath, `${JSON.stringify(entry)}\n`);
    return operation;
  }

  private statusOf(operation: Operation): OperationStatus {
    const behaviour = this.behaviour(operation.device);
    if (operation.kind === 'reboot' && behaviour.neverComesBack) return { handle: operation.handle, state: 'running' };
    if (this.clock().getTime() < operation.doneAtMs) return { handle: operation.handle, state: 'running' };
    if (operation.fails) return { handle: operation.handle, state: 'failed', error: INSTALL_ERRORS[Math.floor(this.draw('error', operation.key) * INSTALL_ERRORS.length)]! };
    if (operation.kind === 'install') return { handle: operation.handle, state: 'succeeded', rebootRequired: (operation.rebootsWanted ?? 0) > 0 };
    return { handle: operation.handle, state: 'succeeded' };
  }

  async isOnline(device: DeviceRef): Promise<boolean> {
    await this.latency(device.name);
    if (this.state(device.name).gone) return false;
    const override = this.offlineOverride.get(device.name);
    if (override !== undefined) return override;
    // Drawn per device per day: a machine off tonight may well be on tomorrow night.
    return this.draw('offline', device.name, this.clock().toISOString().slice(0, 10)) >= this.behaviour(device.name).offlineRate;
  }

  async install(device: DeviceRef, updates: readonly UpdateRef[], idempotencyKey: string): Promise<OperationStatus> {
    await this.latency(device.name);
    const known = this.operations.get(idempotencyKey);
    if (known) return this.statusOf(known);
    const behaviour = this.behaviour(device.name);
    const fails = this.draw('install', idempotencyKey) < behaviour.installFailureRate;
    const needsRestart = updates.some((u) => u.restartRequired !== 'No');
    const rebootsWanted = fails || !needsRestart ? 0 : this.draw('reboot-twice', device.name) < behaviour.rebootTwiceRate ? 2 : 1;
    const entry: LedgerEntry = {
      kind: 'install',
      device: device.name,
      key: idempotencyKey,
      at: this.clock().toISOString(),
      worker: this.worker,
      rebootsWanted,
      fails,
      updates: updates.map((u) => u.key),
    };
    return this.statusOf(this.apply(entry, true));
  }

  async reboot(device: DeviceRef, idempotencyKey: string): Promise<OperationStatus> {
    await this.latency(device.name);
    const known = this.operations.get(idempotencyKey);
    if (known) return this.statusOf(known);
    const entry: LedgerEntry = { kind: 'reboot', device: device.name, key: idempotencyKey, at: this.clock().toISOString(), worker: this.worker };
    return this.statusOf(this.apply(entry, true));
  }

  async status(device: DeviceRef, handle: string): Promise<OperationStatus> {
    await this.latency(device.name);
    const operation = this.operations.get(handle);
    if (!operation) return { handle, state: 'failed', error: `no operation ${handle}` };
    return this.statusOf(operation);
  }

  async verify(device: DeviceRef, updates: readonly UpdateRef[]): Promise<Verification> {
    await this.latency(device.name);
    const state = this.state(device.name);
    return { missing: updates.map((u) => u.key).filter((key) => !state.installed.has(key)), rebootPending: state.rebootsPending > 0 };
  }
}

/** Reads a ledger file another process wrote. */
export function readLedger(path: string): LedgerEntry[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as LedgerEntry);
}
