/**
 * The Deployer contract: what every implementation behind src/adapters/deployers/port.ts must do, whatever
 * manages the devices. The run step machine (src/domain/run.ts) relies on each clause:
 *
 * - one idempotency key is one operation: asking again (also from a new adapter instance on the same storage, as
 *   a restarted worker does) returns it and starts no second install or reboot on the device;
 * - an operation is polled with `status` until it reaches a terminal state, and an install that leaves the device
 *   wanting a restart says so (`rebootRequired`);
 * - `verify` lists what is missing and whether a reboot is pending;
 * - an offline device answers `isOnline` false;
 * - a failure carries an error text.
 *
 * The harness gives each implementation's own truth (what the device side really started), so the clauses are
 * checked against the fleet, not against the adapter's own word.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Deployer, DeviceRef, OperationStatus, UpdateRef } from '../../src/adapters/deployers/port.ts';

export interface DeviceSetup {
  /** Updates the device is offered (and not yet installed). */
  updates: readonly UpdateRef[];
  online?: boolean;
  /** Every install on this device fails. */
  failsInstall?: boolean;
}

export interface DeployerHarness {
  /** An adapter instance; `restart` gives a new one on the same storage and the same fleet. */
  deployer: Deployer;
  restart(): Promise<Deployer>;
  /** Declares a device and what it is offered; answers the reference the port takes. */
  addDevice(name: string, setup: DeviceSetup): Promise<DeviceRef>;
  setOnline(name: string, online: boolean): Promise<void>;
  /** Moves the fleet's clock on (operations take clock time). */
  advance(ms: number): Promise<void>;
  /** The fleet's own record of what it started on the device. */
  installsStarted(name: string): Promise<number>;
  rebootsStarted(name: string): Promise<number>;
  close(): Promise<void>;
}

const MINUTE = 60_000;
const TERMINAL = new Set(['succeeded', 'failed']);

/** Polls as the run job does, a minute of fleet time apart, until the operation ends (or an hour passes). */
export async function settle(h: DeployerHarness, deployer: Deployer, device: DeviceRef, first: OperationStatus): Promise<OperationStatus> {
  let status = first;
  for (let i = 0; i < 60 && !TERMINAL.has(status.state); i++) {
    await h.advance(MINUTE);
    status = await deployer.status(device, first.handle);
  }
  return status;
}

const needsRestart: UpdateRef[] = [
  { key: '5034763', kb: '5034763', restartRequired: 'Yes' },
  { key: '5034439', kb: '5034439', restartRequired: 'Yes' },
];
const noRestart: UpdateRef[] = [{ key: '5034582', kb: '5034582', restartRequired: 'No' }];

