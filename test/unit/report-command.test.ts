/** `patchbay report`'s arguments: each mistake ends with a CliError (exit 2) before any database is opened. */
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli.ts';
import { CliError } from '../../src/commands/cli-error.ts';

async function report(...args: string[]): Promise<unknown> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(['report', ...args], { from: 'user' });
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('patchbay report arguments', () => {
  it.each([
    [['--format', 'csv'], '--client is required'],
    [['--client', 'acme'], '--format must be one of csv, json, pdf, png'],
    [['--client', 'acme', '--format', 'docx'], '--format must be one of csv, json, pdf, png'],
    [['--client', 'acme', '--format', 'csv', '--period', '2026-Dec', '--from', '2026-11-01', '--to', '2026-11-30'], 'not both'],
    [['--client', 'acme', '--format', 'csv', '--from', '2026-11-01'], '--from and --to go together'],
    [['--client', 'acme', '--format', 'csv', '--period', 'December'], 'is not a month like 2026-Dec'],
    [['--client', 'acme', '--format', 'csv', '--period', '2999-Jan'], 'has not started yet'],
  ])('%j is refused: %s', async (args, message) => {
    const error = await report(...args);
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).message).toContain(message);
    expect((error as CliError).exitCode).toBe(2);
  });
});
