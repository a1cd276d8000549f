import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli.ts';
import { CLI_TEST_TIMEOUT_MS } from '../support/cli.ts';

const BIN = fileURLToPath(new URL('../../bin/patchbay.mjs', import.meta.url));

/** Runs the CLI in this process, capturing what it prints and the exit code it sets. */
async function patchbay(...args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    await main(['node', 'patchbay', ...args]);
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  return { stdout, stderr, exitCode };
}

afterEach(() => {
  process.exitCode = undefined;
});

describe('patchbay windows (as a user runs it)', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('prints the Chicago spring-forward and fall-back nights as JSON', async () => {
    const run = promisify(execFile);
    const { stdout } = await run(process.execPath, [
      BIN,
      'windows',
      '--tz',
      'America/Chicago',
      '--window',
      'daily 01:00-05:00',
      '--from',
      '2026-03-07T12:00',
      '--count',
      '2',
      '--json',
    ]);
    expect(JSON.parse(stdout)).toEqual([
      { start: '2026-03-08T01:00:00.000-06:00', end: '2026-03-08T05:00:00.000-05:00' },
      { start: '2026-03-09T01:00:00.000-05:00', end: '2026-03-09T05:00:00.000-05:00' },
    ]);
  });

  it('refuses an unknown zone with exit code 2 and a suggestion', async () => {
    const run = promisify(execFile);
    const failure = await run(process.execPath, [BIN, 'windows', '--tz', 'America/Chicgo', '--window', 'daily 01:00-05:00']).then(
      () => undefined,
      (error: { code: number; stderr: string; stdout: string }) => error,
    );
    expect(failure?.code).toBe(2);
    expect(failure?.stderr).toContain('"America/Chicgo" is not an IANA time zone');
    expect(failure?.stderr).toContain('Did you mean America/Chicago?');
    expect(failure?.stdout).toBe('');
  });
});

describe('patchbay windows', () => {
  it('gives fall-back night five hours, in progress windows first with their real start', async () => {
    const { stdout, exitCode } = await patchbay(
      'windows',
      '--tz',
      'America/Chicago',
      '--window',
      'daily 01:00-05:00',
      '--from',
      '2026-11-01T04:30:00-06:00',
      '--count',
      '2',
      '--json',
    );
    expect(exitCode).toBe(0);
    expect(JSON.parse(stdout)).toEqual([
      { start: '2026-11-01T01:00:00.000-05:00', end: '2026-11-01T05:00:00.000-06:00' },
      { start: '2026-11-02T01:00:00.000-06:00', end: '2026-11-02T05:00:00.000-06:00' },
    ]);
  });

  it('lists seven windows by default', async () => {
    const { stdout } = await patchbay('windows', '--tz', 'Europe/London', '--window', 'sun 01:00-05:00', '--from', '2026-03-01T00:00Z', '--json');
    const windows = JSON.parse(stdout) as Array<{ start: string; end: string }>;
    expect(windows).toHaveLength(7);
    // London's spring-forward Sunday opens at 02:00 BST: 01:00 GMT never happens.
    expect(windows.map((window) => window.start)).toContain('2026-03-29T02:00:00.000+01:00');
  });

  it('accepts a zone in any letter case and answers in its canonical name', async () => {
    const { stdout } = await patchbay('windows', '--tz', 'australia/sydney', '--window', 'daily 01:00-05:00', '--from', '2026-10-03T12:00', '--count', '1', '--json');
    expect(JSON.parse(stdout)).toEqual([{ start: '2026-10-04T01:00:00.000+10:00', end: '2026-10-04T05:00:00.000+11:00' }]);
  });

  it('names a zone outside the US by its own abbreviation in the table, as the chat messages do', async () => {
    const { stdout, exitCode } = await patchbay('windows', '--tz', 'Pacific/Auckland', '--window', 'daily 01:00-05:00', '--from', '2026-12-07T12:00', '--count', '1');
    expect(exitCode).toBe(0);
    expect(stdout).toContain('Tue 2026-12-08 01:00 NZDT');
    expect(stdout).not.toContain('GMT+13');
  });

  it('prints a table with local and UTC times and flags the DST nights', async () => {
    const { stdout, exitCode } = await patchbay('windows', '--tz', 'America/Chicago', '--window', 'daily 01:00-05:00', '--from', '2026-03-07T12:00', '--count', '2');
    expect(exitCode).toBe(0);
    const lines = stdout.split('\n');
    const springForward = lines.find((line) => line.includes('2026-03-08 01:00'));
    expect(springForward).toContain('Sun 2026-03-08 01:00 CST');
    expect(springForward).toContain('Sun 2026-03-08 05:00 CDT');
    expect(springForward).toContain('2026-03-08 07:00Z');
    expect(springForward).toContain('2026-03-08 10:00Z');
    expect(springForward).toContain('3h 00m');
    expect(springForward).toContain('clocks go forward');
    const ordinary = lines.find((line) => line.includes('2026-03-09 01:00'));
    expect(ordinary).toContain('4h 00m');
    expect(ordinary).not.toContain('clocks');
  });

  it('reports a window the clock change swallowed instead of leaving it out', async () => {
    const { stdout } = await patchbay('windows', '--tz', 'America/Chicago', '--window', 'daily 02:00-02:30', '--from', '2026-03-07T12:00', '--count', '1');
    expect(stdout).toContain('0h 00m');
    expect(stdout).toContain('wholly inside the skipped hour');
  });

  it.each([
    [['--tz', 'CST', '--window', 'daily 01:00-05:00'], '--tz: "CST" is not an IANA time zone'],
    [['--window', 'daily 01:00-05:00'], '--tz is required'],
    [['--tz', 'UTC'], '--window is required'],
    [['--tz', 'UTC', '--window', 'dayly 01:00-05:00'], '--window: "dayly 01:00-05:00" is not a window: "dayly" is not a day'],
    [['--tz', 'UTC', '--window', 'daily 01:00-25:00'], '"25:00" is not a time'],
    [['--tz', 'UTC', '--window', 'daily 01:00-05:00', '--from', 'yesterday'], '--from: "yesterday" is not an ISO 8601 date-time'],
    [['--tz', 'UTC', '--window', 'daily 01:00-05:00', '--count', '0'], '--count: "0" is not a whole number from 1 to 1000'],
    [['--tz', 'UTC', '--window', 'daily 01:00-05:00', '--count', '2.5'], '--count: "2.5"'],
    [['--tz', 'UTC', '--window', 'daily 01:00-05:00', '--count', '1001'], '--count: "1001"'],
  ])('refuses %j with exit code 2', async (args, message) => {
    const { stdout, stderr, exitCode } = await patchbay('windows', ...args);
    expect(exitCode).toBe(2);
    expect(stderr).toContain(message);
    expect(stdout).toBe('');
  });
});
