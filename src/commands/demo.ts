/**
 * `patchbay demo`: a whole Patch Tuesday month played on the sandbox in a few real minutes (issue 8). The script
 * itself is src/sandbox/demo-script.ts; this command starts the world it plays in and shows how it goes.
 *
 * The world is always a fresh one: an embedded database (PGlite) and a private redis-server under a new data dir,
 * with Slack and Teams emulated. DATABASE_URL, REDIS_URL and any chat credentials in the environment are ignored
 * on purpose: the demo jumps its clock weeks ahead and writes a month of decisions, which must never land in a
 * real database, a shared Redis or a real workspace.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { CliError } from './cli-error.ts';
import type { RunningApp } from '../app.ts';
import type { Logger } from '../log.ts';
import type { DemoProgress, DemoSummary } from '../sandbox/demo-script.ts';

interface DemoCliOptions {
  cvrf?: string;
  month?: string;
  port?: string;
  dataDir?: string;
  keep?: boolean;
  speed: string;
  json?: boolean;
}

/** Scheduler ticks in real ms: short, because at demo speed a 2 s tick is 20 minutes of clock. */
export const DEMO_TICK_MS = 500;

export interface DemoRelease {
  id: string;
  /** A stored CVRF document; undefined: the sandbox's sample for the month. */
  document?: unknown;
}

/** Reads a CVRF v3 JSON and the month it is for. */
export async function readCvrfRelease(file: string): Promise<DemoRelease> {
  const { parseReleaseId } = await import('../domain/calendar.ts');
  let document: unknown;
  try {
    document = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new CliError(`--cvrf: cannot read ${file} as JSON: ${error instanceof Error ? error.message : String(error)}`, 2);
  }
  const id = (document as { DocumentTracking?: { Identification?: { ID?: { Value?: unknown } } } } | null)?.DocumentTracking?.Identification?.ID?.Value;
  const parsed = typeof id === 'string' ? parseReleaseId(id) : undefined;
  if (!parsed?.ok) throw new CliError(`--cvrf: ${file} is not a CVRF v3 month (DocumentTracking.Identification.ID should read like 2024-Feb)`, 2);
  return { id: parsed.value.id, document };
}

/** The port asked for, or a free one when it is taken (0 always picks a free one). */
export async function usablePort(wanted: number): Promise<number> {
  if (wanted === 0) return 0;
  const free = await new Promise<boolean>((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(wanted, () => probe.close(() => resolve(true)));
  });
  return free ? wanted : 0;
}

export interface StartDemoOptions {
  dataDir: string;
  port: number;
  release: DemoRelease;
  log: Logger;
  tickMs?: number;
}

/** The sandbox the demo plays in: fresh embedded database and private Redis, clock just before Patch Tuesday. */
export async function startDemoApp(options: StartDemoOptions): Promise<RunningApp> {
  const { loadConfig } = await import('../config.ts');
  const { startApp } = await import('../app.ts');
  const { ROLES } = await import('../jobs/context.ts');
  const { SandboxClock, sandboxClockFile } = await import('../sandbox/clock.ts');
  const { demoClockStart } = await import('../sandbox/demo-script.ts');
  // Only what the demo needs from the environment; see the module comment for why the rest is left out.
  const config = { ...loadConfig({ PATCHBAY_DATA_DIR: options.dataDir, LOG_LEVEL: 'silent' }), sandbox: true };
  // Saved where `patchbay start` looks for it, so a kept data dir opened as a sandbox carries on from the end of
  // the month instead of going back to today with next week's runs stored (the data dir starts empty).
  const clock = new SandboxClock({ start: demoClockStart(options.release.id), rate: 1, file: sandboxClockFile(options.dataDir) });
  return startApp(config, options.log, {
    roles: new Set(ROLES),
    port: options.port,
    sandboxClock: clock,
    sandboxTickMs: options.tickMs ?? DEMO_TICK_MS,
    sandboxRelease: options.release,
  });
}

function parseNumber(name: string, value: string, check: (n: number) => boolean, expected: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new CliError(`${name}: "${value}" is not ${expected}`, 2);
  return n;
}

