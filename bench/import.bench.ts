/**
 * Importing a large MSP: 200 clients and 20,000 devices. Times parse+validate of the YAML (against the bare
 * YAML parse of the same text), then the first import and an idempotent re-import, on real PostgreSQL and on
 * PGlite, each against a baseline in the same process and on the same driver: a raw multi-row INSERT of the
 * same 20,000 device rows into a scratch table with no constraints.
 * So ratio = what the import costs compared with merely writing its rows.
 */
import { LineCounter, parseDocument } from 'yaml';
import type { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { Sql } from 'postgres';
import { generateInventory, inventoryToYaml } from '../src/adapters/inventory/generate.ts';
import { parseInventory } from '../src/adapters/inventory/parse.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { applyInventory } from '../src/db/inventory-repo.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import type { Inventory } from '../src/domain/inventory.ts';
import { bestOf, collectGarbage, measure, report, scratchPostgres, sized } from './lib.ts';

const CLIENTS = sized(200, 5);
const DEVICES = sized(20_000, 200);
const BASELINE_BATCH = 1000;

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

async function benchBackend(label: string, database: Database, inventory: Inventory): Promise<void> {
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

  const scratch = await scratchPostgres('import');
  if (scratch) {
    const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 2 });
    try {
      await benchBackend('postgres', database, valid);
    } finally {
      await database.close();
      await scratch.drop();
    }
  }

  const embedded = await openDatabase({ kind: 'memory' });
  try {
    await benchBackend('pglite', embedded, valid);
  } finally {
    await embedded.close();
  }
}
