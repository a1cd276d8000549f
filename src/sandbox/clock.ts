/**
 * The sandbox's clock: the one thing that differs from production. Every job, use-case and the simulated fleet
 * read time through the `now` this hands them (JobContext.now); production hands them the system clock.
 *
 * It runs `rate` times faster than real time and can jump forward, never back: a run, a DM or a decision stored
 * at a clock instant must never find itself in the future. Its reading is saved under the data dir, so a restarted
 * sandbox carries on from where it stopped instead of snapping back to today with next week's runs stored.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { DateTime } from 'luxon';
import { currentRelease, nextRelease } from '../domain/calendar.ts';

export interface SandboxClockOptions {
  /** Where the reading is kept between starts; none keeps it in memory only (tests, the demo). */
  file?: string;
  /** Clock ms per real ms. */
  rate?: number;
  /** Where the clock starts when nothing was saved. Default now. */
  start?: Date;
  /** Real time, for tests. */
  realNow?: () => number;
}

interface Saved {
  clockMs: number;
  rate: number;
  /** Real time of the reading (absent in files written before it was kept). */
  realMs?: number;
}

/**
 * How often a running sandbox writes its reading (src/sandbox/sandbox.ts). A process killed between two writes had
 * read its clock up to this much real time past the last one, and may have stored a run or a DM at such an instant.
 */
export const CLOCK_SAVE_EVERY_MS = 5_000;

export const MAX_RATE = 3600;

/** How long after Microsoft publishes a fresh sandbox starts: the watcher finds the month on its first look. */
export const FRESH_START_AFTER_PUBLICATION_MINUTES = 5;

/**
 * Where a new sandbox's clock starts: on the next Patch Tuesday, just after Microsoft publishes (or now, when
 * that month came out less than a day ago). Starting on
 * today's date showed last month's release, weeks old, as the one waiting for a decision with its KEV due dates
 * already past; from here the month in front of the engineers is the one just published, with the whole cycle
 * (ring msp, pilots, sign-off, broad) ahead of it.
 */
export function freshSandboxStart(realNow: Date): Date {
  const now = DateTime.fromJSDate(realNow);
  // Started on Patch Tuesday itself, after publication: today's month is the fresh one already.
  if (now.diff(currentRelease(now).publishedAt, 'hours').hours < 24) return realNow;
  return nextRelease(now).publishedAt.plus({ minutes: FRESH_START_AFTER_PUBLICATION_MINUTES }).toJSDate();
}

/** Where a sandbox on `dataDir` keeps its clock's reading. */
export function sandboxClockFile(dataDir: string): string {
  return path.join(dataDir, 'sandbox', 'clock.json');
}

export class SandboxClock {
  private anchorReal: number;
  private anchorClock: number;
  private currentRate: number;
  private readonly realNow: () => number;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly options: SandboxClockOptions = {}) {
    this.realNow = options.realNow ?? Date.now;
    const saved = options.file ? readSaved(options.file) : undefined;
    this.anchorReal = this.realNow();
    this.anchorClock = saved ? resumedReading(saved, this.anchorReal) : (options.start ?? new Date(this.anchorReal)).getTime();
    this.currentRate = saved?.rate ?? options.rate ?? 1;
  }

  readonly now = (): Date => new Date(this.nowMs());

  nowMs(): number {
    return this.anchorClock + (this.realNow() - this.anchorReal) * this.currentRate;
  }

  get rate(): number {
    return this.currentRate;
  }

  /** Real ms until the clock reads `until` (0 when it already has). */
  readonly realDelayMs = (until: Date, now: Date = this.now()): number => Math.max(0, Math.ceil((until.getTime() - now.getTime()) / this.currentRate));

  /** Moves the clock forward to `to`; refuses to go back. */
  jumpTo(to: Date): void {
    const now = this.nowMs();
    if (to.getTime() < now) throw new Error(`the sandbox clock only moves forward (it is ${new Date(now).toISOString()}, asked for ${to.toISOString()})`);
    this.rebase(to.getTime(), this.currentRate);
  }

  setRate(rate: number): void {
    if (!Number.isFinite(rate) || rate <= 0 || rate > MAX_RATE) throw new Error(`rate must be above 0 and at most ${MAX_RATE} (clock ms per real ms)`);
    this.rebase(this.nowMs(), rate);
  }

  /** Called after every jump or rate change. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Writes the current reading (also done on every change and every few seconds); call on shutdown with `final`:
   * nothing reads the clock after it, so a restart carries on from exactly there.
   */
  save(options: { final?: boolean } = {}): void {
    if (!this.options.file) return;
    mkdirSync(path.dirname(this.options.file), { recursive: true });
    const saved: Saved = { clockMs: this.nowMs(), rate: this.currentRate, ...(options.final ? {} : { realMs: this.realNow() }) };
    writeFileSync(this.options.file, `${JSON.stringify(saved)}\n`);
  }

  private rebase(clockMs: number, rate: number): void {
    this.anchorReal = this.realNow();
    this.anchorClock = clockMs;
    this.currentRate = rate;
    this.save();
    for (const listener of this.listeners) listener();
  }
}

/**
 * Where a restarted clock carries on: the saved reading, moved on by the real time since it was written, at most one
 * save interval. A killed process may have read up to that much past its last save (the clock never goes back); a
 * sandbox stopped for a night must not come back weeks later.
 */
function resumedReading(saved: Saved, realNow: number): number {
  if (saved.realMs === undefined) return saved.clockMs;
  return saved.clockMs + Math.min(Math.max(0, realNow - saved.realMs), CLOCK_SAVE_EVERY_MS) * saved.rate;
}

function readSaved(file: string): Saved | undefined {
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<Saved>;
    if (typeof saved.clockMs === 'number' && Number.isFinite(saved.clockMs) && typeof saved.rate === 'number' && saved.rate > 0 && saved.rate <= MAX_RATE) {
      return { clockMs: saved.clockMs, rate: saved.rate, ...(typeof saved.realMs === 'number' && Number.isFinite(saved.realMs) ? { realMs: saved.realMs } : {}) };
    }
  } catch {
    // No reading yet, or a damaged one: start from the real time.
  }
  return undefined;
}
