/**
 * Teams champions get report files through signed, expiring links to patchbay's `/reports/file` route: the
 * route serves the archived bytes unchanged for a good link, and refuses a forged, altered or expired one. The
 * champion's card (rendered by the report notice) carries the links and is a valid Adaptive Card.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveReport } from '../../src/db/report-archive-repo.ts';
import { renderReportNotice, type ReportSnapshot } from '../../src/chat/notices/reports.ts';
import { createHttpServer, type HttpServer } from '../../src/runtime/http.ts';
import { REPORT_LINK_PATH, reportDownloadHandler, signReportLink } from '../../src/runtime/report-links.ts';
import { adaptiveCardProblems } from '../support/adaptive-card.ts';
import { openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const BYTES = Buffer.from([0x25, 0x50, 0x44, 0x46, 0, 255, 13, 10]);
let database: TestDatabase;
let http: HttpServer;
let base: string;
let id: number;
let now = new Date('2026-12-01T12:00:00Z');

beforeAll(async () => {
  database = await openTestDatabase();
  id = (await archiveReport(database.db, {
    deliveryKey: 'report:monthly:acme:2026-Nov', clientId: 'acme', periodId: '2026-Nov', kind: 'monthly',
    files: [{ name: 'compliance-acme-2026-Nov.pdf', mimeType: 'application/pdf', format: 'pdf', bytes: BYTES }],
    sentTo: ['teams:19:x'], sentAt: now,
  })).ids[0]!;
  http = createHttpServer({ log: pino({ level: 'silent' }), readiness: [] });
  http.mount(REPORT_LINK_PATH, reportDownloadHandler({ db: database.db, secret: SECRET, now: () => now, log: pino({ level: 'silent' }) }));
  base = `http://127.0.0.1:${await http.listen(0, '127.0.0.1')}/`;
});
afterAll(async () => {
  await http.close();
  await database.close();
});

describe(`report download links (${testBackend()})`, () => {
  it('serves the archived bytes for a good link; refuses a forged, altered or expired one', async () => {
    const link = signReportLink(SECRET, base, id, new Date(now.getTime() + 7 * 86_400_000));
    const res = await fetch(link);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/pdf');
    expect(Buffer.from(await res.arrayBuffer()).equals(BYTES)).toBe(true);

    expect((await fetch(signReportLink('another-secret-that-is-long-enough-012345', base, id, new Date(now.getTime() + 60_000)))).status).toBe(403);
    const other = new URL(link);
    other.searchParams.set('id', String(id + 1));
    expect((await fetch(other)).status).toBe(403);
    const later = new URL(link);
    later.searchParams.set('exp', String(Number(later.searchParams.get('exp')) + 86_400));
    expect((await fetch(later)).status).toBe(403);
    now = new Date(now.getTime() + 7 * 86_400_000);
    const expired = await fetch(link);
    expect(expired.status).toBe(403);
    expect(await expired.text()).toContain('expired');
  });

  it("puts the links on the champion's card, a valid Adaptive Card", () => {
    const report: ReportSnapshot = {
      deliveryKey: 'report:monthly:acme:2026-Nov', kind: 'monthly', clientId: 'acme', periodId: '2026-Nov',
      summary: { devicesInScope: 10, compliantDevices: 8, deviceCompliancePct: 80, patchInstallationPct: 95, missingCritical: 1, missingImportant: 2, kevMissing: 1, slaBreaches: 1, failedInstalls: 1, staleDevices: 0, slaCriticalDays: 15, slaImportantDays: 30 },
      files: [{ name: 'a.pdf', size: 8, url: 'https://patchbay.example/reports/file?id=1&exp=2&sig=x' }],
    };
    const audiences = { engineers: { channel: 'C0ENG' }, mspZone: 'UTC', clientName: () => 'Acme <Dental>', personName: (x: string) => x };
    const items = renderReportNotice({ kind: 'report_sent', report, teamsConversations: ['19:conv'] }, audiences);
    expect(items.map((i) => [i.platform ?? 'slack', i.channel, i.payload.reportFiles ?? null])).toEqual([
      ['slack', 'C0ENG', null],
      ['slack', 'C0ENG', 'report:monthly:acme:2026-Nov'],
      ['teams', '19:conv', null],
    ]);
    const card = items[2]!.payload.card as { actions: Array<{ url: string }> };
    expect(card.actions.map((a) => a.url)).toEqual(['https://patchbay.example/reports/file?id=1&exp=2&sig=x']);
    expect(adaptiveCardProblems(card)).toEqual([]);
    expect(items[0]!.payload.text).toContain('Acme &lt;Dental&gt;');
  });
});
