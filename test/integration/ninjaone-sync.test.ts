/**
 * The device sync with DEPLOYER=ninjaone (issue 16) on the NinjaOne emulator and a real database: the same sync as
 * Tactical's (runDeviceSync, the daily job, `patchbay devices sync`), organizations → clients, locations, nodeClass
 * → class, OS → MSRC, the last logged-in user linked, every device in its client's zone (NinjaOne has none), devices
 * gone from NinjaOne retired and restored, and `devices list` / `devices check` answering from NinjaOne.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { importInventoryFile } from '../../src/commands/import.ts';
import type { RunningJobs } from '../../src/jobs/context.ts';
import { requestDeviceSync } from '../../src/use-cases/device-sync.ts';
import { NinjaOneClient } from '../../src/adapters/deployers/ninjaone-client.ts';
import { readAllPages } from '../../src/adapters/deployers/ninjaone-sync-read.ts';
import { rowsOf } from '../../src/db/client.ts';
import { listManagedDevices } from '../../src/db/devices-repo.ts';
import { deviceSyncModule, ninjaOneSource, runDeviceSync } from '../../src/jobs/device-sync.ts';
import type { NinjaOneEmulator } from '../../src/sandbox/emulators/ninjaone-emulator.ts';
import { cliTestTimeout } from '../support/cli.ts';
import { appDatabaseEnv, type AppTestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { INSTALL_SCRIPT_ID, openNinjaOneWorld, TEST_CLIENT_ID, TEST_CLIENT_SECRET, type NinjaOneWorld } from '../support/ninjaone-world.ts';

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
    ninjaone_organization: Contoso Ltd
    windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }
    champions:
      - { email: sam@contoso.example, name: Sam }
    locations:
      - id: main-office
        name: Main office (HQ)
        devices:
          - { name: CON-PC-01, class: desktop, ring: pilot, user: jane@contoso.example }
  - id: fabrikam
    name: Fabrikam
    timezone: Europe/London
    windows: { desktop: "daily 01:00-05:00" }
    locations:
      - id: main
        devices:
          - { name: FAB-PC-01, class: desktop }
`;

function seed(emulator: NinjaOneEmulator): void {
  emulator.addDevice({ systemName: 'CON-PC-01', organization: 'Contoso Ltd', location: 'Main Office', lastLoggedInUser: 'CONTOSO\\jane' });
  emulator.addDevice({ systemName: 'CON-PC-02', organization: 'Contoso Ltd', location: 'Main Office', lastLoggedInUser: 'CONTOSO\\Sam', online: false });
  emulator.addDevice({ systemName: 'CON-SRV-01', organization: 'Contoso Ltd', location: 'Data Center', nodeClass: 'WINDOWS_SERVER', osName: 'Windows Server 2022 Standard Edition', osBuild: '20348' });
  emulator.addDevice({ systemName: 'CON-INSIDER-01', organization: 'Contoso Ltd', location: 'Main Office', osBuild: '26120' });
  emulator.addDevice({ systemName: 'OTHER-01', organization: 'Someone Else' });
}

describe('device sync from NinjaOne', () => {
  let world: NinjaOneWorld;
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-ninja-sync-'));
  const file = path.join(dir, 'inventory.yaml');
  const client = (secret = TEST_CLIENT_SECRET) =>
    new NinjaOneClient({ url: world.server.url, clientId: TEST_CLIENT_ID, clientSecret: secret, requestsPerSecond: 10_000, retries: 1, backoffMs: 1, now: world.now, sleep: async () => {} });
  const ctx = () => ({ db: world.database.db, now: world.now });
  const sync = (secret?: string) => {
    // Each sync at its own minute: a post's key is its time.
    world.advance(60_000);
    return runDeviceSync(ctx(), ninjaOneSource(client(secret)), { file, rereadZones: false, actor: 'test', source: 'system' });
  };
  const posts = async () =>
    rowsOf<{ text: string }>(await world.database.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject like 'device-sync%' order by id`)).map((r) => r.text);

  beforeAll(async () => {
    world = await openNinjaOneWorld();
    seed(world.emulator);
    writeFileSync(file, YAML);
  });
  afterAll(async () => {
    await world?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes the linked organization’s devices, each in its client’s zone, and tells the channel once', async () => {
    const first = await sync();
    expect(first).toMatchObject({ ok: true, told: true });
    if (!first.ok) return;
    expect(first.synced.added.sort()).toEqual(['contoso/CON-INSIDER-01', 'contoso/CON-PC-02', 'contoso/CON-SRV-01']);
    const devices = new Map((await listManagedDevices(world.database.db)).map((d) => [d.name, d]));
    expect(devices.get('CON-PC-01')).toMatchObject({ ring: 'pilot', userEmail: 'jane@contoso.example', syncedFrom: 'ninjaone', timezone: 'America/New_York', locationId: 'main-office', os: 'Windows 11 Version 23H2 for x64-based Systems' });
    expect(devices.get('CON-PC-02')).toMatchObject({ ring: 'broad', class: 'desktop', userEmail: 'sam@contoso.example', timezone: 'America/New_York' });
    expect(devices.get('CON-SRV-01')).toMatchObject({ class: 'server', os: 'Windows Server 2022', locationId: 'data-center', timezone: 'America/New_York' });
    expect(devices.get('CON-INSIDER-01')).toMatchObject({ os: null });
    expect(devices.get('FAB-PC-01')).toMatchObject({ syncedFrom: null, timezone: 'Europe/London' });
    expect(devices.has('OTHER-01')).toBe(false);
    const [post] = await posts();
    expect(post).toContain('Devices synced from NinjaOne:');
    expect(post).toContain('new devices, added as ring broad (3)');
    expect(post).toMatch(/OS names MSRC does not name.*CON-INSIDER-01/);
    expect(await sync()).toMatchObject({ ok: true, told: false });
  });

  it('a device gone from NinjaOne retires, never deleted; back again, it is restored', async () => {
    const id = world.emulator.deviceIdOf('CON-PC-02');
    world.emulator.removeDevice(id);
    const gone = await sync();
    expect(gone.ok && gone.changes.retiredDevices).toEqual(['CON-PC-02']);
    expect((await posts()).at(-1)).toContain('retired (no longer in NinjaOne) (1): CON-PC-02');
    world.emulator.addDevice({ systemName: 'CON-PC-02', organization: 'Contoso Ltd', location: 'Main Office' });
    const back = await sync();
    expect(back.ok && back.changes.restoredDevices).toEqual(['CON-PC-02']);
  });

  it('a failed read retires nothing, is said once naming NinjaOne, and never shows the secret', async () => {
    const live = (await listManagedDevices(world.database.db)).length;
    const failed = await sync('WRONG-secret-0123456789');
    expect(failed).toMatchObject({ ok: false, told: true });
    expect(await sync('WRONG-secret-0123456789')).toMatchObject({ ok: false, told: false });
    expect((await listManagedDevices(world.database.db)).length).toBe(live);
    const text = (await posts()).at(-1)!;
    expect(text).toMatch(/could not read NinjaOne .*401/);
    expect(text).not.toContain('WRONG-secret');
  });

  it('pages devices by keyset until a short page', async () => {
    const paging = client();
    const rows = await readAllPages<{ id: number; systemName: string }>(paging, 'v2/devices-detailed', 2);
    expect(rows.map((r) => r.systemName).sort()).toEqual(['CON-INSIDER-01', 'CON-PC-01', 'CON-PC-02', 'CON-SRV-01', 'OTHER-01']);
    expect(new Set(rows.map((r) => r.id)).size).toBe(5);
    // One token, then pages of 2, 2 and 1.
    expect(paging.sent).toBe(4);
  });
});

describe('the daily device sync job with DEPLOYER=ninjaone', () => {
  let world: NinjaOneWorld;
  let redisServer: TestRedis;
  let redis: Redis;
  let jobs: RunningJobs | undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-ninja-sync-job-'));
  const file = path.join(dir, 'inventory.yaml');
  const lists = () => world.emulator.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/v2/devices-detailed')).length;
  const posts = async () => rowsOf<{ text: string }>(await world.database.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject like 'device-sync:%' order by id`));
  async function until(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (await check()) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  beforeAll(async () => {
    [world, redisServer] = await Promise.all([openNinjaOneWorld(), startTestRedis()]);
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    seed(world.emulator);
    writeFileSync(file, YAML);
    const imported = await importInventoryFile(world.database, file, { dryRun: false, now: world.now(), actor: 'test' });
    expect(imported.ok).toBe(true);
  }, 60_000);
  afterAll(async () => {
    await jobs?.close();
    await redis?.quit();
    await redisServer?.stop();
    await world?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('syncs from NinjaOne on its first tick (the file named by DEVICE_SYNC_INVENTORY), then when an engineer asks', async () => {
    const env = {
      DEPLOYER: 'ninjaone',
      NINJAONE_URL: world.server.url,
      NINJAONE_CLIENT_ID: TEST_CLIENT_ID,
      NINJAONE_CLIENT_SECRET: TEST_CLIENT_SECRET,
      NINJAONE_INSTALL_SCRIPT_ID: String(INSTALL_SCRIPT_ID),
      NINJAONE_REQUESTS_PER_SECOND: '1000',
      DEVICE_SYNC_INVENTORY: file,
    };
    jobs = await deviceSyncModule({ tickMs: 100 })({ config: loadConfig(env), database: world.database, redis, prefix: redisServer.prefix, log: pino({ level: 'silent' }), roles: new Set(['scheduler', 'worker']), now: world.now });
    await until('the first sync', async () => (await posts()).length === 1);
    expect((await posts())[0]!.text).toContain('Devices synced from NinjaOne:');
    const first = lists();
    expect(first).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(lists()).toBe(first);
    const asked = await requestDeviceSync({ db: world.database.db, now: world.now }, { actor: { platform: 'slack', id: 'U0ENG1' } });
    expect(asked).toMatchObject({ outcome: 'applied', message: expect.stringContaining('DEPLOYER=ninjaone') });
    await until('the asked-for sync', () => lists() === 2);
  });
});

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('patchbay devices with DEPLOYER=ninjaone (the commands)', { timeout: cliTestTimeout(4) }, () => {
  let world: NinjaOneWorld;
  let database: AppTestDatabase;
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-ninja-cli-'));
  const file = path.join(dir, 'inventory.yaml');
  beforeAll(async () => {
    world = await openNinjaOneWorld();
    seed(world.emulator);
    database = await appDatabaseEnv('patchbay_ninja_sync');
    writeFileSync(file, YAML);
  });
  afterAll(async () => {
    await world?.close();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  function devices(args: string[], extra: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = {
      PATH: process.env.PATH ?? '',
      PATCHBAY_DATA_DIR: path.join(dir, 'data'),
      LOG_LEVEL: 'silent',
      DEPLOYER: 'ninjaone',
      NINJAONE_URL: world.server.url,
      NINJAONE_CLIENT_ID: TEST_CLIENT_ID,
      NINJAONE_CLIENT_SECRET: TEST_CLIENT_SECRET,
      NINJAONE_INSTALL_SCRIPT_ID: String(INSTALL_SCRIPT_ID),
      ...database.env,
      ...extra,
    };
    return new Promise((resolve) => {
      execFile(process.execPath, [path.join(repoRoot, 'bin/patchbay.mjs'), 'devices', ...args], { cwd: repoRoot, env }, (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  }

  it('syncs, then lists each synced device as from NinjaOne with its online state and last contact', async () => {
    const synced = await devices(['sync', file]);
    expect(synced.stderr).toBe('');
    expect(synced.code).toBe(0);
    expect(synced.stdout).toMatch(/new devices, ring broad \(3\): contoso\/CON-INSIDER-01, contoso\/CON-PC-02, contoso\/CON-SRV-01/);
    expect(synced.stdout).toMatch(/unmapped OS contoso\/CON-INSIDER-01: "Windows 11 Professional Edition, 64-bit, build 26120"/);
    const listed = await devices(['list', '--json']);
    expect(listed.stderr).toBe('');
    const rows = (JSON.parse(listed.stdout) as { devices: Array<Record<string, unknown>> }).devices;
    expect(rows.find((r) => r.name === 'CON-PC-01')).toMatchObject({ from: 'ninjaone', status: 'online', lastSeen: expect.stringMatching(/^2024-02-14T/), ring: 'pilot' });
    expect(rows.find((r) => r.name === 'CON-PC-02')).toMatchObject({ from: 'ninjaone', status: 'offline' });
    expect(rows.find((r) => r.name === 'FAB-PC-01')).toMatchObject({ from: 'inventory', status: null });
    const table = await devices(['list', '--client', 'contoso']);
    expect(table.stdout).toMatch(/CON-SRV-01 .*│ contoso .*│ NinjaOne .*│ online/);
  });

  it('check finds the install script, lists unmapped OSes and says the policy cannot be read; a wrong id fails', async () => {
    const checked = await devices(['check']);
    expect(checked.code).toBe(0);
    expect(checked.stdout).toContain(`install script: id ${INSTALL_SCRIPT_ID} (Install-PatchbayKBs) is in the NinjaOne library`);
    expect(checked.stdout).toMatch(/unmapped OS CON-INSIDER-01 \(Contoso Ltd\)/);
    expect(checked.stdout).toMatch(/5 devices: 1 offline now, 1 with an OS MSRC does not name/);
    expect(checked.stdout).toMatch(/does not show a policy's OS patch schedule/);
    const wrong = await devices(['check'], { NINJAONE_INSTALL_SCRIPT_ID: '7' });
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toContain('no script with id 7 in the NinjaOne library');
    const fix = await devices(['check', '--fix']);
    expect(fix.code).toBe(2);
    expect(fix.stderr).toMatch(/cannot change a policy's patching/);
    for (const out of [checked, wrong, fix]) expect(out.stdout + out.stderr).not.toContain(TEST_CLIENT_SECRET);
  });
});
