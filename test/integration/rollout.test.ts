/**
 * The rollout engine on real Postgres (or PGlite, but for the worker processes) and a real redis-server, under a
 * clock the test controls. Worker processes are real child processes where the claim is about processes (two
 * workers, a worker killed with SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { DateTime } from 'luxon';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readLedger, SimulatedFleet } from '../../src/adapters/deployers/simulated.ts';
import type { Config } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { loadBook, runCounts, saveGates, windowTallies } from '../../src/db/rollout-repo.ts';
import { canStartStep, windowContaining } from '../../src/domain/windows.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { RolloutEngine, rolloutModule, startRunWorker, type RolloutOptions } from '../../src/jobs/rollout/index.ts';
import { retryFailed } from '../../src/use-cases/rollout-actions.ts';
import { hold, releaseHold } from '../../src/use-cases/decisions.ts';
import { startPrivateRedis } from '../../src/runtime/redis-server.ts';
import { openDatabase, type Database } from '../../src/db/client.ts';
import { migrateDatabase } from '../../src/db/migrate.ts';
import { createScratchDatabase, openTestDatabase, testBackend } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { scheduleGate, seedWorld, SERVER } from '../support/rollout-world.ts';

const log = pino({ level: 'silent' });
const desktopRule = (() => {
  const parsed = parseWindowSpec('daily 01:00-05:00');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
})();

let redisServer: TestRedis;
beforeAll(async () => {
  redisServer = await startTestRedis();
});
afterAll(async () => {
  await redisServer?.stop();
});

interface Harness {
  database: Database;
  /** The scratch database's URL, for worker processes; none on PGlite, which one process holds. */
  url: string | undefined;
  redis: Redis;
  prefix: string;
  clock: { now: Date };
  engine: (options?: RolloutOptions) => RolloutEngine;
  cleanup: Array<() => Promise<unknown>>;
}

/** On PostgreSQL a scratch database of our own rather than openTestDatabase: worker processes need its URL. */
async function harnessDatabase(): Promise<{ database: Database; url: string | undefined }> {
  if (testBackend() === 'pglite') return { database: await openTestDatabase(), url: undefined };
  const scratch = await createScratchDatabase();
  const opened = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 6 });
  await migrateDatabase(opened);
  const database: Database = {
    ...opened,
    async close() {
      await opened.close();
      await scratch.drop();
    },
  };
  return { database, url: scratch.url };
}

const harnesses: Harness[] = [];
let harnessCount = 0;
async function harness(at: string): Promise<Harness> {
  const { database, url } = await harnessDatabase();
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  // Each test its own key prefix: a queue left over from another test must not feed this one's workers.
  const prefix = `${redisServer.prefix}t${++harnessCount}`;
  const clock = { now: new Date(at) };
  const h: Harness = {
    database,
    url,
    redis,
    prefix,
    clock,
    cleanup: [],
    engine: (options = {}) => {
      const engine = new RolloutEngine({ config: {} as Config, database, redis, prefix, log, roles: new Set(['worker']), now: () => clock.now }, options);
      h.cleanup.push(() => engine.close());
      return engine;
    },
  };
  harnesses.push(h);
  return h;
}

