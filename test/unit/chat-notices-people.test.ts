// The notices of the waiver, user-DM and client-chat families render to exactly the outbox rows their writers
// built before notices were data: keys and subjects key stored rows, so they are pinned here byte for byte.
import { describe, expect, it } from 'vitest';
import { renderNotice, type Notice } from '../../src/chat/notices.ts';
import type { Audiences } from '../../src/chat/audiences.ts';
import { offlineNoticePayload, userDmPayload } from '../../src/chat/user-dm-render.ts';
import { renderPlanCard } from '../../src/chat/teams/signoff-card.ts';
import { renderWindowSummaryCard } from '../../src/chat/teams/window-card.ts';
import type { WindowTally } from '../../src/domain/window-report.ts';

const audiences: Audiences = {
  engineers: { channel: 'C0ENGINEERS' },
  mspZone: 'UTC',
  clientName: (id: string) => id,
  personName: (id: string) => id,
};
const noEngineers: Audiences = { ...audiences, engineers: undefined };
const at = '2024-02-14T15:00:00.000Z';

describe('notice waiver notices', () => {
  const waived: Notice = {
    kind: 'notice_waived',
    actor: { platform: 'slack', id: 'U1' },
    scope: 'user',
    target: 'dan@acme.test',
    name: 'user dan@acme.test',
    devices: 1,
    reason: 'not in <Slack>',
    releaseId: '2024-Feb',
    at,
  };

  it('posts a waiver in the release thread, keyed by change, target and moment', () => {
    expect(renderNotice(waived, audiences)).toEqual([
      {
        key: `notice-waive:user:dan@acme.test:${at}`,
        channel: 'C0ENGINEERS',
        action: 'post',
        subject: `notice-waive:user:dan@acme.test:${at}`,
        payload: {
          text: ':warning: <@U1> waived the \u201csave your work\u201d notice for user dan@acme.test (1 machine with a user): not in &lt;Slack&gt;. Those machines may install and restart in their windows unwarned.',
          threadSubject: 'digest:2024-Feb',
        },
      },
    ]);
  });

  it('names a CLI or Teams actor by id, and posts outside any thread before the first release', () => {
    const [row] = renderNotice({ kind: 'notice_waiver_revoked', actor: { platform: 'cli', id: 'ops' }, scope: 'client', target: 'acme', name: 'client Acme', releaseId: undefined, at }, audiences);
    expect(row).toEqual({
      key: `notice-revoke:client:acme:${at}`,
      channel: 'C0ENGINEERS',
      action: 'post',
      subject: `notice-revoke:client:acme:${at}`,
      payload: { text: 'ops revoked the notice waiver for client Acme: its users\u2019 machines wait for their \u201csave your work\u201d message again.' },
    });
  });

  it('says machines in the plural, and nothing without an engineers\u2019 channel', () => {
    expect(renderNotice({ ...waived, devices: 3 } as Notice, audiences)[0]!.payload.text).toContain('(3 machines with a user)');
    expect(renderNotice(waived, noEngineers)).toEqual([]);
  });
});

