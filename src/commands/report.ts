/**
 * `patchbay report`: the compliance report (issue 17) of one client or of every client, for a month or a range of
 * days, as CSV (per device; per device × update), JSON (the model), PDF (summary with chart, tables, evidence
 * appendix) or PNG (the chart alone), written to a folder. Clients are loaded,
 * judged and written one at a time, so `--client all` holds one client's facts in memory, never the fleet's.
 */
import { CliError } from './cli-error.ts';
import type { AppDatabase } from '../db/client.ts';
import type { ReportPeriod } from '../domain/compliance.ts';
import type { ReportFormat } from '../reports/report-format.ts';

/** csv and json are the model as text; pdf and png are drawn (src/reports/) from the model and its history. */
export type OutputFormat = ReportFormat | 'pdf' | 'png';
const FORMATS: readonly OutputFormat[] = ['csv', 'json', 'pdf', 'png'];

interface ReportOptions {
  client?: string;
  period?: string;
  from?: string;
  to?: string;
  format?: string;
  out: string;
}

export async function reportCommand(options: ReportOptions): Promise<void> {
  if (options.client === undefined) throw new CliError('--client is required (a client id, or all)', 2);
  if (!FORMATS.includes(options.format as OutputFormat)) throw new CliError(`--format must be one of ${FORMATS.join(', ')}`, 2);
  const now = new Date();
  const period = await periodOf(options, now);
  const { loadConfig } = await import('../config.ts');
  const { withCommandDatabase } = await import('../db/for-command.ts');
  const written = await withCommandDatabase(loadConfig(process.env), (database) =>
    writeReports(database.db, { client: options.client!, period, format: options.format as OutputFormat, out: options.out, now }),
  );
  process.stdout.write(`${written.join('\n')}\n`);
}

/** `report list`: the report files patchbay sent, newest first. */
export async function reportListCommand(options: { client?: string; limit: string; json?: boolean }): Promise<void> {
  const limit = Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new CliError('--limit must be a whole number above 0', 2);
  const { listArchive } = await import('../db/report-archive-repo.ts');
  const rows = await withDb((db) => listArchive(db, { ...(options.client !== undefined ? { clientId: options.client } : {}), limit }));
  if (options.json) return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  for (const r of rows) {
    process.stdout.write(`${r.id}\t${r.clientId ?? 'msp'}\t${r.periodId}\t${r.kind}\t${r.fileName}\t${r.size}\t${r.sha256}\t${r.sentAt.toISOString()}\t${r.sentTo.join(',')}\n`);
  }
}

/** `report fetch ID`: an archived report file exactly as it was sent, after checking it against its SHA-256. */
export async function reportFetchCommand(id: string, options: { out?: string }): Promise<void> {
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
  format: OutputFormat;
  out: string;
  now: Date;
}

/** Writes each client's files; returns their paths. */
export async function writeReports(db: AppDatabase, input: WriteReportsInput): Promise<string[]> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const { judgedAt } = await import('../domain/report-period.ts');
  const { reportableClientIds } = await import('../db/compliance-repo.ts');
  const asOf = judgedAt(input.period, input.now);
  const clients = input.client === 'all' ? await reportableClientIds(db, asOf) : [input.client];
  await fs.mkdir(input.out, { recursive: true });
  const written: string[] = [];
  for (const clientId of clients) {
    for (const file of await clientFiles(db, clientId, input)) {
      const target = path.join(input.out, file.name);
      await fs.writeFile(target, file.content);
      written.push(target);
    }
  }
  return written;
}

/** One client's files in the asked format; a client that does not exist is the caller's mistake. */
export async function clientFiles(db: AppDatabase, clientId: string, input: WriteReportsInput): Promise<Array<{ name: string; content: string | Buffer }>> {
  const missing = () => new CliError(`no client "${clientId}" (patchbay import loads clients from the inventory)`, 2);
  const { reportBaseName, reportFiles } = await import('../reports/report-format.ts');
  const { loadComplianceReport, loadReportBundle, loadComplianceHistory } = await import('../use-cases/compliance-report.ts');
  if (input.format === 'csv' || input.format === 'json') {
    const report = await loadComplianceReport(db, clientId, input.period, input.now);
    if (!report) throw missing();
    return reportFiles(report, input.format);
  }
  if (input.format === 'png') {
    const { renderComplianceChartPng } = await import('../reports/chart.ts');
    const report = await loadComplianceReport(db, clientId, input.period, input.now);
    if (!report) throw missing();
    const history = await loadComplianceHistory(db, report, input.now);
    return [{ name: `${reportBaseName(report)}-chart.png`, content: await renderComplianceChartPng(history) }];
  }
  const { renderReportPdf } = await import('../reports/pdf.ts');
  const bundle = await loadReportBundle(db, clientId, input.period, input.now);
  if (!bundle) throw missing();
  return [{ name: `${reportBaseName(bundle.report)}.pdf`, content: await renderReportPdf(bundle.report, { history: bundle.history, evidence: bundle.evidence, now: input.now }) }];
}