export async function runDemoCommand(options: DemoCliOptions): Promise<void> {
  const speed = parseNumber('--speed', options.speed, (n) => n > 0 && n <= 3600, 'a rate above 0 and at most 3600');
  const wantedPort = options.port ?? process.env.PORT ?? '3000';
  const port = parseNumber('--port', wantedPort, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number (0 to 65535)');
  const fs = await import('node:fs/promises');
  const { createLogger } = await import('../log.ts');
  const release = await chooseRelease(options);
  const { dataDir, removeDir } = await prepareDataDir(options);
  const log = createLogger(process.env.LOG_LEVEL ?? 'error', 'patchbay-demo');

  let app: RunningApp | undefined;
  let stopping: Promise<void> | undefined;
  const cleanup = () => {
    stopping ??= (async () => {
      await app?.stop();
      if (removeDir) await fs.rm(dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const onSignal = () => {
    process.stderr.write('\npatchbay demo: interrupted; stopping\n');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await playDemo(options, { speed, port, release, dataDir, removeDir, log }, (started) => (app = started));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

/** The month asked for: a stored CVRF document (--cvrf), a sample month (--month), or the next Patch Tuesday's. */
async function chooseRelease(options: DemoCliOptions): Promise<DemoRelease> {
  const { DateTime } = await import('luxon');
  const { nextRelease, parseReleaseId } = await import('../domain/calendar.ts');
  if (options.cvrf) {
    if (options.month) throw new CliError('--cvrf and --month: give one (the document names its month)', 2);
    return readCvrfRelease(options.cvrf);
  }
  if (options.month) {
    const parsed = parseReleaseId(options.month);
    if (!parsed.ok) throw new CliError(`--month: ${parsed.error}`, 2);
    return { id: parsed.value.id };
  }
  return { id: nextRelease(DateTime.now()).id };
}

/** The data dir to play in, and whether it goes at the end (a temp dir of our own, unless --keep). */
async function prepareDataDir(options: DemoCliOptions): Promise<{ dataDir: string; removeDir: boolean }> {
  const fs = await import('node:fs/promises');
  const os = await import('node:os');
  const path = await import('node:path');
  const ownDir = options.dataDir === undefined;
  let dataDir: string;
  if (options.dataDir !== undefined) {
    dataDir = path.resolve(options.dataDir);
    // The clock only moves forward and the month is replayed from its start: a used dir cannot host it.
    if (existsSync(dataDir) && readdirSync(dataDir).length > 0) throw new CliError(`--data-dir: ${dataDir} is not empty; the demo needs a fresh one`, 2);
  } else {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-demo-'));
  }
  return { dataDir, removeDir: ownDir && !options.keep };
}

interface DemoPlan {
  speed: number;
  port: number;
  release: DemoRelease;
  dataDir: string;
  removeDir: boolean;
  log: Logger;
}

/** Starts the sandbox (handing it to `started`, so a stop finds it), plays the month and prints the summary. */
async function playDemo(options: DemoCliOptions, plan: DemoPlan, started: (app: RunningApp) => void): Promise<void> {
  const { runDemoScript, DEMO_STEPS } = await import('../sandbox/demo-script.ts');
  const { release, port } = plan;
  const out = (line: string) => (options.json ? process.stderr : process.stdout).write(`${line}\n`);
  const progress = createProgress(DEMO_STEPS.map((s) => ({ id: s.id, label: s.label })));
  try {
    let app: RunningApp;
    try {
      app = await startDemoApp({ dataDir: plan.dataDir, port: await usablePort(port), release, log: plan.log });
    } catch (error) {
      throw new CliError(`the sandbox did not start: ${error instanceof Error ? error.message : String(error)}`, 1);
    }
    started(app);
    if (app.port !== port && port !== 0) out(`port ${port} is taken; using ${app.port}`);
    out(`patchbay demo: ${release.id}${options.cvrf ? ` from ${options.cvrf}` : ' (sample release)'}; watch it live at http://localhost:${app.port}/`);
    if (!plan.removeDir) out(`data dir: ${plan.dataDir}`);
    progress.start();
    const summary = await runDemoScript(
      { baseUrl: `http://127.0.0.1:${app.port}`, db: app.database.db, sandbox: app.sandbox!, releaseId: release.id, tickMs: DEMO_TICK_MS },
      { speed: plan.speed, onProgress: (p) => progress.update(p) },
    );
    progress.stop();
    process.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : await renderSummary(summary, process.stdout.isTTY === true));
  } catch (error) {
    progress.stop();
    if (error instanceof CliError) throw error;
    throw new CliError(error instanceof Error ? error.message : String(error), 1);
  }
}

interface ProgressDisplay {
  start(): void;
  update(progress: DemoProgress): void;
  stop(): void;
}

/**
 * A bar on a terminal; one line per step otherwise (CI logs, a pipe), where a redrawn bar would only be noise.
 * Both go to stderr, so stdout carries nothing but the summary.
 */
function createProgress(steps: ReadonlyArray<{ id: string; label: string }>): ProgressDisplay {
  const zoneClock = (d: Date) => d.toISOString().slice(0, 16).replace('T', ' ') + 'Z';
  const started = Date.now();
  const elapsed = () => `${Math.round((Date.now() - started) / 1000)}s`;
  if (!process.stderr.isTTY) {
    return {
      start: () => undefined,
      update(p) {
        if (p.state === 'update') return;
        const index = steps.findIndex((s) => s.id === p.step) + 1;
        process.stderr.write(`[${elapsed()}] ${index}/${steps.length} ${steps[index - 1]?.label}: ${p.state === 'start' ? '…' : 'done'} ${p.detail} (clock ${zoneClock(p.clock)})\n`);
      },
      stop: () => undefined,
    };
  }
  let bar: import('cli-progress').SingleBar | undefined;
  let done = 0;
  let loading: Promise<void> | undefined;
  return {
    start() {
      loading = import('cli-progress').then(({ default: cliProgress }) => {
        bar = new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: '{bar} {value}/{total} {step} | clock {clock} | {detail}',
            barsize: 20,
            hideCursor: true,
            clearOnComplete: true,
            linewrap: false,
            fps: 5,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(steps.length, 0, { step: steps[0]!.label, clock: '', detail: 'starting' });
      });
    },
    update(p) {
      if (p.state === 'done') done += 1;
      const label = steps.find((s) => s.id === p.step)?.label ?? p.step;
      const width = Math.max(20, (process.stderr.columns ?? 100) - label.length - 60);
      const payload = { step: label, clock: zoneClock(p.clock), detail: p.detail.length > width ? `${p.detail.slice(0, width - 1)}…` : p.detail };
      if (p.state === 'done') {
        // A finished step keeps its line above the bar, so the story stays readable afterwards.
        bar?.stop();
        process.stderr.write(`\u2714 ${label}: ${p.detail} (${elapsed()})\n`);
        if (done < steps.length) bar?.start(steps.length, done, { ...payload, step: steps[done]!.label, detail: '' });
        return;
      }
      bar?.update(done, payload);
    },
    stop() {
      void loading?.then(() => bar?.stop());
    },
  };
}

/** The terminal summary: what happened per ring and client, then the counts that tell the month's story. */
export async function renderSummary(summary: DemoSummary, color = false): Promise<string> {
  const { default: Table } = await import('cli-table3');
  // Escape codes only for a terminal: a piped summary (a CI log, a file) stays plain text.
  const style = { head: color ? ['cyan'] : [], border: color ? ['grey'] : [] };
  const lines: string[] = [];
  const realS = Math.round(summary.realMs / 1000);
  lines.push('', `${summary.releaseId}: the month played in ${Math.floor(realS / 60)}m${String(realS % 60).padStart(2, '0')}s; clock ${summary.clock.from.slice(0, 16)}Z to ${summary.clock.to.slice(0, 16)}Z (${summary.clock.days} days)`, '');
  const rings = new Table({ style, head: ['ring', 'client', 'gate', 'devices', 'succeeded', 'failed', 'offline/rolled', 'nothing to install', 'rebooted twice', 'windows'] });
  for (const r of summary.rings) {
    rings.push([
      r.ring,
      r.client,
      r.gate,
      r.devices,
      r.succeeded,
      r.failed.length === 0 ? 0 : r.failed.map((f) => `${f.device}: ${f.error}`).join('\n'),
      r.offlineOrRolled,
      r.nothingToInstall,
      r.rebootedTwice.length === 0 ? 0 : r.rebootedTwice.join('\n'),
      r.windows,
    ]);
  }
  lines.push(rings.toString());
  const facts = new Table({ style });
  const row = (k: string, v: string | number) => facts.push({ [k]: String(v) });
  for (const h of summary.held) row(`held: ${h.client}`, `${h.reason} (by ${h.by})`);
  for (const c of summary.confirmations) row(`pilot confirmed: ${c.client}`, `${c.by} (${c.as})`);
  row('user DMs', `${summary.dms.sent} sent, ${summary.dms.answered} answered (${summary.dms.ok} OK, ${summary.dms.deferred} deferred${summary.deferredBy ? `: ${summary.deferredBy}` : ''}), ${summary.dms.offlineNotices} "your computer was off"`);
  row('decisions / audit rows', `${summary.decisions} / ${summary.auditRows}`);
  row('runs / installs / reboots', `${summary.runs} / ${summary.ledger.installs} / ${summary.ledger.reboots}`);
  row('Slack (emulated)', `${summary.slack.posted} posted (${summary.slack.threadReplies} in threads), ${summary.slack.edited} edits`);
  row('Teams (emulated)', `${summary.teams.posted} posted, ${summary.teams.edited} edits`);
  for (const s of summary.steps) row(`step: ${s.label}`, `${Math.round(s.realMs / 100) / 10}s: ${s.detail}`);
  lines.push(facts.toString(), '');
  return lines.join('\n');
}
