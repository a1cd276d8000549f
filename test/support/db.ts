/**
 * A fresh, migrated database for one test file. Real PostgreSQL by default: a uniquely named database on the
 * machine's server (TEST_DATABASE_URL, default trust auth on 127.0.0.1:5432), dropped on close. With
 * PATCHBAY_TEST_DB=pglite, PGlite in memory, so the same integration tests prove both backends. The global setup
 * (test-backend.ts) sets PATCHBAY_TEST_DB=pglite for the run when no PostgreSQL answers and none was asked for.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { openDatabase, type Database } from '../../src/db/client.ts';
import { migrateDatabase } from '../../src/db/migrate.ts';
import { DEFAULT_TEST_DATABASE_URL, describeUrl, type TestBackend } from './test-backend.ts';

export { DEFAULT_TEST_DATABASE_URL, type TestBackend };

export function testBackend(): TestBackend {
  return process.env.PATCHBAY_TEST_DB === 'pglite' ? 'pglite' : 'postgres';
}

export function serverUrl(): string {
  return process.env.TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL;
}

export interface ScratchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** An empty database on the test server, with no migrations applied. */
export async function createScratchDatabase(prefix = 'patchbay_test', baseUrl = serverUrl()): Promise<ScratchDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } catch (error) {
    throw new Error(
      `Cannot create a test database on ${describeUrl(baseUrl)} (set TEST_DATABASE_URL, or PATCHBAY_TEST_DB=pglite): ${(error as Error).message}`,
    );
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const dropper = postgres(baseUrl, { max: 1, onnotice: () => {} });
      try {
        await dropper.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await dropper.end({ timeout: 5 });
      }
    },
  };
}

/**
 * The database an app under test opens by itself (startApp, the CLI): a scratch PostgreSQL database named by
 * DATABASE_URL, or on PGlite no DATABASE_URL at all, so the app uses its embedded PGlite under its data dir.
 */
export interface AppTestDatabase {
  env: { DATABASE_URL?: string };
  drop(): Promise<void>;
}

export async function appDatabaseEnv(prefix: string): Promise<AppTestDatabase> {
  if (testBackend() === 'pglite') return { env: {}, drop: async () => {} };
  const scratch = await createScratchDatabase(prefix);
  return { env: { DATABASE_URL: scratch.url }, drop: () => scratch.drop() };
}

export interface TestDatabase extends Database {
  /** The backend this run uses, for test names and for the few checks that differ. */
  backend: TestBackend;
}

export async function openTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const shouldMigrate = options.migrate ?? true;
  if (testBackend() === 'pglite') {
    const database = await openDatabase({ kind: 'memory' });
    if (shouldMigrate) await migrateDatabase(database);
    return { ...database, backend: 'pglite' };
  }
  const scratch = await createScratchDatabase();
  const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 4 });
  try {
    if (shouldMigrate) await migrateDatabase(database);
  } catch (error) {
    await database.close();
    await scratch.drop();
    throw error;
  }
  return {
    ...database,
    backend: 'postgres',
    async close() {
      await database.close();
      await scratch.drop();
    },
  };
}
