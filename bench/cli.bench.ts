/**
 * The CLI as a person waits for it: wall time and peak RSS of a whole `patchbay` process for `--help`, `windows`
 * and `digest --cvrf FILE --text`, each as a ratio against `node -e 0` spawned the same way in the same run.
 * Targets (issue 19): --help ≤ 300 ms and ≤ 80 MiB; windows and digest ≤ 1 s. Time is the best of a few spawns
 * (the least disturbed on a shared machine); peak RSS is the kernel's, read by /usr/bin/time -f %M, or when that is
 * absent reported by the child itself (process.resourceUsage() at exit). CPU time (user + system) is printed too: on a
 * busy shared machine it moves far less than wall time.
 *
 * BENCH_CLI_BIN=/path/to/bin/patchbay.mjs measures another checkout's CLI (e.g. main's, for a before figure).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { report, sized } from './lib.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TIME = '/usr/bin/time';
// Loaded by the child with --import when /usr/bin/time is absent: writes its own peak RSS (KiB) as it exits.
const SELF_REPORT = `data:text/javascript,${encodeURIComponent(
  "import { writeFileSync } from 'node:fs'; process.on('exit', () => { const u = process.resourceUsage(); writeFileSync(process.env.BENCH_RSS_FILE, `${u.maxRSS} ${u.userCPUTime / 1e6} ${u.systemCPUTime / 1e6}`); });",
)}`;

interface Run {
  ms: number;
  cpuMs: number;
  rssMiB: number;
}

/** Spawns `node args…` once; fails on a non-zero exit, since a figure for a failing command means nothing. */
async function spawnOnce(args: string[], scratch: string): Promise<Run> {
  const rssFile = path.join(scratch, 'rss');
  rmSync(rssFile, { force: true });
  const useTime = existsSync(TIME);
  const [command, argv] = useTime
    ? [TIME, ['-f', '%M %U %S', '-o', rssFile, process.execPath, ...args]]
    : [process.execPath, ['--import', SELF_REPORT, ...args]];
  const started = process.hrtime.bigint();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(command, argv, { cwd: repoRoot, env: { ...process.env, BENCH_RSS_FILE: rssFile }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (exit) => resolve({ code: exit, stderr: err }));
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (code !== 0) throw new Error(`node ${args.join(' ')} exited ${code}: ${stderr.trim()}`);
  // "KiB user-seconds system-seconds"; /usr/bin/time writes it on the last line (after any "Command exited…" note).
  const [kib, user, system] = readFileSync(rssFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  if (!kib || !Number.isFinite(kib) || user === undefined || system === undefined) throw new Error(`no peak RSS for node ${args.join(' ')}`);
  return { ms, cpuMs: (user + system) * 1000, rssMiB: kib / 1024 };
}

/** Best time and the peak RSS of that same run (RSS varies little between runs of one command). */
async function best(args: string[], repeats: number, scratch: string): Promise<Run> {
  let fastest: Run | undefined;
  for (let i = 0; i < repeats; i++) {
    const run = await spawnOnce(args, scratch);
    if (!fastest || run.ms < fastest.ms) fastest = run;
  }
  return fastest!;
}

export default async function cliBench(): Promise<void> {
  const bin = process.env.BENCH_CLI_BIN ? path.resolve(process.env.BENCH_CLI_BIN) : path.join(repoRoot, 'bin/patchbay.mjs');
  const repeats = sized(7, 1);
  const cvrf = path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json');
  const commands: Array<[string, string[]]> = [
    ['help', ['--help']],
    ['windows', ['windows', '--tz', 'America/Chicago', '--window', 'daily 01:00-05:00', '--from', '2026-03-07T12:00', '--count', '7']],
    ['digest', ['digest', '--cvrf', cvrf, '--text', '--now', '2024-06-12T00:00:00Z']],
  ];
  const scratch = mkdtempSync(path.join(tmpdir(), 'patchbay-cli-bench-'));
  try {
    // One untimed run each first: the page cache (and tsx's cache, when the bin falls back to it) is warm for all.
    await spawnOnce(['-e', '0'], scratch);
    for (const [, args] of commands) await spawnOnce([bin, ...args], scratch);

    const baseline = await best(['-e', '0'], repeats, scratch);
    report('cli.baseline.ms', baseline.ms, 'ms', 1);
    report('cli.baseline.cpu', baseline.cpuMs, 'ms', 1);
    report('cli.baseline.rss', baseline.rssMiB, 'MiB', 1);
    for (const [name, args] of commands) {
      const run = await best([bin, ...args], repeats, scratch);
      report(`cli.${name}.ms`, run.ms, 'ms', run.ms / baseline.ms);
      report(`cli.${name}.cpu`, run.cpuMs, 'ms', run.cpuMs / baseline.cpuMs);
      report(`cli.${name}.rss`, run.rssMiB, 'MiB', run.rssMiB / baseline.rssMiB);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
