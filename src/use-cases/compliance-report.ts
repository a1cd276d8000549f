/**
 * Everything one client's compliance PDF or chart needs (issue 17), loaded and judged: the period's report, its
 * history over the last months, and the evidence appendix. For `patchbay report` now and the chat delivery later.
 * Each past month is loaded as of its own end and judged by the same model, so its point on the chart is what that
 * month's own report says, today and tomorrow.
 */
import { loadComplianceInput } from '../db/compliance-repo.ts';
import { loadEvidenceFacts } from '../db/evidence-repo.ts';
import type { AppDatabase } from '../db/client.ts';
import { evidenceAppendix, type EvidenceAppendix } from '../domain/compliance-evidence.ts';
import { complianceHistory, historyPeriods, HISTORY_PERIODS, type ComplianceHistory } from '../domain/compliance-history.ts';
import { complianceReport, type ComplianceReport, type ReportPeriod } from '../domain/compliance.ts';
import { judgedAt } from '../domain/report-period.ts';

export interface ReportBundle {
  report: ComplianceReport;
  history: ComplianceHistory;
  evidence: EvidenceAppendix;
}

/** The report of one client and period; undefined when there is no such client. */
export async function loadComplianceReport(db: AppDatabase, clientId: string, period: ReportPeriod, now: Date): Promise<ComplianceReport | undefined> {
  const facts = await loadComplianceInput(db, clientId, period, judgedAt(period, now));
  return facts ? complianceReport(facts) : undefined;
}

export async function loadComplianceHistory(db: AppDatabase, report: ComplianceReport, now: Date, count = HISTORY_PERIODS): Promise<ComplianceHistory> {
  const past: ComplianceReport[] = [];
  for (const period of historyPeriods(report.period, count)) {
    // The report's own month is already judged; loading it again would only repeat the same answer.
    const judged = period.id === report.period.id ? report : await loadComplianceReport(db, report.client.id, period, now);
    if (judged) past.push(judged);
  }
  return complianceHistory(report, past);
}

export async function loadReportBundle(db: AppDatabase, clientId: string, period: ReportPeriod, now: Date): Promise<ReportBundle | undefined> {
  const report = await loadComplianceReport(db, clientId, period, now);
  if (!report) return undefined;
  const history = await loadComplianceHistory(db, report, now);
  const evidence = evidenceAppendix(await loadEvidenceFacts(db, clientId, period, judgedAt(period, now)));
  return { report, history, evidence };
}
