/**
 * The sandbox with PATCHBAY_SANDBOX_DEPLOYER=tactical: `startApp` gives the rollout the real Tactical adapter on a
 * Tactical RMM emulator, whose agents are the sample inventory's machines and whose Windows Update offers the KBs
 * of the release the watcher stored.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { createLogger } from '../../src/log.ts';
import { ROLES } from '../../src/jobs/context.ts';
import { SandboxClock } from '../../src/sandbox/clock.ts';
import type { SandboxState } from '../../src/sandbox/api-types.ts';
import { PAGE_TOKEN_HEADER } from '../../src/sandbox/page-guard.ts';
import { appDatabaseEnv, type AppTestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';

let app: RunningApp;
let scratch: AppTestDatabase;
let redis: TestRedis;
let dataDir: string;

beforeAll(async () => {
  scratch = await appDatabaseEnv('patchbay_sandbox_tac');
  redis = await startTestRedis();
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-sandbox-tac-'));
  const config = loadConfig({ ...scratch.env, REDIS_URL: redis.url, REDIS_PREFIX: `sbt${process.pid}`, PATCHBAY_DATA_DIR: dataDir, PATCHBAY_SANDBOX: 'on', PATCHBAY_SANDBOX_DEPLOYER: 'tactical' });
  const clock = new SandboxClock({ start: new Date('2026-12-07T15:00:00Z'), rate: 1 });
  app = await startApp(config, createLogger('silent'), { roles: new Set(ROLES), port: 0, sandboxClock: clock, sandboxTickMs: 300 });
}, 120_000);

afterAll(async () => {
  await app?.stop();
  await redis?.stop();
  await scratch?.drop();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

describe('the sandbox on the Tactical RMM emulator', () => {
  it('runs go to the Tactical adapter, whose agents are the inventory’s machines, offered the stored release’s KBs', async () => {
    const sandbox = app.sandbox!;
    expect(sandbox.devices.name).toBe('tactical');
    const tactical = sandbox.tactical!;
    const names = rowsOf<{ name: string }>(await app.database.db.execute(sql`select name from devices where retired_at is null order by name`)).map((r) => r.name);
    expect(names.length).toBeGreaterThan(10);
    expect(tactical.emulator.agentList().map((a) => a.hostname).sort()).toEqual([...names].sort());

    // The watcher stores the month already released; then Windows Update "offers" its KBs.
    const deadline = Date.now() + 60_000;
    let kbs = 0;
    while (kbs === 0 && Date.now() < deadline) {
      kbs = Number(rowsOf<{ n: number }>(await app.database.db.execute(sql`select count(distinct kb)::int as n from updates where kb is not null and kb <> ''`))[0]!.n);
      if (kbs === 0) await new Promise((r) => setTimeout(r, 300));
    }
    expect(kbs).toBeGreaterThan(0);
    await tactical.refresh();
    const device = { id: 0, name: names[0]! };
    expect(await sandbox.devices.isOnline(device)).toBe(true);
    const missing = await sandbox.devices.verify(device, [{ key: 'KB0000001', kb: '0000001' }]);
    expect(missing).toEqual({ missing: ['KB0000001'], rebootPending: false });
    const agentId = tactical.emulator.agentIdOf(names[0]!);
    expect(tactical.emulator.rowsOf(agentId)).toHaveLength(kbs);
    expect(tactical.emulator.requests.some((r) => r.path === `/winupdate/${agentId}/`)).toBe(true);

    // The page's state carries the agents and what the emulator was asked.
    const res = await fetch(`http://127.0.0.1:${app.port}/sandbox/api/state`, { headers: { [PAGE_TOKEN_HEADER]: sandbox.pageToken } });
    const state = (await res.json()) as SandboxState;
    expect(state.tactical!.agents).toHaveLength(names.length);
    expect(state.tactical!.requests.slice(-2)).toMatchObject([
      { method: 'POST', path: `/winupdate/${agentId}/scan/`, status: 200 },
      { method: 'GET', path: `/winupdate/${agentId}/`, status: 200 },
    ]);
  });
});
