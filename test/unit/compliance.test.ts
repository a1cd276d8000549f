/**
 * The compliance model on small hand-built facts: each status, the device verdict, the summary, and the CSV's
 * spreadsheet safety (read back with csv-parse).
 */
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import {
  ageBucket,
  complianceReport,
  DEFAULT_POLICY,
  type ComplianceInput,
  type ComplianceUpdate,
  type RunFact,
} from '../../src/domain/compliance.ts';
import { devicesCsv, updatesCsv } from '../../src/reports/report-format.ts';
import { judgedAt, monthPeriod, rangePeriod } from '../../src/domain/report-period.ts';

const W11 = 'Windows 11 Version 23H2 for x64-based Systems';
const S22 = 'Windows Server 2022';
const products = [{ id: 'P11', name: W11, family: 'Windows' }];

function update(key: string, extra: Partial<ComplianceUpdate> = {}): ComplianceUpdate {
  return { releaseId: '2026-Nov', key, kb: key, title: `Update ${key}`, releasedAt: '2026-11-10T18:00:00.000Z', products, severity: 'Important', cves: [], kev: false, supersedes: [], ...extra };
}

function run(deviceId: number, updates: string[], state: string, finishedAt: string, extra: Partial<RunFact> = {}): RunFact {
  return { deviceId, releaseId: '2026-Nov', updates, state, result: state === 'succeeded' ? 'verified' : state, error: null, startedAt: finishedAt, finishedAt, ...extra };
}

function input(extra: Partial<ComplianceInput> = {}): ComplianceInput {
  return {
    client: { id: 'acme', name: 'Acme' },
    period: { id: '2026-Nov', from: '2026-11-01T00:00:00.000Z', to: '2026-12-01T00:00:00.000Z' },
    asOf: '2026-11-30T23:59:59.999Z',
    policy: DEFAULT_POLICY,
    devices: [
      { id: 1, name: 'PC-1', ring: 'broad', class: 'desktop', os: W11 },
      { id: 2, name: 'PC-2', ring: 'broad', class: 'desktop', os: W11 },
      { id: 3, name: 'SRV-1', ring: 'broad', class: 'server', os: S22 },
    ],
    updates: [update('KB1', { severity: 'Critical', kev: true }), update('KB2')],
    approvals: [{ releaseId: '2026-Nov', updateKey: null, kind: 'approve', actor: 'U_ENG', at: '2026-11-11T15:00:00.000Z' }],
    runs: [],
    holds: [],
    deferrals: [],
    ...extra,
  };
}

const statusOf = (report: ReturnType<typeof complianceReport>, device: string, key: string) => report.updates.find((u) => u.device === device && u.updateKey === key)?.status;

