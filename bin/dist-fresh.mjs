// Whether bin/patchbay.mjs may run the compiled dist/ instead of the sources: dist/.built (stamped by
// scripts/build.mjs with the time its build started) is newer than everything under src/. Editing, adding, renaming
// or deleting a source moves a file's or its folder's mtime, so the bin then runs the sources. One stat per entry
// of src/: a few milliseconds, against most of a second for tsx.
import { readdirSync, statSync } from 'node:fs';

/** `root`: the package folder, as a URL ending in '/'. */
export function distIsFresh(root) {
  let stamp;
  try {
    stamp = statSync(new URL('dist/.built', root)).mtimeMs;
  } catch {
    return false;
  }
  return !changedSince(new URL('src/', root), stamp);
}

function changedSince(dir, stamp) {
  if (statSync(dir).mtimeMs >= stamp) return true;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (changedSince(new URL(`${entry.name}/`, dir), stamp)) return true;
    } else if (statSync(new URL(entry.name, dir)).mtimeMs >= stamp) {
      return true;
    }
  }
  return false;
}
