/**
 * A compliance report's summary for a client's champions, in Adaptive Card 1.5: the headline numbers and one
 * button per file opening patchbay's signed, expiring download link. Names are escaped; the SLA days are said to be
 * the client's own policy.
 */
import type { ReportSnapshot } from '../report-snapshot.ts';
import { CARD_VERSION, escapeCardText } from './digest-card.ts';
import { inGraceWords, neverSeenWords } from '../report-words.ts';

const pct = (value: number | null): string => (value === null ? 'n/a' : `${value}%`);

export function renderReportCard(report: ReportSnapshot, clientName: string): Record<string, unknown> {
  const s = report.summary;
  const facts = [
    ['Devices compliant', `${s.compliantDevices} of ${s.devicesInScope} (${pct(s.deviceCompliancePct)})`],
    ['Patch installation', pct(s.patchInstallationPct)],
    ['Missing critical / important', `${s.missingCritical} / ${s.missingImportant}${inGraceWords(s)}`],
    ['Missing, actively exploited (KEV)', String(s.kevMissing)],
    [`Past your SLA (${s.slaCriticalDays}/${s.slaImportantDays} days)`, String(s.slaBreaches)],
    ['Failed installs', String(s.failedInstalls)],
    ...(s.staleDevices > 0 ? [['Devices not seen lately', `${s.staleDevices}${neverSeenWords(s)}`]] : []),
  ].map(([title, value]) => ({ title, value }));
  const links = report.files.filter((f) => f.url !== undefined);
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: CARD_VERSION,
    body: [
      { type: 'TextBlock', text: escapeCardText(`Patch compliance: ${clientName}, ${report.periodId}`), weight: 'Bolder', size: 'Medium', wrap: true },
      { type: 'FactSet', facts },
      {
        type: 'TextBlock',
        text: 'SLA days are your patch policy as agreed with your IT provider (the defaults follow HHS\'s proposed 15/30-day clocks, which are not law).',
        isSubtle: true,
        size: 'Small',
        wrap: true,
      },
      ...(links.length > 0 ? [{ type: 'TextBlock', text: 'Download links expire after 7 days; ask your IT provider for a new copy.', isSubtle: true, size: 'Small', wrap: true }] : []),
    ],
    ...(links.length > 0 ? { actions: links.map((f) => ({ type: 'Action.OpenUrl', title: escapeCardText(f.name).slice(0, 60), url: f.url })) } : {}),
  };
}
