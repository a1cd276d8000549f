/**
 * `patchbay report`: the compliance report (issue 17) of one client or of every client, for a month or a range of
 * days, as CSV (per device; per device × update) or JSON (the model), written to a folder. Clients are loaded,
 * judged and written one at a time, so `--client all` holds one client's facts in memory, never the fleet's.
 */
import type { Command } from 'commander';
import { CliError } from './cli-error.ts';
import type { AppDatabase } from '../db/client.ts';
import type { ReportPeriod } from '../domain/compliance.ts';
import type { ReportFormat } from './report-format.ts';

interface ReportOptions {
  client?: string;
  period?: string;
  from?: string;
  to?: string;
  format?: string;
  out: string;
}

export function register(program: Command): void {
  const report = program
    .command('report')
    .description('write the patch compliance report of a client (or all) for a period, as CSV or JSON')
    .option('--client <id>', 'the client id, or "all"')
    .option('--period <month>', 'a month like 2026-Dec (default: this month, so far)')
    .option('--from <date>', 'first day of a custom period, e.g. 2026-11-01 (with --to)')
    .option('--to <date>', 'last day of a custom period, included')
    .option('--format <format>', 'csv (per device, and per device × update) or json (the whole model)')
    .option('--out <dir>', 'folder to write the files into', '.')
    .addHelpText('after', "\nSLA days are the client's own policy (client settings slaCriticalDays, slaImportantDays; defaults 15 and 30).")
    .action(async (options: ReportOptions) => {
      if (options.client === undefined) throw new CliError('--client is required (a client id, or all)', 2);
      if (options.format !== 'csv' && options.format !== 'json') throw new CliError('--format must be csv or json', 2);
      const now = new Date();
      const period = await periodOf(options, now);
      const { loadConfig } = await import('../config.ts');
      const { withCommandDatabase } = await import('../db/for-command.ts');
      const written = await withCommandDatabase(loadConfig(process.env), (database) =>
        writeReports(database.db, { client: options.client!, period, format: options.format as ReportFormat, out: options.out, now }),
      );
      process.stdout.write(`${written.join('\n')}\n`);
    });
  // `report fetch ID --out FILE`: the subcommand's --out, not the report folder's (the program too, src/cli.ts).
  report.enablePositionalOptions();
  registerArchive(report);
}

/** `report list` and `report fetch ID`: the reports patchbay sent, handed back byte for byte (hash checked). */
function registerArchive(report: Command): void {
  report
    .command('list')
    .description('list the report files patchbay sent (newest first): id, client, period, kind, file, size, SHA-256, to whom')
    .option('--client <id>', 'only this client')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'as JSON')
    .action(async (options: { client?: string; limit: string; json?: boolean }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new CliError('--limit must be a whole number above 0', 2);
      const { listArchive } = await import('../db/report-archive-repo.ts');
      const rows = await withDb((db) => listArchive(db, { ...(options.client !== undefined ? { clientId: options.client } : {}), limit }));
      if (options.json) return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      for (const r of rows) {
        process.stdout.write(`${r.id}\t${r.clientId ?? 'msp'}\t${r.periodId}\t${r.kind}\t${r.fileName}\t${r.size}\t${r.sha256}\t${r.sentAt.toISOString()}\t${r.sentTo.join(',')}\n`);
      }
    });
  report
    .command('fetch <id>')
    .description('write an archived report file exactly as it was sent, after checking it against its SHA-256')
    .option('--out <file>', 'write to this file (default: standard output)')
    .action(async (id: string, options: { out?: string }) => {
      if (!/^\d+$/.test(id)) throw new CliError(`"${id}" is not an archive id (patchbay report list shows them)`, 2);
      const { ArchiveIntegrityError, fetchArchived } = await import('../db/report-archive-repo.ts');
      const file = await withDb(async (db) => {
        try {
          return await fetchArchived(db, Number(id));
        } catch (error) {
          if (error instanceof ArchiveIntegrityError) throw new CliError(error.message, 1);
          throw error;
        }
      });
      if (!file) throw new CliError(`no archived report file ${id} (patchbay report list shows them)`, 2);
      if (options.out === undefined) return void process.stdout.write(file.bytes);
      const fs = await import('node:fs/promises');
      await fs.writeFile(options.out, file.bytes);
      process.stderr.write(`${options.out}: ${file.fileName}, ${file.bytes.length} bytes, sha256 ${file.sha256} (checked)\n`);
    });
}

async function withDb<T>(work: (db: AppDatabase) => Promise<T>): Promise<T> {
  const { loadConfig } = await import('../config.ts');
  const { withCommandDatabase } = await import('../db/for-command.ts');
  return withCommandDatabase(loadConfig(process.env), (database) => work(database.db));
}

async function periodOf(options: ReportOptions, now: Date): Promise<ReportPeriod> {
  const { currentMonth, monthPeriod, rangePeriod } = await import('../domain/report-period.ts');
  if (options.period !== undefined && (options.from !== undefined || options.to !== undefined)) throw new CliError('give --period or --from/--to, not both', 2);
  if ((options.from === undefined) !== (options.to === undefined)) throw new CliError('--from and --to go together', 2);
  if (options.period === undefined && options.from === undefined) return currentMonth(now);
  const parsed = options.period !== undefined ? monthPeriod(options.period) : rangePeriod(options.from!, options.to!);
  if (!parsed.ok) throw new CliError(parsed.error, 2);
  if (Date.parse(parsed.period.from) > now.getTime()) throw new CliError(`${parsed.period.id} has not started yet`, 2);
  return parsed.period;
}

export interface WriteReportsInput {
  client: string;
  period: ReportPeriod;
  format: ReportFormat;
  out: string;
  now: Date;
}

/** Writes each client's files; returns their paths. */
export async function writeReports(db: AppDatabase, input: WriteReportsInput): Promise<string[]> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const { judgedAt } = await import('../domain/report-period.ts');
  const { complianceReport } = await import('../domain/compliance.ts');
  const { loadComplianceInput, reportableClientIds } = await import('../db/compliance-repo.ts');
  const { reportFiles } = await import('./report-format.ts');
  const asOf = judgedAt(input.period, input.now);
  const clients = input.client === 'all' ? await reportableClientIds(db, asOf) : [input.client];
  await fs.mkdir(input.out, { recursive: true });
  const written: string[] = [];
  for (const clientId of clients) {
    const facts = await loadComplianceInput(db, clientId, input.period, asOf);
    if (!facts) throw new CliError(`no client "${clientId}" (patchbay import loads clients from the inventory)`, 2);
    for (const file of reportFiles(complianceReport(facts), input.format)) {
      const target = path.join(input.out, file.name);
      await fs.writeFile(target, file.content);
      written.push(target);
    }
  }
  return written;
}
