/**
 * A month on the simulated fleet, then its compliance report: the real rollout engine drives one client's broad
 * ring through a window (one machine whose installs fail, one offline all night, one its user deferred past the
 * month's end, and a KB held half way through the window), then `patchbay report`'s writer produces the CSV,
 * JSON, PDF and chart PNG. The report's numbers are checked against counts taken straight from the tables with SQL,
 * the CSV is read back with csv-parse and the PDF with pdfjs.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedFleet } from '../../src/adapters/deployers/simulated.ts';
import type { Config } from '../../src/config.ts';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { loadComplianceInput, reportableClientIds } from '../../src/db/compliance-repo.ts';
import { complianceReport, type ComplianceReport } from '../../src/domain/compliance.ts';
import { judgedAt, monthPeriod } from '../../src/domain/report-period.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { writeReports } from '../../src/commands/report.ts';
import { loadComplianceHistory } from '../../src/use-cases/compliance-report.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { scheduleGate, seedWorld } from '../support/rollout-world.ts';
import { headlineValue, pngSize, readPdf } from '../support/pdf-reader.ts';

const log = pino({ level: 'silent' });
const FEB = (() => {
  const parsed = monthPeriod('2024-Feb');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.period;
})();
const HELD_KB = '5034439';

let redisServer: TestRedis;
let database: TestDatabase;
let redis: Redis;
let engine: RolloutEngine;
let outDir: string;
const clock = { now: new Date('2024-02-29T07:30:00Z') };

beforeAll(async () => {
  redisServer = await startTestRedis();
  database = await openTestDatabase();
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  outDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-report-'));
  await liveTheMonth(database.db);
}, 120_000);

afterAll(async () => {
  await engine?.close().catch(() => {});
  redis?.disconnect();
  await database?.close();
  await redisServer?.stop();
  if (outDir) await fs.rm(outDir, { recursive: true, force: true });
});

/** Drives a run to its end, moving the clock 10 minutes a step so backoffs and offline rechecks come due. */
async function settle(runId: number): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const run = await engine.processRun(runId);
    if (run && run.status !== 'scheduled' && run.status !== 'running') return;
    clock.now = new Date(clock.now.getTime() + 10 * 60_000);
  }
  throw new Error(`run ${runId} did not settle`);
}

async function liveTheMonth(db: AppDatabase): Promise<void> {
  await seedWorld(db, { mspDevices: 0, clients: [{ id: 'acme', pilot: 0, broad: 6 }, { id: 'other', pilot: 0, broad: 1 }] }, new Date('2024-02-14T12:00:00Z'));
  await scheduleGate(db, 'broad', 'acme', clock.now);
  // What a user's deferral (issue 7) writes: tonight's run already rolled past the month's end, and the decision.
  await db.execute(sql`insert into runs (device_id, release_id, rollout_id, window_start, window_end, updates, state, step, result, rolled_to, scheduled_at, finished_at, detail, updated_at)
    select d.id, '2024-Feb', g.id, '2024-02-29T07:00:00Z', '2024-02-29T11:00:00Z', '["5034765","5034439"]'::jsonb, 'rolled', 'done', 'deferred',
      '2024-03-01T07:00:00Z', '2024-02-28T22:00:00Z', '2024-02-28T22:00:00Z', '{"seq":0,"deferred":true}'::jsonb, '2024-02-28T22:00:00Z'
    from devices d join rollouts g on g.ring = 'broad' and g.client_id = 'acme' where d.name = 'ACME-PC-00004'`);
  await db.execute(sql`insert into decisions (kind, release_id, client_id, device_id, actor, source, detail, idempotency_key, created_at)
    select 'defer', '2024-Feb', 'acme', id, 'U_USER4', 'slack', '{"rolledTo":"2024-03-01T07:00:00.000Z"}'::jsonb, 'test-defer', '2024-02-28T22:00:00Z'
    from devices where name = 'ACME-PC-00004'`);

  const fleet = new SimulatedFleet({ clock: () => clock.now, devices: { 'ACME-PC-00002': { installFailureRate: 1 } } });
  fleet.setOnline('ACME-PC-00003', false);
  engine = new RolloutEngine(
    { config: {} as Config, database, redis, prefix: `${redisServer.prefix}report`, log, roles: new Set(['worker']), now: () => clock.now },
    { deployer: fleet, pollMs: 1, realDelayMs: () => 0, holdsCacheMs: 0 },
  );
  expect(await engine.sweep()).toMatchObject({ runsPlanned: 5 });
  const runIds = async (name: string) =>
    rowsOf<{ id: number }>(await db.execute(sql`select r.id from runs r join devices d on d.id = r.device_id where d.name = ${name} and r.state = 'scheduled'`)).map((r) => Number(r.id));
  for (const id of await runIds('ACME-PC-00001')) await settle(id);
  // Half way through the window an engineer holds one KB for this client: later runs leave it out.
  await db.execute(sql`insert into holds (scope, release_id, update_id, client_id, reason, placed_by, placed_via, placed_at)
    select 'update', '2024-Feb', id, 'acme', 'breaks the =PACS viewer', 'U_ENG', 'slack', ${clock.now.toISOString()}::timestamptz
    from updates where update_key = ${HELD_KB}`);
  for (const name of ['ACME-PC-00002', 'ACME-PC-00005', 'ACME-PC-00006', 'ACME-PC-00003']) for (const id of await runIds(name)) await settle(id);
}

