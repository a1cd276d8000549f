// Issue 13 finding 10: a new sandbox opened on today's date, where last month's release (weeks old, its KEV due
// dates past) was the one waiting for a decision. It starts on the next Patch Tuesday, just after publication.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DateTime } from 'luxon';
import { currentRelease } from '../../src/domain/calendar.ts';
import { CLOCK_SAVE_EVERY_MS, freshSandboxStart, SandboxClock } from '../../src/sandbox/clock.ts';

const current = (d: Date) => currentRelease(DateTime.fromJSDate(d));

describe('a fresh sandbox clock', () => {
  it('starts just after the next Patch Tuesday publication, so the current month is the one just released', () => {
    const start = freshSandboxStart(new Date('2026-12-06T00:42:00Z'));
    // 8 December 2026 is the second Tuesday; Microsoft publishes at 10:00 Pacific (18:00Z).
    expect(start.toISOString()).toBe('2026-12-08T18:05:00.000Z');
    expect(current(start).id).toBe('2026-Dec');
    expect(current(new Date('2026-12-06T00:42:00Z')).id).toBe('2026-Nov');
  });

  it('starts late in a month on the next month’s Patch Tuesday, never on a month weeks old', () => {
    const real = new Date('2027-01-30T12:00:00Z');
    const start = freshSandboxStart(real);
    expect(current(start).id).toBe('2027-Feb');
    expect(start.getTime() - current(start).publishedAt.toMillis()).toBeLessThan(3_600_000);
  });

  it('starts now on Patch Tuesday afternoon: that month is already the fresh one', () => {
    const real = new Date('2026-12-08T21:00:00Z');
    expect(freshSandboxStart(real)).toEqual(real);
    expect(current(real).id).toBe('2026-Dec');
  });
});

// A process killed between two writes of the clock had read it further than the last one: run and DM rows stored at
// those instants must never find themselves in the future.
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function clockFile(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'patchbay-clock-'));
  dirs.push(dir);
  return path.join(dir, 'clock.json');
}

const START = new Date('2026-12-09T07:00:00Z');
const RATE = 60;

/** A clock that ran `ranMs` of real time after its last write, then died; and the one started `downMs` later. */
function killedAndRestarted(ranMs: number, downMs: number): { lastRead: number; resumed: number } {
  const file = clockFile();
  let real = 1_000_000;
  const first = new SandboxClock({ file, rate: RATE, start: START, realNow: () => real });
  first.save();
  real += ranMs;
  const lastRead = first.nowMs();
  real += downMs;
  const second = new SandboxClock({ file, rate: 1, start: new Date(0), realNow: () => real });
  return { lastRead, resumed: second.nowMs() };
}

describe('the sandbox clock after a kill', () => {
  it('never reads earlier than the killed process last read', () => {
    for (const ranMs of [0, 1, 2_500, CLOCK_SAVE_EVERY_MS - 1, CLOCK_SAVE_EVERY_MS]) {
      for (const downMs of [0, 500, 30_000]) {
        const { lastRead, resumed } = killedAndRestarted(ranMs, downMs);
        expect(resumed, `ran ${ranMs} ms after the write, down ${downMs} ms`).toBeGreaterThanOrEqual(lastRead);
      }
    }
  });

  it('moves on by at most one save interval, however long it was down', () => {
    const { resumed } = killedAndRestarted(0, 86_400_000);
    expect(resumed).toBe(START.getTime() + CLOCK_SAVE_EVERY_MS * RATE);
  });

  it('carries on from exactly where a clean stop left it', () => {
    const file = clockFile();
    let real = 1_000_000;
    const first = new SandboxClock({ file, rate: RATE, start: START, realNow: () => real });
    real += 2_000;
    first.save({ final: true });
    const stoppedAt = first.nowMs();
    real += 86_400_000;
    expect(new SandboxClock({ file, rate: 1, realNow: () => real }).nowMs()).toBe(stoppedAt);
  });

  it('keeps its rate', () => {
    const file = clockFile();
    new SandboxClock({ file, rate: RATE, start: START }).save();
    expect(new SandboxClock({ file, rate: 1 }).rate).toBe(RATE);
  });
});
