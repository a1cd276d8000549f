// Preloaded into a child process (`node --import ./bench/peak-rss.mjs …`) by the import benchmark: reports the
// process's peak resident set size when it exits, as the last line on stderr. VmHWM is the kernel's own
// high-water mark of this process's memory, so no sampling can miss a short peak. Not resourceUsage().maxRSS:
// Linux carries that across fork and exec, so a child would report its parent's peak when that is higher.
import { readFileSync } from 'node:fs';

function peakKiB() {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]);
  } catch {
    // Not Linux: fall back to what the platform reports.
  }
  return process.resourceUsage().maxRSS;
}

process.on('exit', () => {
  process.stderr.write(`\nPEAK_RSS_KIB ${peakKiB()}\n`);
});
