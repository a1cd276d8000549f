/**
 * Compliance reports sent (issue 17): the summary and the files. In Slack, a summary message, then the files
 * uploaded in its thread (a second outbox row, so a failed upload is retried without posting the summary twice;
 * the row names the report archive's delivery key and the Slack sender reads the bytes there). In Teams, the
 * client's champions get a summary card whose buttons open the files through patchbay's signed, expiring
 * download links: a bot cannot attach files to a channel post, and the 1:1 file consent card only works in a
 * personal chat, one consent per file. The snapshot is what the report said when sent, so a re-delivery matches.
 */
import type { OutboxItem } from '../../db/outbox-repo.ts';
import type { ReportKind } from '../../domain/report-schedule.ts';
import type { ReportSnapshot } from '../report-snapshot.ts';
import { escapeMrkdwn } from '../slack/block-kit.ts';
import { renderReportCard } from '../teams/report-card.ts';
import { inGraceWords, neverSeenWords } from '../report-words.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

export type { ReportFileLink, ReportSnapshot, ReportSummarySnapshot } from '../report-snapshot.ts';

/** One device still exposed to a KEV-listed CVE, for the engineers' weekly list. */
export interface KevExposure {
  clientId: string;
  device: string;
  kb: string | null;
  cves: readonly string[];
  ageDays: number;
}

export type ReportNotice =
  /** A client's report: the summary and files to the engineers' channel (thread), the card to `teamsConversations`. */
  | { kind: 'report_sent'; report: ReportSnapshot; slackThreadSubject?: string; teamsConversations: readonly string[] }
  /** The engineers' weekly list of devices still exposed to KEV-listed CVEs, oldest first. */
  | { kind: 'kev_exposure_weekly'; deliveryKey: string; week: string; exposures: readonly KevExposure[]; total: number };

const KIND_WORDS: Record<ReportKind, string> = {
  on_demand: 'Compliance report',
  release: 'Compliance report after the release rollout',
  monthly: 'Monthly compliance report',
  kev_weekly: 'Weekly KEV exposure',
};

const pct = (value: number | null): string => (value === null ? 'n/a' : `${value}%`);

export function reportSummaryLine(report: ReportSnapshot, clientName: string): string {
  const s = report.summary;
  return (
    `${KIND_WORDS[report.kind]}: ${clientName}, ${report.periodId}: ${s.compliantDevices} of ${s.devicesInScope} devices compliant (${pct(s.deviceCompliancePct)}), ` +
    `patch installation ${pct(s.patchInstallationPct)}; missing ${s.missingCritical} critical, ${s.missingImportant} important, ${s.kevMissing} KEV-listed` +
    `${inGraceWords(s)}; ` +
    `${s.slaBreaches} past the client's SLA (${s.slaCriticalDays}/${s.slaImportantDays} days, the client's policy, not law); ` +
    `${s.failedInstalls} failed installs; ${s.staleDevices} stale devices${neverSeenWords(s)}.`
  );
}

export function renderReportNotice(notice: ReportNotice, audiences: Audiences): OutboxItem[] {
  if (notice.kind === 'kev_exposure_weekly') return renderKevWeekly(notice, audiences);
  const { report } = notice;
  const clientName = audiences.clientName(report.clientId);
  const summary = subjects.report(report.deliveryKey);
  const items: OutboxItem[] = [];
  if (audiences.engineers) {
    const channel = audiences.engineers.channel;
    const thread = notice.slackThreadSubject !== undefined ? { threadSubject: notice.slackThreadSubject } : {};
    items.push({ key: summary, channel, action: 'post', subject: summary, payload: { text: escapeMrkdwn(reportSummaryLine(report, clientName)), ...thread } });
    items.push({
      key: `${summary}:files`,
      channel,
      action: 'post',
      subject: `${summary}:files`,
      payload: { text: `Files: ${report.files.map((f) => escapeMrkdwn(f.name)).join(', ')}`, reportFiles: report.deliveryKey, threadSubject: summary },
    });
  }
  const card = renderReportCard(report, clientName);
  for (const conversation of notice.teamsConversations) {
    items.push({ key: `teams:${summary}:${conversation}`, platform: 'teams', channel: conversation, action: 'post', subject: summary, payload: { text: reportSummaryLine(report, clientName), card } });
  }
  return items;
}

/** Lines shown before "and N more": the message stays well inside Slack's limits whatever the fleet. */
export const KEV_LIST_MAX = 40;

function renderKevWeekly(notice: Extract<ReportNotice, { kind: 'kev_exposure_weekly' }>, audiences: Audiences): OutboxItem[] {
  if (!audiences.engineers) return [];
  const subject = subjects.report(notice.deliveryKey);
  const lines = notice.exposures.slice(0, KEV_LIST_MAX).map((e) =>
    `• ${escapeMrkdwn(e.device)} (${escapeMrkdwn(audiences.clientName(e.clientId))}): ${e.kb ? `KB${escapeMrkdwn(e.kb)}` : 'update'} missing ${e.ageDays} days, ${e.cves.map(escapeMrkdwn).join(' ')}`,
  );
  const more = notice.total - lines.length;
  const head = notice.total === 0 ? `Week ${notice.week}: no device is exposed to a KEV-listed CVE.` : `Week ${notice.week}: ${notice.total} missing updates fix KEV-listed CVEs (oldest first):`;
  const text = [head, ...lines, ...(more > 0 ? [`and ${more} more (patchbay report --format csv has them all)`] : [])].join('\n');
  return [{ key: subject, channel: audiences.engineers.channel, action: 'post', subject, payload: { text } }];
}
