/**
 * The NinjaOne adapter against the traps NinjaOne sets (research §2), on the emulator and a real database: tokens
 * that expire or are revoked mid-run, 429s, a 5xx or a timeout after a POST that did reach the device, offline
 * devices that silently drop commands, and a device policy that patches and reboots by itself. What the
 * emulator's devices really ran (`delivered`) is the truth checked.
 */
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Deployer, DeviceRef, OperationStatus, UpdateRef } from '../../src/adapters/deployers/port.ts';
import type { NinjaDeviceSeed } from '../../src/sandbox/emulators/ninjaone-emulator.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { openNinjaOneWorld, TEST_CLIENT_SECRET, type NinjaOneWorld } from '../support/ninjaone-world.ts';

let database: TestDatabase;
let world: NinjaOneWorld;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(async () => {
  await database?.close();
});
afterEach(async () => {
  await world?.close();
});

const MINUTE = 60_000;
const updates: UpdateRef[] = [
  { key: '5034763', kb: '5034763', restartRequired: 'Yes' },
  { key: '5034439', kb: '5034439', restartRequired: 'Yes' },
];
let ids = 100;
const device = (name: string): DeviceRef => ({ id: ids++, name });

async function settle(deployer: Deployer, pc: DeviceRef, first: OperationStatus): Promise<OperationStatus> {
  let status = first;
  for (let i = 0; i < 60 && status.state !== 'succeeded' && status.state !== 'failed'; i++) {
    world.advance(MINUTE);
    status = await deployer.status(pc, first.handle);
  }
  return status;
}

function seed(name: string, options: Partial<NinjaDeviceSeed> = {}): number {
  const id = world.emulator.addDevice({ systemName: name, ...options });
  for (const u of updates) world.emulator.addPatch(id, { kb: u.kb! });
  return id;
}

const requests = (method: string, path: RegExp) => world.emulator.requests.filter((r) => r.method === method && path.test(r.path));

describe('NinjaOne adapter: tokens', () => {
  it('renews its token before it expires, so a run that outlives one token never meets a 401', async () => {
    world = await openNinjaOneWorld(database, { tokenSeconds: 30 * 60 });
    seed('PC-LONG');
    const deployer = world.adapter();
    const install = await settle(deployer, device('PC-LONG'), await deployer.install(device('PC-LONG'), updates, 'long-install'));
    expect(install.state).toBe('succeeded');
    world.advance(40 * MINUTE);
    const reboot = await settle(deployer, device('PC-LONG'), await deployer.reboot(device('PC-LONG'), 'long-reboot'));
    expect(reboot.state).toBe('succeeded');
    expect(world.emulator.requests.filter((r) => r.status === 401)).toEqual([]);
    expect(requests('POST', /^\/ws\/oauth\/token$/).length).toBeGreaterThanOrEqual(2);
  });

  it('a token revoked mid-run: one 401, one fresh token, the same request once more, and the run goes on', async () => {
    world = await openNinjaOneWorld(database);
    seed('PC-REVOKED');
    const deployer = world.adapter();
    const started = await deployer.install(device('PC-REVOKED'), updates, 'revoked-install');
    world.emulator.revokeTokens();
    const done = await settle(deployer, device('PC-REVOKED'), started);
    expect(done.state).toBe('succeeded');
    expect(world.emulator.requests.filter((r) => r.status === 401)).toHaveLength(1);
    expect(deployer.client.tokensFetched).toBe(2);
  });

  it('wrong credentials fail without the secret in the error, and the client never shows it', async () => {
    world = await openNinjaOneWorld(database);
    seed('PC-CREDS');
    const deployer = world.adapter({ clientSecret: 'not-the-secret-0123456789' });
    const error = await deployer.isOnline(device('PC-CREDS')).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect(String(error)).toMatch(/401/);
    expect(String(error)).not.toMatch(/not-the-secret/);
    const good = world.adapter();
    await good.isOnline(device('PC-CREDS'));
    expect(inspect(good.client, { depth: 5 })).not.toContain(TEST_CLIENT_SECRET);
    expect(JSON.stringify(world.emulator.requests)).not.toContain(TEST_CLIENT_SECRET);
  });
});

