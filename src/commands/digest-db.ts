/**
 * `patchbay digest` against the database: `--release ID` renders a stored month with the stored notes, KEV
 * catalog and inventory; `--cvrf FILE --post` and `--fetch [ID]` store a document as the watcher would and
 * queue the digest in the outbox for `patchbay start` to deliver. Documents are read and validated before the
 * database is opened, so a bad file changes nothing.
 */
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { DateTime } from 'luxon';
import { CliError } from './cli-error.ts';
import type { Config } from '../config.ts';
import type { KevIndex } from '../domain/digest.ts';
import type { Release } from '../domain/release.ts';
import { renderDigest, type DigestFormat, type DigestOptions } from './digest-format.ts';

interface Context extends Omit<DigestOptions, 'now'> {
  format: DigestFormat;
  now: DateTime;
  failed: (what: string, error: unknown) => never;
}

function whoRuns(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

export async function fromDatabase(context: Context): Promise<string> {
  const { loadConfig } = await import('../config.ts');
  const config = loadConfig(process.env);
  if (context.release !== undefined) return renderStoredRelease(context, context.release, config);
  // Read everything first: a document that does not parse never reaches the database.
  const documents = context.cvrf !== undefined ? await readStoredDocuments(context, context.cvrf) : await fetchDocuments(context, config);
  const outcome = await storeDocuments(context, config, documents);
  return describeOutcome(context, documents, outcome);
}

/** `--release ID`: the stored month rendered with the stored notes, KEV catalog and inventory. */
async function renderStoredRelease(context: Context, releaseId: string, config: Config): Promise<string> {
  const { withCommandDatabase, describeDatabase } = await import('../db/for-command.ts');
  const { parseReleaseId } = await import('../domain/calendar.ts');
  const id = parseReleaseId(releaseId);
  if (!id.ok) throw new CliError(`--release: ${id.error}`, 2);
  if (config.database.kind === 'embedded' && !existsSync(config.database.dataDir)) {
    throw new CliError(`nothing is stored yet in ${describeDatabase(config.database)}: store a month with --cvrf FILE --post or --fetch`, 1);
  }
  return withCommandDatabase(config, async (database) => {
    const { migrationStatus } = await import('../db/migrate.ts');
    if ((await migrationStatus(database)).applied.length === 0) throw new CliError(`nothing is stored yet in ${describeDatabase(config.database)}`, 1);
    const { loadDigestInput } = await import('../db/release-repo.ts');
    const { buildDigest } = await import('../domain/digest.ts');
    const { describeDatabaseError } = await import('../db/errors.ts');
    const input = await loadDigestInput(database.db, id.value.id, context.now).catch((error: unknown) => {
      // A database failure is said by withCommandDatabase, without drizzle's SQL.
      if (describeDatabaseError(error) !== undefined) throw error;
      throw new CliError(`--release: ${(error as Error).message}`, 1);
    });
    return renderDigest(buildDigest(input), context.format, context.interactive === true);
  });
}

interface Documents {
  release: Release;
  kev: KevIndex | undefined;
  warnings: string[];
}

/** `--cvrf FILE [--kev FILE]`: documents on disk; one that does not read fails the command. */
async function readStoredDocuments(context: Context, cvrf: string): Promise<Documents> {
  const { readKevCatalog } = await import('../adapters/kev/catalog.ts');
  const { readRelease } = await import('../adapters/msrc/client.ts');
  const release = await readRelease(cvrf, { attempts: 3 }).catch((e: unknown) => context.failed('--cvrf', e));
  const kev = context.kev === undefined ? undefined : await readKevCatalog(context.kev, { attempts: 3 }).catch((e: unknown) => context.failed('--kev', e));
  return { release, kev, warnings: [] };
}

/** `--fetch [ID]`: the month from MSRC; a KEV catalog that does not come is a warning (the stored one serves). */
async function fetchDocuments(context: Context, config: Config): Promise<Documents> {
  const { readKevCatalog } = await import('../adapters/kev/catalog.ts');
  const { MsrcClient } = await import('../adapters/msrc/client.ts');
  const { currentRelease, parseReleaseId } = await import('../domain/calendar.ts');
  let id = currentRelease(context.now).id;
  if (typeof context.fetch === 'string') {
    const parsed = parseReleaseId(context.fetch);
    if (!parsed.ok) throw new CliError(`--fetch: ${parsed.error}`, 2);
    id = parsed.value.id;
  }
  const release = await new MsrcClient(config.msrcApiUrl, { attempts: 3 }).getRelease(id).catch((e: unknown) => context.failed(`--fetch ${id}`, e));
  const warnings: string[] = [];
  const kev = await readKevCatalog(context.kev ?? config.kevUrl, { attempts: 3 }).catch((error: unknown) => {
    warnings.push(`KEV catalog not refreshed (${(error as Error).message}); the stored one is used`);
    return undefined;
  });
  return { release, kev, warnings };
}

/** Stores the month (and KEV catalog) as the watcher would, queueing the digest for `patchbay start` to deliver. */
async function storeDocuments(context: Context, config: Config, { release, kev }: Documents) {
  const { withCommandDatabase } = await import('../db/for-command.ts');
  const storedAt = new Date(context.now.toMillis());
  const actor = whoRuns();
  return withCommandDatabase(config, async (database) => {
    const { migrateDatabase } = await import('../db/migrate.ts');
    const { replaceKevCatalog } = await import('../db/kev-repo.ts');
    const { storeRelease } = await import('../use-cases/store-release.ts');
    await migrateDatabase(database);
    const kevResult = kev ? await replaceKevCatalog(database.db, kev, { now: storedAt, actor, source: 'cli' }) : undefined;
    const result = await storeRelease(database.db, release, { fetchedAt: storedAt, now: storedAt, actor, source: 'cli' });
    return { kev: kevResult, ...result };
  });
}

function describeOutcome(context: Context, { release, warnings }: Documents, outcome: Awaited<ReturnType<typeof storeDocuments>>): string {
  if (context.format === 'json') {
    return `${JSON.stringify({
      release: release.id,
      outcome: outcome.outcome,
      changes: outcome.changes.map((change) => change.message),
      queued: outcome.queued,
      notQueued: outcome.notQueued,
      kev: outcome.kev,
      warnings,
    })}\n`;
  }
  const lines = [...warnings.map((w) => `warning: ${w}`)];
  if (outcome.kev) lines.push(`KEV catalog ${outcome.kev.version}: ${outcome.kev.added} added, ${outcome.kev.changed} changed, ${outcome.kev.removed} withdrawn`);
  const what = { new: 'stored (new)', unchanged: 'unchanged: nothing stored', revised: `revised: ${outcome.changes.length} change${outcome.changes.length === 1 ? '' : 's'}` };
  lines.push(`${release.id} (${release.cves.length} CVEs, ${release.updates.length} updates): ${what[outcome.outcome]}`);
  for (const change of outcome.changes) lines.push(`  • ${change.message}`);
  if (outcome.queued > 0) lines.push(`queued ${outcome.queued} Slack message${outcome.queued === 1 ? '' : 's'}; a running \`patchbay start\` delivers them`);
  if (outcome.notQueued) lines.push(`not posted: ${outcome.notQueued}`);
  return `${lines.join('\n')}\n`;
}
