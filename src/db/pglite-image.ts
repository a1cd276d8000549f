/**
 * A new embedded database begins as a copy of an image: a PGlite data dir made at build time (scripts/build.mjs),
 * initdb'd and migrated. Creating one in the process that needs it runs initdb in a second PGlite and a third
 * WebAssembly module, hands the result over as a tarball, and then migrates: 750 MiB at its peak, which stayed the
 * peak of a first 100,000-device import (820 MiB). Copying files costs nothing of the kind.
 *
 * The image is used only when it was made by this PGlite with these settings from a prefix of these migrations
 * (each the same SQL); the migrations it lacks are applied as on any database. Otherwise, or with no image (an
 * install that skipped the build), PGlite creates the database itself, as before.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cp, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MIGRATIONS_FOLDER, readJournal } from './migrations-journal.ts';

/** Resolved from this module, and the same folder from src/db and dist/db. */
export const PGLITE_IMAGE_DIR = fileURLToPath(new URL('../../dist/pglite-image', import.meta.url));

interface ImageManifest {
  pglite: string;
  settings: string[];
  /** `tag sha256-of-its-sql`, in journal order. */
  migrations: string[];
}

const MANIFEST = 'manifest.json';
const DATA = 'pglite';

function pgliteVersion(): string {
  // The package's exports hide its package.json; its entry point sits in dist/, one below it.
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  return (JSON.parse(readFileSync(path.join(path.dirname(entry), '..', 'package.json'), 'utf8')) as { version: string }).version;
}

async function migrationFingerprints(folder: string): Promise<string[]> {
  const journal = await readJournal(folder);
  return Promise.all(
    journal.map(async (entry) => `${entry.tag} ${createHash('sha256').update(await readFile(path.join(folder, `${entry.tag}.sql`))).digest('hex')}`),
  );
}

async function expectedManifest(settings: string[], folder: string): Promise<ImageManifest> {
  return { pglite: pgliteVersion(), settings, migrations: await migrationFingerprints(folder) };
}

/** Whether an image made as `made` may start a database that this code then migrates with `current`. */
export function imageFits(made: ImageManifest, current: ImageManifest): boolean {
  return (
    made.pglite === current.pglite &&
    made.settings.join('\n') === current.settings.join('\n') &&
    made.migrations.length <= current.migrations.length &&
    made.migrations.every((migration, index) => migration === current.migrations[index])
  );
}

/**
 * Writes the image's manifest beside its data dir, which `makeDataDir` has just created (initdb'd and migrated)
 * at `imageDir/pglite`.
 */
export async function writeImage(imageDir: string, settings: string[], makeDataDir: (dataDir: string) => Promise<void>, folder = MIGRATIONS_FOLDER): Promise<void> {
  await rm(imageDir, { recursive: true, force: true });
  await makeDataDir(path.join(imageDir, DATA));
  await writeFile(path.join(imageDir, MANIFEST), `${JSON.stringify(await expectedManifest(settings, folder), null, 2)}\n`);
}

async function isEmptyDir(dir: string): Promise<boolean> {
  return (await readdir(dir)).length === 0;
}

/**
 * Puts a copy of the image at `dataDir` when nothing is there yet and the image fits; answers whether it did.
 * The copy is made beside `dataDir` and renamed into place, so an interrupted copy never passes for a database.
 */
export async function seedFromImage(dataDir: string, settings: string[], imageDir = PGLITE_IMAGE_DIR, folder = MIGRATIONS_FOLDER): Promise<boolean> {
  if (existsSync(dataDir) && !(await isEmptyDir(dataDir))) return false;
  let made: ImageManifest;
  try {
    made = JSON.parse(await readFile(path.join(imageDir, MANIFEST), 'utf8')) as ImageManifest;
  } catch {
    return false;
  }
  if (!imageFits(made, await expectedManifest(settings, folder))) return false;
  const partial = `${dataDir}.seeding-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  try {
    await cp(path.join(imageDir, DATA), partial, { recursive: true });
    if (existsSync(dataDir)) await rmdir(dataDir);
    await rename(partial, dataDir);
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
  return true;
}