describe('NinjaOne adapter: limits and unclear answers', () => {
  it('a 429 waits its Retry-After and sends the refused script run again: one run on the device', async () => {
    world = await openNinjaOneWorld(database);
    const id = seed('PC-429');
    world.emulator.inject({ match: /script\/run/, status: 429, retryAfterSeconds: 7 });
    const deployer = world.adapter();
    const done = await settle(deployer, device('PC-429'), await deployer.install(device('PC-429'), updates, 'limited-install'));
    expect(done.state).toBe('succeeded');
    expect(world.sleeps).toContain(7_000);
    expect(requests('POST', /script\/run$/).map((r) => r.status)).toEqual([429, 204]);
    expect(world.emulator.count(id, 'script')).toBe(1);
  });

  it('a 5xx after the script run took effect is not replayed: the activities tell the result', async () => {
    world = await openNinjaOneWorld(database);
    const id = seed('PC-502');
    world.emulator.inject({ match: /script\/run/, status: 502, when: 'after' });
    const deployer = world.adapter();
    const done = await settle(deployer, device('PC-502'), await deployer.install(device('PC-502'), updates, 'bad-gateway-install'));
    expect(done).toMatchObject({ state: 'succeeded', rebootRequired: true });
    expect(requests('POST', /script\/run$/)).toHaveLength(1);
    expect(world.emulator.count(id, 'script')).toBe(1);
  });

  it('a 5xx before the script run took effect is not replayed either: silence becomes "not started" after 15 minutes', async () => {
    world = await openNinjaOneWorld(database);
    const id = seed('PC-503');
    world.emulator.inject({ match: /script\/run/, status: 503 });
    const deployer = world.adapter();
    const started = await deployer.install(device('PC-503'), updates, 'unavailable-install');
    world.advance(14 * MINUTE);
    expect((await deployer.status(device('PC-503'), started.handle)).state).toBe('running');
    world.advance(MINUTE);
    expect(await deployer.status(device('PC-503'), started.handle)).toMatchObject({ state: 'failed', notStarted: true, error: expect.stringMatching(/^not started/) });
    expect(requests('POST', /script\/run$/)).toHaveLength(1);
    expect(world.emulator.count(id, 'script')).toBe(0);
  });

  it('a reboot POST that times out after reaching the device is not sent again; SYSTEM_REBOOTED confirms it', async () => {
    world = await openNinjaOneWorld(database);
    const id = seed('PC-SLOW');
    world.emulator.inject({ match: /reboot\/NORMAL/, status: 'timeout', when: 'after' });
    const deployer = world.adapter({ timeoutMs: 300 });
    const done = await settle(deployer, device('PC-SLOW'), await deployer.reboot(device('PC-SLOW'), 'slow-reboot'));
    expect(done.state).toBe('succeeded');
    expect(requests('POST', /reboot\/NORMAL$/)).toHaveLength(1);
    expect(world.emulator.count(id, 'reboot')).toBe(1);
  });

  it('a worker killed right after the script run resumes from the database without running it again', async () => {
    world = await openNinjaOneWorld(database);
    const id = seed('PC-KILLED');
    const dying = world.adapter({ crashAt: (point) => {
      if (point === 'after-script-post') throw new Error('SIGKILL');
    } });
    await expect(dying.install(device('PC-KILLED'), updates, 'killed-install')).rejects.toThrow('SIGKILL');
    const restarted = world.adapter();
    const done = await settle(restarted, device('PC-KILLED'), await restarted.install(device('PC-KILLED'), updates, 'killed-install'));
    expect(done.state).toBe('succeeded');
    expect(requests('POST', /script\/run$/)).toHaveLength(1);
    expect(world.emulator.count(id, 'script')).toBe(1);
  });
});

