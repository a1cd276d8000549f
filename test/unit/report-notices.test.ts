// The report notice family's Slack side: the weekly KEV list (oldest first as given, capped, escaped) and that a
// client's report becomes a summary and a files row threaded under it, the files row naming the archive key only.
import { describe, expect, it } from 'vitest';
import { KEV_LIST_MAX, renderReportNotice } from '../../src/chat/notices/reports.ts';
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
});
