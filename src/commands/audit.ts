/**
 * `patchbay audit export|verify`: the audit log as evidence a HIPAA auditor can re-check (issue 17). Rows are kept
 * at least six years: nothing in patchbay deletes them (the table refuses UPDATE, DELETE and TRUNCATE).
 */
import { CliError } from './cli-error.ts';

interface ExportOptions {
  from?: string;
  to?: string;
  format?: string;
  out?: string;
}

interface VerifyOptions {
  from?: string;
  to?: string;
  file?: string;
}

async function rangeOf(options: { from?: string; to?: string }, now: Date): Promise<{ from: Date; to: Date }> {
  const { auditRange } = await import('../domain/audit-chain.ts');
  const range = auditRange(options.from, options.to, now);
  if (!range.ok) throw new CliError(range.error, 2);
  return range;
}

export async function exportAction(options: ExportOptions): Promise<void> {
  if (options.format !== 'csv' && options.format !== 'jsonl') {
    throw new CliError(options.format === undefined ? '--format is required: csv or jsonl' : `--format is "${options.format}": use csv or jsonl`, 2);
  }
  const format: 'csv' | 'jsonl' = options.format;
  if (options.out !== undefined && !options.out.endsWith(`.${format}`)) throw new CliError(`--out ${options.out}: name it *.${format}, so verify --file knows its format`, 2);
  const now = new Date();
  const range = await rangeOf(options, now);
  const { loadConfig } = await import('../config.ts');
  const { withCommandDatabase } = await import('../db/for-command.ts');
  const { exportAudit, exportAuditToFile, manifestPath } = await import('./audit-evidence.ts');
  const input = { ...range, format, now };
  const manifest = await withCommandDatabase(loadConfig(process.env), (database) =>
    options.out === undefined ? exportAudit(database.db, process.stdout, input) : exportAuditToFile(database.db, options.out, input),
  );
  const said = `${manifest.rows} audit rows (${manifest.firstId ?? '-'}..${manifest.lastId ?? '-'}), head ${manifest.headHash}`;
  if (options.out === undefined) {
    if (format === 'csv') process.stderr.write(`${JSON.stringify(manifest)}\n`);
    return;
  }
  process.stdout.write(`${options.out}: ${said}${format === 'csv' ? `; manifest ${manifestPath(options.out)}` : ''}\n`);
}

export async function verifyAction(options: VerifyOptions): Promise<void> {
  if (options.file !== undefined && (options.from !== undefined || options.to !== undefined)) {
    throw new CliError('--file verifies the whole export; --from/--to choose rows in the database', 2);
  }
  const evidence = await import('./audit-evidence.ts');
  let outcome: Awaited<ReturnType<typeof evidence.verifyDatabase>>;
  if (options.file !== undefined) {
    const { access } = await import('node:fs/promises');
    await access(options.file).catch(() => {
      throw new CliError(`--file ${options.file}: no such file`, 2);
    });
    outcome = await evidence.verifyExportFile(options.file);
  } else {
    const range = options.from === undefined && options.to === undefined ? undefined : await rangeOf(options, new Date());
    const { loadConfig } = await import('../config.ts');
    const { withCommandDatabase } = await import('../db/for-command.ts');
    outcome = await withCommandDatabase(loadConfig(process.env), (database) => evidence.verifyDatabase(database.db, range));
  }
  if (!outcome.ok) throw new CliError(`audit chain broken: ${outcome.problem}`, 1);
  const ids = outcome.rows === 0 ? 'no rows' : `${outcome.rows} rows, ids ${outcome.firstId}..${outcome.lastId}`;
  process.stdout.write(`audit chain verified: ${ids}, head ${outcome.headHash}\n`);
}
