/**
 * The rollout engine driving Tactical RMM (its emulator) through the adapter, on real Postgres and Redis: ring msp
 * in one window. Every install and reboot the agents were told of lies inside the window with its budget left,
 * each wanted reboot is asked for once, the agent whose policy would reboot by itself is refused (left alone, never
 * installed or rebooted), and an agent off the network rolls to the next window.
 */
import { Redis } from 'ioredis';
import { DateTime } from 'luxon';
import pino from 'pino';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TacticalClient } from '../../src/adapters/deployers/tactical-client.ts';
import { TacticalDeployer } from '../../src/adapters/deployers/tactical.ts';
import type { Config } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { canStartStep, windowContaining } from '../../src/domain/windows.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { startTacticalEmulator, TacticalEmulator, type RunningTacticalEmulator } from '../../src/sandbox/emulators/tactical-emulator.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { seedWorld } from '../support/rollout-world.ts';
import { TEST_API_KEY } from '../support/tactical-world.ts';

describe('rollout on Tactical RMM (emulated)', () => {
  let database: TestDatabase;
  let redisServer: TestRedis;
  let redis: Redis;
  let server: RunningTacticalEmulator;
  let engine: RolloutEngine | undefined;
  beforeAll(async () => {
    database = await openTestDatabase();
    redisServer = await startTestRedis();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await engine?.close();
    redis?.disconnect();
    await redisServer?.stop();
    await server?.close();
    await database?.close();
  });

  it('ring msp in one window: inside the window, one reboot per wanted reboot, the misconfigured agent refused', async () => {
    // 01:00 CST on 2024-02-14; the MSP's desktop window is daily 01:00-05:00 Chicago.
    let t = Date.parse('2024-02-14T06:30:00Z');
    const emulator = new TacticalEmulator({ now: () => new Date(t), apiKey: TEST_API_KEY });
    // The engine's clock moves on as it is read (each poll a little later), the emulator's agents follow it.
    const engineNow = () => {
      t += 15_000;
      return new Date(t);
    };
    for (const name of ['MSP-PC-001', 'MSP-PC-002', 'MSP-PC-003', 'MSP-PC-004']) {
      const agentId = emulator.addAgent({
        hostname: name,
        client: 'Example IT',
        ...(name === 'MSP-PC-004' ? { automationPolicy: { reboot_after_install: 'required' as const } } : {}),
      });
      for (const kb of ['5034765', '5034439']) emulator.addUpdate(agentId, { kb, severity: 'Critical' });
    }
    emulator.setConnected(emulator.agentIdOf('MSP-PC-003'), false);
    server = await startTacticalEmulator(emulator);
    await seedWorld(database.db, { mspDevices: 4 }, new Date(t));
    const deployer = new TacticalDeployer({
      client: new TacticalClient({ url: server.url, apiKey: TEST_API_KEY, requestsPerSecond: 1000, sleep: async () => {} }),
      db: database.db,
      now: () => new Date(t),
    });
    const log = pino({ level: 'silent' });
    engine = new RolloutEngine(
      { config: {} as Config, database, redis, prefix: `${redisServer.prefix}tac`, log, roles: new Set(['worker']), now: engineNow },
      { deployer, pollMs: 1, realDelayMs: () => 0 },
    );
    expect((await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' })).outcome).toBe('applied');
    t = Date.parse('2024-02-14T07:00:00Z');
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 4 });

    const runs = async () =>
      rowsOf<{ id: number; name: string; state: string; error: string | null; reboots: number }>(
        await database.db.execute(sql`select r.id, d.name, r.state, r.error, r.reboots from runs r join devices d on d.id = r.device_id order by d.name`),
      );
    // Each round a few minutes later, as delayed jobs would come back, until the window is over.
    for (let round = 0; round < 200 && (await runs()).some((r) => r.state === 'scheduled' || r.state === 'running'); round++) {
      for (const run of await runs()) if (run.state === 'scheduled' || run.state === 'running') await engine.processRun(Number(run.id));
      t += 2 * 60_000;
    }
    const byName = new Map((await runs()).map((r) => [r.name, r]));
    expect(byName.get('MSP-PC-001')).toMatchObject({ state: 'succeeded' });
    expect(byName.get('MSP-PC-002')).toMatchObject({ state: 'succeeded' });
    expect(byName.get('MSP-PC-003')!.state).toMatch(/^(offline|rolled)$/);
    // Refused is not a failure of the update on the machine: the run leaves it alone (issue 15's thread notice).
    expect(byName.get('MSP-PC-004')).toMatchObject({ state: 'skipped', error: expect.stringMatching(/refused: .*MSP-PC-004.*reboot_after_install: required/) });

    const spec = parseWindowSpec('daily 01:00-05:00');
    if (!spec.ok) throw new Error(spec.error);
    const window = windowContaining(spec.value, 'America/Chicago', DateTime.fromISO('2024-02-14T07:00:00Z'))!;
    for (const d of emulator.delivered) {
      const budget = d.func === 'installwinupdates' ? engine.policy.installBudgetMinutes : engine.policy.rebootBudgetMinutes;
      expect(canStartStep(window, DateTime.fromISO(d.at), budget), `${d.func} ${d.agentId} at ${d.at}`).toBe(true);
    }
    for (const name of ['MSP-PC-001', 'MSP-PC-002']) {
      const agentId = emulator.agentIdOf(name);
      expect(emulator.installsDelivered(agentId), name).toBe(1);
      expect(emulator.rebootsDelivered(agentId, 'api'), name).toBe(1);
      expect(emulator.rebootsDelivered(agentId, 'policy'), name).toBe(0);
      expect(emulator.rowsOf(agentId).every((r) => r.installed)).toBe(true);
    }
    for (const name of ['MSP-PC-003', 'MSP-PC-004']) {
      const agentId = emulator.agentIdOf(name);
      expect(emulator.installsDelivered(agentId) + emulator.rebootsDelivered(agentId), name).toBe(0);
    }
    expect(emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/reboot/'))).toHaveLength(2);
  });
});
