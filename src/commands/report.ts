/**
 * `patchbay report`: the compliance report (issue 17) of one client or of every client, for a month or a range of
 * days, as CSV (per device; per device × update) or JSON (the model), written to a folder. Clients are loaded,
 * judged and written one at a time, so `--client all` holds one client's facts in memory, never the fleet's.
 */
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

export async function reportCommand(options: ReportOptions): Promise<void> {
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
