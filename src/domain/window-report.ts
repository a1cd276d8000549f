/**
 * What the channel is told about a window: one progress message per owner (the MSP or a client) and window,
 * edited in place as runs finish, then a summary when the window has closed and nothing is left running.
 * Pure: the sweep tallies runs from Postgres and hands them here; rendering to Block Kit lives in src/bot/slack.
 */
import { DateTime } from 'luxon';

export interface WindowTally {
  /** A client id, or `msp` for the MSP's own machines. */
  who: string;
  /** The client's name as the inventory gives it, for people to read; the id stands in when absent. */
  name?: string;
  windowStart: string;
  windowEnd: string;
  counts: Partial<Record<'scheduled' | 'running' | 'succeeded' | 'failed' | 'offline' | 'rolled' | 'skipped' | 'cancelled', number>>;
  /** Devices that installed, with the update keys they installed (the first few; counts.succeeded has them all). */
  updated: Array<{ device: string; updates: string[] }>;
  failed: Array<{ device: string; error: string | null; updates?: string[] }>;
  rolled: Array<{ device: string; rolledTo: string | null; offline: boolean; reason?: RollReason }>;
  /** Rolled and offline runs by why they rolled: each reason asks something different of the reader. */
  rollReasons: Partial<Record<RollReason, number>>;
  rebootedTwice: string[];
  /**
   * The owner's updates are on hold (a client hold, or the whole release's) as the tally is read: what rolled waits
   * for the hold to be lifted, not for the next window.
   */
  held?: boolean;
}

/** Why a run moved to a later window. */
export type RollReason = 'offline' | 'window_ended' | 'deferred' | 'other';

/** A rolled or offline run's reason, from its state and stored result (see domain/run.ts and the user's DM). */
export function rollReason(state: string, result: string | null): RollReason {
  if (state === 'offline' || result === 'offline') return 'offline';
  if (result === 'window_ended' || result === 'window_short') return 'window_ended';
  if (result === 'deferred') return 'deferred';
  return 'other';
}

/** `KB5034765` for a bare KB number; other keys (e.g. a product's update id) as they are. */
export function kbLabel(key: string): string {
  return /^\d+$/.test(key) ? `KB${key}` : key;
}

/** The bar's share: work that succeeded out of all planned; rolled, failed and held runs are not done. */
export function succeeded(tally: WindowTally): number {
  return tally.counts.succeeded ?? 0;
}

/** `window:acme-dental:2024-02-14T07:00Z`, the subject the chat contract names. */
export function windowSubject(who: string, windowStart: string): string {
  return `window:${who}:${DateTime.fromISO(windowStart, { zone: 'utc' }).toFormat("yyyy-MM-dd'T'HH:mm'Z'")}`;
}

export function total(tally: WindowTally): number {
  return Object.values(tally.counts).reduce((sum, n) => sum + (n ?? 0), 0);
}

export function unfinished(tally: WindowTally): number {
  return (tally.counts.scheduled ?? 0) + (tally.counts.running ?? 0);
}

/** `▓▓▓▓▓▓░░░░ 60%`: finished runs of all runs. */
export function progressBar(done: number, all: number, width = 20): string {
  const share = all === 0 ? 1 : Math.min(1, done / all);
  const filled = Math.round(share * width);
  return `${'▓'.repeat(filled)}${'░'.repeat(width - filled)} ${Math.floor(share * 100)}%`;
}

/**
 * How often one window's message may be edited: Slack's chat.update allows about 50 a minute per workspace, so
 * the budget (40, leaving room for everything else) is shared by every window running at once.
 */
export function updateIntervalMs(activeWindows: number, perMinute = 40, floorMs = 15_000): number {
  return Math.max(floorMs, Math.ceil((Math.max(1, activeWindows) * 60_000) / perMinute));
}

export type WindowReport =
  | { type: 'progress'; subject: string; closing: boolean }
  | { type: 'summary'; subject: string };

/** Progress while the window is open or runs remain; once closed and settled, the final edit and the summary. */
export function reportFor(tally: WindowTally, now: Date): WindowReport[] {
  const subject = windowSubject(tally.who, tally.windowStart);
  const closed = Date.parse(tally.windowEnd) <= now.getTime() && unfinished(tally) === 0;
  if (!closed) return [{ type: 'progress', subject, closing: false }];
  return [
    { type: 'progress', subject, closing: true },
    { type: 'summary', subject },
  ];
}
