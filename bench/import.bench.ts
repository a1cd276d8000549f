/**
 * Importing a large MSP: 200 clients and 20,000 devices. Times parse+validate of the YAML (against the bare
 * YAML parse of the same text), then the first import and an idempotent re-import, on real PostgreSQL and on
 * PGlite, each against a baseline in the same process and on the same driver: a raw multi-row INSERT of the
 * same 20,000 device rows into a scratch table with no constraints.
 * So ratio = what the import costs compared with merely writing its rows.
 *
 * Then 1,000 clients and 100,000 devices, as a user runs it: `patchbay generate-inventory` and `patchbay import`
 * as child processes, each reporting its whole-process peak RSS (bench/peak-rss.mjs). Peak RSS ratios are against
 * the 300 MiB the import must stay within (issue 19), so ≤ 1 meets it; the floor is the same CLI printing its
 * version. Times are against 5 × the in-process 20,000-device figure: 1 is linear scaling.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import type { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { Sql } from 'postgres';
import { generateInventory, inventoryToYaml } from '../src/adapters/inventory/generate.ts';
import { parseInventory, readInventoryFile } from '../src/adapters/inventory/parse.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { applyInventory } from '../src/db/inventory-repo.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import type { Inventory } from '../src/domain/inventory.ts';
import { bestOf, collectGarbage, measure, report, scratchPostgres, sized } from './lib.ts';

const CLIENTS = sized(200, 5);
const DEVICES = sized(20_000, 200);
const BASELINE_BATCH = 1000;
const LARGE_CLIENTS = sized(1000, 6);
const LARGE_DEVICES = sized(100_000, 300);
/** Issue 19: a 100,000-device import peaks at no more than this. */
const TARGET_PEAK_MIB = 300;
const ROOT = fileURLToPath(new URL('../', import.meta.url));

function allDevices(inventory: Inventory) {
  return [
    ...inventory.msp.devices.map((device) => ({ device, clientId: null as string | null, locationId: null as string | null })),
    ...inventory.clients.flatMap((client) =>
      client.locations.flatMap((location) => location.devices.map((device) => ({ device, clientId: client.id, locationId: location.id }))),
    ),
  ];
}

/**
 * The floor: the same device rows through the bare driver (no drizzle), as multi-row INSERTs of 1,000 rows with
 * a parameter per cell, into a table with no keys or checks.
 */
async function baselineInsert(database: Database, inventory: Inventory, now: Date): Promise<number> {
  await database.db.execute(sql`drop table if exists bench_device_rows`);
  await database.db.execute(sql`create table bench_device_rows (
    name text, client_id text, location_id text, class text, ring text, os text, user_email text,
    created_at timestamptz, updated_at timestamptz, retired_at timestamptz)`);
  const stamp = now.toISOString();
  const rows = allDevices(inventory).map(({ device, clientId, locationId }) => ({
    name: device.name,
    client_id: clientId,
    location_id: locationId,
    class: device.class,
    ring: device.ring,
    os: device.os ?? null,
    user_email: device.user ?? null,
    created_at: stamp,
    updated_at: stamp,
    retired_at: null,
  }));
  const driver = (database.db as unknown as { $client: unknown }).$client;
  const run = await measure(async () => {
    for (let start = 0; start < rows.length; start += BASELINE_BATCH) {
      const batch = rows.slice(start, start + BASELINE_BATCH);
      if (database.kind === 'postgres') {
        const client = driver as Sql;
        await client`insert into bench_device_rows ${client(batch)}`;
      } else {
        const columns = Object.keys(batch[0]!) as Array<keyof (typeof batch)[number]>;
        const placeholders = batch.map((_, r) => `(${columns.map((_, c) => `$${r * columns.length + c + 1}`).join(', ')})`);
        const values = batch.flatMap((row) => columns.map((column) => row[column]));
        await (driver as PGlite).query(`insert into bench_device_rows (${columns.join(', ')}) values ${placeholders.join(', ')}`, values);
      }
    }
  });
  await database.db.execute(sql`drop table bench_device_rows`);
  return run.ms;
}

async function benchBackend(label: string, database: Database, inventory: Inventory): Promise<number> {
  await migrateDatabase(database);
  const now = new Date();
  // Warm the driver and the statement paths on a throwaway insert so neither side pays first-use costs.
  await baselineInsert(database, { ...inventory, clients: inventory.clients.slice(0, 2) }, now);
  const baselineMs = await baselineInsert(database, inventory, now);

  collectGarbage();
  const first = await measure(() => applyInventory(database.db, inventory, now, { subject: 'bench' }));
  const added = first.result.devices.added;
  if (added !== allDevices(inventory).length) throw new Error(`first import added ${added} devices, expected ${allDevices(inventory).length}`);
  const again = await measure(() => applyInventory(database.db, inventory, new Date(now.getTime() + 60_000), { subject: 'bench' }));
  const changed = again.result.devices.added + again.result.devices.changed + again.result.devices.retired;
  if (changed !== 0) throw new Error(`re-import changed ${changed} devices; it must change none`);

  report(`import.${label}.baseline-insert-${DEVICES}d`, baselineMs, 'ms', 1);
  report(`import.${label}.first-${CLIENTS}c-${DEVICES}d`, first.ms, 'ms', first.ms / baselineMs);
  report(`import.${label}.reimport-${CLIENTS}c-${DEVICES}d`, again.ms, 'ms', again.ms / baselineMs);
  report(`import.${label}.first-peak-heap`, first.peakHeapMiB, 'MiB', 1);
  return first.ms;
}

