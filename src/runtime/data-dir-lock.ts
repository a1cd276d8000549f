import { readFileSync, rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else, which still means the directory is in use.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Another live process holds the data dir; commands reword the advice, since a second data dir would be empty. */
export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError';
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(`another patchbay (pid ${pid}) is using ${dataDir}; stop it, or give this one its own PATCHBAY_DATA_DIR`);
  }
}

/**
 * The embedded database and the private Redis belong to one process at a time: a second `patchbay start` on the
 * same data dir would corrupt PGlite's files, so it is refused with a message that names the holder.
 */
export async function lockDataDir(dataDir: string): Promise<{ release(): Promise<void> }> {
  await fs.mkdir(dataDir, { recursive: true });
  const lockFile = path.join(dataDir, 'patchbay.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(lockFile, String(process.pid), { flag: 'wx' });
      // A process that dies of an uncaught error or exits early still frees the directory.
      const onExit = () => {
        try {
          if (readFileSync(lockFile, 'utf8').trim() === String(process.pid)) rmSync(lockFile, { force: true });
        } catch {
          // Already gone.
        }
      };
      process.on('exit', onExit);
      return {
        async release() {
          process.off('exit', onExit);
          await fs.rm(lockFile, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number((await fs.readFile(lockFile, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
        throw new DataDirInUseError(dataDir, holder);
      }
      // Left behind by a process that died without cleaning up.
      await fs.rm(lockFile, { force: true });
    }
  }
  throw new Error(`could not lock ${dataDir}`);
}
