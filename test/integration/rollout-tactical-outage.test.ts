/**
 * What the engineers are told when Tactical RMM says no, end to end on real Postgres and Redis with the emulator:
 * an outage (5xx, or the API key refused) pauses runs and is reported once, with one "answers again"; an agent
 * whose policy would act on its own is left alone and named in the release's thread once; and an update Tactical
 * dropped as superseded counts installed when the release model's successor is installed.
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import { sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Deployer } from '../../src/adapters/deployers/port.ts';
import { TacticalClient } from '../../src/adapters/deployers/tactical-client.ts';
import { TacticalDeployer } from '../../src/adapters/deployers/tactical.ts';
import type { Config } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { DeployerCalls } from '../../src/jobs/deployer-calls.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { startTacticalEmulator, TacticalEmulator, type AgentSeed, type RunningTacticalEmulator } from '../../src/sandbox/emulators/tactical-emulator.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { seedWorld, worldRelease } from '../support/rollout-world.ts';
import { TEST_API_KEY } from '../support/tactical-world.ts';

/** Tactical as it is on a bad night: down (502/503 from its proxy) or refusing the key, as the test says. */
class TroubledEmulator extends TacticalEmulator {
  answering: 'yes' | 'down' | 'key-refused' = 'yes';
  override handle(...args: Parameters<TacticalEmulator['handle']>): ReturnType<TacticalEmulator['handle']> {
    if (this.answering === 'down') return { status: 503, body: '<h1>503 Service Unavailable</h1>' };
    if (this.answering === 'key-refused') return { status: 401, body: { detail: 'Invalid token.' } };
    return super.handle(...args);
  }
}

interface Outboxed {
  key: string;
  subject: string;
  text: string;
  thread: string | null;
  payload: string;
}

