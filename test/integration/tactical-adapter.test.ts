/**
 * The Tactical adapter against the traps Tactical sets (research §1.3–1.7), on the emulator and a real database:
 * its policy acting by itself, installs lost to an offline agent, superseded rows, 5xx and timeouts, and a
 * worker killed mid-step. What the emulator's agents were really told (`delivered`) is the truth checked.
 */
import { createServer } from 'node:http';
import { inspect } from 'node:util';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DeployerUnavailable, type Deployer, type DeviceRef, type OperationStatus, type UpdateRef } from '../../src/adapters/deployers/port.ts';
import { TacticalClient, TacticalHttpError, TacticalUnavailableError } from '../../src/adapters/deployers/tactical-client.ts';
import { ALL_PERMISSIONS, type AgentSeed } from '../../src/sandbox/emulators/tactical-emulator.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { openTacticalWorld, TEST_API_KEY, type TacticalWorld } from '../support/tactical-world.ts';

let database: TestDatabase;
let world: TacticalWorld;
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

function seed(name: string, options: Partial<AgentSeed> = {}): string {
  const agentId = world.emulator.addAgent({ hostname: name, client: 'Contoso', ...options });
  for (const u of updates) world.emulator.addUpdate(agentId, { kb: u.kb!, severity: 'Critical' });
  return agentId;
}

const posts = (path: RegExp) => world.emulator.requests.filter((r) => r.method === 'POST' && path.test(r.path));

describe('Tactical adapter: Tactical must never act on its own', () => {
  it.each([
    ['an automation policy auto-approving Critical', { automationPolicy: { critical: 'approve' as const } }, /critical: approve/],
    ['an install schedule', { agentPolicy: { run_time_frequency: 'daily' as const, run_time_days: [1, 3], run_time_hour: 2 } }, /run_time_frequency: daily on days 1,3/],
    ['reboot after install when required', { agentPolicy: { reboot_after_install: 'required' as const } }, /reboot_after_install: required/],
  ])('refuses an agent with %s, naming it and the setting, without touching its rows', async (_what, policy, setting) => {
    world = await openTacticalWorld(database);
    const agentId = seed('PC-POLICY', policy);
    const status = await world.adapter().install(device('PC-POLICY'), updates, `policy-${ids}`);
    expect(status).toMatchObject({ state: 'failed', refused: true });
    expect(status.error).toMatch(/PC-POLICY/);
    expect(status.error).toMatch(setting);
    expect(world.emulator.requests.filter((r) => r.method !== 'GET')).toEqual([]);
    expect(world.emulator.installsDelivered(agentId)).toBe(0);
  });

  it('an agent-level override to manual makes an auto-approving automation policy acceptable', async () => {
    world = await openTacticalWorld(database);
    seed('PC-OVERRIDE', { automationPolicy: { critical: 'approve', reboot_after_install: 'always' }, agentPolicy: { critical: 'manual', reboot_after_install: 'never' } });
    const status = await world.adapter().install(device('PC-OVERRIDE'), updates, 'override-1');
    expect(status.state).toBe('running');
  });

  it('approves exactly the run’s KBs: a row someone else approved is set back to nothing and not installed', async () => {
    world = await openTacticalWorld(database);
    const agentId = seed('PC-EXACT');
    const other = world.emulator.addUpdate(agentId, { kb: '5034441', action: 'approve' });
    const deployer = world.adapter();
    const done = await settle(deployer, device('PC-EXACT'), await deployer.install(device('PC-EXACT'), updates, 'exact-1'));
    expect(done).toMatchObject({ state: 'succeeded', rebootRequired: true });
    expect(world.emulator.rowsOf(agentId).find((r) => r.id === other)).toMatchObject({ action: 'nothing', installed: false });
    const [delivered] = world.emulator.delivered.filter((d) => d.func === 'installwinupdates');
    const kbs = delivered!.guids!.map((g) => world.emulator.rowsOf(agentId).find((r) => r.guid === g)!.kb).sort();
    expect(kbs).toEqual(['KB5034439', 'KB5034763']);
    // The emulator installs a misconfigured agent's approvals and reboots it by policy; a manual one it does not.
    expect(world.emulator.rebootsDelivered(agentId)).toBe(0);
  });
});

