/**
 * Sending a compliance report (issue 17): judge the client's period, build the files, archive them (bytes and
 * SHA-256, append-only) and queue the summary and the files to the engineers' Slack channel and the client's
 * champions in Teams, all in one transaction. The archive's delivery key is the idempotency key: a report asked
 * for twice (a scheduler tick twice, a retried job) finds it and sends nothing more.
 */
import type { ComplianceReport } from '../domain/compliance.ts';
import { complianceReport, OUTSTANDING_STATUSES } from '../domain/compliance.ts';
import { reportKey, type ReportKind } from '../domain/report-schedule.ts';
import type { ReportPeriod } from '../domain/compliance.ts';
import { championConversations } from '../db/audience-repo.ts';
import { loadComplianceInput, reportableClientIds } from '../db/compliance-repo.ts';
import { archiveReport, type ReportFileBytes } from '../db/report-archive-repo.ts';
import { loadAudiences } from '../chat/audiences.ts';
import { notify } from '../chat/notify.ts';
import type { KevExposure, ReportSnapshot } from '../chat/notices/reports.ts';
import { reportBaseName, reportFiles } from '../reports/report-format.ts';
import { renderComplianceChartPng } from '../reports/chart.ts';
import { renderReportPdf } from '../reports/pdf.ts';
import { loadReportBundle, type ReportBundle } from './compliance-report.ts';
import { withTransaction, type UseCaseContext } from './transaction.ts';

/** How long a Teams download link works: long enough for a champion back from a week off. */
export const REPORT_LINK_TTL_MS = 7 * 86_400_000;

/** Makes a signed, expiring download link for an archived file (patchbay's HTTP route); unset: no links. */
export type ReportLinkSigner = (archiveId: number, expiresAt: Date) => string;

/**
 * The files a report is delivered as, built in this one place: the PDF (summary with its chart, tables, evidence
 * appendix) first, as the file a client reads, then the CSVs (per device; per device × update) for spreadsheets.
 */
export async function reportFilesOf(bundle: ReportBundle, now: Date): Promise<ReportFileBytes[]> {
  const { report, history, evidence } = bundle;
  const chartPng = await renderComplianceChartPng(history);
  const pdf = await renderReportPdf(report, { history, evidence, now, chartPng });
  const csv = reportFiles(report, 'csv').map((f) => ({ name: f.name, mimeType: 'text/csv', format: 'csv', bytes: Buffer.from(f.content, 'utf8') }));
  return [{ name: `${reportBaseName(report)}.pdf`, mimeType: 'application/pdf', format: 'pdf', bytes: pdf }, ...csv];
}

export interface SendReportInput {
  clientId: string;
  period: ReportPeriod;
  kind: Exclude<ReportKind, 'kev_weekly'>;
  /** Sets apart on-demand reports of the same client and period (the slash command's trigger id). */
  request?: string;
  links?: ReportLinkSigner;
}

export type SendReportResult =
  | { outcome: 'sent'; deliveryKey: string; files: number; report: ComplianceReport }
  | { outcome: 'already_sent'; deliveryKey: string }
  | { outcome: 'refused'; message: string };

export async function sendComplianceReport(ctx: UseCaseContext, input: SendReportInput): Promise<SendReportResult> {
  const now = ctx.now();
  const key = reportKey(input.kind, input.clientId, input.period.id, input.request);
  // Judged outside the transaction: a read of one client's history, which the archive then fixes as sent.
  const bundle = await loadReportBundle(ctx.db, input.clientId, input.period, now);
  if (!bundle) return { outcome: 'refused', message: `No client ${input.clientId} in the inventory.` };
  const { report } = bundle;
  const files = await reportFilesOf(bundle, now);
  return withTransaction(ctx, async (tx, after) => {
    const audiences = await loadAudiences(tx);
    const conversations = await championConversations(tx, input.clientId);
    const sentTo = [...(audiences.engineers ? [`slack:${audiences.engineers.channel}`] : []), ...conversations.map((c) => `teams:${c}`)];
    const archived = await archiveReport(tx, { deliveryKey: key, clientId: input.clientId, periodId: input.period.id, kind: input.kind, files, sentTo, sentAt: now });
    if (!archived.fresh) return { outcome: 'already_sent', deliveryKey: key };
    const expires = new Date(now.getTime() + REPORT_LINK_TTL_MS);
    const snapshot: ReportSnapshot = {
      deliveryKey: key,
      kind: input.kind,
      clientId: input.clientId,
      periodId: input.period.id,
      summary: summaryOf(report),
      files: files.map((f, i) => ({ name: f.name, size: f.bytes.byteLength, ...(input.links ? { url: input.links(archived.ids[i]!, expires) } : {}) })),
    };
    after.outbox(await notify(tx, [{ kind: 'report_sent', report: snapshot, teamsConversations: conversations }], now, audiences));
    return { outcome: 'sent', deliveryKey: key, files: files.length, report };
  });
}