describe('compliance model', () => {
  it('installed only from a verified run; a failed latest run is failed with its error; nothing run is missing', () => {
    const report = complianceReport(
      input({
        runs: [
          run(1, ['KB1', 'KB2'], 'succeeded', '2026-11-12T08:00:00.000Z'),
          run(2, ['KB1', 'KB2'], 'failed', '2026-11-12T08:00:00.000Z', { error: '0x80070005 access denied' }),
          run(2, ['KB1'], 'running', '2026-11-29T08:00:00.000Z', { finishedAt: null }),
        ],
      }),
    );
    expect(statusOf(report, 'PC-1', 'KB1')).toBe('installed');
    expect(report.updates.find((u) => u.device === 'PC-1' && u.updateKey === 'KB1')?.installedAt).toBe('2026-11-12T08:00:00.000Z');
    expect(statusOf(report, 'PC-2', 'KB2')).toBe('failed');
    expect(report.updates.find((u) => u.device === 'PC-2' && u.updateKey === 'KB1')).toMatchObject({ status: 'failed', attempts: 2, lastError: '0x80070005 access denied' });
    expect(statusOf(report, 'SRV-1', 'KB1')).toBe('not applicable');
    expect(report.summary.statusCounts).toMatchObject({ installed: 2, failed: 2, missing: 0, 'not applicable': 2 });
    expect(report.summary.patchInstallationPct).toBe(50);
    expect(report.failedInstalls.map((f) => [f.device, f.updateKey, f.error])).toEqual([
      ['PC-2', 'KB1', '0x80070005 access denied'],
      ['PC-2', 'KB2', '0x80070005 access denied'],
    ]);
  });

  it('a device is compliant with everything past grace installed and no reboot pending; KEV and SLA come from what is outstanding', () => {
    const report = complianceReport(
      input({
        runs: [
          run(1, ['KB1', 'KB2'], 'succeeded', '2026-11-12T08:00:00.000Z'),
          run(2, ['KB1', 'KB2'], 'failed', '2026-11-12T08:00:00.000Z', { result: 'reboot_limit', error: 'still asks for a reboot' }),
        ],
      }),
    );
    const [pc1, pc2, srv] = report.devices;
    expect(pc1).toMatchObject({ device: 'PC-1', compliant: true, rebootPending: false, lastInstall: '2026-11-12T08:00:00.000Z', oldestMissingDays: null });
    expect(pc2).toMatchObject({ device: 'PC-2', compliant: false, rebootPending: true, kevMissing: 1, oldestMissingDays: 20 });
    expect(pc2!.missingBySeverity).toMatchObject({ Critical: 1, Important: 1 });
    // Nothing applies to the server: nothing outstanding, but no run ever found it online, so it is stale.
    expect(srv).toMatchObject({ compliant: true, stale: true, lastSeen: null });
    // 20 days old on 30 Nov: past the critical clock (15), inside the important one (30).
    expect(report.slaBreaches).toEqual([{ device: 'PC-2', updateKey: 'KB1', kb: 'KB1', severity: 'Critical', ageDays: 20, limitDays: 15 }]);
    expect(report.summary).toMatchObject({ devicesInScope: 3, compliantDevices: 2, deviceCompliancePct: 66.7, kevMissing: 1, rebootPending: 1, staleDevices: 1 });
    expect(report.summary.missingByAge).toEqual({ '0-14': 0, '15-30': 2, '31-60': 0, '61-90': 0, '>90': 0 });
    expect(report.policy.note).toMatch(/not law/);
  });

  it('a missing update inside the grace period does not make a device non-compliant', () => {
    const report = complianceReport(input({ asOf: '2026-11-20T00:00:00.000Z' }));
    expect(report.devices.map((d) => d.compliant)).toEqual([true, true, true]);
    expect(report.summary.statusCounts.missing).toBe(4);
    expect(complianceReport(input({ policy: { ...DEFAULT_POLICY, graceDays: 5 }, asOf: '2026-11-20T00:00:00.000Z' })).summary.compliantDevices).toBe(1);
  });

  it('holds and deferrals in force are exceptions; released ones are not', () => {
    const report = complianceReport(
      input({
        holds: [
          { scope: 'update', releaseId: '2026-Nov', updateKey: 'KB2', clientId: 'acme', ring: null, reason: 'breaks the PACS viewer', placedBy: 'U_ENG', placedAt: '2026-11-11T16:00:00.000Z', releasedAt: null },
          { scope: 'client', releaseId: null, updateKey: null, clientId: 'acme', ring: null, reason: 'audit week', placedBy: 'U_ENG', placedAt: '2026-11-01T00:00:00.000Z', releasedAt: '2026-11-05T00:00:00.000Z' },
        ],
        deferrals: [{ deviceId: 1, releaseId: '2026-Nov', by: 'U_USER', at: '2026-11-28T15:00:00.000Z', until: '2026-12-02T07:00:00.000Z' }],
      }),
    );
    expect(statusOf(report, 'PC-1', 'KB1')).toBe('deferred');
    expect(statusOf(report, 'PC-1', 'KB2')).toBe('held');
    expect(statusOf(report, 'PC-2', 'KB1')).toBe('missing');
    expect(report.exceptions.map((e) => [e.kind, e.reason, e.by, e.since, e.until])).toEqual([
      ['held', 'breaks the PACS viewer', 'U_ENG', '2026-11-11T16:00:00.000Z', null],
      ['deferred', "the device's user deferred it", 'U_USER', '2026-11-28T15:00:00.000Z', '2026-12-02T07:00:00.000Z'],
    ]);
  });

  it('a missing update replaced by an installed one is superseded; an unapproved or withdrawn update is not in the report', () => {
    const report = complianceReport(
      input({
        updates: [update('KB1'), update('KB2', { supersedes: ['KB1'] }), update('KB3', { releaseId: '2026-Oct' })],
        approvals: [
          { releaseId: '2026-Nov', updateKey: null, kind: 'approve', actor: 'U_ENG', at: '2026-11-11T15:00:00.000Z' },
          { releaseId: '2026-Nov', updateKey: 'KB1', kind: 'withdraw', actor: 'U_ENG', at: '2026-11-11T16:00:00.000Z' },
          { releaseId: '2026-Nov', updateKey: 'KB1', kind: 'approve', actor: 'U_ENG', at: '2026-11-11T17:00:00.000Z' },
        ],
        runs: [run(1, ['KB2'], 'succeeded', '2026-11-12T08:00:00.000Z')],
      }),
    );
    expect(statusOf(report, 'PC-1', 'KB1')).toBe('superseded');
    expect(statusOf(report, 'PC-2', 'KB1')).toBe('missing');
    expect(report.updates.some((u) => u.updateKey === 'KB3')).toBe(false);
    const withdrawn = complianceReport(input({ approvals: [...input().approvals, { releaseId: '2026-Nov', updateKey: 'KB2', kind: 'withdraw', actor: 'U_ENG', at: '2026-11-12T00:00:00.000Z' }] }));
    expect(withdrawn.updates.map((u) => u.updateKey)).not.toContain('KB2');
  });

  it('a device with no OS is excluded, with the reason, and not counted in compliance', () => {
    const report = complianceReport(input({ devices: [...input().devices, { id: 4, name: 'MYSTERY', ring: 'broad', class: 'desktop', os: null }] }));
    expect(report.summary).toMatchObject({ devicesInScope: 3, devicesExcluded: 1 });
    expect(report.exceptions).toContainEqual(expect.objectContaining({ kind: 'excluded', subject: 'MYSTERY' }));
  });

  it('age buckets', () => {
    expect([0, 14, 15, 30, 31, 60, 61, 90, 91].map(ageBucket)).toEqual(['0-14', '0-14', '15-30', '15-30', '31-60', '31-60', '61-90', '61-90', '>90']);
  });
});