interface ChildRun {
  ms: number;
  peakMiB: number;
  stdout: string;
}

/** `node bin/patchbay.mjs …` as a user runs it, with its peak RSS as the kernel counted it. */
async function runCli(args: string[], env: Record<string, string | undefined>): Promise<ChildRun> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, ['--import', './bench/peak-rss.mjs', 'bin/patchbay.mjs', ...args], {
    cwd: ROOT,
    // undefined unsets: PGlite is what the CLI opens when DATABASE_URL is not set at all.
    env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, value]) => value !== undefined)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const peak = /PEAK_RSS_KIB (\d+)/.exec(stderr);
  if (code !== 0 || !peak) throw new Error(`patchbay ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`);
  return { ms, peakMiB: Number(peak[1]) / 1024, stdout };
}

/** A first import and a re-import of `file`, each a fresh process; the re-import must change nothing. */
async function benchLargeCli(label: string, file: string, env: Record<string, string | undefined>, first20kMs: number | undefined): Promise<void> {
  const scale = LARGE_DEVICES / DEVICES;
  const runs = { first: await runCli(['import', file, '--json'], env), reimport: await runCli(['import', file, '--json'], env) };
  const added = (JSON.parse(runs.first.stdout) as { devices: { added: number } }).devices.added;
  if (added !== LARGE_DEVICES + 4) throw new Error(`${label}: first import added ${added} devices`);
  const again = JSON.parse(runs.reimport.stdout) as { devices: { added: number; changed: number; retired: number } };
  if (again.devices.added + again.devices.changed + again.devices.retired !== 0) throw new Error(`${label}: the re-import changed devices`);
  for (const [name, run] of Object.entries(runs)) {
    const size = `${LARGE_CLIENTS}c-${LARGE_DEVICES}d`;
    report(`import.cli.${label}.${name}-${size}`, run.ms, 'ms', first20kMs ? run.ms / (scale * first20kMs) : 1);
    report(`import.cli.${label}.${name}-${size}-peak-rss`, run.peakMiB, 'MiB', run.peakMiB / TARGET_PEAK_MIB);
  }
}

/** 1,000 clients and 100,000 devices: generated, parsed in this process, then imported by the CLI. */
async function benchLarge(parse20kMs: number, first20kMs: { postgres?: number; pglite?: number }): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'patchbay-bench-import-'));
  try {
    const file = path.join(dir, 'inventory.yaml');
    // tsx compiles each source on its first use and caches it: a first run would measure the compiler as well.
    const tiny = path.join(dir, 'tiny.yaml');
    await runCli(['generate-inventory', '--clients', '1', '--devices', '1', '--seed', '1', '--out', tiny], {});
    await runCli(['import', tiny, '--dry-run', '--json'], { DATABASE_URL: undefined, PATCHBAY_DATA_DIR: path.join(dir, 'warm') });
    const floor = await runCli(['--version'], {});
    report('import.cli.floor-peak-rss', floor.peakMiB, 'MiB', floor.peakMiB / TARGET_PEAK_MIB);
    const generated = await runCli(['generate-inventory', '--clients', String(LARGE_CLIENTS), '--devices', String(LARGE_DEVICES), '--seed', '1', '--out', file], {});
    report(`import.cli.generate-${LARGE_CLIENTS}c-${LARGE_DEVICES}d-peak-rss`, generated.peakMiB, 'MiB', generated.peakMiB / TARGET_PEAK_MIB);

    const parsed = await measure(() => readInventoryFile(file));
    if (!parsed.result.ok) throw new Error(`generated inventory has problems: ${parsed.result.problems[0]?.message}`);
    report(`import.parse-validate-${LARGE_CLIENTS}c-${LARGE_DEVICES}d`, parsed.ms, 'ms', parsed.ms / ((LARGE_DEVICES / DEVICES) * parse20kMs));
    collectGarbage();

    const scratch = await scratchPostgres('import_cli');
    if (scratch) {
      try {
        await benchLargeCli('postgres', file, { DATABASE_URL: scratch.url }, first20kMs.postgres);
      } finally {
        await scratch.drop();
      }
    }
    await benchLargeCli('pglite', file, { DATABASE_URL: undefined, PATCHBAY_DATA_DIR: path.join(dir, 'data') }, first20kMs.pglite);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export default async function importBench(): Promise<void> {
  const inventory = generateInventory({ clients: CLIENTS, devices: DEVICES, seed: 1 });
  const text = inventoryToYaml(inventory);

  const bare = await bestOf(3, () => parseDocument(text, { lineCounter: new LineCounter(), prettyErrors: false }));
  const parsed = await bestOf(3, () => parseInventory(text, 'bench.yaml'));
  if (!parsed.result.ok) throw new Error(`generated inventory has problems: ${parsed.result.problems[0]?.message}`);
  report(`import.parse-validate-${CLIENTS}c-${DEVICES}d`, parsed.ms, 'ms', parsed.ms / bare.ms);
  report('import.parse-validate-peak-rss', parsed.peakRssMiB, 'MiB', 1);
  const valid = parsed.result.inventory;
  const first20kMs: { postgres?: number; pglite?: number } = {};

  const scratch = await scratchPostgres('import');
  if (scratch) {
    const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 2 });
    try {
      first20kMs.postgres = await benchBackend('postgres', database, valid);
    } finally {
      await database.close();
      await scratch.drop();
    }
  }

  const embedded = await openDatabase({ kind: 'memory' });
  try {
    first20kMs.pglite = await benchBackend('pglite', embedded, valid);
  } finally {
    await embedded.close();
  }
  await benchLarge(parsed.ms, first20kMs);
}