export function describeDeployer(name: string, factory: () => Promise<DeployerHarness>): void {
  describe(`Deployer contract: ${name}`, () => {
    let h: DeployerHarness;
    const open = async () => {
      h = await factory();
      return h;
    };
    afterEach(async () => {
      await h?.close();
    });

    it('one key is one install: asked again, and from a restarted adapter, it answers the same operation', async () => {
      await open();
      const pc = await h.addDevice('PC-IDEM', { updates: needsRestart });
      const first = await h.deployer.install(pc, needsRestart, 'run-1-install-1');
      const again = await h.deployer.install(pc, needsRestart, 'run-1-install-1');
      expect(again.handle).toBe(first.handle);
      await h.advance(MINUTE);
      const restarted = await h.restart();
      const afterRestart = await restarted.install(pc, needsRestart, 'run-1-install-1');
      expect(afterRestart.handle).toBe(first.handle);
      const done = await settle(h, restarted, pc, afterRestart);
      expect(done.state).toBe('succeeded');
      // Asked once more after it finished: still the same operation, still one install on the device.
      expect((await restarted.install(pc, needsRestart, 'run-1-install-1')).state).toBe('succeeded');
      expect(await h.installsStarted('PC-IDEM')).toBe(1);
    });

    it('one key is one reboot, also across a restart; the reboot is polled to success', async () => {
      await open();
      const pc = await h.addDevice('PC-REBOOT', { updates: needsRestart });
      const install = await settle(h, h.deployer, pc, await h.deployer.install(pc, needsRestart, 'r-install-1'));
      expect(install).toMatchObject({ state: 'succeeded', rebootRequired: true });
      const first = await h.deployer.reboot(pc, 'r-reboot-1-0');
      expect((await h.deployer.reboot(pc, 'r-reboot-1-0')).handle).toBe(first.handle);
      const restarted = await h.restart();
      expect((await restarted.reboot(pc, 'r-reboot-1-0')).handle).toBe(first.handle);
      const done = await settle(h, restarted, pc, first);
      expect(done.state).toBe('succeeded');
      expect((await restarted.reboot(pc, 'r-reboot-1-0')).state).toBe('succeeded');
      expect(await h.rebootsStarted('PC-REBOOT')).toBe(1);
    });

    it('status polls an install to a terminal state; an update needing no restart leaves rebootRequired false', async () => {
      await open();
      const pc = await h.addDevice('PC-NORESTART', { updates: noRestart });
      const started = await h.deployer.install(pc, noRestart, 'n-install-1');
      expect(['queued', 'running', 'succeeded']).toContain(started.state);
      const done = await settle(h, h.deployer, pc, started);
      expect(done).toMatchObject({ handle: started.handle, state: 'succeeded' });
      expect(done.rebootRequired ?? false).toBe(false);
      expect(await h.deployer.verify(pc, noRestart)).toEqual({ missing: [], rebootPending: false });
    });

    it('verify: everything missing before the install, a reboot pending after it, nothing after the reboot', async () => {
      await open();
      const pc = await h.addDevice('PC-VERIFY', { updates: needsRestart });
      const before = await h.deployer.verify(pc, needsRestart);
      expect([...before.missing].sort()).toEqual(needsRestart.map((u) => u.key).sort());
      expect(before.rebootPending).toBe(false);
      await settle(h, h.deployer, pc, await h.deployer.install(pc, needsRestart, 'v-install-1'));
      const installed = await h.deployer.verify(pc, needsRestart);
      expect(installed).toEqual({ missing: [], rebootPending: true });
      const reboot = await settle(h, h.deployer, pc, await h.deployer.reboot(pc, 'v-reboot-1-0'));
      expect(reboot.state).toBe('succeeded');
      expect(await h.deployer.verify(pc, needsRestart)).toEqual({ missing: [], rebootPending: false });
    });

    it('an offline device answers isOnline false, and true again once it is back', async () => {
      await open();
      const pc = await h.addDevice('PC-OFF', { updates: needsRestart, online: false });
      expect(await h.deployer.isOnline(pc)).toBe(false);
      await h.setOnline('PC-OFF', true);
      expect(await h.deployer.isOnline(pc)).toBe(true);
    });

    it('a failed install ends failed with an error text, and is not re-run by asking again', async () => {
      await open();
      const pc = await h.addDevice('PC-FAIL', { updates: needsRestart, failsInstall: true });
      const done = await settle(h, h.deployer, pc, await h.deployer.install(pc, needsRestart, 'f-install-1'));
      expect(done.state).toBe('failed');
      expect(done.error).toEqual(expect.stringMatching(/\S/));
      expect((await h.deployer.install(pc, needsRestart, 'f-install-1')).state).toBe('failed');
      expect(await h.installsStarted('PC-FAIL')).toBe(1);
      expect((await h.deployer.verify(pc, needsRestart)).missing.length).toBeGreaterThan(0);
    });

    it('a new key is a new operation (the run retrying after a failure starts again)', async () => {
      await open();
      const pc = await h.addDevice('PC-TWO', { updates: needsRestart });
      const a = await settle(h, h.deployer, pc, await h.deployer.install(pc, needsRestart, 't-install-1'));
      const b = await h.deployer.install(pc, needsRestart, 't-install-2');
      expect(b.handle).not.toBe(a.handle);
    });
  });
}
