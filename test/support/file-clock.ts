/**
 * A clock several processes share through a file: an instant, the real time it was set and a rate. Each reader
 * computes the same "now" (the instant plus the real time since, times the rate), so a test, its worker process
 * and an emulator move together; setting it again is a jump.
 */
import fs from 'node:fs';

interface Stored {
  at: number;
  real: number;
  rate: number;
}

export function readFileClock(file: string): () => Date {
  return () => {
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as Stored;
    return new Date(stored.at + (Date.now() - stored.real) * stored.rate);
  };
}

export interface FileClock {
  file: string;
  rate: number;
  now(): Date;
  set(at: string | number): void;
  /** Real milliseconds until a clock instant, for RolloutOptions.realDelayMs. */
  realDelayMs(until: Date, now: Date): number;
}

export function fileClock(file: string, rate: number, start: string | number): FileClock {
  const write = (at: number) => fs.writeFileSync(file, JSON.stringify({ at, real: Date.now(), rate } satisfies Stored));
  write(typeof start === 'number' ? start : Date.parse(start));
  return {
    file,
    rate,
    now: readFileClock(file),
    set: (at) => write(typeof at === 'number' ? at : Date.parse(at)),
    realDelayMs: (until, now) => Math.max(0, (until.getTime() - now.getTime()) / rate),
  };
}
