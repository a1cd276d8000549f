/**
 * A client's compliance over the periods before a report's (issue 17): the chart's line. Each past period is judged
 * by the same model (src/domain/compliance.ts) as of that period's own end, never re-derived from today's report,
 * so a past month's point reads the same however often the history is drawn.
 */
import { DateTime } from 'luxon';
import { AGE_BUCKETS, type AgeBucket, type ComplianceReport, type ReportPeriod } from './compliance.ts';
import { monthPeriod } from './report-period.ts';

export const HISTORY_PERIODS = 12;

export interface HistoryPoint {
  period: string;
  devicesInScope: number;
  deviceCompliancePct: number | null;
  patchInstallationPct: number | null;
}

/** What the chart draws: the line over past periods, and the report's own missing updates by age. */
export interface ComplianceHistory {
  client: string;
  points: HistoryPoint[];
  missingByAge: Record<AgeBucket, number>;
}

/**
 * The `count` months ending with the report's: for a month, it and the months before; for a custom range, the
 * month holding its last day and the months before (a range has no "previous range" an auditor would expect).
 */
export function historyPeriods(period: ReportPeriod, count = HISTORY_PERIODS): ReportPeriod[] {
  const last = DateTime.fromMillis(Date.parse(period.to) - 1, { zone: 'utc' }).startOf('month');
  const periods: ReportPeriod[] = [];
  for (let back = count - 1; back >= 0; back--) {
    const month = last.minus({ months: back });
    const parsed = monthPeriod(`${month.year}-${month.toFormat('LLL', { locale: 'en' })}`);
    if (!parsed.ok) throw new Error(parsed.error);
    periods.push(parsed.period);
  }
  return periods;
}

export function historyPoint(report: ComplianceReport): HistoryPoint {
  return {
    period: report.period.id,
    devicesInScope: report.summary.devicesInScope,
    deviceCompliancePct: report.summary.deviceCompliancePct,
    patchInstallationPct: report.summary.patchInstallationPct,
  };
}

export function complianceHistory(report: ComplianceReport, past: readonly ComplianceReport[]): ComplianceHistory {
  return {
    client: report.client.name,
    points: past.map(historyPoint),
    missingByAge: Object.fromEntries(AGE_BUCKETS.map((b) => [b, report.summary.missingByAge[b]])) as Record<AgeBucket, number>,
  };
}