describe('periods', () => {
  it('a month, a range, and the instant each is judged at', () => {
    expect(monthPeriod('2026-dec')).toEqual({ ok: true, period: { id: '2026-Dec', from: '2026-12-01T00:00:00.000Z', to: '2027-01-01T00:00:00.000Z' } });
    expect(monthPeriod('2026-13').ok).toBe(false);
    expect(rangePeriod('2026-11-01', '2026-11-30')).toMatchObject({ ok: true, period: { to: '2026-12-01T00:00:00.000Z' } });
    expect(rangePeriod('2026-11-30', '2026-11-01').ok).toBe(false);
    const nov = (monthPeriod('2026-Nov') as { period: Parameters<typeof judgedAt>[0] }).period;
    expect(judgedAt(nov, new Date('2027-03-01T00:00:00Z')).toISOString()).toBe('2026-11-30T23:59:59.999Z');
    expect(judgedAt(nov, new Date('2026-11-15T00:00:00Z')).toISOString()).toBe('2026-11-15T00:00:00.000Z');
  });
});

describe('CSV', () => {
  it('is RFC 4180 with CRLF, re-reads to the model, and escapes formula-looking cells', () => {
    const report = complianceReport(
      input({
        devices: [{ id: 1, name: '=HYPERLINK("http://x")', ring: 'broad', class: 'desktop', os: W11 }],
        runs: [run(1, ['KB1'], 'failed', '2026-11-12T08:00:00.000Z', { error: '@SUM(1,2)\r\n"quoted", and more' })],
      }),
    );
    const devices = devicesCsv(report);
    expect(devices).toContain('\r\n');
    const deviceRows = parse(devices, { columns: true }) as Array<Record<string, string>>;
    expect(deviceRows).toHaveLength(1);
    expect(deviceRows[0]).toMatchObject({ device: `'=HYPERLINK("http://x")`, compliant: 'no', missing_critical: '1', missing_important: '1' });
    const updateRows = parse(updatesCsv(report), { columns: true }) as Array<Record<string, string>>;
    expect(updateRows.map((r) => [r.update, r.status, r.last_error])).toEqual([
      ['KB1', 'failed', `'@SUM(1,2)\r\n"quoted", and more`],
      ['KB2', 'missing', ''],
    ]);
  });
});
