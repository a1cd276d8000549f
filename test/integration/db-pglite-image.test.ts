import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, PGLITE_SETTINGS } from '../../src/db/client.ts';
import { makePgliteImage } from '../../src/db/make-pglite-image.ts';
import { MIGRATIONS_FOLDER, migrateDatabase, migrationStatus } from '../../src/db/migrate.ts';
import { imageFits, seedFromImage } from '../../src/db/pglite-image.ts';

// Always PGlite, whichever backend the run uses: the image is how a new embedded database begins.
describe('a new embedded database copied from the build-time image', () => {
  let root: string;
  let image: string;
  let olderTags: string[];
  let allTags: string[];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'patchbay-image-'));
    // An image made before the latest migration existed: a database copied from it must still end up current.
    const older = join(root, 'migrations');
    await cp(MIGRATIONS_FOLDER, older, { recursive: true });
    const journal = JSON.parse(await readFile(join(older, 'meta/_journal.json'), 'utf8')) as { entries: Array<{ tag: string }> };
    allTags = journal.entries.map((entry) => entry.tag);
    olderTags = allTags.slice(0, -1);
    await writeFile(join(older, 'meta/_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, -1) }));
    image = join(root, 'image');
    await makePgliteImage(image, older);
  }, 120_000);

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('starts migrated as far as the image was, and migrating applies only what the image lacks', async () => {
    const dataDir = join(root, 'seeded', 'pglite');
    await mkdir(join(root, 'seeded'));
    const database = await openDatabase({ kind: 'embedded', dataDir }, { image });
    try {
      expect(await migrationStatus(database)).toEqual({ applied: olderTags, pending: allTags.slice(-1) });
      expect(await migrateDatabase(database)).toEqual({ applied: allTags.slice(-1), alreadyApplied: olderTags.length });
    } finally {
      await database.close();
    }
  }, 60_000);

  it('leaves a data dir that already holds something alone', async () => {
    const dataDir = join(root, 'used');
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'something'), '');
    expect(await seedFromImage(dataDir, PGLITE_SETTINGS, image)).toBe(false);
    expect(await readdir(dataDir)).toEqual(['something']);
  });

  it('is not used when it is missing, or made with other settings', async () => {
    expect(await seedFromImage(join(root, 'a'), PGLITE_SETTINGS, join(root, 'no-image'))).toBe(false);
    expect(await seedFromImage(join(root, 'b'), ['shared_buffers=64MB'], image)).toBe(false);
    expect((await readdir(root)).filter((name) => name === 'a' || name === 'b' || name.includes('seeding'))).toEqual([]);
  });
});

describe('whether an image fits', () => {
  const current = { pglite: '0.5.16', settings: ['shared_buffers=32MB'], migrations: ['0000_init aa', '0001_next bb'] };

  it('fits when made by this PGlite with these settings from a prefix of these migrations', () => {
    expect(imageFits(current, current)).toBe(true);
    expect(imageFits({ ...current, migrations: ['0000_init aa'] }, current)).toBe(true);
  });

  it('does not fit when anything differs', () => {
    expect(imageFits({ ...current, pglite: '0.5.15' }, current)).toBe(false);
    expect(imageFits({ ...current, settings: ['shared_buffers=16MB'] }, current)).toBe(false);
    // A migration edited since the image was made, or one this code does not know.
    expect(imageFits({ ...current, migrations: ['0000_init ff', '0001_next bb'] }, current)).toBe(false);
    expect(imageFits({ ...current, migrations: [...current.migrations, '0002_later cc'] }, current)).toBe(false);
  });
});
