import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { distIsFresh } from '../../bin/dist-fresh.mjs';

// A package folder with src/ (one nested file) and a dist/ whose stamp is newer than all of it.
const roots: string[] = [];
function packageFolder(): { root: string; url: URL; stamp: Date } {
  const root = mkdtempSync(path.join(tmpdir(), 'patchbay-dist-fresh-'));
  roots.push(root);
  const old = new Date(Date.now() - 60_000);
  mkdirSync(path.join(root, 'src/commands'), { recursive: true });
  mkdirSync(path.join(root, 'dist'));
  writeFileSync(path.join(root, 'src/cli.ts'), '');
  writeFileSync(path.join(root, 'src/commands/windows.ts'), '');
  for (const entry of ['src/cli.ts', 'src/commands/windows.ts', 'src/commands', 'src']) utimesSync(path.join(root, entry), old, old);
  const stamp = new Date(Date.now() - 30_000);
  writeFileSync(path.join(root, 'dist/.built'), '');
  utimesSync(path.join(root, 'dist/.built'), stamp, stamp);
  return { root, url: pathToFileURL(`${root}/`), stamp };
}

afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

describe('which code bin/patchbay.mjs runs', () => {
  it('dist/ when its stamp is newer than every source', () => {
    expect(distIsFresh(packageFolder().url)).toBe(true);
  });

  it('the sources when there is no build', () => {
    const { root, url } = packageFolder();
    rmSync(path.join(root, 'dist/.built'));
    expect(distIsFresh(url)).toBe(false);
  });

  it('the sources once a nested file is saved after the build started', () => {
    const { root, url, stamp } = packageFolder();
    const later = new Date(stamp.getTime() + 1000);
    utimesSync(path.join(root, 'src/commands/windows.ts'), later, later);
    expect(distIsFresh(url)).toBe(false);
  });

  it('the sources once a file is added or removed, whatever its own mtime', () => {
    const { root, url } = packageFolder();
    const old = new Date(Date.now() - 120_000);
    writeFileSync(path.join(root, 'src/commands/digest.ts'), '');
    utimesSync(path.join(root, 'src/commands/digest.ts'), old, old);
    expect(distIsFresh(url)).toBe(false);

    const removed = packageFolder();
    rmSync(path.join(removed.root, 'src/commands/windows.ts'));
    expect(distIsFresh(removed.url)).toBe(false);
  });
});