describe('rollout on Tactical RMM when Tactical says no', () => {
  let database: TestDatabase | undefined;
  let redisServer: TestRedis;
  let redis: Redis;
  let server: RunningTacticalEmulator | undefined;
  let engine: RolloutEngine | undefined;
  let prefixes = 0;
  beforeAll(async () => {
    redisServer = await startTestRedis();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  });
  afterEach(async () => {
    await engine?.close();
    await server?.close();
    await database?.close();
    engine = server = database = undefined;
  });
  afterAll(async () => {
    redis?.disconnect();
    await redisServer?.stop();
  });

  /** Ring msp of 2024-Feb on `agents` MSP machines, each with a Tactical agent offered both KBs; the window opens at 07:00Z. */
  interface WorldSetup {
    /** Changes to the agents before the night starts. */
    agents?: (emulator: TroubledEmulator, agentIds: string[]) => void;
    seed?: (i: number) => Partial<AgentSeed>;
    /** More of the world stored before the window opens. */
    store?: (db: TestDatabase['db']) => Promise<void>;
  }

  async function world(agents: number, setup: WorldSetup = {}) {
    database = await openTestDatabase();
    const db = database.db;
    let t = Date.parse('2024-02-14T06:30:00Z');
    const emulator = new TroubledEmulator({ now: () => new Date(t), apiKey: TEST_API_KEY });
    const agentIds = Array.from({ length: agents }, (_, i) => emulator.addAgent({ hostname: `MSP-PC-00${i + 1}`, client: 'Example IT', ...setup.seed?.(i) }));
    for (const agentId of agentIds) for (const kb of ['5034765', '5034439']) emulator.addUpdate(agentId, { kb, severity: 'Critical' });
    setup.agents?.(emulator, agentIds);
    server = await startTacticalEmulator(emulator);
    await seedWorld(db, { mspDevices: agents }, new Date(t));
    await setup.store?.(db);
    const deployer = new TacticalDeployer({
      client: new TacticalClient({ url: server.url, apiKey: TEST_API_KEY, requestsPerSecond: 1000, retries: 1, sleep: async () => {} }),
      db,
      now: () => new Date(t),
    });
    const context = { config: {} as Config, database, redis, prefix: `${redisServer.prefix}out${prefixes++}`, log: pino({ level: 'silent' }), roles: new Set(['worker'] as const), now: () => new Date((t += 15_000)) };
    engine = new RolloutEngine(context, { deployer, pollMs: 1, realDelayMs: () => 0 });
    expect((await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' })).outcome).toBe('applied');
    t = Date.parse('2024-02-14T07:00:00Z');
    expect(await engine.sweep()).toMatchObject({ runsPlanned: agents });
    const runs = async () =>
      rowsOf<{ id: number; name: string; state: string; result: string | null; error: string | null; attempts: number; missed: number }>(
        await db.execute(sql`select r.id, d.name, r.state, r.result, r.error, r.attempts, d.consecutive_missed_windows as missed
          from runs r join devices d on d.id = r.device_id order by d.name`),
      );
    /** Rounds two minutes apart, as delayed jobs come back, until every run ended; `each` sees the clock first. */
    const drive = async (each: (minutesIn: number) => void = () => {}) => {
      for (let round = 0; round < 200 && (await runs()).some((r) => r.state === 'scheduled' || r.state === 'running'); round++) {
        each((t - Date.parse('2024-02-14T07:00:00Z')) / 60_000);
        for (const run of await runs()) if (run.state === 'scheduled' || run.state === 'running') await engine!.processRun(Number(run.id));
        t += 2 * 60_000;
      }
    };
    const outbox = async (like: string) =>
      rowsOf<Outboxed>(
        await db.execute(sql`select idempotency_key as key, subject, payload ->> 'text' as text, payload ->> 'threadSubject' as thread, payload::text as payload
          from chat_outbox where subject like ${like} order by id`),
      );
    return { emulator, agentIds, runs, drive, outbox, db };
  }

  it('Tactical down for an hour mid-window: runs pause and finish after it, nothing failed, the engineers told once and once more when it is back', async () => {
    const w = await world(2);
    await w.drive((minutes) => (w.emulator.answering = minutes < 60 ? 'down' : 'yes'));
    for (const run of await w.runs()) expect(run, run.name).toMatchObject({ state: 'succeeded', attempts: 0, error: null, missed: 0 });
    for (const agentId of w.agentIds) expect(w.emulator.installsDelivered(agentId)).toBe(1);

    const told = await w.outbox('deployer-outage:%');
    expect(told).toHaveLength(2);
    const [down, back] = told;
    expect(down!.text).toMatch(/^Tactical RMM at 127\.0\.0\.1:\d+ has not answered since 01:0\d CST \(HTTP 503\); runs are paused, nothing was marked failed\.$/);
    expect(back!.text).toMatch(/^Tactical RMM at 127\.0\.0\.1:\d+ answers again since 02:\d\d CST; paused runs carry on/);
    expect(back!.thread).toBe(down!.subject);
    for (const row of told) expect(row.payload).not.toContain(TEST_API_KEY);
  });

  it('the API key refused all night: the runs roll to the next window without a missed window counted, the engineers told once', async () => {
    const w = await world(2);
    w.emulator.answering = 'key-refused';
    await w.drive();
    for (const run of await w.runs()) expect(run, run.name).toMatchObject({ state: 'rolled', result: 'deployer_unavailable', attempts: 0, missed: 0 });
    const told = await w.outbox('deployer-outage:%');
    expect(told.map((r) => r.text)).toEqual([expect.stringMatching(/has not answered since .* \(HTTP 401: the API key was refused\); runs are paused, nothing was marked failed\.$/)]);
    expect(told[0]!.payload).not.toContain(TEST_API_KEY);
    expect(w.emulator.installsDelivered(w.agentIds[0]!) + w.emulator.installsDelivered(w.agentIds[1]!)).toBe(0);
  });

  it('an agent whose policy would reboot by itself is left alone, not failed, and named in the release thread with the fix, once', async () => {
    // MSP-PC-002's automation policy reboots as soon as an install finishes.
    const w = await world(2, { seed: (i) => (i === 1 ? { automationPolicy: { reboot_after_install: 'always' as const } } : {}) });
    await w.drive();
    const [fine, refused] = await w.runs();
    expect(fine).toMatchObject({ name: 'MSP-PC-001', state: 'succeeded' });
    expect(refused).toMatchObject({ name: 'MSP-PC-002', state: 'skipped', result: 'refused', attempts: 0, missed: 0, error: expect.stringMatching(/^refused: .*reboot_after_install: always/) });
    expect(w.emulator.installsDelivered(w.agentIds[1]!) + w.emulator.rebootsDelivered(w.agentIds[1]!)).toBe(0);
    const told = await w.outbox('device-refused:%');
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ subject: 'device-refused:2024-Feb:MSP-PC-002', thread: 'digest:2024-Feb' });
    // Slack mrkdwn escaping puts zero-width spaces around underscores; people read the setting's name.
    expect(told[0]!.text.replace(/\u200b/g, '')).toMatch(/^2024-Feb: patchbay left MSP-PC-002 \(our own machines\) alone, nothing installed: refused: .*reboot_after_install: always .*patchbay devices check --fix/);
  });

  it('a KB Tactical dropped as superseded counts installed when its successor (from a later release) is installed', async () => {
    const feb = worldRelease();
    const cumulative = feb.updates.find((u) => u.id === '5034765')!;
    const march = { ...feb, id: '2024-Mar', updates: [{ ...cumulative, id: '5035853', kb: '5035853', name: '5035853', supersedes: ['5034765'] }] };
    const w = await world(1, {
      agents: (emulator, [agentId]) => {
        // March's cumulative update replaced February's on this machine: Windows Update stopped offering 5034765.
        emulator.supersede(agentId!, '5034765');
        emulator.addUpdate(agentId!, { kb: '5035853', severity: 'Critical', installed: true });
      },
      store: async (db) => void (await storeRelease(db, march, { fetchedAt: new Date('2024-02-14T06:00:00Z'), now: new Date('2024-02-14T06:00:00Z') })),
    });
    await w.drive();
    expect((await w.runs())[0]).toMatchObject({ state: 'succeeded', attempts: 0, error: null });
    const rows = w.emulator.rowsOf(w.agentIds[0]!);
    expect(rows.find((r) => r.kb === 'KB5034439')?.installed).toBe(true);
    expect(rows.some((r) => r.kb === 'KB5034765')).toBe(false);
  });
});