describe('Tactical adapter: what Tactical does not say', () => {
  it('an agent that just left still shows online (last_seen lags 4 minutes): the live ping keeps the install from being lost', async () => {
    world = await openTacticalWorld(database);
    const agentId = seed('PC-GONE');
    world.emulator.setConnected(agentId, false);
    world.advance(MINUTE);
    const deployer = world.adapter();
    expect(await deployer.isOnline(device('PC-GONE'))).toBe(true);
    const status = await deployer.install(device('PC-GONE'), updates, 'gone-1');
    expect(status).toMatchObject({ state: 'failed', notStarted: true, error: expect.stringMatching(/^not started/) });
    expect(posts(/install\/$/)).toEqual([]);
  });

  it('an install lost on its way to the agent ends as "not started" after 15 minutes, with the approvals taken back', async () => {
    world = await openTacticalWorld(database);
    const agentId = seed('PC-LOST');
    // The machine drops off between the ping and the install POST: Tactical answers 200 and the publish is lost.
    const deployer = world.adapter({ crashAt: (point) => point === 'before-install-post' && world.emulator.setConnected(agentId, false) });
    const started = await deployer.install(device('PC-LOST'), updates, 'lost-1');
    expect(started.state).toBe('running');
    expect(posts(/install\/$/)).toHaveLength(1);
    world.advance(14 * MINUTE);
    expect((await deployer.status(device('PC-LOST'), 'lost-1')).state).toBe('running');
    world.advance(MINUTE);
    const status = await deployer.status(device('PC-LOST'), 'lost-1');
    expect(status).toMatchObject({ state: 'failed', notStarted: true, error: expect.stringMatching(/^not started: no result from Tactical RMM within 15 minutes/) });
    expect(world.emulator.installsDelivered(agentId)).toBe(0);
    expect(world.emulator.rowsOf(agentId).every((r) => r.action === 'nothing')).toBe(true);
  });

  it('a failed row is "failed (Tactical gives no error code)"; a retry with a new key resets its result and installs it again', async () => {
    world = await openTacticalWorld(database);
    const agentId = world.emulator.addAgent({ hostname: 'PC-FAILS', client: 'Contoso' });
    const row = world.emulator.addUpdate(agentId, { kb: '5034763', fails: true });
    const deployer = world.adapter();
    const failed = await settle(deployer, device('PC-FAILS'), await deployer.install(device('PC-FAILS'), updates.slice(0, 1), 'fails-1'));
    expect(failed).toMatchObject({ state: 'failed', error: 'KB5034763 failed (Tactical gives no error code)' });
    expect(failed.notStarted).toBeUndefined();
    world.emulator.rowsOf(agentId).find((r) => r.id === row)!.hidden.fails = false;
    const retry = await deployer.install(device('PC-FAILS'), updates.slice(0, 1), 'fails-2');
    expect(retry.state).toBe('running');
    expect(await settle(deployer, device('PC-FAILS'), retry)).toMatchObject({ state: 'succeeded' });
    expect(world.emulator.installsDelivered(agentId)).toBe(2);
  });

  it('a superseded row vanishes; verify counts it installed when its successor is, and missing otherwise', async () => {
    world = await openTacticalWorld(database);
    const agentId = world.emulator.addAgent({ hostname: 'PC-SUPER', client: 'Contoso' });
    world.emulator.addUpdate(agentId, { kb: '5034763', supersededOnInstall: true });
    world.emulator.addUpdate(agentId, { kb: '5035845' });
    const deployer = world.adapter();
    const pc = device('PC-SUPER');
    const wanted: UpdateRef[] = [
      { key: '5034763', kb: '5034763' },
      { key: '5035845', kb: '5035845' },
    ];
    expect(await settle(deployer, pc, await deployer.install(pc, wanted, 'super-1'))).toMatchObject({ state: 'succeeded' });
    expect(world.emulator.rowsOf(agentId).map((r) => r.kb)).toEqual(['KB5035845']);
    expect((await deployer.verify(pc, wanted)).missing).toEqual(['5034763']);
    expect((await deployer.verify(pc, [{ ...wanted[0]!, supersededBy: ['5035845'] }, wanted[1]!])).missing).toEqual([]);
  });
});

