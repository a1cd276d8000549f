#!/usr/bin/env node
// Runs the compiled JavaScript in dist/ (built by `npm ci` through the `prepare` script, scripts/build.mjs) when it
// is newer than every source (./dist-fresh.mjs), and otherwise the TypeScript sources through tsx: a developer
// who edits src/ runs the edit without rebuilding, never a stale dist/, and an install that skipped the build
// (no devDependencies, --ignore-scripts) still works.
import { distIsFresh } from './dist-fresh.mjs';

// `patchbay … --help | head` closes the pipe before the help is written: the reader's choice, not a crash to print.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

let cli;
if (distIsFresh(new URL('../', import.meta.url))) {
  cli = await import('../dist/cli.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../src/cli.ts');
}
await cli.main(process.argv, process.env);
