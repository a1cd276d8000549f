// The rollout engine's notices as data: each renders to the outbox row the engine wrote before notices were data
// (keys and subjects key stored rows, so they are pinned here byte for byte).
import { describe, expect, it } from 'vitest';
import type { Audiences } from '../../src/chat/audiences.ts';
import { renderNotice } from '../../src/chat/notices.ts';
import { windowEditKey, type RolloutNotice } from '../../src/chat/notices/rollout.ts';
import { progressMessage, summaryMessage } from '../../src/chat/slack/window-blocks.ts';
import { escapeMrkdwn } from '../../src/chat/slack/block-kit.ts';
import type { WindowTally } from '../../src/domain/window-report.ts';

const audiences: Audiences = {
  engineers: { channel: 'C0ENG' },
  mspZone: 'UTC',
  clientName: (id: string) => (id === 'acme' ? 'Acme <Dental>' : id),
  personName: (id: string) => id,
};
const noChannel: Audiences = { ...audiences, engineers: undefined };

const tally: WindowTally = {
  who: 'acme',
  name: 'Acme Dental',
  windowStart: '2024-02-14T07:00:00.000Z',
  windowEnd: '2024-02-14T11:00:00.000Z',
  counts: { succeeded: 3, running: 1 },
  updated: [{ device: 'ACD-01', updates: ['5034765'] }],
  failed: [],
  rolled: [],
  rollReasons: {},
  rebootedTwice: [],
};
const at = '2024-02-14T08:00:00.000Z';
const progress = (first: boolean, closing = false, counted = tally): RolloutNotice =>
  ({ kind: 'window_progress', channel: 'C0ACME', tally: counted, zone: 'America/Chicago', at, closing, first });

describe('rollout notices', () => {
  it('posts a window’s first progress message, keyed per channel, and renders it at the tally’s time', () => {
    expect(renderNotice(progress(true), audiences)).toEqual([
      {
        key: 'window:acme:2024-02-14T07:00Z:C0ACME:post',
        channel: 'C0ACME',
        action: 'post',
        subject: 'window:acme:2024-02-14T07:00Z',
        payload: { ...progressMessage(tally, 'America/Chicago', false) },
      },
    ]);
  });

  it('edits it under a key per tally, and once more under a final key when the window closes', () => {
    const [edit] = renderNotice(progress(false), audiences);
    expect(edit).toMatchObject({ action: 'update', subject: 'window:acme:2024-02-14T07:00Z', channel: 'C0ACME' });
    expect(edit!.key).toMatch(/^window:acme:2024-02-14T07:00Z:C0ACME:[0-9a-f]{12}$/);
    expect(edit!.key).toBe(windowEditKey('C0ACME', tally, false));
    const moved = { ...tally, counts: { succeeded: 4 } };
    expect(windowEditKey('C0ACME', moved, false)).not.toBe(edit!.key);
    const [final] = renderNotice(progress(false, true), audiences);
    expect(final).toMatchObject({ key: 'window:acme:2024-02-14T07:00Z:C0ACME:final', action: 'update' });
    expect(final!.payload).toEqual({ ...progressMessage(tally, 'America/Chicago', true) });
  });

  it('posts the summary under the window’s progress message', () => {
    expect(renderNotice({ kind: 'window_summary', channel: 'C0ENG', tally, zone: 'UTC' }, noChannel)).toEqual([
      {
        key: 'window:acme:2024-02-14T07:00Z:C0ENG:summary',
        channel: 'C0ENG',
        action: 'post',
        subject: 'window-summary:acme:2024-02-14T07:00Z',
        payload: { ...summaryMessage(tally, 'UTC'), threadSubject: 'window:acme:2024-02-14T07:00Z' },
      },
    ]);
  });

  it('tells the engineers’ thread what ring msp could not test, with the skip that fits', () => {
    const [row] = renderNotice({ kind: 'updates_untested', releaseId: '2024-Feb', ring: 'msp', clientId: null, waitsFor: 'own_ring', keys: ['k1', 'k2'], kbs: ['KB1', 'k2'] }, audiences);
    expect(row).toEqual({
      key: 'rollout:2024-Feb:untested:msp:msp:k1+k2',
      channel: 'C0ENG',
      action: 'post',
      subject: 'rollout:2024-Feb:untested:msp:msp:k1+k2',
      payload: {
        text: '2024-Feb: KB1, k2 did not install on our own machines (ring msp): none of them runs it, or it failed. It waits there until an engineer skips the ring for it (`/patch skip msp KB1`, `/patch skip msp k2`) or it installs.',
        threadSubject: 'digest:2024-Feb',
      },
    });
  });

  it('names the client, escaped, for a pilot, and tells updates waiting at ring msp for its OS apart', () => {
    const [own] = renderNotice({ kind: 'updates_untested', releaseId: '2024-Feb', ring: 'pilot', clientId: 'acme', waitsFor: 'own_ring', keys: ['k1'], kbs: ['KB1'] }, audiences);
    expect(own!.subject).toBe('rollout:2024-Feb:untested:pilot:acme:k1');
    expect(own!.payload.text).toContain('Acme &lt;Dental&gt;\'s pilot machines');
    expect(own!.payload.text).toContain('`/patch skip pilot KB1 acme`');
    const [os] = renderNotice({ kind: 'updates_untested', releaseId: '2024-Feb', ring: 'pilot', clientId: 'acme', waitsFor: 'msp_os', keys: ['k1', 'k3'], kbs: ['KB1', 'KB3'] }, audiences);
    expect(os).toMatchObject({ key: 'rollout:2024-Feb:untested:msp-os:acme:k1+k3', subject: 'rollout:2024-Feb:untested:msp-os:acme:k1+k3' });
    expect(os!.payload.text).toBe(
      "2024-Feb: KB1, KB3 installed on our own machines, but on none running the OS of Acme &lt;Dental&gt;'s pilot machines, so it does not go to them: it waits until it installs on an MSP machine running that OS, or an engineer skips ring msp for it (`/patch skip msp KB1`, `/patch skip msp KB3`).",
    );
  });

  it('flags a device that keeps missing its windows to the engineers, once per window', () => {
    const notice: RolloutNotice = { kind: 'device_flagged', deviceId: 7, deviceName: 'ACD_01', clientId: null, windowStart: '2024-02-14T07:00:00.000Z', missed: 3 };
    expect(renderNotice(notice, audiences)).toEqual([
      {
        key: 'device-flagged:7:2024-02-14T07:00:00.000Z',
        channel: 'C0ENG',
        action: 'post',
        subject: 'device-flagged:7:2024-02-14T07:00:00.000Z',
        payload: { text: `${escapeMrkdwn('ACD_01')} (our own machines) has missed 3 maintenance windows in a row: it needs a look.` },
      },
    ]);
  });

  it('writes nothing for the engineers before their channel is configured', () => {
    expect(renderNotice({ kind: 'device_flagged', deviceId: 7, deviceName: 'x', clientId: 'acme', windowStart: 'w', missed: 3 }, noChannel)).toEqual([]);
    expect(renderNotice({ kind: 'updates_untested', releaseId: 'R', ring: 'msp', clientId: null, waitsFor: 'own_ring', keys: ['k'], kbs: ['k'] }, noChannel)).toEqual([]);
  });
});