describe('Tactical adapter: faults and a killed worker', () => {
  it('retries reads after 5xx and timeouts, then carries on', async () => {
    world = await openTacticalWorld(database);
    seed('PC-5XX');
    world.emulator.inject({ match: /^GET \/winupdate\//, status: 503, times: 2 });
    world.emulator.inject({ match: /^GET \/agents\/[^?]+\/$/, status: 'timeout' });
    const deployer = world.adapter({ timeoutMs: 300 });
    const done = await settle(deployer, device('PC-5XX'), await deployer.install(device('PC-5XX'), updates, '5xx-1'));
    expect(done.state).toBe('succeeded');
    const statuses = world.emulator.requests.map((r) => r.status);
    expect(statuses.filter((s) => s === 503)).toHaveLength(2);
    expect(statuses.filter((s) => s === 'timeout')).toHaveLength(1);
  });

  it('many runs starting at once share one read of the agent list, and each finds its agent', async () => {
    world = await openTacticalWorld(database);
    for (let i = 0; i < 20; i++) seed(`PC-MANY-${i}`);
    const deployer = world.adapter();
    const online = await Promise.all(Array.from({ length: 20 }, (_, i) => deployer.isOnline(device(`PC-MANY-${i}`))));
    expect(online.every(Boolean)).toBe(true);
    expect(world.emulator.requests.filter((r) => r.path === '/agents/?detail=false')).toHaveLength(1);
  });

  it('an outage longer than the retries is an error to retry later, never a failed device', async () => {
    world = await openTacticalWorld(database);
    seed('PC-DOWN');
    world.emulator.inject({ status: 502, times: 100 });
    await expect(world.adapter({ retries: 2 }).isOnline(device('PC-DOWN'))).rejects.toBeInstanceOf(TacticalUnavailableError);
  });

  it('Tactical down is the port\'s DeployerUnavailable from every call, naming the host and the answer, never the key', async () => {
    world = await openTacticalWorld(database);
    seed('PC-DOWN-ALL');
    world.emulator.inject({ status: 503, times: 1000 });
    const deployer = world.adapter({ retries: 1 });
    const pc = device('PC-DOWN-ALL');
    for (const call of [() => deployer.isOnline(pc), () => deployer.install(pc, updates, 'down-install-1'), () => deployer.reboot(pc, 'down-reboot-1-0'), () => deployer.verify(pc, updates)]) {
      const error = (await call().catch((e: unknown) => e)) as DeployerUnavailable;
      expect(error).toBeInstanceOf(DeployerUnavailable);
      expect({ manager: error.manager, host: error.host, reason: error.reason }).toEqual({ manager: 'Tactical RMM', host: new URL(world.server.url).host, reason: 'HTTP 503' });
      expect(`${error.message} ${JSON.stringify(error)}`).not.toContain(TEST_API_KEY);
    }
    expect(posts(/(install|reboot)\/$/)).toEqual([]);
  });

  it('an install already sent, asked again while Tactical is down, is still running under its key: never a new start', async () => {
    world = await openTacticalWorld(database);
    const agentId = seed('PC-SENT-DOWN');
    const pc = device('PC-SENT-DOWN');
    const deployer = world.adapter({ retries: 1 });
    expect(await deployer.install(pc, updates, 'sent-down-install-1')).toMatchObject({ state: 'running' });
    world.emulator.inject({ status: 503, times: 1000 });
    expect(await deployer.install(pc, updates, 'sent-down-install-1')).toEqual({ handle: 'sent-down-install-1', state: 'running' });
    await expect(deployer.status(pc, 'sent-down-install-1')).rejects.toBeInstanceOf(DeployerUnavailable);
    expect(world.emulator.installsDelivered(agentId)).toBe(1);
  });

  it('a reboot POST Tactical refused (403: the key lacks can_reboot_agents) sent nothing: once the key may, the same key reboots once', async () => {
    world = await openTacticalWorld(database);
    const agentId = seed('PC-RB403');
    const pc = device('PC-RB403');
    world.emulator.setPermissions(ALL_PERMISSIONS.filter((p) => p !== 'can_reboot_agents'));
    const refused = (await world.adapter().reboot(pc, 'rb403-reboot-1-0').catch((e: unknown) => e)) as DeployerUnavailable;
    expect(refused).toBeInstanceOf(DeployerUnavailable);
    expect(refused.reason).toMatch(/^HTTP 403: the API key's role lacks a permission/);
    world.emulator.setPermissions(ALL_PERMISSIONS);
    const deployer = world.adapter();
    const first = await deployer.reboot(pc, 'rb403-reboot-1-0');
    expect(first.state).toBe('running');
    expect(await deployer.reboot(pc, 'rb403-reboot-1-0')).toMatchObject({ state: 'running' });
    expect(await settle(deployer, pc, first)).toMatchObject({ state: 'succeeded' });
    expect(world.emulator.rebootsDelivered(agentId)).toBe(1);
  });

  it('a reboot POST answered 500 after it took effect is never sent again: boot_time says it happened', async () => {
    world = await openTacticalWorld(database);
    const agentId = seed('PC-RB500');
    world.emulator.inject({ match: /^POST .*\/reboot\/$/, status: 500, when: 'after' });
    const deployer = world.adapter();
    const first = await deployer.reboot(device('PC-RB500'), 'rb500-reboot-1-0');
    expect(first.state).toBe('running');
    expect(await settle(deployer, device('PC-RB500'), first)).toMatchObject({ state: 'succeeded' });
    expect(posts(/reboot\/$/)).toHaveLength(1);
    expect(world.emulator.rebootsDelivered(agentId)).toBe(1);
  });

  it('an install POST that timed out after taking effect is not replayed; the rows report its results', async () => {
    world = await openTacticalWorld(database);
    const agentId = seed('PC-IT');
    world.emulator.inject({ match: /^POST .*\/install\/$/, status: 'timeout', when: 'after' });
    const deployer = world.adapter({ timeoutMs: 300 });
    const done = await settle(deployer, device('PC-IT'), await deployer.install(device('PC-IT'), updates, 'it-1'));
    expect(done.state).toBe('succeeded');
    expect(posts(/install\/$/)).toHaveLength(1);
    expect(world.emulator.installsDelivered(agentId)).toBe(1);
  });

  it.each(['approved', 'before-install-post', 'after-install-post'] as const)(
    'a worker killed at %s: the restarted one asks again with the key and no second install is sent',
    async (point) => {
      world = await openTacticalWorld(database);
      const agentId = seed(`PC-KILL-${point}`);
      const pc = device(`PC-KILL-${point}`);
      const dying = world.adapter({
        crashAt: (p) => {
          if (p === point) throw new Error('SIGKILL');
        },
      });
      await expect(dying.install(pc, updates, `kill-${point}-install-1`)).rejects.toThrow('SIGKILL');
      const restarted = world.adapter();
      const done = await settle(restarted, pc, await restarted.install(pc, updates, `kill-${point}-install-1`));
      expect(posts(/install\/$/).length).toBeLessThanOrEqual(1);
      expect(world.emulator.installsDelivered(agentId)).toBeLessThanOrEqual(1);
      // Killed before the POST left: nothing reached the agent, so the key ends "not started" (the run retries).
      if (point === 'before-install-post') expect(done).toMatchObject({ state: 'failed', error: expect.stringMatching(/^not started/) });
      else expect(done).toMatchObject({ state: 'succeeded', rebootRequired: true });
    },
  );

  it.each(['before-reboot-post', 'after-reboot-post'] as const)('a worker killed at %s never sends a second reboot', async (point) => {
    world = await openTacticalWorld(database);
    const agentId = seed(`PC-RBK-${point}`);
    const pc = device(`PC-RBK-${point}`);
    const dying = world.adapter({
      crashAt: (p) => {
        if (p === point) throw new Error('SIGKILL');
      },
    });
    await expect(dying.reboot(pc, `rbk-${point}`)).rejects.toThrow('SIGKILL');
    const restarted = world.adapter();
    const done = await settle(restarted, pc, await restarted.reboot(pc, `rbk-${point}`));
    expect(posts(/reboot\/$/).length).toBe(point === 'after-reboot-post' ? 1 : 0);
    expect(world.emulator.rebootsDelivered(agentId)).toBe(point === 'after-reboot-post' ? 1 : 0);
    // Never sent: after the confirmation time it says so, and the run tries a new reboot with a new key.
    expect(done.state).toBe(point === 'after-reboot-post' ? 'succeeded' : 'failed');
  });
});

describe('Tactical client: the key stays secret, requests are paced', () => {
  it('a rejected key and a server that echoes the key: no error message contains it', async () => {
    world = await openTacticalWorld(database);
    seed('PC-KEY');
    const wrongKey = 'WRONGKEY-0123456789abcdefghijklmnopqrstuv';
    const error = await world.adapter({ apiKey: wrongKey }).isOnline(device('PC-KEY')).catch((e: unknown) => e);
    // A refused key is an outage of Tactical for patchbay (the port's DeployerUnavailable); Tactical's answer is its cause.
    expect(error).toBeInstanceOf(DeployerUnavailable);
    expect((error as DeployerUnavailable).reason).toBe('HTTP 401: the API key was refused');
    expect((error as Error).cause).toBeInstanceOf(TacticalHttpError);
    expect(((error as Error).cause as Error).message).toMatch(/401 Invalid token/);
    for (const text of [(error as Error).message, ((error as Error).cause as Error).message, JSON.stringify(error)]) expect(text).not.toContain(wrongKey);

    const echo = createServer((req, res) => {
      res.writeHead(req.url?.includes('five') ? 500 : 400, { 'content-type': 'application/json' });
      res.end(JSON.stringify(`bad key ${String(req.headers['x-api-key'])}`));
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    try {
      const client = new TacticalClient({ url: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`, apiKey: TEST_API_KEY, retries: 0 });
      for (const path of ['agents/', 'five/']) {
        const e = await client.get(path).catch((x: unknown) => x as Error);
        expect(e).toBeInstanceOf(Error);
        expect(`${(e as Error).message} ${JSON.stringify(e)}`).not.toContain(TEST_API_KEY);
      }
      const e = (await client.get('agents/').catch((x: unknown) => x)) as TacticalHttpError;
      expect(e.detail).toBe('bad key [redacted]');
    } finally {
      echo.closeAllConnections();
      await new Promise<void>((resolve) => echo.close(() => resolve()));
    }
  });

  it('the key is not in the client object as a logger, JSON or inspect would show it', async () => {
    const client = new TacticalClient({ url: 'http://127.0.0.1:9/', apiKey: TEST_API_KEY });
    expect(JSON.stringify(client)).not.toContain(TEST_API_KEY);
    expect(inspect(client, { depth: 5, showHidden: true })).not.toContain(TEST_API_KEY);
    expect(Object.values(client).map(String).join(' ')).not.toContain(TEST_API_KEY);
  });

  it('spaces requests to the configured budget', async () => {
    world = await openTacticalWorld(database);
    seed('PC-PACE');
    const client = new TacticalClient({ url: world.server.url, apiKey: TEST_API_KEY, requestsPerSecond: 20 });
    const started = Date.now();
    await Promise.all(Array.from({ length: 11 }, () => client.get('clients/')));
    const elapsed = Date.now() - started;
    // 11 requests at 20/s: the last leaves 500 ms after the first.
    expect(elapsed).toBeGreaterThanOrEqual(480);
    expect(elapsed).toBeLessThan(2_000);
  });

  it('refuses a path without its trailing slash before sending it', async () => {
    world = await openTacticalWorld(database);
    const client = new TacticalClient({ url: world.server.url, apiKey: TEST_API_KEY });
    await expect(client.get('agents')).rejects.toThrow(/end in "\/"/);
    expect(world.emulator.requests).toEqual([]);
  });
});
