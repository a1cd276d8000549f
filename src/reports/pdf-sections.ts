/**
 * The compliance PDF after its summary page: the per-device and per-update tables, then the evidence appendix
 * (exceptions in force, decisions and holds with who/when/why, the champion's sign-offs, each window's runs with
 * their reboots). Each section is a title and a table; drawTable paginates.
 */
import type PDFDocument from 'pdfkit';
import type { EvidenceAppendix, WindowEvidence } from '../domain/compliance-evidence.ts';
import type { ComplianceReport } from '../domain/compliance.ts';
import { drawTable, type TableStyle } from './pdf-table.ts';
import { day, when, yesNo } from './pdf-text.ts';

type Doc = InstanceType<typeof PDFDocument>;

export function sectionTitle(doc: Doc, title: string, style: TableStyle, note?: string): void {
  if (doc.y + 80 > doc.page.height - doc.page.margins.bottom) doc.addPage();
  doc.x = doc.page.margins.left;
  doc.font(style.bold).fontSize(12).text(title);
  if (note) doc.font(style.regular).fontSize(8).fillColor('#4a5568').text(note).fillColor('black');
  doc.moveDown(0.3);
}

export function drawDeviceTables(doc: Doc, report: ComplianceReport, style: TableStyle): void {
  sectionTitle(doc, 'Devices', style, 'Missing counts cover every outstanding update (missing, failed, held, deferred). C/I/M/L: Critical, Important, Moderate, Low.');
  drawTable(doc, [
    { header: 'Device', weight: 3.4, maxLines: 2 },
    { header: 'Ring', weight: 1.1 },
    { header: 'OS', weight: 3, maxLines: 2 },
    { header: 'Compliant', weight: 1.9 },
    { header: 'Missing C/I/M/L', weight: 2 },
    { header: 'KEV', weight: 0.9, align: 'right' },
    { header: 'Failed', weight: 1.3, align: 'right' },
    { header: 'Oldest (d)', weight: 1.4, align: 'right' },
    { header: 'Last seen', weight: 3.2, maxLines: 2 },
    { header: 'Reboot', weight: 1.5 },
  ], report.devices.map((d) => [
    d.device,
    d.ring,
    d.os ?? '(unknown)',
    d.excluded !== null ? 'excluded' : yesNo(d.compliant),
    (['Critical', 'Important', 'Moderate', 'Low'] as const).map((s) => d.missingBySeverity[s]).join('/'),
    String(d.kevMissing),
    String(d.failed),
    d.oldestMissingDays === null ? '' : String(d.oldestMissingDays),
    d.stale ? `${when(d.lastSeen) || 'never'} (stale)` : when(d.lastSeen),
    d.rebootPending ? 'pending' : '',
  ]), style);
  sectionTitle(doc, 'SLA breaches', style, "Outstanding Critical and Important updates older than the client's SLA days.");
  drawTable(doc, [
    { header: 'Device', weight: 4, maxLines: 2 },
    { header: 'Update', weight: 2.5 },
    { header: 'Severity', weight: 1.6 },
    { header: 'Age (d)', weight: 1.2, align: 'right' },
    { header: 'SLA (d)', weight: 1.2, align: 'right' },
  ], report.slaBreaches.map((b) => [b.device, b.kb ? `KB${b.kb}` : b.updateKey, b.severity, String(b.ageDays), String(b.limitDays)]), style);
  sectionTitle(doc, 'Failed installs', style);
  drawTable(doc, [
    { header: 'Device', weight: 3, maxLines: 2 },
    { header: 'Update', weight: 1.8 },
    { header: 'When', weight: 2 },
    { header: 'Error', weight: 6, maxLines: 3 },
  ], report.failedInstalls.map((f) => [f.device, f.kb ? `KB${f.kb}` : f.updateKey, when(f.at), f.error ?? '']), style);
}

export function drawUpdateTable(doc: Doc, report: ComplianceReport, style: TableStyle): void {
  const rows = report.updates.filter((u) => u.status !== 'not applicable');
  sectionTitle(doc, 'Updates per device', style, `Approved updates that apply to each device (${report.updates.length - rows.length} not-applicable rows left out; the CSV has every row).`);
  drawTable(doc, [
    { header: 'Device', weight: 3.2, maxLines: 2 },
    { header: 'Update', weight: 1.7 },
    { header: 'Severity', weight: 1.6 },
    { header: 'KEV', weight: 0.8 },
    { header: 'Status', weight: 1.8 },
    { header: 'Age (d)', weight: 1.2, align: 'right' },
    { header: 'Installed', weight: 2.8 },
    { header: 'Tries', weight: 1, align: 'right' },
    { header: 'Last error', weight: 3.5, maxLines: 2 },
  ], rows.map((u) => [u.device, u.kb ? `KB${u.kb}` : u.updateKey, u.severity, u.kev ? 'KEV' : '', u.status, String(u.ageDays), when(u.installedAt), String(u.attempts), u.lastError ?? '']), style);
}

