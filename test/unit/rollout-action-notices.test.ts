// The rollout actions' and the pilot's notices as data: an edit is drawn again from the state it is handed (not
// from the message as stored), so the same state gives the same message whatever edits came before; keys and
// subjects are the stored ones.
import { describe, expect, it } from 'vitest';
import { renderNotice, type Notice } from '../../src/chat/notices.ts';
import type { Audiences } from '../../src/chat/audiences.ts';
import { HOLD_CLIENT_ACTION, PROMOTE_ACTION, RETRY_FAILED_ACTION, summaryMessage } from '../../src/chat/slack/window-blocks.ts';
import type { WindowTally } from '../../src/domain/window-report.ts';
import { PILOT_REPLY_CHAMPION_ACTION } from '../../src/chat/notices/pilot.ts';

const audiences: Audiences = {
  engineers: { channel: 'C0ENGINEERS' },
  mspZone: 'America/Chicago',
  clientName: (id: string) => (id === 'acme' ? 'Acme <Dental>' : id),
  personName: (id: string) => id,
};

const tally: WindowTally = {
  who: 'acme',
  name: 'Acme <Dental>',
  windowStart: '2024-02-16T07:00:00.000Z',
  windowEnd: '2024-02-16T11:00:00.000Z',
  counts: { succeeded: 2, failed: 2 },
  updated: [{ device: 'ACME-PC-00001', updates: ['5034765'] }, { device: 'ACME-PC-00002', updates: ['5034765'] }],
  failed: [{ device: 'ACME-PC-00003', error: 'Install failed', updates: ['5034765'] }, { device: 'ACME-PC-00004', error: 'Install failed', updates: ['5034765'] }],
  rolled: [],
  rollReasons: {},
  rebootedTwice: [],
};

const subject = 'window-summary:acme:2024-02-16T07:00Z';
const hold = { clientId: 'acme', by: { platform: 'slack', id: 'U0PAT' }, at: '2024-02-16T11:10:00.000Z', reason: 'EMR prints blank <@U123>' };
const retry = { by: { platform: 'teams', id: 'sam@msp' }, at: '2024-02-16T11:20:00.000Z', again: 0, laterStarts: ['2024-02-17T07:00:00.000Z', '2024-02-17T07:00:00.000Z'] };

const summary = (over: Partial<Extract<Notice, { kind: 'window_summary_changed' }>>): Notice => ({
  kind: 'window_summary_changed',
  subject,
  channels: ['C0ENGINEERS', 'C0ACME'],
  cause: 'hold:r1',
  tally,
  zone: 'America/Chicago',
  holds: [],
  retries: [],
  retryable: 2,
  ...over,
});

const blocksOf = (n: Notice) => JSON.stringify(renderNotice(n, audiences)[0]!.payload.blocks);

describe('window summary edits', () => {
  it('are one edit per channel the summary is in, keyed by what caused it, drawn from the summary renderer', () => {
    const rows = renderNotice(summary({ holds: [hold] }), audiences);
    expect(rows.map((r) => [r.key, r.channel, r.action, r.subject])).toEqual([
      [`${subject}:C0ENGINEERS:hold:r1`, 'C0ENGINEERS', 'update', subject],
      [`${subject}:C0ACME:hold:r1`, 'C0ACME', 'update', subject],
    ]);
    const fresh = summaryMessage(tally, 'America/Chicago');
    expect(rows[0]!.payload.text).toBe(fresh.text);
    expect(rows[0]!.payload.blocks!.slice(0, 3)).toEqual(fresh.blocks.slice(0, 3));
  });

  it('say who held the client and drop Hold this client, keeping Retry failed while failed runs are left', () => {
    const text = blocksOf(summary({ holds: [hold] }));
    expect(text).toContain('*Acme &lt;Dental&gt; held* by <@U0PAT> at 05:10 CST: EMR prints blank &lt;@U123&gt;');
    expect(text).not.toContain(HOLD_CLIENT_ACTION);
    expect(text).toContain(RETRY_FAILED_ACTION);
    expect(blocksOf(summary({}))).toContain(HOLD_CLIENT_ACTION);
  });

  it('show the hold and the retry in the order they happened, whichever edit comes last', () => {
    const afterRetry = blocksOf(summary({ holds: [hold], retries: [retry], retryable: 0, cause: 'retry_failed:acme:x:0' }));
    expect(afterRetry).toMatch(/held\* by <@U0PAT>.*\*Retry\* by sam@msp at 05:20 CST: 2 in the next window \(from 01:00 CST\)\./);
    expect(afterRetry).not.toContain(RETRY_FAILED_ACTION);
    expect(afterRetry).not.toContain(HOLD_CLIENT_ACTION);
    // The same state drawn for another cause is the same message: nothing depends on what was posted before.
    const again = renderNotice(summary({ holds: [hold], retries: [retry], retryable: 0, cause: 'hold:r2' }), audiences)[0]!;
    expect(JSON.stringify(again.payload.blocks)).toBe(afterRetry);
  });

  it('say a retry that restarted runs now in words', () => {
    expect(blocksOf(summary({ retries: [{ ...retry, again: 1, laterStarts: [] }] }))).toContain('1 running again now.');
  });
});

