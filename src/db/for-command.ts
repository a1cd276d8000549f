/**
 * Opening the database for a one-shot command (`migrate`, `import`). The embedded PGlite files belong to one
 * process at a time, so a command takes the same data-dir lock `patchbay start` takes and refuses, with the
 * holder's pid, rather than corrupt a running bot's database.
 */
import type { Config } from '../config.ts';
import { DataDirInUseError, lockDataDir } from '../runtime/data-dir-lock.ts';
import { openDatabase, type Database } from './client.ts';
import { DatabaseError, describeDatabaseError } from './errors.ts';

/**
 * Runs `work` on the command's database. A database failure (no such database, server down, a statement
 * refused) comes out as a one-line DatabaseError; anything else, such as a command's own CliError, as is.
 */
export async function withCommandDatabase<T>(config: Config, work: (database: Database) => Promise<T>): Promise<T> {
  const lock = config.database.kind === 'embedded' ? await lockForCommand(config.dataDir) : undefined;
  try {
    const database = await openDatabase(config.database, { maxConnections: 2, applicationName: 'patchbay-cli' });
    try {
      return await work(database);
    } finally {
      await database.close();
    }
  } catch (error) {
    const message = describeDatabaseError(error, config.database);
    throw message === undefined ? error : new DatabaseError(message, { cause: error });
  } finally {
    await lock?.release();
  }
}

async function lockForCommand(dataDir: string): Promise<{ release(): Promise<void> }> {
  try {
    return await lockDataDir(dataDir);
  } catch (error) {
    if (!(error instanceof DataDirInUseError)) throw error;
    // A command cannot move to another data dir (it would be empty); it can wait, or both can share a server.
    throw new DatabaseError(`the data dir ${error.dataDir} is in use by patchbay (pid ${error.pid}); stop it, or use DATABASE_URL`, { cause: error });
  }
}

/** Where the data lives, for a person to read: the PGlite folder, or the server URL without its password. */
export function describeDatabase(target: Config['database']): string {
  if (target.kind === 'embedded') return `embedded PGlite in ${target.dataDir}`;
  try {
    const url = new URL(target.url);
    if (url.password) url.password = '***';
    return `PostgreSQL ${url.toString()}`;
  } catch {
    return 'PostgreSQL';
  }
}