/** Each (device, update) pair's status, decided in SQL from the tables with the report's precedence. */
async function statusCountsFromTables(db: AppDatabase): Promise<Record<string, number>> {
  const rows = rowsOf<{ status: string; n: number }>(
    await db.execute(sql`
      with d as (select id, os from devices where client_id = 'acme' and retired_at is null),
        pair as (select d.id as device_id, u.id as update_id, u.update_key, u.products ? d.os as applies from d cross join updates u where u.release_id = '2024-Feb'),
        carried as (select r.device_id, k.key, r.state, r.finished_at from runs r cross join jsonb_array_elements_text(r.updates) as k(key)
          where r.release_id = '2024-Feb' and r.finished_at is not null)
      select case
          when not applies then 'not applicable'
          when exists (select 1 from carried c where c.device_id = p.device_id and c.key = p.update_key and c.state = 'succeeded') then 'installed'
          when (select c.state from carried c where c.device_id = p.device_id and c.key = p.update_key and c.state <> 'skipped'
                order by c.finished_at desc limit 1) = 'failed' then 'failed'
          when exists (select 1 from holds h where h.released_at is null and h.update_id = p.update_id and h.client_id = 'acme') then 'held'
          when exists (select 1 from decisions x where x.kind = 'defer' and x.device_id = p.device_id) then 'deferred'
          else 'missing' end as status, count(*)::int as n
      from pair p group by 1`),
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

describe('compliance report of a month on the simulated fleet', { timeout: 120_000 }, () => {
  let report: ComplianceReport;
  beforeAll(async () => {
    const asOf = judgedAt(FEB, new Date('2024-03-15T00:00:00Z'));
    report = complianceReport((await loadComplianceInput(database.db, 'acme', FEB, asOf))!);
  });

  it('counts each status as the tables do', async () => {
    const fromTables = await statusCountsFromTables(database.db);
    const nonZero = Object.fromEntries(Object.entries(report.summary.statusCounts).filter(([, n]) => n > 0));
    expect(nonZero).toEqual(fromTables);
    // The world was built to hold one of each: the test means nothing if the engine did otherwise.
    expect(Object.keys(fromTables).sort()).toEqual(['deferred', 'failed', 'held', 'installed', 'missing', 'not applicable']);
  });

  it('devices, compliance, failures and staleness equal what SQL counts', async () => {
    const db = database.db;
    const [counts] = rowsOf<{ devices: number; compliant: number; never_seen: number }>(
      await db.execute(sql`
        select count(*)::int as devices,
          count(*) filter (where not exists (
            select 1 from updates u where u.release_id = '2024-Feb' and u.products ? d.os and not exists (
              select 1 from runs r where r.device_id = d.id and r.state = 'succeeded' and r.updates ? u.update_key)))::int as compliant,
          count(*) filter (where not exists (select 1 from runs r where r.device_id = d.id and r.started_at is not null))::int as never_seen
        from devices d where d.client_id = 'acme' and d.retired_at is null`),
    );
    expect(report.summary).toMatchObject({ devicesInScope: counts!.devices, compliantDevices: counts!.compliant, staleDevices: counts!.never_seen });
    expect(report.summary.deviceCompliancePct).toBe(Math.round((counts!.compliant / counts!.devices) * 1000) / 10);
    expect(counts).toEqual({ devices: 6, compliant: 1, never_seen: 2 });
    const failed = rowsOf<{ name: string; error: string }>(
      await db.execute(sql`select d.name, r.error from runs r join devices d on d.id = r.device_id where r.state = 'failed' order by d.name`),
    );
    expect(failed).toHaveLength(1);
    expect(new Set(report.failedInstalls.map((f) => `${f.device}: ${f.error}`))).toEqual(new Set(failed.map((f) => `${f.name}: ${f.error}`)));
    expect(report.exceptions.map((e) => [e.kind, e.reason, e.by])).toEqual([
      ['held', 'breaks the =PACS viewer', 'U_ENG'],
      ['deferred', "the device's user deferred it", 'U_USER4'],
    ]);
  });

  it('patchbay report writes CSV that re-reads with csv-parse and JSON that is the model, one client at a time', async () => {
    expect(await reportableClientIds(database.db, new Date('2024-03-01T00:00:00Z'))).toEqual(['acme', 'other']);
    const written = await writeReports(database.db, { client: 'all', period: FEB, format: 'csv', out: outDir, now: new Date('2024-06-01T00:00:00Z') });
    expect(written.map((f) => path.basename(f))).toEqual([
      'compliance-acme-2024-Feb-devices.csv',
      'compliance-acme-2024-Feb-updates.csv',
      'compliance-other-2024-Feb-devices.csv',
      'compliance-other-2024-Feb-updates.csv',
    ]);
    const devices = parse(await fs.readFile(written[0]!, 'utf8'), { columns: true }) as Array<Record<string, string>>;
    const updates = parse(await fs.readFile(written[1]!, 'utf8'), { columns: true }) as Array<Record<string, string>>;
    expect(devices.map((d) => d.device)).toEqual(report.devices.map((d) => d.device));
    expect(devices.filter((d) => d.compliant === 'yes')).toHaveLength(report.summary.compliantDevices);
    const csvCounts: Record<string, number> = {};
    for (const row of updates) csvCounts[row.status!] = (csvCounts[row.status!] ?? 0) + 1;
    expect(csvCounts).toEqual(await statusCountsFromTables(database.db));
    const [json] = await writeReports(database.db, { client: 'acme', period: FEB, format: 'json', out: outDir, now: new Date('2024-06-01T00:00:00Z') });
    expect(JSON.parse(await fs.readFile(json!, 'utf8'))).toEqual(JSON.parse(JSON.stringify(report)));
  });

  it('patchbay report --format pdf: read back, its summary numbers are the counts from the tables, its appendix the holds, deferral and runs', async () => {
    const db = database.db;
    const [file] = await writeReports(db, { client: 'acme', period: FEB, format: 'pdf', out: outDir, now: new Date('2024-06-01T00:00:00Z') });
    expect(path.basename(file!)).toBe('compliance-acme-2024-Feb.pdf');
    const pdf = await readPdf(await fs.readFile(file!));
    const summary = pdf.pages[0]!.text;
    const fromTables = await statusCountsFromTables(db);
    const [counts] = rowsOf<{ devices: number; stale: number }>(
      await db.execute(sql`select count(*)::int as devices,
          count(*) filter (where not exists (select 1 from runs r where r.device_id = d.id and r.started_at is not null))::int as stale
        from devices d where d.client_id = 'acme' and d.retired_at is null`),
    );
    const installed = fromTables.installed ?? 0;
    const attempted = installed + (fromTables.missing ?? 0) + (fromTables.failed ?? 0);
    expect(headlineValue(summary, 'Devices in scope')).toBe(String(counts!.devices));
    expect(headlineValue(summary, 'Updates installed')).toBe(String(installed));
    expect(headlineValue(summary, 'Updates missing')).toBe(String(fromTables.missing ?? 0));
    expect(headlineValue(summary, 'Installs failed')).toBe(String(fromTables.failed ?? 0));
    expect(headlineValue(summary, 'Updates held')).toBe(String(fromTables.held ?? 0));
    expect(headlineValue(summary, 'Updates deferred')).toBe(String(fromTables.deferred ?? 0));
    expect(headlineValue(summary, 'Patch installation')).toBe(`${(Math.round((installed / attempted) * 1000) / 10).toFixed(1)}%`);
    expect(headlineValue(summary, 'Stale devices')).toBe(String(counts!.stale));
    expect(headlineValue(summary, 'Device compliance')).toBe(`${report.summary.deviceCompliancePct!.toFixed(1)}%`);
    expect(pdf.embeddedTrueType).toBeGreaterThanOrEqual(2);
    const appendix = pdf.pages.slice(1).map((p) => p.text).join('\n');
    expect(appendix).toContain('breaks the =PACS viewer');
    expect(appendix).toContain('U_USER4');
    const runs = rowsOf<{ name: string; state: string }>(
      await db.execute(sql`select d.name, r.state from runs r join devices d on d.id = r.device_id where d.client_id = 'acme' order by d.name`),
    );
    expect(runs.length).toBeGreaterThan(0);
    for (const run of runs) expect(appendix).toMatch(new RegExp(`${run.name}\\s+${run.state}`));
    const [png] = await writeReports(db, { client: 'acme', period: FEB, format: 'png', out: outDir, now: new Date('2024-06-01T00:00:00Z') });
    expect(pngSize(await fs.readFile(png!))).toMatchObject({ width: expect.any(Number) });
  });

  it('reads the same when asked again later, after the next month went on', async () => {
    // March: the deferred machine installs everything, the hold is released.
    await database.db.execute(sql`update holds set released_at = '2024-03-02T00:00:00Z'`);
    await database.db.execute(sql`insert into runs (device_id, release_id, rollout_id, window_start, window_end, updates, state, step, result, scheduled_at, started_at, finished_at, updated_at)
      select device_id, release_id, rollout_id, '2024-03-01T07:00:00Z', '2024-03-01T11:00:00Z', updates, 'succeeded', 'done', 'verified',
        '2024-03-01T06:00:00Z', '2024-03-01T07:10:00Z', '2024-03-01T07:40:00Z', '2024-03-01T07:40:00Z'
      from runs where result = 'deferred'`);
    const later = complianceReport((await loadComplianceInput(database.db, 'acme', FEB, judgedAt(FEB, new Date('2024-06-01T00:00:00Z'))))!);
    expect(later).toEqual(report);
    const march = complianceReport((await loadComplianceInput(database.db, 'acme', FEB, new Date('2024-03-03T00:00:00Z')))!);
    expect(march.summary.statusCounts).toMatchObject({ deferred: 0, installed: report.summary.statusCounts.installed + 2 });
    // The chart's history: February's point is February's own report, before and after March's installs.
    const asked = new Date('2024-06-01T00:00:00Z');
    const marchPeriod = monthPeriod('2024-Mar');
    if (!marchPeriod.ok) throw new Error(marchPeriod.error);
    const marchReport = complianceReport((await loadComplianceInput(database.db, 'acme', marchPeriod.period, judgedAt(marchPeriod.period, asked)))!);
    const history = await loadComplianceHistory(database.db, marchReport, asked);
    expect(history.points.map((p) => p.period)).toEqual(['2023-Apr', '2023-May', '2023-Jun', '2023-Jul', '2023-Aug', '2023-Sep', '2023-Oct', '2023-Nov', '2023-Dec', '2024-Jan', '2024-Feb', '2024-Mar']);
    expect(history.points.at(-2)).toEqual({ period: '2024-Feb', devicesInScope: 6, deviceCompliancePct: report.summary.deviceCompliancePct, patchInstallationPct: report.summary.patchInstallationPct });
    // Before the devices were imported there was nothing to be compliant about: no point, not 0% or 100%.
    expect(history.points.at(-3)).toMatchObject({ devicesInScope: 0, deviceCompliancePct: null });
  });
});
