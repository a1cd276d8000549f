#!/usr/bin/env node
// Runs the compiled JavaScript in dist/ (built by `npm ci` through the `prepare` script, scripts/build.mjs) when it
// is up to date, and otherwise the TypeScript sources through tsx. Up to date means dist/.built, stamped with the
// time its build started, is newer than everything under src/: a developer who edits, adds, renames or deletes a
// source (a file's or its folder's mtime moves) runs the sources without rebuilding, never a stale dist/. The check
// is a stat per entry of src/, a few milliseconds; tsx would cost most of a second.
import { readdirSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);

function builtAt() {
  try {
    return statSync(new URL('dist/.built', root)).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Whether anything under `dir` (a folder URL ending in '/') changed at or after `stamp`. */
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

const stamp = builtAt();
let cli;
if (stamp !== undefined && !changedSince(new URL('src/', root), stamp)) {
  cli = await import('../dist/cli.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../src/cli.ts');
}
await cli.main(process.argv, process.env);
