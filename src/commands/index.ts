import type { Command } from 'commander';
import { register as start } from './start.ts';
import { register as migrate } from './migrate.ts';
import { register as importInventory } from './import.ts';
import { register as digest } from './digest.ts';
import { register as windows } from './windows.ts';
import { register as generateInventory } from './generate-inventory.ts';
import { register as teamsPackage } from './teams-package.ts';
import { register as demo } from './demo.ts';
import { register as devices } from './devices.ts';
import { register as report } from './report.ts';
import { register as audit } from './audit.ts';

/**
 * Every command registers itself here. A command module keeps its heavy imports inside its action, so
 * `patchbay --help` stays quick and works with nothing running.
 */
const registrars: Array<(program: Command) => void> = [
  start,
  migrate,
  importInventory,
  generateInventory,
  digest,
  windows,
  teamsPackage,
  demo,
  devices,
  report,
  audit,
];

export function registerCommands(program: Command): void {
  for (const register of registrars) register(program);
}