describe('NinjaOne adapter: devices that are away', () => {
  it('an offline device: install and reboot are "not started" and nothing is sent to it', async () => {
    world = await openNinjaOneWorld(database);
    seed('PC-AWAY', { online: false });
    const deployer = world.adapter();
    expect(await deployer.isOnline(device('PC-AWAY'))).toBe(false);
    expect(await deployer.install(device('PC-AWAY'), updates, 'away-install')).toMatchObject({ state: 'failed', notStarted: true, error: expect.stringMatching(/^not started: NinjaOne reports PC-AWAY offline/) });
    expect(await deployer.reboot(device('PC-AWAY'), 'away-reboot')).toMatchObject({ state: 'failed', notStarted: true });
    expect(world.emulator.requests.filter((r) => r.method !== 'GET' && !r.path.startsWith('/ws/'))).toEqual([]);
  });

  it('a device that drops off just before the script run: NinjaOne accepts it, it never runs, "not started" after 15 minutes', async () => {
    world = await openNinjaOneWorld(database);
    const id = seed('PC-GONE');
    const deployer = world.adapter({ crashAt: (point) => point === 'before-script-post' && world.emulator.setOnline(id, false) });
    const started = await deployer.install(device('PC-GONE'), updates, 'gone-install');
    expect(started.state).toBe('running');
    world.emulator.setOnline(id, true);
    const done = await settle(deployer, device('PC-GONE'), started);
    expect(done).toMatchObject({ state: 'failed', notStarted: true });
    expect(world.emulator.count(id, 'script')).toBe(0);
  });

  it('a failed KB carries the Windows error from the script’s output', async () => {
    world = await openNinjaOneWorld(database);
    const id = world.emulator.addDevice({ systemName: 'PC-BROKEN' });
    world.emulator.addPatch(id, { kb: '5034763' });
    world.emulator.addPatch(id, { kb: '5034439', failsWith: '0x80070643' });
    const deployer = world.adapter();
    const done = await settle(deployer, device('PC-BROKEN'), await deployer.install(device('PC-BROKEN'), updates, 'broken-install'));
    expect(done).toMatchObject({ state: 'failed', error: 'KB5034439 failed: 0x80070643' });
    expect((await deployer.verify(device('PC-BROKEN'), updates)).missing).toEqual(['5034439']);
  });
});

describe('NinjaOne adapter: the device policy must not act inside patchbay’s work', () => {
  it('maintenance with PATCHING disabled holds the policy off: only the run’s KBs are installed, no policy reboot', async () => {
    world = await openNinjaOneWorld(database);
    const policy = { policyPatchEveryMinutes: 10 };
    const managed = seed('PC-MANAGED', policy);
    const bystander = seed('PC-BYSTANDER', policy);
    for (const id of [managed, bystander]) world.emulator.addPatch(id, { kb: '5034441', status: 'APPROVED' });
    const deployer = world.adapter();
    const install = await settle(deployer, device('PC-MANAGED'), await deployer.install(device('PC-MANAGED'), updates, 'held-install'));
    expect(install).toMatchObject({ state: 'succeeded', rebootRequired: true });
    const reboot = await settle(deployer, device('PC-MANAGED'), await deployer.reboot(device('PC-MANAGED'), 'held-reboot'));
    expect(reboot.state).toBe('succeeded');
    world.advance(30 * MINUTE);
    const [maintenance] = requests('PUT', /maintenance$/);
    expect(maintenance!.body).toMatchObject({ disabledFeatures: ['PATCHING'] });
    expect(world.emulator.count(managed, 'apply', 'policy')).toBe(0);
    expect(world.emulator.count(managed, 'reboot', 'policy')).toBe(0);
    expect(world.emulator.patchesOf(managed).filter((p) => p.installedAt !== null).map((p) => p.kb).sort()).toEqual(['KB5034439', 'KB5034763']);
    expect(world.emulator.delivered.filter((d) => d.deviceId === managed && d.what === 'script').map((d) => d.kbs)).toEqual([['KB5034763', 'KB5034439']]);
    // The same policy on a device patchbay did not touch patched and rebooted it by itself: the trap is real.
    expect(world.emulator.count(bystander, 'apply', 'policy')).toBeGreaterThan(0);
    expect(world.emulator.count(bystander, 'reboot', 'policy')).toBeGreaterThan(0);
  });
});
