/**
 * The first page of a client's compliance PDF: headline numbers, missing updates by severity and age, the SLA
 * policy (the client's, not law), and the chart. The numbers are the model's (src/domain/compliance.ts) as they
 * are; this page only lays them out, so the test can read them back and compare.
 */
import type PDFDocument from 'pdfkit';
import { AGE_BUCKETS, SEVERITIES, type ComplianceReport } from '../domain/compliance.ts';
import { drawTable, type TableStyle } from './pdf-table.ts';
import { lastDay, pct, when } from './pdf-text.ts';

type Doc = InstanceType<typeof PDFDocument>;

/** The headline rows: label, value. Labels are the words the test looks for. */
export function headlineRows(report: ComplianceReport): Array<[string, string]> {
  const s = report.summary;
  return [
    ['Devices in scope', String(s.devicesInScope)],
    ['Devices excluded', String(s.devicesExcluded)],
    ['Compliant devices', String(s.compliantDevices)],
    ['Device compliance', pct(s.deviceCompliancePct)],
    ['Patch installation', pct(s.patchInstallationPct)],
    ['Updates installed', String(s.statusCounts.installed)],
    ['Updates missing', String(s.statusCounts.missing)],
    ['Installs failed', String(s.statusCounts.failed)],
    ['Updates held', String(s.statusCounts.held)],
    ['Updates deferred', String(s.statusCounts.deferred)],
    ['KEV-listed missing', String(s.kevMissing)],
    ['SLA breaches', String(s.slaBreaches)],
    ['Reboot pending', String(s.rebootPending)],
    ['Stale devices', String(s.staleDevices)],
  ];
}

function heading(doc: Doc, report: ComplianceReport, fonts: TableStyle): void {
  doc.font(fonts.bold).fontSize(16).text(`Patch compliance: ${report.client.name}`, { width: doc.page.width - doc.page.margins.left - doc.page.margins.right, height: 40, ellipsis: '…' });
  doc.font(fonts.regular).fontSize(9).fillColor('#4a5568');
  doc.text(`Client ${report.client.id} · period ${report.period.id} (${report.period.from.slice(0, 10)} to ${lastDay(report.period.to)}) · judged as of ${when(report.asOf)} UTC · all times UTC`);
  doc.fillColor('black').moveDown(0.6);
}

/** Two headline columns side by side, so the page keeps room for the chart. */
function headline(doc: Doc, report: ComplianceReport, style: TableStyle): void {
  const rows = headlineRows(report);
  const half = Math.ceil(rows.length / 2);
  const pairs = rows.slice(0, half).map((row, i) => [...row, ...(rows[half + i] ?? ['', ''])]);
  drawTable(doc, [
    { header: 'Headline', weight: 3 },
    { header: '', weight: 1.4, align: 'right' },
    { header: '', weight: 3 },
    { header: '', weight: 1.4, align: 'right' },
  ], pairs, style);
}

function policyNote(doc: Doc, report: ComplianceReport, style: TableStyle): void {
  const p = report.policy;
  doc.font(style.bold).fontSize(9).text('SLA policy', { continued: false });
  doc.font(style.regular).fontSize(8.5).text(
    `Critical updates within ${p.slaCriticalDays} days and Important within ${p.slaImportantDays} days of their Patch Tuesday; a device is compliant when every approved update older than ${p.graceDays} days is installed and no reboot is pending; stale means not seen for ${p.staleDays} days. ${p.note}`,
  );
  doc.moveDown(0.5);
}

export function drawSummaryPage(doc: Doc, report: ComplianceReport, chartPng: Buffer, style: TableStyle): void {
  heading(doc, report, style);
  headline(doc, report, style);
  const s = report.summary;
  drawTable(doc, [{ header: 'Missing by severity', weight: 2.2 }, ...SEVERITIES.map((sev) => ({ header: sev, weight: 1, align: 'right' as const }))],
    [['outstanding updates', ...SEVERITIES.map((sev) => String(s.missingBySeverity[sev]))]], style);
  drawTable(doc, [{ header: 'Missing by age (days)', weight: 2.2 }, ...AGE_BUCKETS.map((b) => ({ header: b, weight: 1, align: 'right' as const }))],
    [['outstanding updates', ...AGE_BUCKETS.map((b) => String(s.missingByAge[b]))]], style);
  policyNote(doc, report, style);
  const width = doc.page.width - doc.page.margins.left - doc.page.margins.right;
  const room = doc.page.height - doc.page.margins.bottom - doc.y;
  doc.image(chartPng, doc.page.margins.left, doc.y, { fit: [width, Math.max(120, room)], align: 'center' });
}