function summaryOf(report: ComplianceReport): ReportSnapshot['summary'] {
  const s = report.summary;
  return {
    devicesInScope: s.devicesInScope,
    compliantDevices: s.compliantDevices,
    deviceCompliancePct: s.deviceCompliancePct,
    patchInstallationPct: s.patchInstallationPct,
    missingCritical: s.missingBySeverity.Critical,
    missingImportant: s.missingBySeverity.Important,
    kevMissing: s.kevMissing,
    slaBreaches: s.slaBreaches,
    failedInstalls: report.failedInstalls.length,
    staleDevices: s.staleDevices,
    slaCriticalDays: report.policy.slaCriticalDays,
    slaImportantDays: report.policy.slaImportantDays,
    outstandingInGrace: report.updates.filter((u) => OUTSTANDING_STATUSES.has(u.status) && u.ageDays <= report.policy.graceDays).length,
    graceDays: report.policy.graceDays,
    neverSeenDevices: report.staleDevices.filter((d) => d.lastSeen === null).length,
  };
}

const EXPOSED = new Set(['missing', 'failed', 'held', 'deferred']);

/**
 * The engineers' weekly list: every (device, update) still exposed to a KEV-listed CVE across all clients, oldest
 * first, judged as of now over `period` (the month so far). One client's facts in memory at a time.
 */
export async function sendKevWeekly(ctx: UseCaseContext, input: { week: string; period: ReportPeriod }): Promise<{ outcome: 'sent' | 'already_sent'; deliveryKey: string; exposures: number }> {
  const now = ctx.now();
  const key = reportKey('kev_weekly', null, input.week);
  const exposures: KevExposure[] = [];
  for (const clientId of await reportableClientIds(ctx.db, now)) {
    const facts = await loadComplianceInput(ctx.db, clientId, input.period, now);
    if (!facts) continue;
    for (const row of complianceReport(facts).updates) {
      if (row.kev && EXPOSED.has(row.status)) exposures.push({ clientId, device: row.device, kb: row.kb, cves: row.cves, ageDays: row.ageDays });
    }
  }
  exposures.sort((a, b) => b.ageDays - a.ageDays || a.clientId.localeCompare(b.clientId) || a.device.localeCompare(b.device));
  const csv = ['client,device,kb,cves,age_days', ...exposures.map((e) => [e.clientId, e.device, e.kb ?? '', e.cves.join(' '), e.ageDays].map(csvCell).join(','))].join('\r\n');
  return withTransaction(ctx, async (tx, after) => {
    const audiences = await loadAudiences(tx);
    const file = { name: `kev-exposure-${input.week}.csv`, mimeType: 'text/csv', format: 'csv', bytes: Buffer.from(`${csv}\r\n`, 'utf8') };
    const sentTo = audiences.engineers ? [`slack:${audiences.engineers.channel}`] : [];
    const archived = await archiveReport(tx, { deliveryKey: key, clientId: null, periodId: input.week, kind: 'kev_weekly', files: [file], sentTo, sentAt: now });
    if (!archived.fresh) return { outcome: 'already_sent' as const, deliveryKey: key, exposures: exposures.length };
    after.outbox(await notify(tx, [{ kind: 'kev_exposure_weekly', deliveryKey: key, week: input.week, exposures, total: exposures.length }], now, audiences));
    return { outcome: 'sent' as const, deliveryKey: key, exposures: exposures.length };
  });
}

/** RFC 4180, and text a spreadsheet would run as a formula starts with a quote. */
function csvCell(value: string | number): string {
  const text = String(value);
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
