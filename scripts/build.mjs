// npm's `prepare` (run by `npm ci`): compiles src/ into dist/ for bin/patchbay.mjs, which starts in a fraction of the
// time tsx takes to load the sources. Files under src/ that are not TypeScript (the sandbox page) are copied beside
// the compiled modules that read them. dist/.built is stamped with the time the build *started*, so a source saved
// during the build counts as newer and the bin falls back to the sources. Last, the image new embedded databases are
// copied from (src/db/pglite-image.ts): without it they still work, initialised in the process that opens them at
// several times the memory, so a failure to make it is a warning.
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const started = new Date();

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  // An install without devDependencies: the bin runs the sources through tsx (a dependency) instead.
  console.warn('patchbay build: typescript is not installed, so dist/ is not built; patchbay will run its sources through tsx');
  process.exit(0);
}

// The stamp first: from here until the new one is written, the bin runs the sources.
rmSync(path.join(dist, '.built'), { force: true });
rmSync(dist, { recursive: true, force: true });
const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (result.status !== 0) {
  rmSync(dist, { recursive: true, force: true });
  console.error('patchbay build: tsc failed; dist/ removed so nothing stale runs');
  process.exit(result.status ?? 1);
}
// Directories pass (their names do not end in .ts); every file but the TypeScript already compiled is copied.
cpSync(path.join(root, 'src'), dist, { recursive: true, filter: (source) => !source.endsWith('.ts') });
const stamp = path.join(dist, '.built');
writeFileSync(stamp, `${started.toISOString()}\n`);
utimesSync(stamp, started, started);
try {
  const { makePgliteImage } = await import(pathToFileURL(path.join(dist, 'db', 'make-pglite-image.js')).href);
  await makePgliteImage();
} catch (error) {
  console.warn(`patchbay build: no image for new embedded databases (${error.message}); each will be initialised where it is opened`);
}