describe('user DM notices', () => {
  const address = { platform: 'teams' as const, channel: 'a:1' };

  it('posts the DM and the offline notice to the person whatever the engineers\u2019 channel', () => {
    expect(renderNotice({ kind: 'user_dm_sent', dmId: 7, key: `tonight:3:${at}`, text: 'Hi Ann', ...address }, noEngineers)).toEqual([
      { key: `userdm:tonight:3:${at}`, platform: 'teams', channel: 'a:1', action: 'post', subject: `userdm:tonight:3:${at}`, payload: userDmPayload('teams', { dmId: 7, text: 'Hi Ann' }) },
    ]);
    // Carried to the deliverer, which drops a DM held up past its window's notice deadline.
    expect(renderNotice({ kind: 'user_dm_sent', dmId: 7, key: `tonight:3:${at}`, text: 'Hi Ann', notAfter: at, ...address }, noEngineers)[0]!.payload).toMatchObject({ notAfter: at });
    expect(renderNotice({ kind: 'user_dm_offline', key: 'offline:3:2024-Feb', deviceNames: 'PC-1, PC-2', platform: 'slack', channel: 'U3' }, noEngineers)).toEqual([
      { key: 'userdm:offline:3:2024-Feb', platform: 'slack', channel: 'U3', action: 'post', subject: 'userdm:offline:3:2024-Feb', payload: offlineNoticePayload('slack', 'PC-1, PC-2') },
    ]);
  });

  // The MSP's template is written once, Slack-flavoured (`*bold*`). Teams shows a message's text as its own
  // markdown (`**bold**`) and a notification's summary as plain words: neither may show the asterisks.
  it('keeps the template\u2019s emphasis in a Teams DM, never literal *\u2026*', () => {
    const text = 'Hi Ann, please *save your work* tonight (PC_1 [office]).';
    expect(userDmPayload('teams', { dmId: 7, text, buttons: false }).text).toBe('Hi Ann, please **save your work** tonight (PC\\_1 \\[office\\]).');
    const card = userDmPayload('teams', { dmId: 7, text });
    expect(card.text).toBe('Hi Ann, please save your work tonight (PC_1 [office]).');
    expect(JSON.stringify(card.card)).toContain('please **save your work** tonight');
    const answered = userDmPayload('teams', { dmId: 7, text, answerLine: 'Thanks' });
    expect(answered.text).not.toContain('*');
    // Slack reads its own mrkdwn: the words go as written.
    expect(userDmPayload('slack', { dmId: 7, text, buttons: false }).text).toBe(text);
  });

  it('edits the DM it answers, under the DM\u2019s subject with a key of its own', () => {
    const [row] = renderNotice({ kind: 'user_dm_answered', dmId: 7, key: `tonight:3:${at}`, text: 'Hi Ann', answerLine: 'Thanks', platform: 'slack', channel: 'D9' }, audiences);
    expect(row).toEqual({
      key: 'userdm:7:answered',
      platform: 'slack',
      channel: 'D9',
      action: 'update',
      subject: `userdm:tonight:3:${at}`,
      payload: userDmPayload('slack', { dmId: 7, text: 'Hi Ann', answerLine: 'Thanks' }),
    });
  });

  it('tells the engineers of a deferral past the limit, with the hold command for the client', () => {
    const escalated: Notice = { kind: 'user_dm_escalated', dmId: 7, clientId: 'acme', personName: 'Ann <A>', devices: ['PC-1', 'PC-2'], used: 2 };
    expect(renderNotice(escalated, audiences)).toEqual([
      {
        key: 'userdm:7:escalated',
        channel: 'C0ENGINEERS',
        action: 'post',
        subject: 'userdm:7:escalated',
        payload: {
          text: 'Ann &lt;A&gt; (acme) asked to put off PC-1 and PC-2 tonight, past the limit of 2 deferrals this release. They stay in tonight\u2019s window unless you hold them (`/patch hold acme REASON`).',
        },
      },
    ]);
    expect(renderNotice({ ...escalated, clientId: null } as Notice, audiences)[0]!.payload.text).toMatch(/^Ann &lt;A&gt; \(the MSP\) .*`\/patch hold KB REASON`/);
    expect(renderNotice(escalated, noEngineers)).toEqual([]);
  });

  it('lists unreachable users under the digest, the first 40 of them', () => {
    const users = Array.from({ length: 41 }, (_, i) => ({ email: `u${i}@acme.test`, devices: [`PC-${i}`] }));
    const unmatched: Notice = { kind: 'user_dm_unmatched', releaseId: '2024-Feb', clientId: null, clientName: 'Our MSP', platform: 'slack', night: '2024-02-14', users };
    const [row] = renderNotice(unmatched, audiences);
    expect(row!.key).toBe('userdm-unmatched:msp:2024-02-14');
    expect(row!.subject).toBe('userdm-unmatched:msp:2024-02-14');
    expect(row!.payload.threadSubject).toBe('digest:2024-Feb');
    expect(row!.payload.text).toMatch(/^Our MSP: 41 users with machines patched tonight could not be found in Slack,/);
    expect(row!.payload.text).toContain('• u39@acme.test: PC-39\n…\n');
    expect(row!.payload.text).not.toContain('u40@acme.test');
    const one = renderNotice({ ...unmatched, platform: 'teams', users: users.slice(0, 1) } as Notice, audiences)[0]!;
    expect(one.payload.text).toMatch(/^Our MSP: 1 user with machines patched tonight could not be found in Teams,[^…]*$/);
  });
});

describe('client chat notices', () => {
  it('posts the plan once per conversation, keyed by release, client and conversation', () => {
    const plan = { releaseId: '2024-Feb', clientName: 'Acme', groups: [{ deviceClass: 'desktop', count: 2, nights: ['Wed 14 Feb, 22:00–02:00 CET'] }] };
    const rows = renderNotice({ kind: 'broad_plan', clientId: 'acme', plan, conversations: ['19:a', '19:b'] }, noEngineers);
    const text = '2024-Feb: your machines will be patched on these nights. Save your work and leave your computer on.';
    expect(rows).toEqual(
      ['19:a', '19:b'].map((channel) => ({ key: `teams:plan:2024-Feb:acme:${channel}`, platform: 'teams', channel, action: 'post', subject: 'plan:2024-Feb:acme', payload: { text, card: renderPlanCard(plan) } })),
    );
  });

  it('posts a window summary per conversation under the window\u2019s summary subject', () => {
    const tally: WindowTally = {
      who: 'acme',
      windowStart: '2024-02-14T21:00:00.000Z',
      windowEnd: '2024-02-15T01:00:00.000Z',
      counts: { succeeded: 3, failed: 1, offline: 1, rolled: 1 },
      updated: [],
      failed: [],
      rolled: [],
      rollReasons: {},
      rebootedTwice: [],
    };
    const windowSubject = 'window:acme:2024-02-14T21:00Z';
    const [row, ...rest] = renderNotice({ kind: 'client_window_summary', windowSubject, tally, clientName: 'Acme', zone: 'Europe/Berlin', conversations: ['19:a'] }, noEngineers);
    expect(rest).toEqual([]);
    expect(row).toEqual({
      key: `teams:${windowSubject}:19:a:summary`,
      platform: 'teams',
      channel: '19:a',
      action: 'post',
      subject: 'window-summary:acme:2024-02-14T21:00Z',
      payload: { text: "Acme: last night's updates: 3 updated, 1 did not, 2 will try again.", card: renderWindowSummaryCard(tally, 'Acme', 'Europe/Berlin') },
    });
  });
});
