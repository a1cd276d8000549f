import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import type { InventoryChanges, KindCounts } from '../db/inventory-repo.ts';
import type { Inventory } from '../domain/inventory.ts';

export type ImportOutcome =
  | { ok: true; changes: InventoryChanges; dryRun: boolean; note?: string }
  /** `count` may exceed the lines in `problems`: past the first hundred, one line says how many more. */
  | { ok: false; problems: string[]; count: number };

export interface ImportOptions {
  dryRun: boolean;
  now: Date;
  actor: string;
}

/** Parses and validates; every problem comes back formatted `file:line path: message`. */
export async function readInventory(file: string): Promise<{ ok: true; inventory: Inventory } | { ok: false; problems: string[]; count: number }> {
  const { readInventoryFile, formatProblems } = await import('../adapters/inventory/parse.ts');
  const parsed = await readInventoryFile(file);
  return parsed.ok ? parsed : { ok: false, problems: formatProblems(parsed), count: parsed.problems.length + (parsed.more ?? 0) };
}

/**
 * Validates the file and, unless this is a dry run, migrates and applies it. A file with any problem writes
 * nothing: the problems come back instead.
 */
export async function importInventoryFile(database: Database | undefined, file: string, options: ImportOptions): Promise<ImportOutcome> {
  const parsed = await readInventory(file);
  if (!parsed.ok) return parsed;
  return importInventory(database, parsed.inventory, path.basename(file), options);
}

/** Applies a validated inventory; `database` may be absent only for a dry run before anything was stored. */
export async function importInventory(database: Database | undefined, inventory: Inventory, subject: string, options: ImportOptions): Promise<ImportOutcome> {
  const { applyInventory, changesIntoEmptyDatabase } = await import('../db/inventory-repo.ts');
  const { migrateDatabase, migrationStatus } = await import('../db/migrate.ts');
  const applyOptions = { actor: options.actor, source: 'cli' as const, subject };
  if (options.dryRun) {
    // A dry run must not even migrate; before the first migrate there is nothing to compare with.
    if (database === undefined || (await migrationStatus(database)).applied.length === 0) {
      return { ok: true, dryRun: true, changes: changesIntoEmptyDatabase(inventory), note: 'the database has no tables yet' };
    }
    const changes = await applyInventory(database.db, inventory, options.now, { ...applyOptions, dryRun: true });
    return { ok: true, dryRun: true, changes };
  }
  if (database === undefined) throw new Error('a database is needed to import');
  await migrateDatabase(database);
  const changes = await applyInventory(database.db, inventory, options.now, applyOptions);
  return { ok: true, dryRun: false, changes };
}

const KINDS = ['clients', 'locations', 'devices', 'people'] as const;
const NAMES_SHOWN = 10;

function namesLine(label: string, names: string[]): string | undefined {
  if (names.length === 0) return undefined;
  const shown = names.slice(0, NAMES_SHOWN).join(', ');
  const more = names.length > NAMES_SHOWN ? ` and ${names.length - NAMES_SHOWN} more` : '';
  return `${label} (${names.length}): ${shown}${more}`;
}

export async function renderChanges(file: string, outcome: Extract<ImportOutcome, { ok: true }>): Promise<string> {
  const { default: Table } = await import('cli-table3');
  const { changes } = outcome;
  const table = new Table({ head: ['', 'added', 'changed', 'retired', 'unchanged'], style: { head: [], border: [] } });
  for (const kind of KINDS) {
    const counts: KindCounts = changes[kind];
    table.push([kind, counts.added, counts.changed, counts.retired, counts.unchanged]);
  }
  const heading = outcome.dryRun
    ? `${file}: valid. Dry run, nothing written; importing it would do this${outcome.note ? ` (${outcome.note})` : ''}:`
    : `${file}: imported.`;
  const lines = [heading, table.toString(), `msp settings: ${changes.msp}`];
  for (const line of [
    namesLine('retired clients', changes.retiredClients),
    namesLine('retired devices', changes.retiredDevices),
    namesLine('restored clients', changes.restoredClients),
    namesLine('restored devices', changes.restoredDevices),
  ]) {
    if (line) lines.push(line);
  }
  return `${lines.join('\n')}\n`;
}

function whoRuns(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

export async function importCommand(file: string, options: { dryRun?: boolean; json?: boolean }): Promise<void> {
  // Before the file is read: the import allocates fast and keeps little (runtime/heap-growth.ts).
  (await import('../runtime/heap-growth.ts')).limitHeapGrowth();
  const { loadConfig } = await import('../config.ts');
  const { CliError } = await import('./cli-error.ts');
  const { withCommandDatabase, describeDatabase } = await import('../db/for-command.ts');
  const { describeDatabaseError } = await import('../db/errors.ts');
  const { traceMemory } = await import('../runtime/memory-trace.ts');

  const config: Config = loadConfig(process.env);
  if (config.database.kind === 'embedded') (await import('../runtime/wasm-tiering.ts')).compileWasmQuicklyOnly();
  const dryRun = options.dryRun ?? false;
  // Check the file before touching the database: a bad file must not even create the embedded one.
  const checked = await readInventory(file);
  traceMemory('file parsed');
  // A dry run before anything exists must not create the embedded database just to find it empty.
  const nothingStoredYet = config.database.kind === 'embedded' && !existsSync(config.database.dataDir);
  let outcome: ImportOutcome;
  try {
    if (!checked.ok) {
      outcome = checked;
    } else {
      const importOptions = { dryRun, now: new Date(), actor: whoRuns() };
      const run = (database: Database | undefined) => importInventory(database, checked.inventory, path.basename(file), importOptions);
      outcome = dryRun && nothingStoredYet ? await run(undefined) : await withCommandDatabase(config, run);
    }
  } catch (error) {
    // Never the error's own message for a database failure: drizzle's is the SQL with every parameter.
    const cause = describeDatabaseError(error, config.database) ?? (error as Error).message;
    throw new CliError(`import failed on ${describeDatabase(config.database)}: ${cause}`);
  }
  if (!outcome.ok) {
    for (const problem of outcome.problems) process.stderr.write(`${problem}\n`);
    const { count } = outcome;
    throw new CliError(`${count} problem${count === 1 ? '' : 's'} in ${file}; nothing was written`, 1);
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ file, dryRun: outcome.dryRun, ...outcome.changes })}\n`);
  } else {
    process.stdout.write(await renderChanges(file, outcome));
  }
}
