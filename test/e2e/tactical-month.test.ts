/**
 * A whole month on Tactical RMM (its emulator, served over HTTP): devices synced from Tactical, the release stored
 * and its digest queued, the release approved, ring msp, the promotion to pilot, the champion's sign-off, broad.
 * The runs are worked by a real worker process driving the real Tactical adapter; the first one is SIGKILLed after
 * it approved a machine's KBs and before it sent the install, and a new one finishes the month.
 *
 * Judged against what the emulator was asked and what its agents were really told, not what patchbay believes:
 * no install or reboot outside a window; exactly one reboot request per machine whose install wanted one and none
 * elsewhere; the agent whose policy would reboot by itself refused (never installed, never rebooted); the machine
 * whose worker died between approve and install installed once. Then the client's compliance PDF for the month,
 * read back with pdfjs: its numbers are counts from the tables, its appendix has the champion's sign-off and each
 * reboot at the time Tactical was asked for it.
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
import { TacticalClient } from '../../src/adapters/deployers/tactical-client.ts';
import { mergeTactical } from '../../src/adapters/deployers/tactical-sync.ts';
import type { Config } from '../../src/config.ts';
import { openDatabase, rowsOf, type Database } from '../../src/db/client.ts';
import { migrateDatabase } from '../../src/db/migrate.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { loadBook } from '../../src/db/rollout-repo.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { canStartStep, windowContaining } from '../../src/domain/windows.ts';
import { gateKey } from '../../src/domain/rollout.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { approve } from '../../src/use-cases/decisions.ts';
import { confirmPilot } from '../../src/use-cases/pilot.ts';
import { promoteRelease } from '../../src/use-cases/rollout-actions.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { startTacticalEmulator, TacticalEmulator, type RunningTacticalEmulator, type UpdateSeed } from '../../src/sandbox/emulators/tactical-emulator.ts';
import { createScratchDatabase, testBackend, type ScratchDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { worldInventory, worldRelease } from '../support/rollout-world.ts';
import { TEST_API_KEY } from '../support/tactical-world.ts';
import { fileClock, type FileClock } from '../support/file-clock.ts';
import { headlineValue, readPdf } from '../support/pdf-reader.ts';
import { writeReports } from '../../src/commands/report.ts';
import { monthPeriod } from '../../src/domain/report-period.ts';

const RELEASE = '2024-Feb';
const ZONE = 'America/Chicago';
const WINDOW = 'daily 01:00-05:00';
const ENGINEER = { platform: 'slack' as const, id: 'U_ENG' };
const MSP_MACHINES = ['MSP-PC-001', 'MSP-PC-002'];
const PILOT = 'HARBOUR-PILOT-1';
/** Needs no restart after its updates: patchbay must not reboot it. */
const NO_RESTART = 'HARBOUR-PC-00002';
/** Its automation policy auto-approves and reboots by itself: patchbay must refuse it. */
const MISCONFIGURED = 'HARBOUR-PC-00003';
const BROAD = ['HARBOUR-PC-00001', NO_RESTART, MISCONFIGURED];

