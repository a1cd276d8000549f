/**
 * The daily and on-demand device sync (issue 15) on the Tactical emulator and a real database: the same sync as
 * `patchbay devices sync`, each agent's own time zone and logged-in user taken in, one message per sync that changed
 * something, a failed read said once and retiring nothing, and an engineer's `/patch sync` served at the next tick.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { importInventoryFile } from '../../src/commands/import.ts';
import type { RunningJobs } from '../../src/jobs/context.ts';
import { TacticalClient } from '../../src/adapters/deployers/tactical-client.ts';
import { rowsOf } from '../../src/db/client.ts';
import { listManagedDevices } from '../../src/db/devices-repo.ts';
import { deviceWindows } from '../../src/db/user-dm-repo.ts';
import { deviceSyncModule, runDeviceSync, tacticalSource } from '../../src/jobs/device-sync.ts';
import { claimDeviceSync, requestDeviceSync } from '../../src/use-cases/device-sync.ts';
import { startTacticalEmulator, TacticalEmulator, type RunningTacticalEmulator } from '../../src/sandbox/emulators/tactical-emulator.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { TEST_API_KEY } from '../support/tactical-world.ts';

const YAML = `
msp:
  name: Example IT
  engineers: [U0ENG1]
  channel: C0ENGINEERS
  timezone: America/Chicago
  windows: { desktop: "daily 01:00-05:00" }
  devices:
    - { name: EXIT-01, class: desktop }
clients:
  - id: contoso
    name: Contoso
    timezone: America/New_York
    tactical_client: Contoso Ltd
    windows: { desktop: "daily 01:00-05:00" }
    champions:
      - { email: jane@contoso.example, name: Jane }
    locations:
      - id: main-office
        devices:
          - { name: CON-PC-04, class: desktop, user: sam@contoso.example }
`;

function seedAgents(emu: TacticalEmulator, without: string[] = []): void {
  const agents = [
    { hostname: 'CON-PC-01', client: 'Contoso Ltd', site: 'Main Office', timeZone: 'America/Los_Angeles', loggedInUser: 'CONTOSO\\Jane' },
    { hostname: 'CON-PC-02', client: 'Contoso Ltd', site: 'Main Office', loggedInUser: 'CONTOSO\\administrator' },
    { hostname: 'CON-PC-03', client: 'Contoso Ltd', site: 'Main Office', timeZone: null, loggedInUser: 'None' },
    // The YAML names its user: the logged-in name does not replace it.
    { hostname: 'CON-PC-04', client: 'Contoso Ltd', site: 'Main Office', loggedInUser: 'CONTOSO\\jane' },
    { hostname: 'OTHER-01', client: 'Someone Else', timeZone: 'Europe/Paris' },
  ];
  for (const agent of agents) if (!without.includes(agent.hostname)) emu.addAgent(agent);
}

describe('device sync, daily and on demand', () => {
  let database: TestDatabase;
  let full: { emu: TacticalEmulator; server: RunningTacticalEmulator };
  let fewer: { emu: TacticalEmulator; server: RunningTacticalEmulator };
  let nowMs = Date.parse('2024-02-14T12:00:00Z');
  const ctx = () => ({ db: database.db, now: () => new Date(nowMs) });
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-device-sync-'));
  const file = path.join(dir, 'inventory.yaml');
  const client = (url: string) => new TacticalClient({ url, apiKey: TEST_API_KEY, requestsPerSecond: 10_000, retries: 1, backoffMs: 1, sleep: async () => {} });
  const start = async (without: string[] = []) => {
    const emu = new TacticalEmulator({ now: () => new Date(nowMs), apiKey: TEST_API_KEY });
    seedAgents(emu, without);
    return { emu, server: await startTacticalEmulator(emu) };
  };
  const sync = (url: string, rereadZones = false) => runDeviceSync(ctx(), tacticalSource(client(url)), { file, rereadZones, actor: 'test', source: 'system' });
  const posts = async () =>
    rowsOf<{ subject: string; text: string }>(await database.db.execute(sql`select subject, payload ->> 'text' as text from chat_outbox where subject like 'device-sync%' order by id`));
  const details = (emu: TacticalEmulator) => emu.requests.filter((r) => r.method === 'GET' && /^\/?agents\/[^/]{21,}\/$/.test(r.path)).length;

  beforeAll(async () => {
    database = await openTestDatabase();
    full = await start();
    fewer = await start(['CON-PC-02']);
    writeFileSync(file, YAML);
  });
  afterAll(async () => {
    await full?.server.close();
    await fewer?.server.close();
    await database?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes each agent’s own time zone and logged-in user, reading details only for the linked client’s agents, and tells the channel once', async () => {
    const first = await sync(full.server.url);
    expect(first).toMatchObject({ ok: true, told: true });
    expect(details(full.emu)).toBe(4);
    const devices = new Map((await listManagedDevices(database.db)).map((d) => [d.name, d]));
    expect(devices.get('CON-PC-01')).toMatchObject({ timezone: 'America/Los_Angeles', userEmail: 'jane@contoso.example', syncedFrom: 'tactical', ring: 'broad' });
    expect(devices.get('CON-PC-02')).toMatchObject({ timezone: 'America/New_York', userEmail: null });
    expect(devices.get('CON-PC-03')).toMatchObject({ timezone: 'America/New_York', userEmail: null });
    expect(devices.get('CON-PC-04')).toMatchObject({ userEmail: 'sam@contoso.example' });
    expect(devices.get('EXIT-01')).toMatchObject({ timezone: 'America/Chicago', syncedFrom: null });
    // The windows of the machine in Los Angeles open in its own local time.
    const zones = await deviceWindows(database.db, [...devices.values()].map((d) => d.id));
    expect(zones.get(devices.get('CON-PC-01')!.id)?.zone).toBe('America/Los_Angeles');
    expect(zones.get(devices.get('CON-PC-03')!.id)?.zone).toBe('America/New_York');
    const [post, ...more] = await posts();
    expect(more).toEqual([]);
    expect(post!.subject).toBe('device-sync:2024-02-14T12:00:00.000Z');
    expect(post!.text).toContain('new agents, added as ring broad (3): contoso/CON-PC-01, contoso/CON-PC-02, contoso/CON-PC-03');
    expect(post!.text).toContain('contoso/CON-PC-02 CONTOSO\\administrator (nobody by that Windows user name)');
    expect(post!.text).not.toContain('CON-PC-03 ');
  });

  it('a sync that changes nothing says nothing and reads no detail again; an engineer’s sync reads every zone again', async () => {
    nowMs += 86_400_000;
    expect(await sync(full.server.url)).toMatchObject({ ok: true, told: false });
    expect(details(full.emu)).toBe(4);
    expect(await posts()).toHaveLength(1);
    expect(await sync(full.server.url, true)).toMatchObject({ ok: true, told: false });
    expect(details(full.emu)).toBe(8);
  });

  it('an agent gone from Tactical retires and is told; the now-settled list of issues is said fixed', async () => {
    nowMs += 86_400_000;
    const outcome = await sync(fewer.server.url);
    expect(outcome).toMatchObject({ ok: true, told: true });
    const last = (await posts()).at(-1)!;
    expect(last.text).toContain('retired (no longer in Tactical) (1): CON-PC-02');
    expect(last.text).not.toContain('linked to nobody');
  });

  it('a failed read is told once, retires nothing, and the next good sync carries on', async () => {
    const before = (await listManagedDevices(database.db)).map((d) => d.name);
    fewer.emu.inject({ match: /agents\//, status: 503, times: 100 });
    nowMs += 86_400_000;
    const failed = await sync(fewer.server.url);
    expect(failed).toMatchObject({ ok: false, told: true });
    expect(failed.ok === false && failed.error).toMatch(/HTTP 503/);
    expect(failed.ok === false && failed.error).not.toContain(TEST_API_KEY);
    nowMs += 86_400_000;
    expect(await sync(fewer.server.url)).toMatchObject({ ok: false, told: false });
    expect((await listManagedDevices(database.db)).map((d) => d.name)).toEqual(before);
    const failures = (await posts()).filter((p) => p.subject.startsWith('device-sync-failed:'));
    expect(failures).toHaveLength(1);
    expect(failures[0]!.text).toMatch(/could not read Tactical RMM .*HTTP 503.*none is retired/);
    // Tactical back: a good sync clears the failure, so the next outage is told again.
    nowMs += 86_400_000;
    expect(await sync(full.server.url)).toMatchObject({ ok: true, told: true });
    expect((await posts()).at(-1)!.text).toContain('back in Tactical (1): CON-PC-02');
    full.emu.inject({ match: /clients\//, status: 503, times: 100 });
    expect(await sync(full.server.url)).toMatchObject({ ok: false, told: true });
  });

  it('claims the daily sync once per day at the configured time in the MSP’s zone, and an engineer’s request at once', async () => {
    // 06:00 in Chicago is 12:00Z in February.
    nowMs = Date.parse('2024-03-01T11:00:00Z');
    expect(await claimDeviceSync(ctx(), '06:00')).toBe('scheduled');
    expect(await claimDeviceSync(ctx(), '06:00')).toBeUndefined();
    nowMs = Date.parse('2024-03-01T12:00:00Z');
    expect(await claimDeviceSync(ctx(), '06:00')).toBe('scheduled');
    expect(await claimDeviceSync(ctx(), '06:00')).toBeUndefined();
    nowMs += 60_000;
    const refused = await requestDeviceSync(ctx(), { actor: { platform: 'slack', id: 'U0NOTENG' } });
    expect(refused.outcome).toBe('refused');
    expect(await claimDeviceSync(ctx(), '06:00')).toBeUndefined();
    const asked = await requestDeviceSync(ctx(), { actor: { platform: 'slack', id: 'U0ENG1' } });
    expect(asked.outcome).toBe('applied');
    nowMs += 60_000;
    expect(await claimDeviceSync(ctx(), '06:00')).toBe('requested');
    expect(await claimDeviceSync(ctx(), '06:00')).toBeUndefined();
    const audit = rowsOf<{ actor: string }>(await database.db.execute(sql`select actor from audit_log where action = 'devices.sync_requested'`));
    expect(audit).toEqual([{ actor: 'slack:U0ENG1' }]);
  });
});

describe('the device sync job', () => {
  let database: TestDatabase;
  let redisServer: TestRedis;
  let redis: Redis;
  let server: RunningTacticalEmulator;
  let emu: TacticalEmulator;
  let jobs: RunningJobs | undefined;
  const clock = new Date('2024-02-14T15:00:00Z');
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-device-sync-job-'));
  const file = path.join(dir, 'inventory.yaml');
  const posts = async () => rowsOf<{ text: string }>(await database.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject like 'device-sync:%' order by id`));
  const details = () => emu.requests.filter((r) => r.method === 'GET' && /^\/?agents\/[^/]{21,}\/$/.test(r.path)).length;
  async function until(what: string, check: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (await check()) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  beforeAll(async () => {
    [database, redisServer] = await Promise.all([openTestDatabase(), startTestRedis()]);
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    emu = new TacticalEmulator({ now: () => clock, apiKey: TEST_API_KEY });
    seedAgents(emu);
    server = await startTacticalEmulator(emu);
    writeFileSync(file, YAML);
    // The MSP imported its file once; from then on the job keeps the devices in step with Tactical.
    const imported = await importInventoryFile(database, file, { dryRun: false, now: clock, actor: 'test' });
    expect(imported.ok).toBe(true);
  }, 60_000);
  afterAll(async () => {
    await jobs?.close();
    await redis?.quit();
    await redisServer?.stop();
    await server?.close();
    await database?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (env: Record<string, string>) =>
    deviceSyncModule({ tickMs: 100 })({ config: loadConfig(env), database, redis, prefix: redisServer.prefix, log: pino({ level: 'silent' }), roles: new Set(['scheduler', 'worker']), now: () => clock });

  it('does nothing without DEPLOYER=tactical', async () => {
    const idle = await start({ TACTICAL_SYNC_INVENTORY: file });
    await new Promise((resolve) => setTimeout(resolve, 400));
    await idle.close();
    expect(emu.requests).toEqual([]);
  });

  it('syncs on its first tick, then again only when an engineer asks, reading every zone then', async () => {
    jobs = await start({ DEPLOYER: 'tactical', TACTICAL_URL: server.url, TACTICAL_API_KEY: TEST_API_KEY, TACTICAL_SYNC_INVENTORY: file, TACTICAL_REQUESTS_PER_SECOND: '1000' });
    await until('the first sync', async () => (await posts()).length === 1);
    expect((await posts())[0]!.text).toContain('new agents, added as ring broad (3)');
    expect(details()).toBe(4);
    const listsBefore = emu.requests.filter((r) => r.path.replace(/^\//, '') === 'agents/').length;
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(emu.requests.filter((r) => r.path.replace(/^\//, '') === 'agents/').length).toBe(listsBefore);
    const asked = await requestDeviceSync({ db: database.db, now: () => clock }, { actor: { platform: 'slack', id: 'U0ENG1' } });
    expect(asked.outcome).toBe('applied');
    await until('the asked-for sync', async () => details() === 8);
    expect(await posts()).toHaveLength(1);
  });
});
