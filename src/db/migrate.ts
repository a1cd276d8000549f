/**
 * Applies migrations/ to the database. drizzle's migrator takes no lock, so two processes starting together
 * (two workers, or `patchbay start` beside `patchbay migrate`) could both try to create the same tables; a
 * PostgreSQL advisory lock, held on one connection for the whole run, makes the second wait and then find
 * nothing left to do.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase, type Database } from './client.ts';
import { MIGRATIONS_FOLDER, readJournal } from './migrations-journal.ts';

export { rowsOf, MIGRATIONS_FOLDER };

/** Any fixed 64-bit number no other lock in the database uses: "patchbay migrate". */
const MIGRATION_LOCK_KEY = sql.raw('7261636862021001');

export interface MigrationOutcome {
  /** Tags of the migrations this call applied, in order (empty when the database was up to date). */
  applied: string[];
  /** How many had been applied before. */
  alreadyApplied: number;
}

async function appliedMigrationTimes(db: AppDatabase): Promise<Set<number>> {
  const exists = await db.execute(sql`select to_regclass('drizzle.__drizzle_migrations') is not null as present`);
  if (!rowsOf<{ present: boolean }>(exists)[0]?.present) return new Set();
  const rows = await db.execute(sql`select created_at from drizzle.__drizzle_migrations`);
  return new Set(rowsOf<{ created_at: string | number }>(rows).map((row) => Number(row.created_at)));
}

export async function migrateDatabase(database: Database, folder = MIGRATIONS_FOLDER): Promise<MigrationOutcome> {
  const journal = await readJournal(folder);
  return database.withDedicatedConnection(async ({ db, migrate }) => {
    await db.execute(sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
    try {
      const before = await appliedMigrationTimes(db);
      await migrate({ migrationsFolder: folder });
      const after = await appliedMigrationTimes(db);
      return {
        applied: journal.filter((entry) => after.has(entry.when) && !before.has(entry.when)).map((entry) => entry.tag),
        alreadyApplied: journal.filter((entry) => before.has(entry.when)).length,
      };
    } finally {
      await db.execute(sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
    }
  });
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
}

/** Which migrations the database has and lacks, without changing anything (for dry runs and /readyz). */
export async function migrationStatus(database: Database, folder = MIGRATIONS_FOLDER): Promise<MigrationStatus> {
  const journal = await readJournal(folder);
  const done = await appliedMigrationTimes(database.db);
  return {
    applied: journal.filter((entry) => done.has(entry.when)).map((entry) => entry.tag),
    pending: journal.filter((entry) => !done.has(entry.when)).map((entry) => entry.tag),
  };
}
