/**
 * Opens the product's database: a PostgreSQL server through postgres.js, or embedded PGlite on disk (the local
 * default). Both give the same drizzle `PgDatabase` over the same schema, so repositories never know which.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type { MigrationConfig } from 'drizzle-orm/migrator';
import type { Config } from '../config.ts';
import { traceMemory } from '../runtime/memory-trace.ts';
import { preparingSmallStatements } from './prepared-statements.ts';
import * as schema from './schema.ts';

export type Schema = typeof schema;
/** What repositories take: the database or a transaction on it (a transaction is a PgDatabase too). */
export type AppDatabase = PgDatabase<PgQueryResultHKT, Schema>;

/** One connection held for a while, for work whose session state (an advisory lock) must stay on it. */
export interface DedicatedConnection {
  db: AppDatabase;
  /** drizzle's migrator for this driver, run on this very connection. */
  migrate(config: MigrationConfig): Promise<void>;
}

export interface Database {
  kind: 'postgres' | 'pglite';
  db: AppDatabase;
  /** Resolves when the database answers a query; rejects otherwise (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
  withDedicatedConnection<T>(work: (connection: DedicatedConnection) => Promise<T>): Promise<T>;
}

/** postgres.js answers a row array, PGlite an object with `rows`; both are read the same way by the callers of `db.execute`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

export type DatabaseTarget = Config['database'] | { kind: 'memory' };

export interface OpenOptions {
  /** postgres.js pool size; the default suits one process of the bot. */
  maxConnections?: number;
  /** Name shown in pg_stat_activity. */
  applicationName?: string;
  /** A new embedded database's image (db/pglite-image.ts): a folder other than the build's, or none (initdb). */
  image?: string | false;
}

export async function openDatabase(target: DatabaseTarget, options: OpenOptions = {}): Promise<Database> {
  if (target.kind === 'postgres') return openPostgres(target.url, options);
  return openPglite(target.kind === 'embedded' ? target.dataDir : undefined, options.image);
}

async function openPostgres(url: string, options: OpenOptions): Promise<Database> {
  const { default: postgres } = await import('postgres');
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const { migrate } = await import('drizzle-orm/postgres-js/migrator');
  const connectionOptions = {
    // Notices (e.g. "schema already exists, skipping" during migrate) are not worth a log line each.
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? 'patchbay' },
  };
  const client = preparingSmallStatements(postgres(url, { ...connectionOptions, max: options.maxConnections ?? 10 }));
  const db = drizzle(client, { schema });
  return {
    kind: 'postgres',
    db,
    async ping() {
      await client`select 1`;
    },
    async close() {
      await client.end({ timeout: 5 });
    },
    async withDedicatedConnection(work) {
      // A pool of one: every query, including drizzle's own BEGIN/COMMIT, runs on the same backend, so a
      // session-level advisory lock taken here is held until this connection unlocks or ends.
      const single = postgres(url, { ...connectionOptions, max: 1 });
      const singleDb = drizzle(single, { schema });
      try {
        return await work({ db: singleDb, migrate: (config) => migrate(singleDb, config) });
      } finally {
        await single.end({ timeout: 5 });
      }
    },
  };
}

/**
 * PostgreSQL sizes its memory for a server of its own: 128 MB of shared buffers, 8 MB of temporary buffers, 64 MB
 * to build an index. PGlite takes all of it inside its WebAssembly memory, which keeps every page it ever touched,
 * and touches the shared buffers whole as it starts; what a 100,000-device import touched counts against the 300
 * MiB the whole import may take. Shared buffers at 16 MB (WAL buffers follow, 512 kB): 18 MiB less than at 32 MB,
 * pages beyond them read from the operating system's cache. The import's temporary table of grants and its index
 * took 14 MiB; within 4 MB each they spill to files instead.
 */
export const PGLITE_SETTINGS = ['shared_buffers=16MB', 'temp_buffers=4MB', 'maintenance_work_mem=4MB'];

async function openPglite(dataDir: string | undefined, image: string | false | undefined): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  if (dataDir !== undefined) {
    await mkdir(path.dirname(dataDir), { recursive: true });
    const { seedFromImage } = await import('./pglite-image.ts');
    if (image !== false && (await seedFromImage(dataDir, PGLITE_SETTINGS, image))) traceMemory('database copied from the image');
    await mkdir(dataDir, { recursive: true });
  }
  const settings = PGLITE_SETTINGS.flatMap((setting) => ['-c', setting]);
  // initdb too: it writes the setting into a new database's postgresql.conf, and runs within less memory itself.
  const client = await PGlite.create(dataDir, { startParams: [...PGlite.defaultStartParams, ...settings], initDbStartParams: settings });
  traceMemory('database open');
  const db = drizzle(client, { schema });
  return {
    kind: 'pglite',
    db,
    async ping() {
      await db.execute(sql`select 1`);
    },
    async close() {
      if (!client.closed) await client.close();
    },
    // PGlite is a single connection already.
    async withDedicatedConnection(work) {
      return work({ db, migrate: (config) => migrate(db, config) });
    },
  };
}
