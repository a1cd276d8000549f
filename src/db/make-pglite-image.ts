/**
 * Makes the image new embedded databases are copied from (pglite-image.ts): run by scripts/build.mjs from dist/,
 * or by hand with `node --import tsx src/db/make-pglite-image.ts [dir]`.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { openDatabase, PGLITE_SETTINGS } from './client.ts';
import { MIGRATIONS_FOLDER, migrateDatabase } from './migrate.ts';
import { PGLITE_IMAGE_DIR, writeImage } from './pglite-image.ts';

/** initdb and every migration, in a data dir of its own, closed cleanly so the copy needs no recovery. */
export async function makePgliteImage(imageDir = PGLITE_IMAGE_DIR, folder = MIGRATIONS_FOLDER): Promise<void> {
  await writeImage(
    imageDir,
    PGLITE_SETTINGS,
    async (dataDir) => {
      const database = await openDatabase({ kind: 'embedded', dataDir }, { image: false });
      try {
        await migrateDatabase(database, folder);
      } finally {
        await database.close();
      }
    },
    folder,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await makePgliteImage(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
}
