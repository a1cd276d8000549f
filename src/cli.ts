import { inspect } from 'node:util';
import { Command, CommanderError } from 'commander';
import { CliError } from './commands/cli-error.ts';
import { registerCommands } from './commands/index.ts';

// Its own module, so the commands can throw it without importing the program that registers them (a cycle).
export { CliError };

export function buildProgram(): Command {
  const program = new Command('patchbay')
    .description('Patch Tuesday chat-ops for managed service providers')
    .version('0.1.0')
    .showHelpAfterError()
    // A subcommand's option belongs to it (`report fetch ID --out FILE`), not to a parent that has one by that name.
    .enablePositionalOptions()
    .exitOverride();
  registerCommands(program);
  return program;
}

/**
 * Runs the command line. Every failure ends in one line on stderr: a CliError or a bad configuration as
 * written, a database failure as DatabaseError says it (never the SQL, its parameters or a password), and
 * anything unexpected by its message, with the stack only when `env.PATCHBAY_DEBUG` is 1.
 */
export async function main(argv: string[], env: Record<string, string | undefined> = {}): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    if (error instanceof CliError || (error instanceof Error && error.name === 'ConfigError')) {
      process.stderr.write(`patchbay: ${error.message}\n`);
      process.exitCode = error instanceof CliError ? error.exitCode : 2;
      return;
    }
    const { describeDatabaseError } = await import('./db/errors.ts');
    const known = describeDatabaseError(error);
    const message = known ?? `unexpected error: ${oneLine(error)} (PATCHBAY_DEBUG=1 prints where)`;
    process.stderr.write(`patchbay: ${message}\n`);
    // inspect shows the cause too: a DatabaseError's cause is the driver's error, SQL and all, for whoever asked.
    if (env.PATCHBAY_DEBUG === '1') process.stderr.write(`${inspect(error)}\n`);
    process.exitCode = 1;
  }
}

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.split('\n', 1)[0]!.trim();
}
