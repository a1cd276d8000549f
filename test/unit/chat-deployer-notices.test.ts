// The device manager's notices as data: an outage and its end (channel post, then a reply under it) and a refused
// device (in the release's thread), rendered purely, with subjects that are a stored format from now on.
import { describe, expect, it } from 'vitest';
import { renderNotice } from '../../src/chat/notices.ts';
import { subjects } from '../../src/chat/subjects.ts';
import type { Audiences } from '../../src/chat/audiences.ts';

const audiences: Audiences = {
  engineers: { channel: 'C0ENGINEERS' },
  mspZone: 'America/Chicago',
  clientName: (id: string) => (id === 'acme' ? 'Acme <Dental> & Co' : id),
  personName: (id: string) => id,
};
const outage = { backend: 'tactical', manager: 'Tactical RMM', host: 'rmm.example.com', since: '2024-02-14T08:14:00.000Z', reason: 'HTTP 503' };

describe('device manager notices', () => {
  it('pins the new subjects byte for byte', () => {
    expect(subjects.deployerOutage('tactical', 'rmm.example.com', '2024-02-14T08:14:00.000Z')).toBe('deployer-outage:tactical:rmm.example.com:2024-02-14T08:14:00.000Z');
    expect(subjects.deviceRefused('2024-Feb', 'PC-1')).toBe('device-refused:2024-Feb:PC-1');
    expect(subjects.deviceRefused(null, 'PC-1')).toBe('device-refused:none:PC-1');
  });

  it('an outage is one channel post in the MSP\'s time; its end a reply under it', () => {
    const [down] = renderNotice({ kind: 'deployer_unavailable', ...outage }, audiences);
    expect(down).toEqual({
      key: 'deployer-outage:tactical:rmm.example.com:2024-02-14T08:14:00.000Z',
      channel: 'C0ENGINEERS',
      action: 'post',
      subject: 'deployer-outage:tactical:rmm.example.com:2024-02-14T08:14:00.000Z',
      payload: { text: 'Tactical RMM at rmm.example.com has not answered since 02:14 CST (HTTP 503); runs are paused, nothing was marked failed.' },
    });
    const [back] = renderNotice({ kind: 'deployer_answering', ...outage, at: '2024-02-14T09:02:00.000Z' }, audiences);
    expect(back).toMatchObject({ key: `${down!.subject}:answering`, subject: `${down!.subject}:answering`, payload: { threadSubject: down!.subject } });
    expect(back!.payload.text).toMatch(/^Tactical RMM at rmm\.example\.com answers again since 03:02 CST; paused runs carry on/);
  });

  it('a refused device goes to its release thread, naming its client as people read it and the reason as given', () => {
    const why = 'refused: Tactical RMM would act on its own on PC-1: its effective patch policy has critical: approve (auto-approves critical updates). Set the agent\'s policy to manual approval, no install days and reboot_after_install never (patchbay devices check --fix does it).';
    const [row] = renderNotice({ kind: 'device_refused', releaseId: '2024-Feb', device: 'PC-1', clientId: 'acme', why }, audiences);
    expect(row).toMatchObject({ key: 'device-refused:2024-Feb:PC-1', subject: 'device-refused:2024-Feb:PC-1', payload: { threadSubject: 'digest:2024-Feb' } });
    expect(row!.payload.text).toContain('2024-Feb: patchbay left PC-1 (Acme &lt;Dental&gt; &amp; Co) alone, nothing installed: refused: Tactical RMM would act on its own on PC-1');
    expect(row!.payload.text).toContain('patchbay devices check --fix');
  });

  it('says nothing before an engineers\' channel is configured', () => {
    const none = { ...audiences, engineers: undefined };
    expect(renderNotice({ kind: 'deployer_unavailable', ...outage }, none)).toEqual([]);
    expect(renderNotice({ kind: 'device_refused', releaseId: null, device: 'PC-1', clientId: null, why: 'refused' }, none)).toEqual([]);
  });
});
