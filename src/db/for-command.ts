/**
 * Opening the database for a one-shot command (`migrate`, `import`). The embedded PGlite files belong to one
 * process at a time, so a command takes the same data-dir lock `patchbay start` takes and refuses, with the
 * holder's pid, rather than corrupt a running bot's database.
 */
import type { Config } from '../config.ts';
import { lockDataDir } from '../runtime/data-dir-lock.ts';
import { openDatabase, type Database } from './client.ts';

export async function withCommandDatabase<T>(config: Config, work: (database: Database) => Promise<T>): Promise<T> {
  const lock = config.database.kind === 'embedded' ? await lockDataDir(config.dataDir) : undefined;
  try {
    const database = await openDatabase(config.database, { maxConnections: 2, applicationName: 'patchbay-cli' });
    try {
      return await work(database);
    } finally {
      await database.close();
    }
  } finally {
    await lock?.release();
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