afterEach(async () => {
  for (const h of harnesses.splice(0)) {
    for (const fn of h.cleanup.reverse()) await fn().catch(() => {});
    h.redis.disconnect();
    await h.database.close();
  }
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Drives each scheduled run through the night: an offline machine is rechecked every 10 minutes until the window has no room for an install. */
async function runNightOffline(h: Harness, engine: RolloutEngine): Promise<void> {
  for (const { id } of rowsOf<{ id: number }>(await h.database.db.execute(sql`select id from runs where state = 'scheduled'`))) {
    for (let i = 0; i < 100; i++) {
      const run = await engine.processRun(Number(id));
      if (run && run.status !== 'scheduled' && run.status !== 'running') break;
      h.clock.now = new Date(h.clock.now.getTime() + 10 * 60_000);
    }
  }
}

/** The unfinished count once it has not moved for a second: processors a forced close left running are done. */
async function steadyUnfinished(h: Harness): Promise<number> {
  let last = await unfinished(h);
  let steadySince = Date.now();
  while (Date.now() - steadySince < 1000) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = await unfinished(h);
    if (now !== last) [last, steadySince] = [now, Date.now()];
  }
  return last;
}

const unfinished = async (h: Harness) => {
  const counts = await runCounts(h.database.db);
  return (counts.scheduled ?? 0) + (counts.running ?? 0);
};

// Each case drives dozens of runs through real jobs; on PGlite (one connection) and a loaded machine that passes 30 s.
describe('rollout engine', { timeout: 120_000 }, () => {
  it('runs ring msp only inside its window on spring-forward night, and rolls the offline device to the next window', async () => {
    // Saturday evening before the clocks change in Chicago; the window that night is 07:00Z-10:00Z (3 hours).
    const h = await harness('2024-03-09T20:00:00Z');
    await seedWorld(h.database.db, { mspDevices: 6 }, h.clock.now);
    const fleet = new SimulatedFleet({ clock: () => h.clock.now, fleet: { rebootTwiceRate: 0.5 } });
    fleet.setOnline('MSP-PC-006', false);
    const engine = h.engine({ deployer: fleet, pollMs: 1, realDelayMs: () => 0 });
    expect((await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' })).outcome).toBe('applied');

    // Outside the window nothing is planned, whatever a sweep is asked.
    expect(await engine.sweep()).toMatchObject({ windowsOpened: 0, runsPlanned: 0 });
    h.clock.now = new Date('2024-03-10T06:59:59Z');
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 0 });

    h.clock.now = new Date('2024-03-10T07:00:00Z');
    expect(await engine.sweep()).toMatchObject({ windowsOpened: 1, runsPlanned: 6, jobsAdded: 6 });
    // A second sweep in the same window plans nothing new: (device, window_start) is unique; nor does it edit the
    // progress message again within the pacing interval.
    expect(await engine.sweep()).toMatchObject({ windowsOpened: 0, runsPlanned: 0, messages: 0 });
    const outbox = async () =>
      rowsOf<{ action: string; channel: string; subject: string; text: string; blocks: string }>(
        await h.database.db.execute(sql`select action, channel, subject, payload ->> 'text' as text, payload ->> 'blocks' as blocks from chat_outbox
          where subject like 'window%' order by id`),
      );
    expect(await outbox()).toMatchObject([{ action: 'post', channel: 'C_ENG', subject: 'window:msp:2024-03-10T07:00Z' }]);
    expect((await loadBook(h.database.db, '2024-Feb')).gates.msp?.state).toBe('running');

    // Drive the runs directly, advancing the clock a little per step so the offline device keeps rechecking.
    const ids = rowsOf<{ id: number }>(await h.database.db.execute(sql`select id from runs order by id`)).map((r) => Number(r.id));
    for (const id of ids.slice(0, 5)) expect((await engine.processRun(id))?.status).toBe('succeeded');
    // The offline device waits for rechecks; by 09:55Z it is past the window's last install start, then past its end.
    h.clock.now = new Date('2024-03-10T10:00:00Z');
    const offline = await engine.processRun(ids[5]!);
    expect(offline).toMatchObject({ status: 'rolled', rolledTo: '2024-03-11T06:00:00.000Z' });

    const window = windowContaining(desktopRule, 'America/Chicago', DateTime.fromISO('2024-03-10T07:00:00Z'))!;
    expect(window.end.toUTC().toISO()).toBe('2024-03-10T10:00:00.000Z');
    for (const entry of fleet.ledger) {
      const budget = entry.kind === 'install' ? engine.policy.installBudgetMinutes : engine.policy.rebootBudgetMinutes;
      expect(canStartStep(window, DateTime.fromISO(entry.at), budget), `${entry.kind} ${entry.device} at ${entry.at}`).toBe(true);
    }
    expect(fleet.ledger.filter((e) => e.kind === 'install')).toHaveLength(5);
    const missed = rowsOf<{ name: string; consecutive_missed_windows: number }>(
      await h.database.db.execute(sql`select name, consecutive_missed_windows from devices where consecutive_missed_windows > 0`),
    );
    expect(missed).toEqual([{ name: 'MSP-PC-006', consecutive_missed_windows: 1 }]);

    // Everything settled (the offline device is not flagged yet, so the ring is not finished either).
    h.clock.now = new Date('2024-03-10T12:00:00Z');
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 0, gatesFinished: 0, messages: 2 });
    // The window closed with everything settled: a final edit in place, then the summary naming where the offline
    // machine went (Monday 01:00 CDT, the next window; never checked before the window closed, so "rolled").
    const [post, final, summary] = await outbox();
    expect(post!.action).toBe('post');
    expect(final).toMatchObject({ action: 'update', subject: 'window:msp:2024-03-10T07:00Z' });
    // Issue 13 finding 8: the bar counts what installed (the rolled machine is not "done"), the summary names each
    // machine with its KBs, and says why the sixth rolled (the window ended before it was reached, not "offline").
    expect(final!.text).toContain('5/6 updated. Window closed.');
    expect(summary).toMatchObject({ action: 'post', subject: 'window-summary:msp:2024-03-10T07:00Z' });
    expect(summary!.blocks).toContain('MSP-PC-006 (window ended first) → Mon 11 Mar 01:00 CDT');
    expect(summary!.blocks).toContain('MSP-PC-001: KB5034765, KB5034439');
    expect(summary!.blocks).toContain('1 window ended first (next window)');
    // Under a hold on the whole release, what rolled waits for the hold, and the tally says so; lifted, it does not.
    const tallyNow = async () => (await windowTallies(h.database.db, h.clock.now, { who: 'msp', windowStart: '2024-03-10T07:00:00.000Z' }))[0]!;
    expect(await tallyNow()).not.toHaveProperty('held');
    await h.database.db.execute(sql`insert into holds (scope, release_id, reason, placed_by, placed_via, placed_at) values ('all', '2024-Feb', 'test', 'U0PAT', 'slack', now())`);
    expect(await tallyNow()).toMatchObject({ held: true });
    await h.database.db.execute(sql`update holds set released_at = now(), released_by = 'U0PAT' where reason = 'test'`);
    expect(await tallyNow()).not.toHaveProperty('held');
    expect(await engine.sweep()).toMatchObject({ messages: 0 });
    // The next night the offline device comes back and gets its run in the new window.
    fleet.setOnline('MSP-PC-006', true);
    h.clock.now = new Date('2024-03-11T06:30:00Z');
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 1 });
    const [retry] = rowsOf<{ id: number }>(await h.database.db.execute(sql`select id from runs where state = 'scheduled'`));
    expect((await engine.processRun(Number(retry!.id)))?.status).toBe('succeeded');
    expect(await engine.sweep()).toMatchObject({ gatesFinished: 1 });
    expect((await loadBook(h.database.db, '2024-Feb')).gates.msp?.state).toBe('soaking');
  });

  it('plans nothing in a window without room for an install: 04:01 CDT on spring-forward night leaves 59 real minutes', async () => {
    const h = await harness('2024-03-10T09:01:00Z');
    await seedWorld(h.database.db, { mspDevices: 2 }, h.clock.now);
    const engine = h.engine({ deployer: new SimulatedFleet({ clock: () => h.clock.now }) });
    await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' });
    expect(await engine.sweep()).toMatchObject({ windowsOpened: 0, runsPlanned: 0 });
    h.clock.now = new Date('2024-03-10T09:00:00Z');
    expect(await engine.sweep()).toMatchObject({ windowsOpened: 1, runsPlanned: 2 });
  });

  it('ring msp finishes only when every device has had its window: the server waits for Sunday, a Mac with nothing to install does not block', async () => {
    // Wednesday 2024-02-14; desktops patch nightly, servers on Sunday 2024-02-18.
    const h = await harness('2024-02-14T03:00:00Z');
    await seedWorld(
      h.database.db,
      {
        mspDevices: 2,
        mspExtra: [
          { name: 'MSP-SRV-01', class: 'server', ring: 'msp', os: SERVER, user: undefined },
          { name: 'MSP-MAC-01', class: 'desktop', ring: 'msp', os: 'macOS 14 Sonoma', user: undefined },
        ],
      },
      h.clock.now,
    );
    const fleet = new SimulatedFleet({ clock: () => h.clock.now });
    const engine = h.engine({ deployer: fleet, pollMs: 1, realDelayMs: () => 0 });
    await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' });
    const drive = async () => {
      for (const { id } of rowsOf<{ id: number }>(await h.database.db.execute(sql`select id from runs where state = 'scheduled'`))) {
        await engine.processRun(Number(id));
      }
    };
    h.clock.now = new Date('2024-02-14T07:30:00Z'); // 01:30 CST Wednesday night
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 2 });
    await drive();
    h.clock.now = new Date('2024-02-14T12:00:00Z');
    expect(await engine.sweep()).toMatchObject({ gatesFinished: 0 });
    const mac = rowsOf<{ state: string; result: string }>(
      await h.database.db.execute(sql`select r.state, r.result from runs r join devices d on d.id = r.device_id where d.name = 'MSP-MAC-01'`),
    );
    expect(mac).toEqual([{ state: 'skipped', result: 'nothing_applies' }]);
    // The desktop-only KB does not wait for Sunday: it finished on the desktops and is offered once it soaked.
    h.clock.now = new Date('2024-02-15T07:31:00Z');
    await engine.sweep();
    const offers = rowsOf<{ key: string }>(await h.database.db.execute(sql`select idempotency_key as key from chat_outbox where subject = 'rollout:2024-Feb:promote'`));
    expect(offers).toHaveLength(1);
    h.clock.now = new Date('2024-02-18T07:30:00Z'); // 01:30 CST Sunday: desktops and the server
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 1 });
    await drive();
    expect(fleet.installsOf('MSP-SRV-01').map((e) => e.updates)).toEqual([['5034770', '5034439']]);
    expect(await engine.sweep()).toMatchObject({ gatesFinished: 1 });
    // The server's KBs soak from Sunday; the desktop KB has been ready since Thursday, so the gate reads ready.
    expect((await loadBook(h.database.db, '2024-Feb')).gates.msp).toMatchObject({ state: 'ready', soakUntil: '2024-02-19T07:30:00.000Z' });
  });

  it('the inventory\u2019s msp.soak_hours decides when Promote to pilot is offered', async () => {
    const h = await harness('2024-02-14T03:00:00Z');
    await seedWorld(h.database.db, { mspDevices: 1, mspSettings: { soakHours: 2 } }, h.clock.now);
    const engine = h.engine({ deployer: new SimulatedFleet({ clock: () => h.clock.now }), pollMs: 1, realDelayMs: () => 0 });
    await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' });
    h.clock.now = new Date('2024-02-14T07:30:00Z');
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 1 });
    for (const { id } of rowsOf<{ id: number }>(await h.database.db.execute(sql`select id from runs where state = 'scheduled'`))) await engine.processRun(Number(id));
    h.clock.now = new Date('2024-02-14T07:45:00Z');
    expect(await engine.sweep()).toMatchObject({ gatesFinished: 1 });
    // Two hours, not the default 24, from when the update installed on ring msp (07:30).
    expect((await loadBook(h.database.db, '2024-Feb')).gates.msp).toMatchObject({ state: 'soaking', soakUntil: '2024-02-14T09:30:00.000Z' });
    const offers = async () => rowsOf(await h.database.db.execute(sql`select 1 from chat_outbox where subject = 'rollout:2024-Feb:promote'`)).length;
    h.clock.now = new Date('2024-02-14T09:29:00Z');
    await engine.sweep();
    expect(await offers()).toBe(0);
    h.clock.now = new Date('2024-02-14T09:30:00Z');
    await engine.sweep();
    expect((await loadBook(h.database.db, '2024-Feb')).gates.msp?.state).toBe('ready');
    expect(await offers()).toBe(1);
  });

  it('a sweep adds back the job of an unfinished run that Redis lost, and only that one', async () => {
    const h = await harness('2024-02-14T07:30:00Z');
    await seedWorld(h.database.db, { mspDevices: 3 }, h.clock.now);
    const engine = h.engine({ deployer: new SimulatedFleet({ clock: () => h.clock.now }) });
    await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' });
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 3, jobsAdded: 3 });
    // Mid-window, every run still waiting for a worker: their jobs are there, so none is added again.
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 0, jobsAdded: 0 });
    const ids = async () => (await engine.queue.getJobs(['waiting', 'prioritized', 'delayed', 'active'])).map((j) => j.id).sort();
    const all = await ids();
    expect(all).toHaveLength(3);
    await engine.queue.remove(all[1]!);
    expect(await ids()).toEqual([all[0], all[2]]);
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 0, jobsAdded: 1 });
    expect(await ids()).toEqual(all);
    expect(await engine.sweep()).toMatchObject({ jobsAdded: 0 });
  });

  it('the inventory\u2019s msp.run_concurrency caps runs in flight across every client and the MSP', async () => {
    const h = await harness('2024-02-14T07:30:00Z');
    await seedWorld(h.database.db, { mspDevices: 2, mspSettings: { runConcurrency: 3 }, clients: [{ id: 'acme', pilot: 0, broad: 4 }, { id: 'globex', pilot: 0, broad: 4 }] }, h.clock.now);
    for (const client of ['acme', 'globex']) await scheduleGate(h.database.db, 'broad', client, h.clock.now);
    const engine = h.engine({ deployer: new SimulatedFleet({ clock: () => h.clock.now }) });
    await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' });
    // Ring msp and both clients' broad rings: ten runs planned, three admitted.
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 10, jobsAdded: 3 });
    const jobs = await engine.queue.getJobs(['waiting', 'prioritized', 'delayed', 'active']);
    expect(jobs).toHaveLength(3);
  });

  it('a device missing three windows in a row is flagged for the engineers once, and no longer holds its ring open', async () => {
    const h = await harness('2024-02-14T03:00:00Z');
    await seedWorld(h.database.db, { mspDevices: 2 }, h.clock.now);
    const fleet = new SimulatedFleet({ clock: () => h.clock.now });
    fleet.setOnline('MSP-PC-002', false);
    const engine = h.engine({ deployer: fleet, pollMs: 1, realDelayMs: () => 0 });
    await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' });
    const flagged = async () =>
      rowsOf<{ consecutive_missed_windows: number; flagged: boolean }>(
        await h.database.db.execute(sql`select consecutive_missed_windows, flagged_at is not null as flagged from devices where name = 'MSP-PC-002'`),
      )[0];
    for (const [night, day] of [[1, '14'], [2, '15'], [3, '16']] as const) {
      h.clock.now = new Date(`2024-02-${day}T07:00:00Z`);
      await engine.sweep();
      await runNightOffline(h, engine);
      expect(await flagged()).toEqual({ consecutive_missed_windows: night, flagged: night === 3 });
    }
    const messages = rowsOf<{ text: string }>(
      await h.database.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject like 'device-flagged:%'`),
    );
    expect(messages).toEqual([{ text: 'MSP-PC-002 (our own machines) has missed 3 maintenance windows in a row: it needs a look.' }]);
    h.clock.now = new Date('2024-02-16T12:00:00Z');
    expect(await engine.sweep()).toMatchObject({ gatesFinished: 1 });
  });

  it('the inventory\u2019s msp.missed_window_limit flags a device sooner', async () => {
    const h = await harness('2024-02-14T03:00:00Z');
    await seedWorld(h.database.db, { mspDevices: 1, mspSettings: { missedWindowLimit: 2 } }, h.clock.now);
    const fleet = new SimulatedFleet({ clock: () => h.clock.now });
    fleet.setOnline('MSP-PC-001', false);
    const engine = h.engine({ deployer: fleet, pollMs: 1, realDelayMs: () => 0 });
    await engine.applyEvent('2024-Feb', { type: 'approved', id: 'approve-1' });
    for (const [night, day] of [[1, '14'], [2, '15']] as const) {
      h.clock.now = new Date(`2024-02-${day}T07:00:00Z`);
      await engine.sweep();
      await runNightOffline(h, engine);
      const [device] = rowsOf<{ missed: number; flagged: boolean }>(
        await h.database.db.execute(sql`select consecutive_missed_windows as missed, flagged_at is not null as flagged from devices where name = 'MSP-PC-001'`),
      );
      expect(device).toEqual({ missed: night, flagged: night === 2 });
    }
  });

  it('a hold issued during a window stops new runs within seconds; runs already installing finish', async () => {
    const h = await harness('2024-02-14T07:30:00Z');
    await seedWorld(h.database.db, { mspDevices: 0, clients: [{ id: 'acme', pilot: 0, broad: 60 }] }, h.clock.now);
    await scheduleGate(h.database.db, 'broad', 'acme', h.clock.now);
    const startedAt: Array<{ device: string; realMs: number }> = [];
    const fleet = new SimulatedFleet({ clock: () => h.clock.now, fleet: { latencyMs: 20 } });
    const install = fleet.install.bind(fleet);
    fleet.install = async (device, updates, key) => {
      startedAt.push({ device: device.name, realMs: Date.now() });
      return install(device, updates, key);
    };
    const options: RolloutOptions = { deployer: fleet, pollMs: 5, holdsCacheMs: 500, workerConcurrency: 2 };
    const engine = h.engine(options);
    const worker = startRunWorker({ redis: h.redis, prefix: h.prefix, log } as never, engine, options);
    h.cleanup.push(() => worker.close());
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 60 });
    await waitFor('some runs to finish', async () => ((await runCounts(h.database.db)).succeeded ?? 0) >= 5);
    await h.database.db.execute(sql`insert into holds (scope, client_id, reason, placed_by, placed_via, placed_at)
      values ('client', 'acme', 'EMR vendor warns about this update', 'U_ENG', 'slack', now())`);
    const heldAt = Date.now();
    await waitFor('the queue to drain', async () => (await unfinished(h)) === 0);
    const counts = await runCounts(h.database.db);
    expect(counts.skipped ?? 0).toBeGreaterThan(10);
    const late = startedAt.filter((s) => s.realMs > heldAt + 500 + 200);
    expect(late, 'installs started after the hold was visible').toEqual([]);
    // A sweep while held plans nothing new and the gate stays where it was.
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 0 });
    // Runs already started finished properly: every install that began got its reboot and verification.
    const succeeded = rowsOf<{ n: number }>(await h.database.db.execute(sql`select count(*)::int as n from runs where state = 'succeeded'`))[0]!.n;
    expect(succeeded).toBe(new Set(fleet.ledger.filter((e) => e.kind === 'install').map((e) => e.device)).size);
  });

  it('a stop while installs are in progress hands every run back to the queue; the next worker finishes each once', async () => {
    const h = await harness('2024-02-14T07:30:00Z');
    await seedWorld(h.database.db, { mspDevices: 0, clients: [{ id: 'acme', pilot: 0, broad: 6 }] }, h.clock.now);
    await scheduleGate(h.database.db, 'broad', 'acme', h.clock.now);
    // An install takes 20 minutes of the test's clock, which stands still until the stop: every run polls its device.
    const fleet = new SimulatedFleet({ clock: () => h.clock.now, fleet: { operationMs: 20 * 60_000 } });
    const options: RolloutOptions = { deployer: fleet, pollMs: 20, workerConcurrency: 10 };
    const context = { config: {} as Config, database: h.database, redis: h.redis, prefix: h.prefix, log, roles: new Set(['worker' as const]), now: () => h.clock.now };
    const first = await rolloutModule(options)(context);
    expect(await h.engine(options).sweep()).toMatchObject({ runsPlanned: 6 });
    await waitFor('every install to start', async () => fleet.ledger.filter((e) => e.kind === 'install').length === 6);
    // Before, the stop waited for installs that could not finish while stopping: it never resolved here.
    await first.close();
    expect(await runCounts(h.database.db)).toMatchObject({ running: 6 });
    const second = await rolloutModule(options)(context);
    h.cleanup.push(() => second.close());
    await waitFor('every run to finish', async () => {
      h.clock.now = new Date(h.clock.now.getTime() + 60_000);
      return (await unfinished(h)) === 0;
    });
    expect(await runCounts(h.database.db)).toMatchObject({ succeeded: 6 });
    const installs = fleet.ledger.filter((e) => e.kind === 'install').map((e) => e.device);
    expect(installs.sort()).toEqual([...new Set(installs)].sort());
  });

  it('a ring hold placed by an engineer stops new runs of that ring only; on one update it drops just that update; released, the ring starts', async () => {
    const h = await harness('2024-02-14T07:30:00Z');
    await seedWorld(h.database.db, { mspDevices: 0, clients: [{ id: 'acme', pilot: 2, broad: 2 }, { id: 'globex', pilot: 1, broad: 2 }] }, h.clock.now);
    for (const [ring, client] of [['pilot', 'acme'], ['pilot', 'globex'], ['broad', 'globex']] as const) await scheduleGate(h.database.db, ring, client, h.clock.now);
    const ctx = { db: h.database.db, now: () => h.clock.now };
    const cli = { platform: 'cli' as const, id: 'pat' };
    const pilotHold = await hold(ctx, { actor: cli, releaseId: '2024-Feb', updateKey: null, clients: 'all', ring: 'pilot', reason: 'pilot sites closed', requestId: 'r1' });
    expect(pilotHold).toMatchObject({ outcome: 'applied', message: 'release 2024-Feb held in ring pilot for all clients.' });
    const broadKb = await hold(ctx, { actor: cli, releaseId: '2024-Feb', updateKey: 'KB5034765', clients: ['globex'], ring: 'broad', reason: 'EMR vendor warns', requestId: 'r2' });
    expect(broadKb.outcome).toBe('applied');

    const engine = h.engine({ pollMs: 1, realDelayMs: () => 0 });
    expect(await engine.sweep()).toMatchObject({ held: 2 });
    const planned = async () =>
      rowsOf<{ name: string; updates: string[] }>(await h.database.db.execute(sql`select d.name, r.updates from runs r join devices d on d.id = r.device_id order by d.name`));
    // Only globex's broad ring runs, without the update held in that ring.
    expect(await planned()).toEqual([
      { name: 'GLOBEX-PC-00001', updates: ['5034439'] },
      { name: 'GLOBEX-PC-00002', updates: ['5034439'] },
    ]);
    const book = await loadBook(h.database.db, '2024-Feb');
    expect([book.gates['pilot/acme']?.state, book.gates['pilot/globex']?.state, book.gates['broad/globex']?.state]).toEqual(['scheduled', 'scheduled', 'running']);

    const released = await releaseHold(ctx, { actor: cli, releaseId: '2024-Feb', target: { kind: 'ring', ring: 'pilot' }, requestId: 'r3' });
    expect(released).toMatchObject({ outcome: 'applied', message: 'Released 1 hold.' });
    h.clock.now = new Date('2024-02-14T07:31:00Z');
    expect(await engine.sweep()).toMatchObject({ held: 0, windowsOpened: 2 });
    expect((await planned()).map((r) => r.name)).toEqual(['ACME-PILOT-1', 'ACME-PILOT-2', 'GLOBEX-PC-00001', 'GLOBEX-PC-00002', 'GLOBEX-PILOT-1']);
    // The update hold on globex's broad ring is still in force, and audited with its ring.
    const audit = rowsOf<{ action: string; ring: string | null }>(
      await h.database.db.execute(sql`select action, detail ->> 'ring' as ring from audit_log where action like 'decision.%' order by id`),
    );
    expect(audit).toEqual([
      { action: 'decision.hold', ring: 'pilot' },
      { action: 'decision.hold', ring: 'broad' },
      { action: 'decision.release_hold', ring: 'pilot' },
    ]);
  });

  it('Redis killed mid-window and replaced by an empty one on the same port: the work is rebuilt from Postgres, every run finishes once', async () => {
    const h = await harness('2024-02-14T07:30:00Z');
    await seedWorld(h.database.db, { mspDevices: 0, clients: [{ id: 'acme', pilot: 0, broad: 40 }] }, h.clock.now);
    await scheduleGate(h.database.db, 'broad', 'acme', h.clock.now);
    // A redis-server of this test's own, so killing it touches nothing else.
    const dirs = [fs.mkdtempSync(path.join(os.tmpdir(), 'patchbay-redis-a-')), fs.mkdtempSync(path.join(os.tmpdir(), 'patchbay-redis-b-'))];
    let server = await startPrivateRedis({ dir: dirs[0]!, appendOnly: false });
    const connection = new Redis(server.url, { maxRetriesPerRequest: null });
    h.cleanup.push(async () => {
      connection.disconnect();
      await server.stop();
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    });
    const fleet = new SimulatedFleet({ clock: () => h.clock.now, fleet: { latencyMs: 15, rebootTwiceRate: 0.3 } });
    const options: RolloutOptions = { deployer: fleet, pollMs: 5, workerConcurrency: 2 };
    const context = { config: {} as Config, database: h.database, redis: connection, prefix: h.prefix, log, roles: new Set(['worker' as const]), now: () => h.clock.now };
    const engine = new RolloutEngine(context, options);
    h.cleanup.push(() => engine.close());
    let worker = startRunWorker(context, engine, options);
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 40, jobsAdded: 40 });
    await waitFor('some runs to finish', async () => ((await runCounts(h.database.db)).succeeded ?? 0) >= 8);

    // The server dies (SIGKILL: nothing saved) and an empty one comes up on the same port.
    await server.kill();
    await worker.close(true).catch(() => {});
    server = await startPrivateRedis({ dir: dirs[1]!, appendOnly: false, port: server.port });
    await waitFor('the connection to come back', async () => (await connection.ping().catch(() => '')) === 'PONG');
    expect(await connection.dbsize(), 'the new Redis knows nothing').toBe(0);
    // A forced close does not wait for its processors: the runs they held may still finish. Count once they stopped.
    const left = await steadyUnfinished(h);
    expect(left, 'work was still in flight when Redis died').toBeGreaterThan(0);

    // The next sweep puts back a job for every run Postgres has not seen finish; a new worker finishes them.
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 0, jobsAdded: left });
    worker = startRunWorker(context, engine, options);
    h.cleanup.push(() => worker.close());
    await waitFor('every run to finish', async () => (await unfinished(h)) === 0);
    expect((await runCounts(h.database.db)).succeeded).toBe(40);
    for (let i = 1; i <= 40; i++) {
      const name = `ACME-PC-${String(i).padStart(5, '0')}`;
      expect(fleet.installsOf(name), `${name} installs`).toHaveLength(1);
      const reboots = fleet.ledger.filter((e) => e.device === name && e.kind === 'reboot').length;
      const wanted = fleet.ledger.find((e) => e.device === name && e.kind === 'install')?.rebootsWanted ?? 0;
      expect(reboots, `${name} reboots`).toBe(wanted);
    }
  });

  it('a run the user deferred (pre-inserted as rolled, detail.deferred) is not a missed window and is planned again in the next window', async () => {
    const h = await harness('2024-02-14T07:30:00Z');
    await seedWorld(h.database.db, { mspDevices: 0, clients: [{ id: 'acme', pilot: 0, broad: 3 }] }, h.clock.now);
    await scheduleGate(h.database.db, 'broad', 'acme', h.clock.now);
    const db = h.database.db;
    // ACME-PC-00001 has missed two windows already: one more real miss would flag it.
    await db.execute(sql`update devices set consecutive_missed_windows = 2 where name = 'ACME-PC-00001'`);
    // What the deferral (issue 7) writes: tonight's run, already rolled to tomorrow's window.
    await db.execute(sql`insert into runs (device_id, release_id, rollout_id, window_start, window_end, updates, state, step, result, rolled_to, scheduled_at, finished_at, detail, updated_at)
      select d.id, '2024-Feb', g.id, '2024-02-14T07:00:00Z', '2024-02-14T11:00:00Z', '["5034765"]'::jsonb, 'rolled', 'done', 'deferred',
        '2024-02-15T07:00:00Z', now(), now(), '{"seq":0,"deferred":true}'::jsonb, now()
      from devices d join rollouts g on g.ring = 'broad' and g.client_id = 'acme' where d.name = 'ACME-PC-00001'`);
    const fleet = new SimulatedFleet({ clock: () => h.clock.now });
    const options: RolloutOptions = { deployer: fleet, pollMs: 5 };
    const engine = h.engine(options);
    const worker = startRunWorker({ redis: h.redis, prefix: h.prefix, log } as never, engine, options);
    h.cleanup.push(() => worker.close());
    expect(await engine.sweep(), 'the deferred device is left out tonight').toMatchObject({ runsPlanned: 2 });
    await waitFor('tonight to finish', async () => (await unfinished(h)) === 0);
    expect(fleet.installsOf('ACME-PC-00001')).toHaveLength(0);
    expect(await engine.sweep()).toMatchObject({ gatesFinished: 0 });
    const device = async () =>
      rowsOf<{ missed: number; flagged: unknown }>(await db.execute(sql`select consecutive_missed_windows as missed, flagged_at as flagged from devices where name = 'ACME-PC-00001'`))[0]!;
    expect(await device()).toEqual({ missed: 2, flagged: null });
    expect(rowsOf(await db.execute(sql`select 1 from chat_outbox where subject like 'device-flagged:%'`))).toHaveLength(0);
    expect((await loadBook(db, '2024-Feb')).gates['broad/acme']!.state, 'the ring waits for the deferred device').toBe('running');

    // Tomorrow's window: the deferred device, and only it, gets its run; then the ring finishes.
    h.clock.now = new Date('2024-02-15T07:30:00Z');
    expect(await engine.sweep()).toMatchObject({ runsPlanned: 1 });
    await waitFor('tomorrow to finish', async () => (await unfinished(h)) === 0);
    expect(fleet.installsOf('ACME-PC-00001')).toHaveLength(1);
    expect(await device()).toEqual({ missed: 0, flagged: null });
    expect(await engine.sweep()).toMatchObject({ gatesFinished: 1 });
  });

  it('Retry failed while the window still has room starts the same run again now, with new keys, once', async () => {
    const h = await harness('2024-02-14T07:30:00Z');
    await seedWorld(h.database.db, { mspDevices: 0, clients: [{ id: 'acme', pilot: 0, broad: 2 }] }, h.clock.now);
    await scheduleGate(h.database.db, 'broad', 'acme', h.clock.now);
    const db = h.database.db;
    const fleet = new SimulatedFleet({ clock: () => h.clock.now, devices: { 'ACME-PC-00001': { installFailureRate: 1 } } });
    const options: RolloutOptions = { deployer: fleet, pollMs: 5, policy: { backoffBaseMinutes: 0, maxAttempts: 1 } };
    const engine = h.engine(options);
    const worker = startRunWorker({ redis: h.redis, prefix: h.prefix, log } as never, engine, options);
    h.cleanup.push(() => worker.close());
    await engine.sweep();
    await waitFor('the window\'s first pass', async () => (await unfinished(h)) === 0);
    expect(await runCounts(db)).toMatchObject({ failed: 1, succeeded: 1 });
    const keysBefore = fleet.ledger.filter((e) => e.device === 'ACME-PC-00001').map((e) => e.key);
    // The device is fixed (the engineer looked); the fleet has no setter for this, so its per-device table is edited.
    (fleet as unknown as { perDevice: Record<string, object> }).perDevice['ACME-PC-00001'] = { installFailureRate: 0 };
    const ctx = { db, now: () => h.clock.now };
    const actor = { platform: 'slack' as const, id: 'U_ENG' };
    const [first, second] = await Promise.all([
      retryFailed(ctx, { actor, who: 'acme', windowStart: '2024-02-14T07:00:00Z' }),
      retryFailed(ctx, { actor, who: 'acme', windowStart: '2024-02-14T07:00:00Z' }),
    ]);
    expect([first.outcome, second.outcome].sort()).toEqual(['applied', 'noop']);
    expect(first.outcome === 'applied' ? first : second).toMatchObject({ again: 1, later: 0 });
    expect(rowsOf(await db.execute(sql`select 1 from runs`)), 'no second run row for the device-window').toHaveLength(2);
    await engine.sweep();
    await waitFor('the retry to finish', async () => (await unfinished(h)) === 0);
    expect(await runCounts(db)).toMatchObject({ succeeded: 2 });
    const keysAfter = fleet.ledger.filter((e) => e.device === 'ACME-PC-00001').map((e) => e.key);
    expect(keysAfter.length).toBeGreaterThan(keysBefore.length);
    expect(keysAfter.slice(keysBefore.length).every((k) => !keysBefore.includes(k)), 'the retry reused an operation key').toBe(true);
  });

  describe.skipIf(testBackend() !== 'postgres')('worker processes (PostgreSQL only: PGlite is one process\u2019s database, so other processes cannot share it)', () => {
    let dir: string;
    const children: ChildProcess[] = [];
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'patchbay-rollout-'));
    });
    afterEach(async () => {
      for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    async function spawnWorker(h: Harness, name: string, ledger: string, latencyMs: number): Promise<ChildProcess> {
      const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('test/support/rollout-worker.ts')], {
        env: {
          ...process.env,
          ROLLOUT_DATABASE_URL: h.url!,
          ROLLOUT_REDIS_URL: redisServer.url,
          ROLLOUT_PREFIX: h.prefix,
          ROLLOUT_LEDGER: ledger,
          ROLLOUT_WORKER: name,
          ROLLOUT_CLOCK: h.clock.now.toISOString(),
          ROLLOUT_LATENCY_MS: String(latencyMs),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let stderr = '';
      child.stderr!.on('data', (chunk) => (stderr += chunk));
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk) => String(chunk).includes('ready') && resolve());
        child.on('exit', (code) => reject(new Error(`worker ${name} exited ${code}: ${stderr}`)));
      });
      return child;
    }

    function ledgerChecks(ledger: string, devices: number) {
      const entries = readLedger(ledger);
      const installs = new Map<string, number>();
      const reboots = new Map<string, number>();
      for (const e of entries) (e.kind === 'install' ? installs : reboots).set(e.device, ((e.kind === 'install' ? installs : reboots).get(e.device) ?? 0) + 1);
      expect(installs.size).toBe(devices);
      expect([...installs.values()].every((n) => n === 1), 'a device installed twice').toBe(true);
      const wanted = new Map(entries.filter((e) => e.kind === 'install').map((e) => [e.device, e.rebootsWanted ?? 0]));
      for (const [device, n] of reboots) expect(n, `${device} rebooted ${n} times, wanted ${wanted.get(device)}`).toBe(wanted.get(device));
      return entries;
    }

    it('two worker processes on one Redis: each run executes once', async () => {
      const h = await harness('2024-02-14T07:30:00Z');
      await seedWorld(h.database.db, { mspDevices: 0, clients: [{ id: 'acme', pilot: 0, broad: 80 }] }, h.clock.now);
      await scheduleGate(h.database.db, 'broad', 'acme', h.clock.now);
      const ledger = path.join(dir, 'two.jsonl');
      await Promise.all([spawnWorker(h, 'w1', ledger, 5), spawnWorker(h, 'w2', ledger, 5)]);
      // Both "schedulers" sweep at once as well.
      const engine = h.engine();
      await Promise.all([engine.sweep(), h.engine().sweep()]);
      await waitFor('every run to finish', async () => (await unfinished(h)) === 0, 60_000);
      expect((await runCounts(h.database.db)).succeeded).toBe(80);
      const entries = ledgerChecks(ledger, 80);
      expect(new Set(entries.map((e) => e.worker))).toEqual(new Set(['w1', 'w2']));
    });

    it('a worker killed with SIGKILL mid-window and restarted finishes every run exactly once, no second install or reboot', async () => {
      const h = await harness('2024-02-14T07:30:00Z');
      await seedWorld(h.database.db, { mspDevices: 0, clients: [{ id: 'acme', pilot: 0, broad: 80 }] }, h.clock.now);
      await scheduleGate(h.database.db, 'broad', 'acme', h.clock.now);
      const ledger = path.join(dir, 'kill.jsonl');
      const first = await spawnWorker(h, 'first', ledger, 15);
      const engine = h.engine();
      await engine.sweep();
      const inFlight = async () =>
        rowsOf<{ n: number }>(await h.database.db.execute(sql`select count(*)::int as n from runs where state = 'running' and step <> 'done'`))[0]!.n;
      // Kill while runs are mid-step, not in a lull between them (on a loaded machine a fixed count alone can
      // land between steps and prove nothing).
      await waitFor('a third of the runs to finish with others mid-step', async () => ((await runCounts(h.database.db)).succeeded ?? 0) >= 25 && (await inFlight()) > 0, 60_000);
      first.kill('SIGKILL');
      await new Promise((resolve) => first.once('exit', resolve));
      const midway = await runCounts(h.database.db);
      expect(midway.succeeded).toBeLessThan(80);
      // The kill landed mid-step: some runs had stored an operation the device had (or had not yet) heard of.
      expect(await inFlight()).toBeGreaterThan(0);
      await spawnWorker(h, 'second', ledger, 15);
      await engine.sweep();
      await waitFor('every run to finish', async () => (await unfinished(h)) === 0, 90_000);
      expect((await runCounts(h.database.db)).succeeded).toBe(80);
      const entries = ledgerChecks(ledger, 80);
      expect(new Set(entries.map((e) => e.worker))).toEqual(new Set(['first', 'second']));
    });
  });
});


// Issue 13 finding 8: nothing reached the release thread when auto-confirm fired.
describe.skipIf(testBackend() !== 'postgres')('the release thread hears about confirmations', () => {
  it('says in the thread that a pilot was auto-confirmed, naming the client and the period, once', async () => {
    const h = await harness('2024-02-20T15:00:00Z');
    await seedWorld(h.database.db, { clients: [{ id: 'harbour' }] }, h.clock.now);
    await h.database.db.execute(sql`update clients set name = 'Harbour Accounting', settings = settings || '{"autoConfirmHours": 48}'::jsonb where id = 'harbour'`);
    const book = await loadBook(h.database.db, '2024-Feb');
    const pilot = { ring: 'pilot' as const, clientId: 'harbour', state: 'awaiting_confirmation' as const, version: 0, lastWindowStart: null, finishedAt: '2024-02-18T11:00:00.000Z', soakUntil: null, promotedAt: null, promotedBy: null, autoConfirmAt: '2024-02-20T11:00:00.000Z', confirmation: null, problem: null, applied: [] };
    await saveGates(h.database.db, book, { ...book, gates: { ...book.gates, 'pilot/harbour': pilot } }, ['pilot/harbour'], h.clock.now);
    const engine = h.engine({ deployer: new SimulatedFleet({ clock: () => h.clock.now }) });
    expect((await engine.applyEvent('2024-Feb', { type: 'tick' })).outcome).toBe('applied');
    expect((await engine.applyEvent('2024-Feb', { type: 'tick' })).outcome).toBe('noop');
    const lines = rowsOf<{ channel: string; text: string; thread: string }>(
      await h.database.db.execute(sql`select channel, payload ->> 'text' as text, payload ->> 'threadSubject' as thread from chat_outbox where subject like 'pilot-confirmed:%'`),
    );
    expect(lines).toEqual([
      { channel: 'C_ENG', thread: 'digest:2024-Feb', text: expect.stringContaining("Harbour Accounting's pilot of 2024-Feb was auto-confirmed after 48 h") },
    ]);
  });
});
