import type { Command } from 'commander';
import { register as start } from './start.ts';

/**
 * Every command registers itself here. A command module keeps its heavy imports inside its action, so
 * `patchbay --help` stays quick and works with nothing running.
 */
const registrars: Array<(program: Command) => void> = [
  start,
];

export function registerCommands(program: Command): void {
  for (const register of registrars) register(program);
}
