/**
 * Storing 2024-May (3.2 MB, 180 CVEs) with storeRelease, on real PostgreSQL and on PGlite: the first store
 * (rows, audit, and the digest rendered into the outbox for the MSP's channel), an unchanged re-read, and a
 * revision (one exploited flag flipped). Time and peak heap growth, each as a ratio against JSON.parse of the
 * same file in the same process, so the figures compare across machines.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCvrf } from '../src/adapters/msrc/to-release.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { storeRelease } from '../src/use-cases/store-release.ts';
import { msp } from '../src/db/schema.ts';
import type { Release } from '../src/domain/release.ts';
import { bestOf, collectGarbage, measure, report, scratchPostgres, sized } from './lib.ts';

const MiB = 1024 * 1024;
const here = path.dirname(fileURLToPath(import.meta.url));
// Quick: the repository's own small document, so the smoke runs (and does not skip) where ../shared is absent.
const file = sized(path.resolve(here, '../../shared/fixtures/msrc/2024-May.json'), path.resolve(here, '../test/fixtures/msrc/edge-cases.json'));

interface Baseline {
  ms: number;
  heapMiB: number;
}

async function heapGrowth<T>(work: () => Promise<T>) {
  collectGarbage();
  const before = process.memoryUsage().heapUsed / MiB;
  const run = await measure(work);
  return { ...run, heapMiB: Math.max(0, run.peakHeapMiB - before) };
}

async function benchBackend(label: string, database: Database, may: Release, baseline: Baseline): Promise<void> {
  await migrateDatabase(database);
  await database.db.insert(msp).values({ id: 1, name: 'Bench IT', timezone: 'America/Chicago', channel: 'C0BENCH', windows: {} });
  // Warm the driver and statement paths on another month id so the measured store pays no first-use costs.
  await storeRelease(database.db, { ...may, id: '2024-Apr' }, { fetchedAt: new Date(), now: new Date() });

  const first = await heapGrowth(() => storeRelease(database.db, may, { fetchedAt: new Date(), now: new Date() }));
  if (first.result.outcome !== 'new' || first.result.queued === 0) throw new Error(`first store: ${first.result.outcome}, ${first.result.queued} queued`);
  const again = await bestOf(3, () => storeRelease(database.db, may, { fetchedAt: new Date(), now: new Date() }));
  if (again.result.outcome !== 'unchanged') throw new Error(`re-store was ${again.result.outcome}`);
  const revised: Release = structuredClone(may);
  const flip = revised.cves.find((cve) => cve.exploited === false)!;
  flip.exploited = true;
  const revision = await measure(() => storeRelease(database.db, revised, { fetchedAt: new Date(), now: new Date() }));
  if (revision.result.outcome !== 'revised' || revision.result.changes.length !== 1) throw new Error(`revision: ${revision.result.outcome}`);

  report(`ingest.${label}.store-new-2024-May`, first.ms, 'ms', first.ms / baseline.ms);
  report(`ingest.${label}.store-unchanged-2024-May`, again.ms, 'ms', again.ms / baseline.ms);
  report(`ingest.${label}.store-revision-2024-May`, revision.ms, 'ms', revision.ms / baseline.ms);
  report(`ingest.${label}.store-new-peak-heap-growth`, first.heapMiB, 'MiB', first.heapMiB / baseline.heapMiB);
}

export default async function ingestBench(): Promise<void> {
  if (!existsSync(file)) {
    process.stderr.write(`bench ingest: ${file} is absent (../shared/fixtures); skipped\n`);
    return;
  }
  const text = readFileSync(file, 'utf8');
  const parse = await bestOf(sized(5, 1), () => JSON.parse(text) as unknown);
  const parseHeap = await heapGrowth(async () => JSON.parse(text) as unknown);
  const baseline = { ms: parse.ms, heapMiB: parseHeap.heapMiB };
  report('ingest.baseline-json-parse-2024-May', baseline.ms, 'ms', 1);
  report('ingest.baseline-json-parse-heap-growth', baseline.heapMiB, 'MiB', 1);
  const may = parseCvrf(text, '2024-May.json');

  const scratch = await scratchPostgres('ingest');
  if (scratch) {
    const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 2 });
    try {
      await benchBackend('postgres', database, may, baseline);
    } finally {
      await database.close();
      await scratch.drop();
    }
  }
  const embedded = await openDatabase({ kind: 'memory' });
  try {
    await benchBackend('pglite', embedded, may, baseline);
  } finally {
    await embedded.close();
  }
}
