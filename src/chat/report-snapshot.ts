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
