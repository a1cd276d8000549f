/**
 * How long a test that runs the `patchbay` command in a child process may take. A spawn runs dist/ when it is built
 * and newer than src/ (CI, after npm ci), otherwise it loads the TypeScript sources through tsx: about 3 s on an idle
 * machine, 15-20 s measured on a two-core one at load 18, and the spawns of one test add up. Tests never depend on an idle machine, so this is generous; it asserts nothing about speed.
 */
const PER_SPAWN_MS = 60_000;

/** The timeout for a test that spawns the CLI `spawns` times (at most, in its describe): never under 120 s. */
export function cliTestTimeout(spawns: number): number {
  return Math.max(120_000, spawns * PER_SPAWN_MS);
}

export const CLI_TEST_TIMEOUT_MS = cliTestTimeout(1);