describe.skipIf(testBackend() !== 'postgres')('a month on Tactical RMM (PostgreSQL: the worker is another process)', () => {
  let scratch: ScratchDatabase;
  let database: Database;
  let redisServer: TestRedis;
  let redis: Redis;
  let server: RunningTacticalEmulator;
  let engine: RolloutEngine;
  let dir: string;
  const children: ChildProcess[] = [];
  /** Clock minutes per real second: a four-hour window lasts two real minutes, an install of two KBs about two seconds. */
  const RATE = 120;
  let clock: FileClock;
  const now = () => clock.now();

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'patchbay-tactical-month-'));
    clock = fileClock(path.join(dir, 'clock'), RATE, '2024-02-13T17:00:00Z');
    scratch = await createScratchDatabase('patchbay_tac_month');
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
        ROLLOUT_DEPLOYER: 'tactical',
        ROLLOUT_PREFIX: `${redisServer.prefix}month`,
        ROLLOUT_CLOCK_FILE: clock.file,
        ROLLOUT_CLOCK_RATE: String(RATE),
        TACTICAL_URL: server.url,
        TACTICAL_API_KEY: TEST_API_KEY,
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
  let killedBetweenApproveAndInstall: string[] = [];

  /** The first worker paused between approve and install: check that is where it is, kill it, start another. */
  async function killPausedWorker(point: string): Promise<void> {
    expect(point).toBe('approved');
    const approvedNotSent = [...MSP_MACHINES, PILOT, ...BROAD].filter((name) => {
      const agentId = server.emulator.agentIdOf(name);
      return server.emulator.rowsOf(agentId).some((r) => r.action === 'approve' && !r.installed) && server.emulator.installsDelivered(agentId) === 0;
    });
    // The whole process stopped: other runs in flight may have stopped at the same step.
    expect(approvedNotSent.length).toBeGreaterThan(0);
    killedBetweenApproveAndInstall = approvedNotSent;
    worker.child.kill('SIGKILL');
    await new Promise((resolve) => worker.child.once('exit', resolve));
    expect(worker.child.signalCode).toBe('SIGKILL');
    worker = { child: (await spawnWorker()).child, paused: undefined };
  }

  /** A worker that paused is killed and replaced. */
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

  /** From the window's start, sweeps as the scheduler would (every half clock minute) until these machines' runs settle. */
  async function workWindow(startIso: string, machines: readonly string[]): Promise<void> {
    clock.set(startIso);
    const realDeadline = Date.now() + 60_000;
    while (Date.now() < realDeadline) {
      await engine.sweep();
      await killIfPaused();
      const mine = (await runs()).filter((r) => machines.includes(r.name));
      if (mine.length > 0 && mine.every((r) => r.state !== 'scheduled' && r.state !== 'running')) {
        // The sweep that sees the ring's runs settled finishes its gate, still inside the window.
        await engine.sweep();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`the window at ${startIso} did not finish by ${now().toISOString()}: ${JSON.stringify(await runs())}; worker: ${workerErr()}`);
  }

  const gate = async (ring: 'msp' | 'pilot' | 'broad', clientId: string | null) => (await loadBook(database.db, RELEASE)).gates[gateKey(ring, clientId)];

  it('sync, digest, approve, ring msp, pilot, sign-off, broad: inside windows, one reboot per wanted reboot, the misconfigured agent refused, a killed worker resumed without a second install', async () => {
    // ---- Tactical: the MSP's machines and a client's, one of them misconfigured ----
    const emulator: TacticalEmulator = new TacticalEmulator({
      now,
      apiKey: TEST_API_KEY,
      offers: (agentId): UpdateSeed[] => {
        const reboot: boolean = agentId !== emulator.agentIdOf(NO_RESTART);
        return [
          { kb: '5034765', severity: 'Critical', rebootRequired: reboot },
          { kb: '5034439', severity: 'Important', rebootRequired: reboot },
        ];
      },
    });
    for (const name of MSP_MACHINES) emulator.addAgent({ hostname: name, client: 'Example IT' });
    for (const name of [PILOT, ...BROAD]) {
      emulator.addAgent({ hostname: name, client: 'Harbour Dental', site: 'Main', ...(name === MISCONFIGURED ? { automationPolicy: { critical: 'approve', reboot_after_install: 'always' } } : {}) });
    }
    server = await startTacticalEmulator(emulator);
    const log = pino({ level: 'silent' });
    engine = new RolloutEngine({ config: {} as Config, database, redis, prefix: `${redisServer.prefix}month`, log, roles: new Set(['scheduler']), now }, { realDelayMs: clock.realDelayMs });
    worker = await spawnWorker('approved');

    // ---- sync: the YAML names the pilot; Tactical brings the rest as broad ----
    const yaml = worldInventory({ mspDevices: MSP_MACHINES.length, clients: [{ id: 'harbour', pilot: 1, broad: 0, desktopWindow: WINDOW }], mspWindow: WINDOW });
    yaml.clients[0]!.tacticalClient = 'Harbour Dental';
    const tactical = new TacticalClient({ url: server.url, apiKey: TEST_API_KEY, requestsPerSecond: 1000 });
    const synced = mergeTactical(yaml, await tactical.get('clients/'), await tactical.get('agents/'));
    expect(synced.problems).toEqual([]);
    expect(synced.added.sort()).toEqual(BROAD.map((n) => `harbour/${n}`));
    await applyInventory(database.db, synced.inventory, now());
    const devices = rowsOf<{ name: string; ring: string }>(await database.db.execute(sql`select name, ring from devices where retired_at is null order by name`));
    expect(devices).toEqual([...BROAD.map((name) => ({ name, ring: 'broad' })), { name: PILOT, ring: 'pilot' }, ...MSP_MACHINES.map((name) => ({ name, ring: 'msp' }))].sort((a, b) => a.name.localeCompare(b.name)));

    // ---- digest and approval (Patch Tuesday afternoon) ----
    await storeRelease(database.db, worldRelease(), { fetchedAt: now(), now: now() });
    const digests = rowsOf<{ n: number }>(await database.db.execute(sql`select count(*)::int as n from chat_outbox where subject = ${`digest:${RELEASE}`}`));
    expect(digests[0]!.n).toBeGreaterThan(0);
    const ctx = { db: database.db, now };
    expect((await approve(ctx, { actor: ENGINEER, releaseId: RELEASE, updateKey: null })).outcome).toBe('applied');

    // ---- ring msp, Wednesday night: the first worker dies between approve and install ----
    await workWindow('2024-02-14T07:00:00Z', MSP_MACHINES);
    expect(killedBetweenApproveAndInstall.length).toBeGreaterThan(0);
    for (const name of killedBetweenApproveAndInstall) expect(MSP_MACHINES).toContain(name);
    for (const name of MSP_MACHINES) expect((await runs()).find((r) => r.name === name)).toMatchObject({ state: 'succeeded' });

    // ---- soaked: promoted to pilot; the pilot on Friday night; the champion's sign-off ----
    clock.set('2024-02-15T18:00:00Z');
    await engine.sweep();
    expect((await promoteRelease(ctx, { actor: ENGINEER, releaseId: RELEASE })).outcome).toBe('applied');
    await workWindow('2024-02-16T07:00:00Z', [PILOT]);
    expect((await runs()).find((r) => r.name === PILOT)).toMatchObject({ state: 'succeeded' });
    clock.set('2024-02-16T15:00:00Z');
    await engine.sweep();
    expect((await gate('pilot', 'harbour'))?.state).toBe('awaiting_confirmation');
    expect((await confirmPilot(ctx, { actor: ENGINEER, releaseId: RELEASE, clientId: 'harbour', requestId: 'signoff-1' })).outcome).toBe('applied');

    // ---- broad, the next night ----
    await workWindow('2024-02-17T07:00:00Z', BROAD);
    const broad = new Map((await runs()).filter((r) => BROAD.includes(r.name)).map((r) => [r.name, r]));
    expect(broad.get('HARBOUR-PC-00001')).toMatchObject({ state: 'succeeded' });
    expect(broad.get(NO_RESTART)).toMatchObject({ state: 'succeeded' });
    // Refused, not failed: the update did not fail on it, patchbay would not let Tactical near it. The thread says so, once.
    expect(broad.get(MISCONFIGURED)).toMatchObject({ state: 'skipped', error: expect.stringMatching(/refused: .*HARBOUR-PC-00003.*reboot_after_install: always/) });
    const refusedPosts = rowsOf<{ text: string }>(
      await database.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject = ${`device-refused:${RELEASE}:${MISCONFIGURED}`}`),
    );
    expect(refusedPosts).toHaveLength(1);
    expect(refusedPosts[0]!.text).toContain('patchbay devices check --fix');

    // ---- what Tactical was asked and what its agents were told ----
    const spec = parseWindowSpec(WINDOW);
    if (!spec.ok) throw new Error(spec.error);
    const sideEffects = emulator.requests.filter((r) => r.method === 'POST' && /\/(install|reboot)\/$/.test(r.path));
    expect(sideEffects.length).toBeGreaterThan(0);
    for (const request of sideEffects) {
      const at = DateTime.fromISO(request.at);
      const window = windowContaining(spec.value, ZONE, at);
      const budget = request.path.endsWith('/install/') ? engine.policy.installBudgetMinutes : engine.policy.rebootBudgetMinutes;
      expect(window && canStartStep(window, at, budget), `${request.method} ${request.path} at ${request.at}`).toBe(true);
    }
    // Tactical never acted on its own: no scheduled install, no reboot by its policy, anywhere in the month.
    expect(emulator.delivered.filter((d) => d.by !== 'api')).toEqual([]);
    for (const told of emulator.delivered) {
      const at = DateTime.fromISO(told.at);
      expect(windowContaining(spec.value, ZONE, at), `${told.func} to ${told.agentId} at ${told.at}`).toBeDefined();
    }
    const posts = (agentId: string, what: 'install' | 'reboot') => emulator.requests.filter((r) => r.method === 'POST' && r.path === `/${what === 'install' ? 'winupdate' : 'agents'}/${agentId}/${what}/`).length;
    for (const name of [...MSP_MACHINES, PILOT, 'HARBOUR-PC-00001', NO_RESTART]) {
      const agentId = emulator.agentIdOf(name);
      const wantedReboot = emulator.rowsOf(agentId).some((r) => r.installed && r.hidden.rebootRequired);
      expect(emulator.rowsOf(agentId).every((r) => r.installed), `${name} installed everything`).toBe(true);
      expect(posts(agentId, 'install'), `${name}: install requests`).toBe(1);
      expect(emulator.installsDelivered(agentId), `${name}: installs the agent heard`).toBe(1);
      expect(posts(agentId, 'reboot'), `${name}: reboot requests`).toBe(wantedReboot ? 1 : 0);
      expect(emulator.rebootsDelivered(agentId, 'policy'), `${name}: reboots by policy`).toBe(0);
    }
    expect(emulator.rowsOf(emulator.agentIdOf(NO_RESTART)).some((r) => r.hidden.rebootRequired)).toBe(false);
    const refused = emulator.agentIdOf(MISCONFIGURED);
    expect(posts(refused, 'install') + posts(refused, 'reboot')).toBe(0);
    expect(emulator.installsDelivered(refused) + emulator.rebootsDelivered(refused)).toBe(0);
    expect(emulator.rowsOf(refused).some((r) => r.installed)).toBe(false);
    // The machine whose worker died between approve and install: that install was sent once, by the second worker.
    for (const name of killedBetweenApproveAndInstall) {
      const resumed = emulator.agentIdOf(name);
      expect(posts(resumed, 'install'), name).toBe(1);
      expect(emulator.installsDelivered(resumed), name).toBe(1);
    }

    // ---- the month's compliance PDF for the client ----
    const feb = monthPeriod(RELEASE);
    if (!feb.ok) throw new Error(feb.error);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'patchbay-month-report-'));
    try {
      const [file] = await writeReports(database.db, { client: 'harbour', period: feb.period, format: 'pdf', out, now: now() });
      const pdf = await readPdf(fs.readFileSync(file!));
      const [counts] = rowsOf<{ devices: number; installed: number }>(
        await database.db.execute(sql`select count(distinct d.id)::int as devices,
            coalesce(sum(jsonb_array_length(r.updates)) filter (where r.state = 'succeeded'), 0)::int as installed
          from devices d left join runs r on r.device_id = d.id where d.client_id = 'harbour' and d.retired_at is null`),
      );
      expect(headlineValue(pdf.pages[0]!.text, 'Devices in scope')).toBe(String(counts!.devices));
      expect(headlineValue(pdf.pages[0]!.text, 'Updates installed')).toBe(String(counts!.installed));
      const appendix = pdf.pages.slice(1).map((p) => p.text).join('\n');
      expect(appendix).toMatch(/Pilot sign-offs[\s\S]*2024-Feb\s+engineer:U_ENG/);
      const minute = (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
      const rebooted = [PILOT, 'HARBOUR-PC-00001'].map((name) => emulator.requests.find((r) => r.method === 'POST' && r.path === `/agents/${emulator.agentIdOf(name)}/reboot/`));
      // The appendix shows when patchbay asked (its operation row, written just before the request); the emulator
      // stamps when the request arrived. The test clock runs 120 times fast, so half a real second between them is a minute on the page.
      for (const request of rebooted) {
        const arrived = Date.parse(request!.at);
        const candidates = [0, 1, 2, 3, 4, 5].map((back) => minute(new Date(arrived - back * 60_000).toISOString()));
        expect(candidates.some((c) => appendix.includes(c)), `${candidates.join(' | ')} in the appendix`).toBe(true);
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
