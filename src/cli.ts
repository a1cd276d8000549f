import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.ts';

/** Thrown by a command to end with a message and an exit code, without a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function buildProgram(): Command {
  const program = new Command('patchbay')
    .description('Patch Tuesday chat-ops for managed service providers')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
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
    throw error;
  }
}
