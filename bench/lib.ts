/**
 * Benchmark helpers. Speed is compared, never asserted: each figure is printed as
 * `BENCH <name> <value> <unit> ratio=<x>`, where the ratio is against a baseline measured in the same process
 * (so a slower or busier machine moves both and the ratio stays comparable between runs).
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';

export type Bench = () => Promise<void>;

/**
 * `npm run bench -- --quick` (CI's bench smoke): every benchmark at a tiny size, to prove it still runs to the end.
 * Its figures mean nothing; run.ts fails when any benchmark throws.
 */
export function isQuick(): boolean {
  return process.env.BENCH_QUICK === '1';
}

/** `full` normally, `quick` under --quick: one line where a benchmark sets a size. */
export function sized<T>(full: T, quick: T): T {
  return isQuick() ? quick : full;
}

export const DEFAULT_BENCH_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** Prints one figure. `ratio` is value / baseline (1 for the baseline itself). */
export function report(name: string, value: number, unit: string, ratio: number): void {
  process.stdout.write(`BENCH ${name} ${formatNumber(value)} ${unit} ratio=${formatNumber(ratio)}\n`);
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  const decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : 3;
  return value.toFixed(decimals);
}

/** Collects garbage when node runs with --expose-gc (as `npm run bench` does), so runs start level. */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export interface Measured<T> {
  result: T;
  ms: number;
  /** Highest resident set size seen while the function ran, in MiB. */
  peakRssMiB: number;
  /** Highest V8 heap in use seen while the function ran, in MiB. */
  peakHeapMiB: number;
}

const MiB = 1024 * 1024;

/**
 * Times one call and samples memory every few milliseconds while it runs. A long synchronous stretch starves
 * the sampler, so memory is also read at the end; the RSS figure is a lower bound of the true peak.
 */
export async function measure<T>(work: () => T | Promise<T>, sampleEveryMs = 5): Promise<Measured<T>> {
  collectGarbage();
  let peakRss = process.memoryUsage.rss();
  let peakHeap = process.memoryUsage().heapUsed;
  const sample = () => {
    const usage = process.memoryUsage();
    peakRss = Math.max(peakRss, usage.rss);
    peakHeap = Math.max(peakHeap, usage.heapUsed);
  };
  const sampler = setInterval(sample, sampleEveryMs);
  const started = process.hrtime.bigint();
  try {
    const result = await work();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    sample();
    return { result, ms, peakRssMiB: peakRss / MiB, peakHeapMiB: peakHeap / MiB };
  } finally {
    clearInterval(sampler);
  }
}

/** The best (lowest) time of `repeats` calls: the least disturbed by the other work on a shared machine. */
export async function bestOf<T>(repeats: number, work: () => T | Promise<T>): Promise<Measured<T>> {
  let best: Measured<T> | undefined;
  for (let i = 0; i < repeats; i++) {
    const run = await measure(work);
    if (!best || run.ms < best.ms) best = run;
  }
  return best!;
}

export function benchDatabaseUrl(): string {
  return process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || DEFAULT_BENCH_DATABASE_URL;
}

export interface ScratchPostgres {
  url: string;
  drop(): Promise<void>;
}

/** A throwaway database on the benchmark server; undefined (with a line on stderr) when none is reachable. */
export async function scratchPostgres(label: string): Promise<ScratchPostgres | undefined> {
  const baseUrl = benchDatabaseUrl();
  const name = `patchbay_bench_${label}_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = postgres(baseUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await admin.unsafe(`create database "${name}"`);
  } catch (error) {
    const why = `no PostgreSQL at ${baseUrl} (${(error as Error).message}); set BENCH_DATABASE_URL`;
    // The smoke proves each benchmark runs: one that skips has not.
    if (isQuick()) throw new Error(`bench ${label}: ${why}`);
    process.stderr.write(`bench ${label}: ${why}. Skipped.\n`);
    return undefined;
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const dropper = postgres(baseUrl, { max: 1, onnotice: () => {} });
      try {
        await dropper.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await dropper.end({ timeout: 5 });
      }
    },
  };
}
