/**
 * A compliance report as files: CSV per device and per device × update (RFC 4180 through csv-stringify, with its
 * formula escaping so a device name or an error text starting `=`, `+`, `-`, `@`, tab or CR opens in a spreadsheet
 * as text, not as a formula), and JSON, which is the model as it is.
 */
import { stringify } from 'csv-stringify/sync';
import { SEVERITIES, type ComplianceReport } from '../domain/compliance.ts';

export type ReportFormat = 'csv' | 'json';

export interface ReportFile {
  name: string;
  content: string;
}

const csv = (rows: ReadonlyArray<Record<string, unknown>>, columns: readonly string[]): string =>
  stringify(rows as Array<Record<string, unknown>>, { header: true, columns: [...columns], record_delimiter: 'windows', escape_formulas: true });

const yesNo = (value: boolean): string => (value ? 'yes' : 'no');

export const DEVICE_COLUMNS = [
  'client',
  'period',
  'device',
  'ring',
  'class',
  'os',
  'compliant',
  'excluded',
  ...SEVERITIES.map((s) => `missing_${s.toLowerCase()}`),
  'kev_missing',
  'failed',
  'oldest_missing_days',
  'last_seen',
  'last_install',
  'reboot_pending',
  'stale',
] as const;

export const UPDATE_COLUMNS = [
  'client',
  'period',
  'device',
  'release',
  'update',
  'kb',
  'title',
  'severity',
  'cves',
  'kev',
  'released_at',
  'approved_at',
  'approved_by',
  'status',
  'installed_at',
  'attempts',
  'last_error',
  'age_days',
] as const;

export function devicesCsv(report: ComplianceReport): string {
  const rows = report.devices.map((d) => ({
    client: report.client.id,
    period: report.period.id,
    device: d.device,
    ring: d.ring,
    class: d.class,
    os: d.os ?? '',
    compliant: yesNo(d.compliant),
    excluded: d.excluded ?? '',
    ...Object.fromEntries(SEVERITIES.map((s) => [`missing_${s.toLowerCase()}`, d.missingBySeverity[s]])),
    kev_missing: d.kevMissing,
    failed: d.failed,
    oldest_missing_days: d.oldestMissingDays ?? '',
    last_seen: d.lastSeen ?? '',
    last_install: d.lastInstall ?? '',
    reboot_pending: yesNo(d.rebootPending),
    stale: yesNo(d.stale),
  }));
  return csv(rows, DEVICE_COLUMNS);
}

export function updatesCsv(report: ComplianceReport): string {
  const rows = report.updates.map((u) => ({
    client: report.client.id,
    period: report.period.id,
    device: u.device,
    release: u.releaseId,
    update: u.updateKey,
    kb: u.kb ?? '',
    title: u.title ?? '',
    severity: u.severity,
    cves: u.cves.join(' '),
    kev: yesNo(u.kev),
    released_at: u.releasedAt,
    approved_at: u.approvedAt,
    approved_by: u.approvedBy,
    status: u.status,
    installed_at: u.installedAt ?? '',
    attempts: u.attempts,
    last_error: u.lastError ?? '',
    age_days: u.ageDays,
  }));
  return csv(rows, UPDATE_COLUMNS);
}

/** File names carry client and period so `--client all` into one folder never overwrites. */
export function reportBaseName(report: ComplianceReport): string {
  return `compliance-${safeName(report.client.id)}-${safeName(report.period.id)}`;
}

export function reportFiles(report: ComplianceReport, format: ReportFormat): ReportFile[] {
  const base = reportBaseName(report);
  if (format === 'json') return [{ name: `${base}.json`, content: `${JSON.stringify(report, null, 2)}\n` }];
  return [
    { name: `${base}-devices.csv`, content: devicesCsv(report) },
    { name: `${base}-updates.csv`, content: updatesCsv(report) },
  ];
}

function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, '_');
}
