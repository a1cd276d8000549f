export async function migrateCommand(options: { json?: boolean }): Promise<void> {
  const { loadConfig } = await import('../config.ts');
  const { CliError } = await import('./cli-error.ts');
  const { withCommandDatabase, describeDatabase } = await import('../db/for-command.ts');
  const { describeDatabaseError } = await import('../db/errors.ts');
  const { migrateDatabase } = await import('../db/migrate.ts');

  const config = loadConfig(process.env);
  const where = describeDatabase(config.database);
  let outcome;
  try {
    outcome = await withCommandDatabase(config, (database) => migrateDatabase(database));
  } catch (error) {
    throw new CliError(`migrate failed on ${where}: ${describeDatabaseError(error, config.database) ?? (error as Error).message}`);
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ database: where, ...outcome })}\n`);
    return;
  }
  if (outcome.applied.length === 0) {
    process.stdout.write(`${where}: up to date (${outcome.alreadyApplied} migrations already applied)\n`);
  } else {
    process.stdout.write(`${where}: applied ${outcome.applied.length} migration(s)\n`);
    for (const tag of outcome.applied) process.stdout.write(`  ${tag}\n`);
  }
}
