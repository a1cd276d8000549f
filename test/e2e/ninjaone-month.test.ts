/**
 * A whole month on NinjaOne (its emulator, served over HTTP): harbour's machines synced from NinjaOne (the YAML names
 * its organization and its pilot), the MSP's own from the YAML,
 * the release is stored and its digest queued, the release approved, ring msp, the promotion to pilot, the
 * champion's sign-off, broad. The runs are worked by a real worker process driving the real NinjaOne adapter; the
 * first one is SIGKILLed after it recorded a device's last activity id and before it ran the install script, and a
 * new one finishes the month. Broad's window opens in a storm of 429s.
 *
 * NinjaOne's own policy is live on every device: it approves the release's KBs and one of its own, and its
 * schedule fires in the middle of each ring's night, where patchbay's maintenance (PATCHING disabled) must hold it
 * back; on the MSP's machines it fires once more after the maintenance ended, and then it does patch and reboot.
 *
 * Judged against what the emulator was asked and what its devices really did, not what patchbay believes: no
 * script run or reboot outside a window; one script run per device and exactly one reboot request per device whose
 * install wanted one (none on the machine that needed no restart); no policy patch or reboot inside patchbay's
 * maintenance; the storm's 429s all answered and no install lost or doubled; the killed worker's device ran its
 * script once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { DateTime } from 'luxon';
import pino from 'pino';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { openDatabase, rowsOf, type Database } from '../../src/db/client.ts';
import { migrateDatabase } from '../../src/db/migrate.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { NinjaOneClient } from '../../src/adapters/deployers/ninjaone-client.ts';
import { readNinjaOneSync } from '../../src/adapters/deployers/ninjaone-sync-read.ts';
import { loadBook } from '../../src/db/rollout-repo.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { canStartStep, windowContaining } from '../../src/domain/windows.ts';
import { gateKey } from '../../src/domain/rollout.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { approve } from '../../src/use-cases/decisions.ts';
import { confirmPilot } from '../../src/use-cases/pilot.ts';
import { promoteRelease } from '../../src/use-cases/rollout-actions.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { NinjaOneEmulator, startNinjaOneEmulator, type RunningNinjaOneEmulator } from '../../src/sandbox/emulators/ninjaone-emulator.ts';
import { createScratchDatabase, testBackend, type ScratchDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { worldInventory, worldRelease } from '../support/rollout-world.ts';
import { INSTALL_SCRIPT_ID, TEST_CLIENT_ID, TEST_CLIENT_SECRET } from '../support/ninjaone-world.ts';
import { fileClock, type FileClock } from '../support/file-clock.ts';

const RELEASE = '2024-Feb';
const ZONE = 'America/Chicago';
const WINDOW = 'daily 01:00-05:00';
const ENGINEER = { platform: 'slack' as const, id: 'U_ENG' };
const MSP_MACHINES = ['MSP-PC-001', 'MSP-PC-002'];
const PILOT = 'HARBOUR-PILOT-1';
/** Needs no restart after its updates: patchbay must not reboot it. */
const NO_RESTART = 'HARBOUR-PC-00002';
const BROAD = ['HARBOUR-PC-00001', NO_RESTART, 'HARBOUR-PC-00003'];
const ALL = [...MSP_MACHINES, PILOT, ...BROAD];
/** The desktop KBs of worldRelease (5034770 is Server's). */
const RELEASE_KBS = ['5034765', '5034439'];
/** Approved by NinjaOne's policy, not part of patchbay's release: what the policy patches when it is let. */
const POLICY_KB = '5001000';
/** Each ring's night (UTC), and when in it NinjaOne's policy schedule fires: mid-window, after patchbay began. */
const NIGHT = { msp: '2024-02-14', pilot: '2024-02-16', broad: '2024-02-17' } as const;
const POLICY_FIRES_AT = 'T09:30:00Z';
const STORM = 12;

