/**
 * The compliance PDF and chart renderers (src/reports/) on a hand-built report: the PDF is read back with pdfjs and
 * its summary numbers are the model's, its fonts are embedded, its bytes do not depend on the wall clock, and
 * hostile text (formula-like, right-to-left, 300 characters without a space) stays inside its column. The chart
 * PNG decodes to the size Vega-Lite laid out and is not blank.
 */
import { inflateSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { evidenceAppendix, type EvidenceAppendix } from '../../src/domain/compliance-evidence.ts';
import { complianceHistory, historyPeriods, type ComplianceHistory } from '../../src/domain/compliance-history.ts';
import { complianceReport, DEFAULT_POLICY, type ComplianceDevice, type ComplianceReport, type RunFact } from '../../src/domain/compliance.ts';
import { monthPeriod } from '../../src/domain/report-period.ts';
import { renderComplianceChartPng, renderComplianceChartSvg } from '../../src/reports/chart.ts';
import { renderReportPdf } from '../../src/reports/pdf.ts';
import { headlineValue, pngSize, readPdf, type ReadPdf } from '../support/pdf-reader.ts';

const W11 = 'Windows 11 Version 23H2 for x64-based Systems';
const LONG = `WS-${'ABCDEFGHIJ'.repeat(30)}`;
const FORMULA = `=HYPERLINK("http://evil.example","click")`;
const RTL = 'מחשב-קבלה-عيادة-الاستقبال';
const NOW = new Date('2026-12-02T09:00:00.000Z');

function fixture(): ComplianceReport {
  const devices: ComplianceDevice[] = [LONG, FORMULA, RTL, ...Array.from({ length: 90 }, (_, i) => `PC-${String(i).padStart(3, '0')}`)].map((name, i) => ({ id: i + 1, name, ring: 'broad', class: 'desktop', os: W11 }));
  const runs: RunFact[] = devices.flatMap((d): RunFact[] => {
    if (d.id % 3 === 0) return [{ deviceId: d.id, releaseId: '2026-Nov', updates: ['KB1', 'KB2'], state: 'succeeded', result: 'verified', error: null, startedAt: '2026-11-20T07:00:00.000Z', finishedAt: '2026-11-20T07:40:00.000Z' }];
    if (d.id % 3 === 1) return [{ deviceId: d.id, releaseId: '2026-Nov', updates: ['KB1', 'KB2'], state: 'failed', result: 'install_failed', error: `0x80070005 ${'access denied while staging the package '.repeat(8)}`, startedAt: '2026-11-20T07:00:00.000Z', finishedAt: '2026-11-20T07:30:00.000Z' }];
    return [];
  });
  const products = [{ id: 'P11', name: W11, family: 'Windows' }];
  return complianceReport({
    client: { id: 'acme', name: 'Acme Dental' },
    period: (monthPeriod('2026-Nov') as { ok: true; period: ComplianceReport['period'] }).period,
    asOf: '2026-11-30T23:59:59.999Z',
    policy: DEFAULT_POLICY,
    devices,
    updates: [
      { releaseId: '2026-Nov', key: 'KB1', kb: '1', title: 'Cumulative', releasedAt: '2026-11-10T18:00:00.000Z', products, severity: 'Critical', cves: ['CVE-2026-1'], kev: true, supersedes: [] },
      { releaseId: '2026-Nov', key: 'KB2', kb: '2', title: '.NET', releasedAt: '2026-11-10T18:00:00.000Z', products, severity: 'Important', cves: [], kev: false, supersedes: [] },
      { releaseId: '2026-Oct', key: 'KB3', kb: '3', title: 'Old', releasedAt: '2026-10-14T17:00:00.000Z', products, severity: 'Moderate', cves: [], kev: false, supersedes: [] },
    ],
    approvals: [
      { releaseId: '2026-Nov', updateKey: null, kind: 'approve', actor: 'U_ENG', at: '2026-11-11T15:00:00.000Z' },
      { releaseId: '2026-Oct', updateKey: null, kind: 'approve', actor: 'U_ENG', at: '2026-10-15T15:00:00.000Z' },
    ],
    runs,
    holds: [{ scope: 'update', releaseId: '2026-Oct', updateKey: 'KB3', clientId: 'acme', ring: null, reason: `${FORMULA} breaks the PACS viewer`, placedBy: 'U_ENG', placedAt: '2026-10-20T10:00:00.000Z', releasedAt: null }],
    deferrals: [],
  });
}

function evidence(report: ComplianceReport): EvidenceAppendix {
  return evidenceAppendix({
    decisions: [{ kind: 'approve', releaseId: '2026-Nov', updateKey: null, ring: null, device: null, actor: 'U_ENG', actorName: 'Erin Engineer', source: 'slack', reason: null, at: '2026-11-11T15:00:00.000Z' }],
    holds: [{ scope: 'update', releaseId: '2026-Oct', updateKey: 'KB3', ring: null, reason: 'breaks the PACS viewer', placedBy: 'U_ENG', placedAt: '2026-10-20T10:00:00.000Z', releasedBy: null, releasedAt: null }],
    signoffs: [{ releaseId: '2026-Nov', confirmedBy: 'champion:U_CHAMP', confirmedByName: 'Dr. Champ', confirmedAt: '2026-11-18T16:00:00.000Z' }],
    runs: report.devices.slice(0, 6).map((d) => ({ device: d.device, releaseId: '2026-Nov', ring: 'broad', windowStart: '2026-11-20T07:00:00.000Z', windowEnd: '2026-11-20T11:00:00.000Z', state: 'succeeded', result: 'verified', reboots: 1, rebootTimes: ['2026-11-20T07:20:00.000Z'], startedAt: '2026-11-20T07:00:00.000Z', finishedAt: '2026-11-20T07:40:00.000Z' })),
  });
}

function history(report: ComplianceReport): ComplianceHistory {
  const pasts = historyPeriods(report.period).map((period, i) => ({ ...report, period, summary: { ...report.summary, devicesInScope: i < 3 ? 0 : 10, deviceCompliancePct: i < 3 ? null : 10 + i * 5, patchInstallationPct: i < 3 ? null : 20 + i * 4 } }));
  return complianceHistory(report, pasts);
}

/** Counts pixels unlike the first one: a blank (all-white) image has none. */
function distinctPixels(png: Buffer): number {
  const chunks: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    if (png.toString('latin1', at + 4, at + 8) === 'IDAT') chunks.push(png.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(chunks));
  let differing = 0;
  for (let i = 1; i < raw.length; i += 97) if (raw[i] !== raw[1]) differing++;
  return differing;
}

describe('compliance PDF', () => {
  let report: ComplianceReport;
  let pdf: Buffer;
  let read: ReadPdf;
  beforeAll(async () => {
    report = fixture();
    pdf = await renderReportPdf(report, { history: history(report), evidence: evidence(report), now: NOW });
    read = await readPdf(pdf);
  }, 60_000);

  it('its summary page carries the model numbers', () => {
    const text = read.pages[0]!.text;
    const s = report.summary;
    expect(s.statusCounts.failed).toBeGreaterThan(0);
    expect(headlineValue(text, 'Devices in scope')).toBe(String(s.devicesInScope));
    expect(headlineValue(text, 'Compliant devices')).toBe(String(s.compliantDevices));
    expect(headlineValue(text, 'Device compliance')).toBe(`${s.deviceCompliancePct!.toFixed(1)}%`);
    expect(headlineValue(text, 'Patch installation')).toBe(`${s.patchInstallationPct!.toFixed(1)}%`);
    expect(headlineValue(text, 'Installs failed')).toBe(String(s.statusCounts.failed));
    expect(headlineValue(text, 'KEV-listed missing')).toBe(String(s.kevMissing));
    expect(headlineValue(text, 'SLA breaches')).toBe(String(s.slaBreaches));
    expect(headlineValue(text, 'Stale devices')).toBe(String(s.staleDevices));
    expect(text).toContain('not law');
  });

  it('embeds its fonts (TrueType programs, no standard font left for the viewer to substitute)', () => {
    expect(read.fontDescriptors).toBeGreaterThanOrEqual(2);
    expect(read.embeddedTrueType).toBe(read.fontDescriptors);
    expect(read.standardFonts).toEqual([]);
  });

  it('has its title and the injected creation date, and the same bytes when rendered again later', async () => {
    expect(read.info.Title).toBe('Patch compliance Acme Dental 2026-Nov');
    expect(String(read.info.CreationDate)).toMatch(/^D:20261202090000/);
    const again = await renderReportPdf(report, { history: history(report), evidence: evidence(report), now: NOW });
    expect(again.equals(pdf)).toBe(true);
  });

  it('paginates the tables with their header on every page, then the appendix', () => {
    expect(read.pages.length).toBeGreaterThanOrEqual(5);
    const devicePages = read.pages.filter((p) => p.text.includes('PC-0'));
    expect(devicePages.length).toBeGreaterThan(2);
    for (const page of devicePages) expect(page.text).toMatch(/Device/);
    const last = read.pages.map((p) => p.text).join('\n');
    expect(last).toContain('Evidence appendix');
    expect(last).toContain('Dr. Champ (champion:U_CHAMP)');
    expect(last).toContain('2026-11-20 07:20');
    // The six runs of one window are one row of the windows table: six devices, six reboots.
    expect(last).toMatch(/2026-11-20 07:00 – 11:00\s+2026-Nov broad\s+6\s+succeeded 6\s+6/);
    expect(read.pages.at(-1)!.text).toContain(`page ${read.pages.length} of ${read.pages.length}`);
  });

  it('keeps formula-like, right-to-left and very long names inside the page, cutting the long one with an ellipsis', () => {
    const all = read.pages.flatMap((p) => p.items.map((item) => ({ ...item, page: p })));
    for (const item of all) {
      expect(item.x).toBeGreaterThanOrEqual(39);
      expect(item.x + item.width).toBeLessThanOrEqual(item.page.width - 39);
      expect(item.y).toBeGreaterThan(0);
    }
    const text = read.pages.map((p) => p.text).join('\n');
    expect(text).toContain('=HYPERLINK(');
    expect(text).not.toContain(LONG);
    expect(text).toMatch(/WS-ABCDEFGHIJ[A-J ]*…/);
    expect(all.some((i) => /[א-ת]/.test(i.str))).toBe(true);
  });
});

describe('compliance chart', () => {
  it('draws with Vega-Lite to SVG and rasterises to a PNG of its size that is not blank', async () => {
    const report = fixture();
    const svg = await renderComplianceChartSvg(history(report));
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('2026-Nov');
    const png = await renderComplianceChartPng(history(report), { scale: 1 });
    const [, width, height] = /width="(\d+)" height="(\d+)"/.exec(svg)!.map(Number);
    expect(pngSize(png)).toEqual({ width, height });
    expect(distinctPixels(png)).toBeGreaterThan(200);
  });
});

describe('history periods', () => {
  it('are the twelve months ending with the report month, or with the month of a range\'s last day', () => {
    const dec = monthPeriod('2026-Dec');
    if (!dec.ok) throw new Error(dec.error);
    const months = historyPeriods(dec.period);
    expect(months.map((p) => p.id)).toEqual(['2026-Jan', '2026-Feb', '2026-Mar', '2026-Apr', '2026-May', '2026-Jun', '2026-Jul', '2026-Aug', '2026-Sep', '2026-Oct', '2026-Nov', '2026-Dec']);
    expect(months.at(-1)).toEqual(dec.period);
    const range = { id: '2026-10-15..2026-11-30', from: '2026-10-15T00:00:00.000Z', to: '2026-12-01T00:00:00.000Z' };
    expect(historyPeriods(range, 2).map((p) => p.id)).toEqual(['2026-Oct', '2026-Nov']);
  });
});
