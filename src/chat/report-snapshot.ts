/** What a sent compliance report said, as the report notice (./notices/reports.ts) and the Teams card carry it. */
import type { ReportKind } from '../domain/report-schedule.ts';

export interface ReportSummarySnapshot {
  devicesInScope: number;
  compliantDevices: number;
  deviceCompliancePct: number | null;
  patchInstallationPct: number | null;
  missingCritical: number;
  missingImportant: number;
  kevMissing: number;
  slaBreaches: number;
  failedInstalls: number;
  staleDevices: number;
  slaCriticalDays: number;
  slaImportantDays: number;
  /**
   * Outstanding updates still within the grace period, and stale devices no run has reached yet: without them a
   * report sent on Patch Tuesday reads "100% compliant, 11 critical missing, 11 stale" and looks broken. Absent in
   * snapshots sent before they were added.
   */
  outstandingInGrace?: number;
  graceDays?: number;
  neverSeenDevices?: number;
}

export interface ReportFileLink {
  name: string;
  size: number;
  /** A signed, expiring download link (Teams); absent where the platform carries the file itself. */
  url?: string;
}

export interface ReportSnapshot {
  deliveryKey: string;
  kind: ReportKind;
  clientId: string;
  periodId: string;
  summary: ReportSummarySnapshot;
  files: readonly ReportFileLink[];
}