describe('a refused device in the thread', () => {
  it('is told once per agent and release however many runs are refused', async () => {
    const database = await openTestDatabase();
    try {
      await seedWorld(database.db, { mspDevices: 1 }, new Date('2024-02-14T06:00:00Z'));
      const why = 'refused: Tactical RMM would act on its own on MSP-PC-001: its effective patch policy has critical: approve (auto-approves critical updates). Set the agent\'s policy to manual approval, no install days and reboot_after_install never (patchbay devices check --fix does it).';
      const refusing: Deployer = {
        name: 'tactical',
        isOnline: async () => true,
        install: async (_device, _updates, key) => ({ handle: key, state: 'failed', error: why, refused: true }),
        reboot: async () => { throw new Error('no reboot expected'); },
        status: async (_device, handle) => ({ handle, state: 'failed', error: why, refused: true }),
        verify: async () => ({ missing: [], rebootPending: false }),
      };
      const calls = new DeployerCalls(refusing, database.db, () => new Date('2024-02-14T07:00:00Z'));
      const device = { id: 1, name: 'MSP-PC-001' };
      for (const key of ['1-install-1', '7-install-1']) {
        expect(await calls.ask(device, [{ key: '5034765' }], { type: 'install', key, updates: ['5034765'] }, { releaseId: '2024-Feb', clientId: null })).toMatchObject({ type: 'failed', refused: true });
      }
      await calls.ask(device, [{ key: '5034765' }], { type: 'install', key: '9-install-1', updates: ['5034765'] }, { releaseId: '2024-Mar', clientId: null });
      const rows = rowsOf<{ subject: string; text: string; thread: string | null }>(
        await database.db.execute(sql`select subject, payload ->> 'text' as text, payload ->> 'threadSubject' as thread from chat_outbox where subject like 'device-refused:%' order by id`),
      );
      expect(rows.map((r) => [r.subject, r.thread])).toEqual([
        ['device-refused:2024-Feb:MSP-PC-001', 'digest:2024-Feb'],
        ['device-refused:2024-Mar:MSP-PC-001', 'digest:2024-Mar'],
      ]);
      expect(rows[0]!.text).toMatch(/^2024-Feb: patchbay left MSP-PC-001 \(our own machines\) alone, nothing installed: refused: .*critical: approve.*patchbay devices check --fix/);
    } finally {
      await database.close();
    }
  });
});