const actorOf = (id: string, name: string | null): string => (name ? `${name} (${id})` : id);

function drawDecisions(doc: Doc, evidence: EvidenceAppendix, report: ComplianceReport, style: TableStyle): void {
  sectionTitle(doc, 'Exceptions in force', style, `As of ${when(report.asOf)}: holds, deferrals and excluded devices.`);
  drawTable(doc, [
    { header: 'Kind', weight: 1.3 },
    { header: 'Subject', weight: 3, maxLines: 2 },
    { header: 'Reason', weight: 4, maxLines: 3 },
    { header: 'By', weight: 2, maxLines: 2 },
    { header: 'Since', weight: 2 },
    { header: 'Until', weight: 2 },
  ], report.exceptions.map((e) => [e.kind, e.subject, e.reason, e.by ?? '', when(e.since), when(e.until)]), style);
  sectionTitle(doc, 'Decisions', style, 'Who approved, held, promoted, confirmed or deferred what in the period, from where, and why.');
  drawTable(doc, [
    { header: 'When', weight: 2 },
    { header: 'Decision', weight: 1.8 },
    { header: 'Subject', weight: 2.8, maxLines: 2 },
    { header: 'Who', weight: 2.6, maxLines: 2 },
    { header: 'Via', weight: 1 },
    { header: 'Why', weight: 3.5, maxLines: 3 },
  ], evidence.decisions.map((d) => [when(d.at), d.kind, [d.releaseId, d.updateKey, d.ring, d.device].filter(Boolean).join(' '), actorOf(d.actor, d.actorName), d.source, d.reason ?? '']), style);
  sectionTitle(doc, 'Holds', style);
  drawTable(doc, [
    { header: 'Placed', weight: 2 },
    { header: 'By', weight: 1.8, maxLines: 2 },
    { header: 'Covers', weight: 2.8, maxLines: 2 },
    { header: 'Why', weight: 3.6, maxLines: 3 },
    { header: 'Released', weight: 2.6, maxLines: 2 },
  ], evidence.holds.map((h) => [when(h.placedAt), h.placedBy, [h.scope, h.releaseId, h.updateKey, h.ring].filter(Boolean).join(' '), h.reason, h.releasedAt ? `${when(h.releasedAt)} by ${h.releasedBy ?? '?'}` : 'in force']), style);
}

function windowRow(w: WindowEvidence): string[] {
  const states = Object.entries(w.byState).sort(([a], [b]) => a.localeCompare(b)).map(([s, n]) => `${s} ${n}`).join(', ');
  return [`${when(w.windowStart)} – ${w.windowEnd.slice(11, 16)}`, [w.releaseId, w.ring].filter(Boolean).join(' '), String(w.devices), states, String(w.reboots), `${when(w.firstStart)} – ${when(w.lastFinish)}`];
}

export function drawAppendix(doc: Doc, report: ComplianceReport, evidence: EvidenceAppendix, style: TableStyle): void {
  doc.addPage();
  doc.font(style.bold).fontSize(14).text('Evidence appendix');
  doc.moveDown(0.4);
  drawDecisions(doc, evidence, report, style);
  sectionTitle(doc, 'Pilot sign-offs', style, "The client champion's confirmation that the pilot machines work, which let the broad ring go.");
  drawTable(doc, [{ header: 'Release', weight: 2 }, { header: 'Confirmed by', weight: 5, maxLines: 2 }, { header: 'When', weight: 2.5 }],
    evidence.signoffs.map((s) => [s.releaseId, actorOf(s.confirmedBy, s.confirmedByName), when(s.confirmedAt)]), style);
  sectionTitle(doc, 'Maintenance windows', style, 'Each window that opened in the period: devices, how their runs ended, reboots.');
  drawTable(doc, [
    { header: 'Window', weight: 2.8 },
    { header: 'Release / ring', weight: 2 },
    { header: 'Devices', weight: 1.1, align: 'right' },
    { header: 'Runs', weight: 3.2, maxLines: 3 },
    { header: 'Reboots', weight: 1.1, align: 'right' },
    { header: 'Ran', weight: 3.2, maxLines: 2 },
  ], evidence.windows.map(windowRow), style);
  sectionTitle(doc, 'Runs', style, 'Every run of the windows above; reboot times as the device manager was asked.');
  drawTable(doc, [
    { header: 'Window', weight: 1.8 },
    { header: 'Device', weight: 3, maxLines: 2 },
    { header: 'State', weight: 1.6 },
    { header: 'Result', weight: 1.7, maxLines: 2 },
    { header: 'Started', weight: 2.6 },
    { header: 'Finished', weight: 2.6 },
    { header: 'Reboots', weight: 2.6, maxLines: 3 },
  ], evidence.windows.flatMap((w) => w.runs.map((r) => [day(w.windowStart), r.device, r.state, r.result ?? '', when(r.startedAt), when(r.finishedAt), r.rebootTimes.length > 0 ? r.rebootTimes.map(when).join(', ') : r.reboots > 0 ? String(r.reboots) : ''])), style);
}
