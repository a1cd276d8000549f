/**
 * Teams' per-bot limits, as a pure rule: given when earlier messages went to one conversation (or one tenant),
 * how long must the next one wait? Teams answers 429 past these, and a 429 costs more than waiting.
 *
 * Per conversation: 7 in any 1 s, 8 in any 2 s, 60 in any 30 s (the hourly 1800 is a consequence of 60/30 s
 * only for bursts, so it is checked too). Per tenant: 50 requests per second for the whole app.
 */
export interface RateWindow {
  max: number;
  ms: number;
}

export const TEAMS_CONVERSATION_LIMITS: readonly RateWindow[] = [
  { max: 7, ms: 1_000 },
  { max: 8, ms: 2_000 },
  { max: 60, ms: 30_000 },
  { max: 1800, ms: 3_600_000 },
];

export const TEAMS_TENANT_LIMITS: readonly RateWindow[] = [{ max: 50, ms: 1_000 }];

/** The longest window a caller must remember sends for. */
export const longestWindowMs = (limits: readonly RateWindow[]): number => Math.max(...limits.map((l) => l.ms));

/**
 * Milliseconds until one more send fits every window. `sent` are earlier send instants (ms), any order.
 * A window of `max` allows the next send once the max-th most recent send has left it (plus `marginMs`).
 */
export function waitBeforeSend(sent: readonly number[], now: number, limits: readonly RateWindow[], marginMs = 0): number {
  const recent = [...sent].sort((a, b) => b - a);
  let wait = 0;
  for (const { max, ms } of limits) {
    // The service timestamps a call when it arrives, a little after we record it: widen each window by a margin.
    const span = ms + marginMs;
    const inWindow = recent.filter((t) => t > now - span);
    if (inWindow.length < max) continue;
    const oldestThatCounts = inWindow[max - 1]!;
    wait = Math.max(wait, oldestThatCounts + span - now);
  }
  return wait;
}

/**
 * Backoff for a retryable Teams answer (429, 412, 502, 504): Retry-After when the service gave one, else
 * exponential from 1 s capped at 60 s, with full jitter so many senders do not retry in step.
 */
export function retryDelayMs(attempt: number, retryAfterMs: number | undefined, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined && retryAfterMs > 0) return retryAfterMs + Math.floor(random() * 250);
  const cap = Math.min(60_000, 1000 * 2 ** Math.min(attempt, 6));
  return Math.max(250, Math.floor(random() * cap));
}
