/**
 * Compliance reports at MSP scale (issue 17): 200 clients and 20,000 devices after one Patch Tuesday month (a
 * release of three updates approved, one window per device: most installs verified, some failed, some devices
 * never online). On real PostgreSQL:
 *
 * - load-facts (the baseline): the repository's reads for every client's report, no judging.
 * - model: the same reads and the compliance model for every client; csv: that and both CSV files written.
 * - pdf-1c / png-1c: one client's PDF (its report, 12 months of history each judged by the model, the evidence
 *   appendix, the chart, pdfkit) and its chart PNG, against one client's share of the baseline.
 * - pdf-all: every client's PDF, one client at a time, with the process's peak memory (bounded by one client).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { generateInventory } from '../src/adapters/inventory/generate.ts';
import { writeReports } from '../src/commands/report.ts';
import { openDatabase, type AppDatabase } from '../src/db/client.ts';
import { loadComplianceInput, reportableClientIds } from '../src/db/compliance-repo.ts';
import { applyInventory } from '../src/db/inventory-repo.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { complianceReport } from '../src/domain/compliance.ts';
import { judgedAt, monthPeriod } from '../src/domain/report-period.ts';
import { storeRelease } from '../src/use-cases/store-release.ts';
import { bestOf, measure, report, scratchPostgres } from './lib.ts';
import { benchRelease } from './release.ts';

const CLIENTS = Number(process.env.BENCH_REPORT_CLIENTS ?? 200);
const DEVICES = Number(process.env.BENCH_REPORT_DEVICES ?? 20_000);
/** Clients in the every-client PDF figure (all by default; a few seconds each on a busy machine). */
const PDF_CLIENTS = Number(process.env.BENCH_REPORT_PDF_CLIENTS ?? CLIENTS);
const IMPORTED = new Date('2024-02-01T00:00:00Z');
const NOW = new Date('2024-03-05T00:00:00Z');
const FEB = (() => {
  const parsed = monthPeriod('2024-Feb');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.period;
})();

/** The month: the fleet imported, the release stored and approved, a window run per device (1 in 20 never online). */
async function seedMonth(db: AppDatabase): Promise<void> {
  const inventory = generateInventory({ clients: CLIENTS, devices: DEVICES, seed: 1 });
  await applyInventory(db, inventory, IMPORTED);
  const osNames = [...new Set(inventory.clients.flatMap((c) => c.locations.flatMap((l) => l.devices.map((d) => d.os ?? ''))))].filter(Boolean);
  await storeRelease(db, benchRelease(osNames.map((name, i) => ({ id: `P${i}`, name, family: 'Windows' }))), { fetchedAt: IMPORTED, now: new Date('2024-02-13T19:00:00Z') });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U_BENCH', 'slack', 'bench-approve', '2024-02-14T09:00:00Z')`);
  await db.execute(sql`insert into runs (device_id, release_id, window_start, window_end, updates, state, step, result, error, scheduled_at, started_at, finished_at, updated_at)
    select d.id, '2024-Feb', '2024-02-20T01:00:00Z', '2024-02-20T05:00:00Z', '["5034765","5034770","5034439"]'::jsonb,
      case when d.id % 10 = 3 then 'failed' else 'succeeded' end, 'done',
      case when d.id % 10 = 3 then 'install_failed' else 'verified' end,
      case when d.id % 10 = 3 then '0x800f0922 servicing stack' end,
      '2024-02-19T12:00:00Z', '2024-02-20T01:05:00Z', '2024-02-20T01:50:00Z', '2024-02-20T01:50:00Z'
    from devices d where d.client_id is not null and d.id % 20 <> 7`);
}

async function benchReports(db: AppDatabase, out: string): Promise<void> {
  const asOf = judgedAt(FEB, NOW);
  const clients = await reportableClientIds(db, asOf);
  await bestOf(1, async () => { for (const id of clients.slice(0, 5)) await loadComplianceInput(db, id, FEB, asOf); });
  // Each figure is printed as soon as it is measured: the PDF of every client is the long one.
  const load = await bestOf(2, async () => { for (const id of clients) await loadComplianceInput(db, id, FEB, asOf); });
  report(`report.load-facts-${clients.length}c-${DEVICES}d`, load.ms, 'ms', 1);
  const model = await bestOf(2, async () => { for (const id of clients) complianceReport((await loadComplianceInput(db, id, FEB, asOf))!); });
  report(`report.model-${clients.length}c`, model.ms, 'ms', model.ms / load.ms);
  const csv = await bestOf(2, () => writeReports(db, { client: 'all', period: FEB, format: 'csv', out, now: NOW }));
  report(`report.csv-${clients.length}c`, csv.ms, 'ms', csv.ms / load.ms);
  const perClient = load.ms / clients.length;
  // The first PDF pays for loading the fonts, Vega and pdfkit once; the one-client figures are of a warm process.
  await writeReports(db, { client: clients[0]!, period: FEB, format: 'pdf', out, now: NOW });
  const pdfOne = await bestOf(3, () => writeReports(db, { client: clients[1]!, period: FEB, format: 'pdf', out, now: NOW }));
  report('report.pdf-1c', pdfOne.ms, 'ms', pdfOne.ms / perClient);
  report('report.pdf-1c-size', (await fs.stat(pdfOne.result[0]!)).size / 1024, 'KiB', 1);
  const pngOne = await bestOf(3, () => writeReports(db, { client: clients[1]!, period: FEB, format: 'png', out, now: NOW }));
  report('report.png-1c', pngOne.ms, 'ms', pngOne.ms / perClient);
  const all = clients.slice(0, PDF_CLIENTS);
  const pdfAll = await measure(async () => { for (const id of all) await writeReports(db, { client: id, period: FEB, format: 'pdf', out, now: NOW }); }, 20);
  report(`report.pdf-${all.length}c`, pdfAll.ms, 'ms', pdfAll.ms / (perClient * all.length));
  report(`report.pdf-${all.length}c-peak-rss`, pdfAll.peakRssMiB, 'MiB', 1);
  report(`report.pdf-${all.length}c-peak-heap`, pdfAll.peakHeapMiB, 'MiB', 1);
}

export default async function reportBench(): Promise<void> {
  const scratch = await scratchPostgres('report');
  if (!scratch) return;
  const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 4 });
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-bench-report-'));
  try {
    await migrateDatabase(database);
    await seedMonth(database.db);
    await benchReports(database.db, out);
  } finally {
    await database.close();
    await scratch.drop();
    await fs.rm(out, { recursive: true, force: true });
  }
}
