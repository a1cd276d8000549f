// The device sync's notices (issue 15): one post per sync that changed something, in the engineers' channel, with
// its key and subject the stored format says; a failure said with its (already redacted) cause.
import { describe, expect, it } from 'vitest';
import { renderNotice } from '../../src/chat/notices.ts';
import type { Audiences } from '../../src/chat/audiences.ts';

const audiences: Audiences = { engineers: { channel: 'C0ENGINEERS' }, mspZone: 'UTC', clientName: (id) => id, personName: (id) => id };
const at = '2024-02-14T12:00:00.000Z';
const none = { added: [], retired: [], restored: [], unmapped: [], unlinked: [], problems: [] };

describe('device sync notices', () => {
  it('lists what changed, one line per kind, escaped, in one post keyed by the sync', () => {
    const rows = renderNotice(
      {
        kind: 'device_sync_changed',
        at,
        ...none,
        added: ['contoso/CON-PC-09'],
        retired: ['CON-OLD-01'],
        unmapped: [{ client: 'contoso', device: 'CON-LNX-01', os: 'Ubuntu <22.04>' }],
        unlinked: [{ client: 'contoso', device: 'CON-PC-02', username: 'CONTOSO\\sam', why: 'ambiguous' }],
        problems: ['contoso: "x" & more'],
      },
      audiences,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ key: `device-sync:${at}`, subject: `device-sync:${at}`, channel: 'C0ENGINEERS', action: 'post' });
    expect(rows[0]!.payload.text.split('\n')).toEqual([
      'Devices synced from Tactical RMM:',
      '• new agents, added as ring broad (1): contoso/CON-PC-09',
      '• retired (no longer in Tactical) (1): CON-OLD-01',
      '• OS names MSRC does not name, so nothing is planned for them (1): contoso/CON-LNX-01 "Ubuntu &lt;22.04&gt;"',
      '• logged-in users linked to nobody (no "save your work" DM until the inventory names the user) (1): contoso/CON-PC-02 CONTOSO\\sam (matches more than one person)',
      '• problems (1): contoso: "x" &amp; more',
    ]);
  });

  it('names NinjaOne when the sync read it, with the same key; a failure too', () => {
    const [row] = renderNotice({ kind: 'device_sync_changed', at, manager: 'NinjaOne', ...none, added: ['contoso/CON-PC-09'], restored: ['CON-OLD-01'] }, audiences);
    expect(row).toMatchObject({ key: `device-sync:${at}`, subject: `device-sync:${at}` });
    expect(row!.payload.text.split('\n')).toEqual(['Devices synced from NinjaOne:', '• new devices, added as ring broad (1): contoso/CON-PC-09', '• back in NinjaOne (1): CON-OLD-01']);
    const [failed] = renderNotice({ kind: 'device_sync_failed', since: at, error: 'HTTP 401', manager: 'NinjaOne' }, audiences);
    expect(failed!.payload.text).toMatch(/^:warning: The device sync could not read NinjaOne \(HTTP 401\)\. .* none is retired while NinjaOne cannot be read\./);
  });

  it('cuts a long list short and says how many more', () => {
    const added = Array.from({ length: 40 }, (_, i) => `contoso/PC-${String(i).padStart(2, '0')}`);
    const text = renderNotice({ kind: 'device_sync_changed', at, ...none, added }, audiences)[0]!.payload.text;
    expect(text).toContain('(40): contoso/PC-00,');
    expect(text).toContain('contoso/PC-14 and 25 more');
    expect(text).not.toContain('PC-15');
  });

  it('says a list that emptied is fixed', () => {
    expect(renderNotice({ kind: 'device_sync_changed', at, ...none }, audiences)[0]!.payload.text).toBe('Devices synced from Tactical RMM:\n• everything listed before is fixed.');
  });

  it('says a failed sync once, keyed by when the failing began, and that nothing was retired', () => {
    const [row] = renderNotice({ kind: 'device_sync_failed', since: at, error: 'Tactical RMM GET /agents/: HTTP 503' }, audiences);
    expect(row).toMatchObject({ key: `device-sync-failed:${at}`, subject: `device-sync-failed:${at}` });
    expect(row!.payload.text).toMatch(/could not read Tactical RMM \(Tactical RMM GET \/agents\/: HTTP 503\)\. Devices are left as they were: none is retired/);
  });

  it('renders nothing before an engineers’ channel is configured', () => {
    expect(renderNotice({ kind: 'device_sync_failed', since: at, error: 'x' }, { ...audiences, engineers: undefined })).toEqual([]);
  });
});
