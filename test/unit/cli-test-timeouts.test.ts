/**
 * Tests that run the `patchbay` command as a child process spend seconds per spawn, and many more on a
 * loaded machine: each such file must give its spawning tests a generous timeout from test/support/cli.ts rather
 * than vitest's 30 s default. This finds them the way a reader would: by the spawn of bin/patchbay.mjs in the file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const testRoot = path.resolve(import.meta.dirname, '..');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return testFiles(full);
    return entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

describe('tests that spawn the CLI', () => {
  it('each file that spawns bin/patchbay.mjs takes its timeout from test/support/cli.ts', () => {
    const spawning = testFiles(testRoot).filter((file) => {
      const text = readFileSync(file, 'utf8');
      return /\b(spawn|execFile|fork)\b/.test(text) && /bin\/patchbay\.mjs/.test(text);
    });
    expect(spawning.length).toBeGreaterThanOrEqual(5);
    const without = spawning.filter((file) => !/CLI_TEST_TIMEOUT_MS|cliTestTimeout\(/.test(readFileSync(file, 'utf8'))).map((file) => path.relative(testRoot, file));
    expect(without).toEqual([]);
  });
});
