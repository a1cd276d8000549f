/**
 * `PATCHBAY_TRACE_MEMORY=1`: one stderr line per step of a long command with the process's memory at that step,
 * to find what holds memory at the peak (the import's 300 MiB budget, issue 19). Off, it costs one lookup.
 */
const enabled = process.env.PATCHBAY_TRACE_MEMORY === '1';
const started = performance.now();

export function traceMemory(step: string): void {
  if (!enabled) return;
  const usage = process.memoryUsage();
  const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
  process.stderr.write(
    `memory ${(performance.now() - started).toFixed(0)}ms ${step}: rss ${mib(usage.rss)} heap ${mib(usage.heapUsed)}/${mib(usage.heapTotal)} external ${mib(usage.external)} MiB\n`,
  );
}
