import pino, { type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs to stderr, so command output on stdout stays clean for --json. */
export function createLogger(level: string, name = 'patchbay'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}