describe('promotion edit', () => {
  it('draws the offer again as promoted: the line, no Promote button, the stored key and subject', () => {
    const notice: Notice = {
      kind: 'promotion_made',
      releaseId: '2024-Feb',
      channels: ['C0ENGINEERS'],
      promotionId: 'promote:2024-Feb:abc',
      by: { platform: 'slack', id: 'U0PAT' },
      at: '2024-02-14T15:31:00.000Z',
      updates: ['5034765'],
      labels: ['KB5034765'],
      pilotsScheduled: 1,
    };
    const [row] = renderNotice(notice, audiences);
    expect(row).toMatchObject({ key: 'rollout:2024-Feb:promote:C0ENGINEERS:promote:2024-Feb:abc', channel: 'C0ENGINEERS', action: 'update', subject: 'rollout:2024-Feb:promote' });
    const text = JSON.stringify(row!.payload.blocks);
    expect(text).toContain(':rocket: *Promoted to pilot* by <@U0PAT> at 09:31 CST: KB5034765; 1 client pilot scheduled for their next windows.');
    expect(text).toContain('KB5034765 installed on our machines (ring msp) and soaked');
    expect(text).not.toContain(PROMOTE_ACTION);
    // A later promotion answers its own round's offer, never the first offer again.
    const [later] = renderNotice({ ...notice, promotionId: 'promote:2024-Feb:def', round: 1 }, audiences);
    expect(later).toMatchObject({ action: 'update', subject: 'rollout:2024-Feb:promote:1' });
  });
});

describe('ring skipped and pilot problem', () => {
  it('post in the release thread, and nothing before an engineers\u2019 channel is configured', () => {
    const skipped: Notice = { kind: 'ring_skipped', eventId: 'skip:2024-Feb:msp:msp:5034770', releaseId: '2024-Feb', where: 'ring msp', kb: 'KB5034770', by: { platform: 'cli', id: 'pat' }, reason: 'no server <here>' };
    expect(renderNotice(skipped, audiences)).toEqual([
      {
        key: 'skip:2024-Feb:msp:msp:5034770',
        channel: 'C0ENGINEERS',
        action: 'post',
        subject: 'skip:2024-Feb:msp:msp:5034770',
        payload: { text: ':fast_forward: pat skipped ring msp for KB5034770 (no test machine): no server &lt;here&gt;. It goes on untested there.', threadSubject: 'digest:2024-Feb' },
      },
    ]);
    expect(renderNotice(skipped, { ...audiences, engineers: undefined })).toEqual([]);
  });

  it('a problem offers a reply to the champion only when there is a way to reach them', () => {
    const problem = { kind: 'pilot_problem_reported' as const, releaseId: '2024-Feb', clientId: 'cedar', clientName: 'Cedar', reporter: 'Dana', text: 'The label printer stopped' };
    const [withContact] = renderNotice({ ...problem, contact: 'dana@cedar.example' }, audiences);
    expect(withContact).toMatchObject({ key: 'pilot-problem:2024-Feb:cedar', subject: 'pilot-problem:2024-Feb:cedar', platform: 'slack', payload: { threadSubject: 'digest:2024-Feb' } });
    expect(JSON.stringify(withContact!.payload.blocks)).toContain('https://teams.microsoft.com/l/chat/0/0?users=dana%40cedar.example');
    const [without] = renderNotice({ ...problem, contact: undefined }, audiences);
    expect(JSON.stringify(without!.payload.blocks)).not.toContain(PILOT_REPLY_CHAMPION_ACTION);
  });
});