describe.skipIf(testBackend() !== 'postgres')('a month on NinjaOne (PostgreSQL: the worker is another process)', () => {
  let scratch: ScratchDatabase;
  let database: Database;
  let redisServer: TestRedis;
  let redis: Redis;
  let server: RunningNinjaOneEmulator;
  let engine: RolloutEngine;
  let dir: string;
  const children: ChildProcess[] = [];
  /** Clock minutes per real second: a four-hour window lasts two real minutes, a two-KB script about three seconds. */
  const RATE = 120;
  let clock: FileClock;
  const now = () => clock.now();

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'patchbay-ninjaone-month-'));
    clock = fileClock(path.join(dir, 'clock'), RATE, '2024-02-13T17:00:00Z');
    scratch = await createScratchDatabase('patchbay_ninja_month');
    database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 6 });
    await migrateDatabase(database);
    redisServer = await startTestRedis();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  }, 60_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await engine?.close();
    redis?.disconnect();
    await redisServer?.stop();
    await server?.close();
    await database?.close();
    await scratch?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  let workerErr = () => '';

  /** A worker process; resolves once it listens. `pauseAt`: it stops dead there (and prints so) the first time. */
  async function spawnWorker(pauseAt?: string): Promise<{ child: ChildProcess; paused: Promise<string> }> {
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('test/support/rmm-worker.ts')], {
      env: {
        ...process.env,
        ROLLOUT_DATABASE_URL: scratch.url,
        ROLLOUT_REDIS_URL: redisServer.url,
        ROLLOUT_DEPLOYER: 'ninjaone',
        ROLLOUT_PREFIX: `${redisServer.prefix}month`,
        ROLLOUT_CLOCK_FILE: clock.file,
        ROLLOUT_CLOCK_RATE: String(RATE),
        NINJAONE_URL: server.url,
        NINJAONE_CLIENT_ID: TEST_CLIENT_ID,
        NINJAONE_CLIENT_SECRET: TEST_CLIENT_SECRET,
        NINJAONE_INSTALL_SCRIPT_ID: String(INSTALL_SCRIPT_ID),
        ...(pauseAt ? { PAUSE_AT: pauseAt } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    workerErr = () => stderr.slice(-2000);
    const paused = new Promise<string>((resolve) => child.stdout!.on('data', (chunk) => (stdout += chunk) && /paused (\S+)/.test(stdout) && resolve(/paused (\S+)/.exec(stdout)![1]!)));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', () => stdout.includes('ready') && resolve());
      child.on('exit', (code, signal) => reject(new Error(`worker exited ${code ?? signal}: ${stderr}`)));
    });
    return { child, paused };
  }

  let worker: { child: ChildProcess; paused: Promise<string> | undefined };
  let killedBeforeScript: string[] = [];

  const scriptPosts = (id: number) => server.emulator.requests.filter((r) => r.method === 'POST' && r.path === `/v2/device/${id}/script/run` && r.status === 204).length;
  const maintenancePuts = (id: number) => server.emulator.requests.filter((r) => r.method === 'PUT' && r.path === `/v2/device/${id}/maintenance` && r.status === 204);

  /** The first worker paused between recording the activity floor and the script: check that, kill it, start another. */
  async function killPausedWorker(point: string): Promise<void> {
    expect(point).toBe('before-script-post');
    const { emulator } = server;
    const flooredNotRun = ALL.filter((name) => {
      const id = emulator.deviceIdOf(name);
      return maintenancePuts(id).length > 0 && emulator.requests.some((r) => r.path.startsWith(`/v2/device/${id}/activities?pageSize=10`)) && scriptPosts(id) === 0;
    });
    // The whole process stopped: other runs in flight may have stopped at the same step.
    expect(flooredNotRun.length).toBeGreaterThan(0);
    killedBeforeScript = flooredNotRun;
    worker.child.kill('SIGKILL');
    await new Promise((resolve) => worker.child.once('exit', resolve));
    expect(worker.child.signalCode).toBe('SIGKILL');
    worker = { child: (await spawnWorker()).child, paused: undefined };
  }

  async function killIfPaused(): Promise<void> {
    if (!worker.paused) return;
    const point = await Promise.race([worker.paused, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 0))]);
    if (!point) return;
    worker.paused = undefined;
    await killPausedWorker(point);
  }

  const runs = async () =>
    rowsOf<{ name: string; state: string; error: string | null; ring: string }>(
      await database.db.execute(sql`select d.name, r.state, r.error, d.ring from runs r join devices d on d.id = r.device_id order by d.name, r.window_start`),
    );

  /** From the window's start, sweeps as the scheduler would until these machines' runs settle. */
  async function workWindow(startIso: string, machines: readonly string[]): Promise<void> {
    clock.set(startIso);
    const realDeadline = Date.now() + 60_000;
    while (Date.now() < realDeadline) {
      await engine.sweep();
      await killIfPaused();
      const mine = (await runs()).filter((r) => machines.includes(r.name));
      if (mine.length > 0 && mine.every((r) => r.state !== 'scheduled' && r.state !== 'running')) {
        await engine.sweep();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`the window at ${startIso} did not finish by ${now().toISOString()}: ${JSON.stringify(await runs())}; worker: ${workerErr()}`);
  }

  const gate = async (ring: 'msp' | 'pilot' | 'broad', clientId: string | null) => (await loadBook(database.db, RELEASE)).gates[gateKey(ring, clientId)];

  /** NinjaOne: the inventory's machines, the release's KBs and one of its own approved, its schedule set per ring. */
  function seedNinjaOne(emulator: NinjaOneEmulator): Map<string, number> {
    const firesAt = new Map<string, number>();
    const seed = (names: readonly string[], organization: string, night: string) => {
      for (const name of names) {
        const at = Date.parse(`${night}${POLICY_FIRES_AT}`);
        firesAt.set(name, at);
        const id = emulator.addDevice({ systemName: name, organization, location: 'Main', policyPatchEveryMinutes: (at - now().getTime()) / 60_000 });
        for (const kb of RELEASE_KBS) emulator.addPatch(id, { kb, status: 'APPROVED', rebootRequired: name !== NO_RESTART });
        emulator.addPatch(id, { kb: POLICY_KB, status: 'APPROVED', severity: 'IMPORTANT' });
      }
    };
    seed(MSP_MACHINES, 'Example IT', NIGHT.msp);
    seed([PILOT], 'harbour', NIGHT.pilot);
    seed(BROAD, 'harbour', NIGHT.broad);
    return firesAt;
  }

  it('digest, approve, ring msp, pilot, sign-off, broad: inside windows, one script and one wanted reboot each, the policy held back, a 429 storm and a killed worker survived', async () => {
    const emulator = new NinjaOneEmulator({ now, clientId: TEST_CLIENT_ID, clientSecret: TEST_CLIENT_SECRET, installScriptId: INSTALL_SCRIPT_ID });
    const policyFiresAt = seedNinjaOne(emulator);
    server = await startNinjaOneEmulator(emulator);
    const log = pino({ level: 'silent' });
    engine = new RolloutEngine({ config: {} as Config, database, redis, prefix: `${redisServer.prefix}month`, log, roles: new Set(['scheduler']), now }, { realDelayMs: clock.realDelayMs });
    worker = await spawnWorker('before-script-post');

    // ---- devices come from NinjaOne: the YAML links harbour to its organization and names only its pilot (the ring
    // NinjaOne cannot know); the broad machines arrive from NinjaOne as broad, with their OS as MSRC names it ----
    const yaml = worldInventory({ mspDevices: MSP_MACHINES.length, clients: [{ id: 'harbour', pilot: 1, broad: BROAD.length, desktopWindow: WINDOW }], mspWindow: WINDOW });
    const harbour = yaml.clients.find((c) => c.id === 'harbour')!;
    harbour.ninjaoneOrganization = 'harbour';
    for (const location of harbour.locations) location.devices = location.devices.filter((d) => d.ring === 'pilot');
    const sync = new NinjaOneClient({ url: server.url, clientId: TEST_CLIENT_ID, clientSecret: TEST_CLIENT_SECRET, requestsPerSecond: 50 });
    const synced = await readNinjaOneSync(sync, yaml);
    expect(synced.added.sort()).toEqual(BROAD.map((name) => `harbour/${name}`).sort());
    expect(synced.unmapped).toEqual([]);
    expect(synced.problems).toEqual([]);
    await applyInventory(database.db, synced.inventory, now());
    const broadRings = rowsOf<{ ring: string }>(await database.db.execute(sql`select distinct ring from devices where retired_at is null and name like 'HARBOUR-PC-%'`));
    expect(broadRings.map((r) => r.ring)).toEqual(['broad']);
    const devices = rowsOf<{ name: string }>(await database.db.execute(sql`select name from devices where retired_at is null order by name`)).map((d) => d.name);
    expect(devices).toEqual([...ALL].sort());
    expect(emulator.deviceList().map((d) => d.systemName).sort()).toEqual(devices);

    // ---- digest and approval (Patch Tuesday afternoon) ----
    await storeRelease(database.db, worldRelease(), { fetchedAt: now(), now: now() });
    const digests = rowsOf<{ n: number }>(await database.db.execute(sql`select count(*)::int as n from chat_outbox where subject = ${`digest:${RELEASE}`}`));
    expect(digests[0]!.n).toBeGreaterThan(0);
    const ctx = { db: database.db, now };
    expect((await approve(ctx, { actor: ENGINEER, releaseId: RELEASE, updateKey: null })).outcome).toBe('applied');

    // ---- ring msp, Wednesday night: the first worker dies between the activity floor and the script ----
    await workWindow(`${NIGHT.msp}T07:00:00Z`, MSP_MACHINES);
    expect(killedBeforeScript.length).toBeGreaterThan(0);
    for (const name of killedBeforeScript) expect(MSP_MACHINES).toContain(name);
    for (const name of MSP_MACHINES) expect((await runs()).find((r) => r.name === name)).toMatchObject({ state: 'succeeded' });

    // ---- soaked: promoted to pilot; the pilot on Friday night; the champion's sign-off ----
    clock.set('2024-02-15T18:00:00Z');
    await engine.sweep();
    expect((await promoteRelease(ctx, { actor: ENGINEER, releaseId: RELEASE })).outcome).toBe('applied');
    await workWindow(`${NIGHT.pilot}T07:00:00Z`, [PILOT]);
    expect((await runs()).find((r) => r.name === PILOT)).toMatchObject({ state: 'succeeded' });
    clock.set('2024-02-16T15:00:00Z');
    await engine.sweep();
    expect((await gate('pilot', 'harbour'))?.state).toBe('awaiting_confirmation');
    expect((await confirmPilot(ctx, { actor: ENGINEER, releaseId: RELEASE, clientId: 'harbour', requestId: 'signoff-1' })).outcome).toBe('applied');

    // ---- broad, the next night, in a storm of 429s ----
    emulator.inject({ status: 429, retryAfterSeconds: 1, times: STORM });
    await workWindow(`${NIGHT.broad}T07:00:00Z`, BROAD);
    for (const name of BROAD) expect((await runs()).find((r) => r.name === name), name).toMatchObject({ state: 'succeeded' });
    expect(emulator.requests.filter((r) => r.status === 429)).toHaveLength(STORM);
    // Past every ring's maintenance: the policy's later ticks, where it may act, have run.
    clock.set('2024-02-17T18:00:00Z');

    assertInsideWindows(emulator);
    assertOneScriptOneWantedReboot(emulator);
    assertPolicyHeldBack(emulator, policyFiresAt);
    // The machine whose worker died after the floor and before the script: the script ran once, from the second worker.
    for (const name of killedBeforeScript) {
      const id = emulator.deviceIdOf(name);
      expect(scriptPosts(id), name).toBe(1);
      expect(emulator.count(id, 'script', 'api'), name).toBe(1);
    }
  }, 90_000);

  function assertInsideWindows(emulator: NinjaOneEmulator): void {
    const spec = parseWindowSpec(WINDOW);
    if (!spec.ok) throw new Error(spec.error);
    const sideEffects = emulator.requests.filter((r) => r.method === 'POST' && /\/(script\/run|reboot\/NORMAL)$/.test(r.path));
    expect(sideEffects.length).toBeGreaterThan(0);
    for (const request of sideEffects) {
      const at = DateTime.fromISO(request.at);
      const window = windowContaining(spec.value, ZONE, at);
      const budget = request.path.endsWith('/script/run') ? engine.policy.installBudgetMinutes : engine.policy.rebootBudgetMinutes;
      expect(window && canStartStep(window, at, budget), `${request.method} ${request.path} at ${request.at}`).toBe(true);
    }
    for (const told of emulator.delivered.filter((d) => d.by === 'api' && d.what !== 'scan')) {
      expect(windowContaining(spec.value, ZONE, DateTime.fromISO(told.at)), `${told.what} to ${told.deviceId} at ${told.at}`).toBeDefined();
    }
  }

  function assertOneScriptOneWantedReboot(emulator: NinjaOneEmulator): void {
    const reboots = (id: number) => emulator.requests.filter((r) => r.method === 'POST' && r.path === `/v2/device/${id}/reboot/NORMAL`).length;
    for (const name of ALL) {
      const id = emulator.deviceIdOf(name);
      const release = emulator.patchesOf(id).filter((p) => RELEASE_KBS.includes(p.kb.slice(2)));
      expect(release.every((p) => p.installedAt !== null), `${name} installed the release`).toBe(true);
      expect(scriptPosts(id), `${name}: script runs asked`).toBe(1);
      expect(emulator.delivered.filter((d) => d.deviceId === id && d.what === 'script').map((d) => d.kbs?.sort()), `${name}: scripts the device ran`).toEqual([RELEASE_KBS.map((kb) => `KB${kb}`).sort()]);
      expect(emulator.count(id, 'apply', 'api'), `${name}: patchbay never used NinjaOne's apply`).toBe(0);
      expect(reboots(id), `${name}: reboot requests`).toBe(name === NO_RESTART ? 0 : 1);
      expect(emulator.count(id, 'reboot', 'api'), `${name}: reboots by patchbay`).toBe(name === NO_RESTART ? 0 : 1);
    }
  }

  /** No policy patch or reboot inside any maintenance patchbay set; the policy's schedule did fire inside each one. */
  function assertPolicyHeldBack(emulator: NinjaOneEmulator, firesAt: Map<string, number>): void {
    for (const name of ALL) {
      const id = emulator.deviceIdOf(name);
      const spans = maintenancePuts(id).map((r) => {
        const body = r.body as { start: number; end: number; disabledFeatures: string[] };
        expect(body.disabledFeatures).toContain('PATCHING');
        return { start: body.start * 1000, end: body.end * 1000 };
      });
      expect(spans.length, `${name}: maintenance set`).toBeGreaterThan(0);
      const scriptAt = Date.parse(emulator.requests.find((r) => r.method === 'POST' && r.path === `/v2/device/${id}/script/run`)!.at);
      expect(spans.some((s) => s.start <= scriptAt && scriptAt < s.end), `${name}: the script ran under maintenance`).toBe(true);
      expect(spans.some((s) => s.start <= firesAt.get(name)! && firesAt.get(name)! < s.end), `${name}: the policy fired inside patchbay's maintenance`).toBe(true);
      for (const done of emulator.delivered.filter((d) => d.deviceId === id && d.by === 'policy')) {
        const at = Date.parse(done.at);
        expect(spans.some((s) => s.start <= at && at < s.end), `${name}: policy ${done.what} at ${done.at}`).toBe(false);
      }
      // Only the MSP's machines met a policy tick outside maintenance within the month.
      const policyKb = emulator.patchesOf(id).find((p) => p.kb === `KB${POLICY_KB}`)!;
      expect(policyKb.installedAt !== null, `${name}: the policy's own KB installed`).toBe(MSP_MACHINES.includes(name));
    }
    // The policy was live all along: on the MSP's machines its next tick, past the maintenance, patched and rebooted.
    for (const name of MSP_MACHINES) {
      const id = emulator.deviceIdOf(name);
      expect(emulator.count(id, 'apply', 'policy'), name).toBe(1);
      expect(emulator.count(id, 'reboot', 'policy'), name).toBe(1);
    }
  }
});
