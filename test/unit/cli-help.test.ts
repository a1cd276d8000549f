import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli.ts';
import { CLI_TEST_TIMEOUT_MS } from '../support/cli.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

describe('patchbay --help', () => {
  it('works through the installed bin with nothing configured or running', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const { stdout } = await run(process.execPath, ['bin/patchbay.mjs', '--help'], {
      cwd: repo,
      env: { PATH: process.env.PATH ?? '' },
    });
    for (const command of ['start', 'migrate', 'import', 'windows', 'digest']) {
      expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
  });

  it('a reader that closes the pipe early (`patchbay audit --help | head -1`) gets no crash, and the exit is 0', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const child = spawn(process.execPath, ['bin/patchbay.mjs', 'audit', '--help'], { cwd: repo, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).not.toContain('EPIPE');
    expect(code).toBe(0);
  });

  it('every command has its own help with a description and its options', () => {
    const program = buildProgram();
    expect(program.commands.length).toBeGreaterThanOrEqual(6);
    for (const command of program.commands) {
      const help = command.helpInformation();
      expect(command.description(), command.name()).not.toBe('');
      expect(help).toContain(`Usage: patchbay ${command.name()}`);
      expect(help).toContain('-h, --help');
    }
  });
});
