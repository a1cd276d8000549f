// The report notice family's Slack side: the weekly KEV list (oldest first as given, capped, escaped) and that a
// client's report becomes a summary and a files row threaded under it, the files row naming the archive key only.
import { describe, expect, it } from 'vitest';
import { KEV_LIST_MAX, renderReportNotice, reportSummaryLine } from '../../src/chat/notices/reports.ts';
import { renderReportCard } from '../../src/chat/teams/report-card.ts';
import type { ReportSnapshot } from '../../src/chat/report-snapshot.ts';
import type { Audiences } from '../../src/chat/audiences.ts';

const audiences: Audiences = { engineers: { channel: 'C0ENG' }, mspZone: 'UTC', clientName: (id) => (id === 'acme' ? 'Acme <b>' : id), personName: (x) => x };

describe('report notices', () => {
  it('lists KEV exposures in the order given, escaped, and caps a long list', () => {
    const exposures = Array.from({ length: KEV_LIST_MAX + 5 }, (_, i) => ({ clientId: 'acme', device: `PC-<${i}>`, kb: '5034441', cves: ['CVE-2024-21412'], ageDays: 100 - i }));
    const [item] = renderReportNotice({ kind: 'kev_exposure_weekly', deliveryKey: 'report:kev_weekly:msp:2026-W49', week: '2026-W49', exposures, total: exposures.length }, audiences);
    const lines = item!.payload.text.split('\n');
    expect(lines[0]).toBe(`Week 2026-W49: ${KEV_LIST_MAX + 5} missing updates fix KEV-listed CVEs (oldest first):`);
    expect(lines[1]).toBe('• PC-&lt;0&gt; (Acme &lt;b&gt;): KB5034441 missing 100 days, CVE-2024-21412');
    expect(lines).toHaveLength(KEV_LIST_MAX + 2);
    expect(lines.at(-1)).toContain('and 5 more');
    expect(item!.key).toBe('report:kev_weekly:msp:2026-W49');
  });

  it('says so when nothing is exposed, and sends nothing without an engineers channel', () => {
    const notice = { kind: 'kev_exposure_weekly' as const, deliveryKey: 'k', week: '2026-W49', exposures: [], total: 0 };
    expect(renderReportNotice(notice, audiences)[0]!.payload.text).toBe('Week 2026-W49: no device is exposed to a KEV-listed CVE.');
    expect(renderReportNotice(notice, { ...audiences, engineers: undefined })).toEqual([]);
  });

  it('a report sent on Patch Tuesday says why 100% compliant goes with updates missing and every device stale', () => {
    // Found in the sandbox: "11 of 11 devices compliant (100%) … missing 11 critical … 11 stale devices" read as broken.
    const summary = { devicesInScope: 11, compliantDevices: 11, deviceCompliancePct: 100, patchInstallationPct: 0, missingCritical: 11, missingImportant: 0, kevMissing: 0, slaBreaches: 0, failedInstalls: 0, staleDevices: 11, slaCriticalDays: 15, slaImportantDays: 30 };
    const report: ReportSnapshot = { deliveryKey: 'k', kind: 'on_demand', clientId: 'acme', periodId: '2026-Dec', files: [], summary: { ...summary, outstandingInGrace: 11, graceDays: 14, neverSeenDevices: 11 } };
    const line = reportSummaryLine(report, 'Acme');
    expect(line).toContain('missing 11 critical, 0 important, 0 KEV-listed (11 outstanding updates still within the 14-day grace after Patch Tuesday)');
    expect(line).toContain('11 stale devices (none of them reached by a run yet)');
    const partly = reportSummaryLine({ ...report, summary: { ...report.summary, neverSeenDevices: 3 } }, 'Acme');
    expect(partly).toContain('11 stale devices (3 of them not reached by a run yet)');
    const card = JSON.stringify(renderReportCard(report, 'Acme'));
    expect(card).toContain('within the 14-day grace');
    expect(card).toContain('none of them reached by a run yet');
    // A snapshot sent before these words existed renders as it did.
    expect(reportSummaryLine({ ...report, summary }, 'Acme')).toContain('0 KEV-listed; 0 past');
  });
});
