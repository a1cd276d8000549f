/**
 * `npm run bench [--quick] [name…]`: runs every bench/*.bench.ts, or only those named (`import` or `import.bench.ts`).
 * `--quick` runs each at a tiny size (bench/lib.ts `sized`): CI's smoke, which asserts that every benchmark
 * completes, never how fast; any benchmark that throws makes the exit code 1.
 * Each bench file's default export is an async function that prints its own BENCH lines. Benchmarks run one
 * after another so they do not slow each other down.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const benchDir = path.dirname(fileURLToPath(import.meta.url));

async function main(requested: string[]): Promise<number> {
  const available = (await readdir(benchDir)).filter((file) => file.endsWith('.bench.ts')).sort();
  const wanted = requested.length === 0 ? available : requested.map((name) => (name.endsWith('.bench.ts') ? path.basename(name) : `${name}.bench.ts`));
  const unknown = wanted.filter((file) => !available.includes(file));
  if (unknown.length > 0) {
    process.stderr.write(`no such benchmark: ${unknown.join(', ')} (have: ${available.map((f) => f.replace(/\.bench\.ts$/, '')).join(', ')})\n`);
    return 2;
  }
  if (!(globalThis as { gc?: unknown }).gc) process.stderr.write('note: run with --expose-gc (npm run bench does) for steadier memory figures\n');
  let failures = 0;
  for (const file of wanted) {
    process.stderr.write(`# ${file}\n`);
    const started = performance.now();
    try {
      const module = (await import(pathToFileURL(path.join(benchDir, file)).href)) as { default?: unknown };
      if (typeof module.default !== 'function') throw new Error('its default export is not a function');
      await (module.default as () => Promise<void>)();
    } catch (error) {
      failures++;
      process.stderr.write(`bench ${file} failed: ${(error as Error).stack ?? String(error)}\n`);
    }
    process.stderr.write(`# ${file}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
  return failures === 0 ? 0 : 1;
}

const args = process.argv.slice(2);
// Set before any bench module loads, so sizes chosen at module level see it too.
if (args.includes('--quick')) process.env.BENCH_QUICK = '1';
process.exitCode = await main(args.filter((arg) => arg !== '--quick'));
