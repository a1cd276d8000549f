// The Slack emulator and signing helpers are the oracle the product's Slack code is tested against, so they are
// proven here with Slack's own client (WebClient) and Slack's own verifier (Bolt), not with each other.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode, LogLevel, WebClient, type Logger, type WebAPICallResult } from '@slack/web-api';
import { App, isValidSlackRequest, verifySlackRequest } from '@slack/bolt';
import type { AddressInfo } from 'node:net';
import { startSlackEmulator, type SeedUser, type SlackEmulator, type SlackEmulatorOptions } from '../support/slack-emulator.ts';
import { checkBlocks, checkMessage, checkView, LIMITS } from '../support/block-kit-limits.ts';
import {
  buildAppHomeOpened,
  buildBlockActions,
  buildSlashCommand,
  buildViewBlockActions,
  buildViewSubmission,
  postSigned,
  signSlackRequest,
  staleTimestamp,
} from '../support/slack-signing.ts';

const CH = 'C0ENGINEERS';
const x = (n: number): string => 'x'.repeat(n);
const section = (text: string, extra: Record<string, unknown> = {}) => ({ type: 'section', text: { type: 'mrkdwn', text }, ...extra });
const button = (actionId: string, extra: Record<string, unknown> = {}) => ({
  type: 'button', action_id: actionId, text: { type: 'plain_text', text: 'Approve' }, value: 'v', ...extra,
});
const actions = (elements: unknown[], extra: Record<string, unknown> = {}) => ({ type: 'actions', elements, ...extra });

let emu: SlackEmulator;
let web: WebClient;
const running: SlackEmulator[] = [];

async function start(options: SlackEmulatorOptions = {}): Promise<void> {
  emu = await startSlackEmulator(options);
  running.push(emu);
  web = client(emu);
}

// WebClient logs every refused call's response_metadata at error level; refusals are what these tests provoke.
const quiet: Logger = {
  debug: () => {}, info: () => {}, warn: () => {}, error: () => {},
  setLevel: () => {}, getLevel: () => LogLevel.ERROR, setName: () => {},
};

function client(e: SlackEmulator, token = e.botToken): WebClient {
  return new WebClient(token, {
    slackApiUrl: e.url,
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    logger: quiet,
  });
}

/** The Slack error name of a refused call (WebClient throws a platform error carrying Slack's answer). */
async function slackError(p: Promise<unknown>): Promise<{ error: string; messages: string[] }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string; data?: WebAPICallResult & { error?: string } };
    if (err.code !== ErrorCode.PlatformError) throw e;
    return { error: err.data?.error ?? '', messages: err.data?.response_metadata?.messages ?? [] };
  }
  throw new Error('expected the call to be refused');
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.close()));
});

describe('Slack emulator with the real WebClient', () => {
  beforeEach(() => start());

  it('posts, returns increasing Slack-style ts, and records the message', async () => {
    const a = await web.chat.postMessage({ channel: CH, text: 'first' });
    const b = await web.chat.postMessage({ channel: CH, text: 'second', blocks: [section('*second*')] });
    expect(a.ok).toBe(true);
    expect(a.channel).toBe(CH);
    expect(a.ts).toMatch(/^\d{10}\.\d{6}$/);
    expect(Number(b.ts)).toBeGreaterThan(Number(a.ts));
    expect(a.message?.text).toBe('first');
    expect(emu.messages(CH).map((m) => m.text)).toEqual(['first', 'second']);
    const call = emu.calls('chat.postMessage')[1];
    // blocks arrive form-encoded as a JSON string; the record holds them parsed, without the token
    expect(call?.args.blocks).toEqual([expect.objectContaining({ type: 'section', text: { type: 'mrkdwn', text: '*second*' } })]);
    expect(call?.args.token).toBeUndefined();
  });

  it('edits in place, counts edits, keeps blocks when chat.update sends none', async () => {
    const { ts } = await web.chat.postMessage({ channel: CH, text: 'pending', blocks: [section('pending', { block_id: 'b1' })] });
    await web.chat.update({ channel: CH, ts: ts!, text: 'approved' });
    const m = emu.message(CH, ts!);
    expect(emu.messages(CH)).toHaveLength(1);
    expect(m?.edits).toBe(1);
    expect(m?.text).toBe('approved');
    expect(m?.blocks).toEqual([section('pending', { block_id: 'b1' })]);
    expect(m?.versions.map((v) => v.text)).toEqual(['pending', 'approved']);
    await web.chat.update({ channel: CH, ts: ts!, text: 'held', blocks: [] });
    expect(emu.message(CH, ts!)?.blocks).toEqual([]);
    expect(emu.message(CH, ts!)?.edits).toBe(2);
  });

  it('refuses to update a message that does not exist, or was deleted', async () => {
    expect((await slackError(web.chat.update({ channel: CH, ts: '1700000000.999999', text: 'x' }))).error).toBe('message_not_found');
    const { ts } = await web.chat.postMessage({ channel: CH, text: 'bye' });
    await web.chat.delete({ channel: CH, ts: ts! });
    expect(emu.messages(CH)).toHaveLength(0);
    expect(emu.messages(CH, { includeDeleted: true })).toHaveLength(1);
    expect((await slackError(web.chat.update({ channel: CH, ts: ts!, text: 'x' }))).error).toBe('message_not_found');
  });

  it('threads replies under their parent', async () => {
    const parent = await web.chat.postMessage({ channel: CH, text: 'digest' });
    await web.chat.postMessage({ channel: CH, text: 'alert', thread_ts: parent.ts! });
    const replies = emu.replies(CH, parent.ts!);
    expect(replies.map((r) => r.text)).toEqual(['alert']);
    expect(emu.message(CH, parent.ts!)?.reply_count).toBe(1);
    expect((await slackError(web.chat.postMessage({ channel: CH, text: 'x', thread_ts: '1.000000' }))).error).toBe('thread_not_found');
  });

  it('posts a DM to a user id without conversations.open, on the same channel conversations.open gives', async () => {
    const dm = await web.chat.postMessage({ channel: 'U0PAT', text: 'save your work tonight' });
    const opened = await web.conversations.open({ users: 'U0PAT' });
    expect(dm.channel).toMatch(/^D/);
    expect(opened.channel?.id).toBe(dm.channel);
    expect(emu.messages(dm.channel!)).toHaveLength(1);
  });

  it('answers like Slack for unknown channels, tokens and methods', async () => {
    expect((await slackError(web.chat.postMessage({ channel: 'C0NOPE', text: 'x' }))).error).toBe('channel_not_found');
    expect((await slackError(client(emu, 'xoxb-wrong').auth.test())).error).toBe('invalid_auth');
    expect((await slackError(web.apiCall('patchbay.frobnicate'))).error).toBe('unknown_method');
    const res = await fetch(`${emu.url}auth.test`, { method: 'POST' });
    expect(await res.json()).toEqual({ ok: false, error: 'not_authed' });
    const auth = await web.auth.test();
    expect(auth).toMatchObject({ ok: true, user_id: emu.bot.userId, team_id: emu.team.id, bot_id: emu.bot.botId });
  });

  it('warns when blocks are sent without a text fallback, and refuses a message with neither', async () => {
    const res = await web.chat.postMessage({ channel: CH, blocks: [section('only blocks')] });
    expect(res.warning).toBe('missing_text');
    expect(emu.messages(CH)[0]?.missingText).toBe(true);
    const withText = await web.chat.postMessage({ channel: CH, text: 'fallback', blocks: [section('b')] });
    expect(withText.warning).toBeUndefined();
    expect((await slackError(web.chat.postMessage({ channel: CH } as never))).error).toBe('no_text');
  });

  it('records ephemerals, users and views', async () => {
    const eph = await web.chat.postEphemeral({ channel: CH, user: 'U0LEE', text: 'only engineers can approve' });
    expect(eph.message_ts).toBeTruthy();
    expect(emu.ephemerals({ user: 'U0LEE' }).map((e) => e.text)).toEqual(['only engineers can approve']);
    expect(emu.messages(CH)).toHaveLength(0);

    expect((await web.users.lookupByEmail({ email: 'pat@msp.example' })).user?.id).toBe('U0PAT');
    expect((await slackError(web.users.lookupByEmail({ email: 'nobody@msp.example' }))).error).toBe('users_not_found');
    expect((await web.users.info({ user: 'U0SAM' })).user?.tz).toBe('America/Chicago');

    const home = await web.views.publish({ user_id: 'U0PAT', view: { type: 'home', blocks: [section('home')] } });
    expect(emu.homeView('U0PAT')?.id).toBe(home.view?.id);
    const trigger = emu.issueTriggerId('U0PAT');
    const modal = await web.views.open({
      trigger_id: trigger,
      view: { type: 'modal', callback_id: 'hold', title: { type: 'plain_text', text: 'Hold' }, blocks: [section('why?')] },
    });
    expect(modal.view?.id).toMatch(/^V/);
    // a trigger is exchangeable once
    expect((await slackError(web.views.open({ trigger_id: trigger, view: { type: 'modal', title: { type: 'plain_text', text: 'Again' }, blocks: [] } }))).error)
      .toBe('exchanged_trigger_id');
    await web.views.update({ view_id: modal.view!.id!, view: { type: 'modal', title: { type: 'plain_text', text: 'Held' }, blocks: [] } });
    expect(emu.view(modal.view!.id!)?.updates).toBe(1);
    expect((await slackError(web.views.update({ view_id: 'V404', view: { type: 'modal', title: { type: 'plain_text', text: 'x' }, blocks: [] } }))).error).toBe('not_found');
  });

  it('fills in block_id and action_id the way Slack does when the app leaves them out', async () => {
    await web.chat.postMessage({ channel: CH, text: 't', blocks: [{ type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Go' } }] }] });
    const block = emu.messages(CH)[0]?.blocks?.[0] as { block_id?: string; elements: Array<{ action_id?: string }> };
    expect(block.block_id).toBeTruthy();
    expect(block.elements[0]?.action_id).toBeTruthy();
  });
});

describe('trigger_id expiry', () => {
  it('refuses views.open with a trigger older than 3 s', async () => {
    let now = 1_000_000;
    await start({ clock: () => now });
    const trigger = emu.issueTriggerId('U0PAT');
    now += 3001;
    const view = { type: 'modal' as const, title: { type: 'plain_text' as const, text: 'Hold' }, blocks: [] };
    expect((await slackError(web.views.open({ trigger_id: trigger, view }))).error).toBe('expired_trigger_id');
    expect((await slackError(web.views.open({ trigger_id: 'made.up.trigger', view }))).error).toBe('invalid_trigger_id');
  });
});

describe('Block Kit limits, refused by the emulator with Slack error names', () => {
  beforeEach(() => start({ rateLimits: false }));

  // Each case: [name, blocks at the limit (accepted), blocks one over (refused), pointer Slack would name]
  const cases: Array<[string, unknown[], unknown[], string]> = [
    ['50 blocks', Array.from({ length: 50 }, () => ({ type: 'divider' })), Array.from({ length: 51 }, () => ({ type: 'divider' })), '/blocks'],
    ['section text 3000', [section(x(3000))], [section(x(3001))], '/blocks/0/text/text'],
    ['section fields 10', [{ type: 'section', fields: Array.from({ length: 10 }, () => ({ type: 'mrkdwn', text: 'f' })) }],
      [{ type: 'section', fields: Array.from({ length: 11 }, () => ({ type: 'mrkdwn', text: 'f' })) }], '/blocks/0/fields'],
    ['section field 2000', [{ type: 'section', fields: [{ type: 'mrkdwn', text: x(2000) }] }],
      [{ type: 'section', fields: [{ type: 'mrkdwn', text: x(2001) }] }], '/blocks/0/fields/0/text'],
    ['header 150', [{ type: 'header', text: { type: 'plain_text', text: x(150) } }],
      [{ type: 'header', text: { type: 'plain_text', text: x(151) } }], '/blocks/0/text/text'],
    ['header plain_text only', [{ type: 'header', text: { type: 'plain_text', text: 'h' } }],
      [{ type: 'header', text: { type: 'mrkdwn', text: 'h' } }], '/blocks/0/text/type'],
    ['context 10 elements', [{ type: 'context', elements: Array.from({ length: 10 }, () => ({ type: 'mrkdwn', text: 'c' })) }],
      [{ type: 'context', elements: Array.from({ length: 11 }, () => ({ type: 'mrkdwn', text: 'c' })) }], '/blocks/0/elements'],
    ['actions 25 elements', [actions(Array.from({ length: 25 }, (_, i) => button(`a${i}`)))],
      [actions(Array.from({ length: 26 }, (_, i) => button(`a${i}`)))], '/blocks/0/elements'],
    ['block_id 255', [section('s', { block_id: x(255) })], [section('s', { block_id: x(256) })], '/blocks/0/block_id'],
    ['block_id unique', [section('s', { block_id: 'a' }), section('s', { block_id: 'b' })],
      [section('s', { block_id: 'a' }), section('s', { block_id: 'a' })], '/blocks/1/block_id'],
    ['button text 75', [actions([button('a', { text: { type: 'plain_text', text: x(75) } })])],
      [actions([button('a', { text: { type: 'plain_text', text: x(76) } })])], '/blocks/0/elements/0/text/text'],
    ['button text plain_text', [actions([button('a')])],
      [actions([button('a', { text: { type: 'mrkdwn', text: 'Go' } })])], '/blocks/0/elements/0/text/type'],
    ['action_id 255', [actions([button(x(255))])], [actions([button(x(256))])], '/blocks/0/elements/0/action_id'],
    ['action_id unique in its block', [actions([button('a')]), actions([button('a')])],
      [actions([button('a'), button('a')])], '/blocks/0/elements/1/action_id'],
    ['button value 2000', [actions([button('a', { value: x(2000) })])], [actions([button('a', { value: x(2001) })])], '/blocks/0/elements/0/value'],
    ['button url 3000', [actions([button('a', { url: `https://e.x/${x(3000 - 12)}` })])],
      [actions([button('a', { url: `https://e.x/${x(3001 - 12)}` })])], '/blocks/0/elements/0/url'],
    ['known block types', [{ type: 'rich_text', elements: [] }], [{ type: 'bogus' }], '/blocks/0/type'],
  ];

  it.each(cases)('%s', async (_name, ok, over, pointer) => {
    await expect(web.chat.postMessage({ channel: CH, text: 't', blocks: ok as never })).resolves.toMatchObject({ ok: true });
    const refused = await slackError(web.chat.postMessage({ channel: CH, text: 't', blocks: over as never }));
    expect(refused.error).toBe('invalid_blocks');
    expect(refused.messages.some((m) => m.startsWith('[ERROR]') && m.endsWith(`[json-pointer:${pointer}]`))).toBe(true);
    // a refused message leaves no trace in the channel
    expect(emu.messages(CH)).toHaveLength(1);
  });

  it('refuses the same limits in chat.update and leaves the message as it was', async () => {
    const { ts } = await web.chat.postMessage({ channel: CH, text: 't', blocks: [section('ok')] });
    expect((await slackError(web.chat.update({ channel: CH, ts: ts!, text: 't', blocks: [section(x(3001))] }))).error).toBe('invalid_blocks');
    expect(emu.message(CH, ts!)?.edits).toBe(0);
  });

  it('refuses blocks serialising over ~13k characters with msg_blocks_too_long; the threshold is an option', async () => {
    const big = Array.from({ length: 5 }, () => section(x(2900)));
    expect(JSON.stringify(big).length).toBeGreaterThan(LIMITS.blocksJsonChars);
    expect((await slackError(web.chat.postMessage({ channel: CH, text: 't', blocks: big }))).error).toBe('msg_blocks_too_long');
    const lenient = await startSlackEmulator({ rateLimits: false, maxBlocksJsonChars: 20_000 });
    try {
      await expect(client(lenient).chat.postMessage({ channel: CH, text: 't', blocks: big })).resolves.toMatchObject({ ok: true });
    } finally {
      await lenient.close();
    }
  });

  it('refuses a text fallback over 40,000 characters with msg_too_long', async () => {
    await expect(web.chat.postMessage({ channel: CH, text: x(40_000) })).resolves.toMatchObject({ ok: true });
    expect((await slackError(web.chat.postMessage({ channel: CH, text: x(40_001) }))).error).toBe('msg_too_long');
  });

  it('refuses blocks that are not JSON', async () => {
    expect((await slackError(web.apiCall('chat.postMessage', { channel: CH, text: 't', blocks: '[{' }))).error).toBe('invalid_blocks_format');
  });

  const modal = (extra: Record<string, unknown> = {}, blocks: unknown[] = []) => ({
    type: 'modal', title: { type: 'plain_text', text: 'Hold update' }, submit: { type: 'plain_text', text: 'Hold' }, blocks, ...extra,
  });
  const input = (el: Record<string, unknown> = {}, label = 'Reason') => ({
    type: 'input', block_id: 'reason', label: { type: 'plain_text', text: label },
    element: { type: 'plain_text_input', action_id: 'reason', ...el },
  });
  const viewCases: Array<[string, unknown, unknown, string]> = [
    ['modal title 24', modal({ title: { type: 'plain_text', text: x(24) } }), modal({ title: { type: 'plain_text', text: x(25) } }), '/view/title/text'],
    ['input label 2000', modal({}, [input({}, x(2000))]), modal({}, [input({}, x(2001))]), '/view/blocks/0/label/text'],
    ['plain_text_input max_length 3000', modal({}, [input({ max_length: 3000 })]), modal({}, [input({ max_length: 3001 })]), '/view/blocks/0/element/max_length'],
    ['callback_id 255', modal({ callback_id: x(255) }), modal({ callback_id: x(256) }), '/view/callback_id'],
    ['private_metadata 3000', modal({ private_metadata: x(3000) }), modal({ private_metadata: x(3001) }), '/view/private_metadata'],
    ['100 blocks in a modal', modal({}, Array.from({ length: 100 }, () => ({ type: 'divider' }))),
      modal({}, Array.from({ length: 101 }, () => ({ type: 'divider' }))), '/view/blocks'],
  ];

  it.each(viewCases)('views.open: %s', async (_name, ok, over, pointer) => {
    await expect(web.views.open({ trigger_id: emu.issueTriggerId('U0PAT'), view: ok as never })).resolves.toMatchObject({ ok: true });
    const refused = await slackError(web.views.open({ trigger_id: emu.issueTriggerId('U0PAT'), view: over as never }));
    expect(refused.error).toBe('invalid_arguments');
    expect(refused.messages.some((m) => m.endsWith(`[json-pointer:${pointer}]`))).toBe(true);
  });

  it('allows 100 blocks on the Home tab but not 101, and only home views in views.publish', async () => {
    const home = (n: number) => ({ type: 'home' as const, blocks: Array.from({ length: n }, () => ({ type: 'divider' as const })) });
    await expect(web.views.publish({ user_id: 'U0PAT', view: home(100) })).resolves.toMatchObject({ ok: true });
    expect((await slackError(web.views.publish({ user_id: 'U0PAT', view: home(101) }))).error).toBe('invalid_arguments');
    expect((await slackError(web.views.publish({ user_id: 'U0PAT', view: modal() as never }))).error).toBe('invalid_arguments');
  });
});

describe('block-kit-limits checker', () => {
  it('passes a digest-shaped message with one Approve/Hold pair per update', () => {
    const blocks = [
      { type: 'header', text: { type: 'plain_text', text: '2024-Feb security release' } },
      ...['KB5034763', 'KB5034765'].flatMap((kb) => [
        section(`*${kb}*  Critical`, { block_id: `kb-${kb}` }),
        { type: 'context', elements: [{ type: 'mrkdwn', text: 'Windows 10' }] },
        actions([button('approve', { value: kb, style: 'primary' }), button('hold', { value: kb, style: 'danger' })], { block_id: `act-${kb}` }),
      ]),
      { type: 'divider' },
    ];
    expect(checkBlocks(blocks)).toEqual([]);
    // the stricter reading (action_id unique in the whole message) refuses that same message
    expect(checkBlocks(blocks, { actionIdScope: 'message' }).map((v) => v.rule)).toContain('duplicate_action_id');
  });

  it('accepts section text exactly up to 3000 characters, for any length', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6000 }), (n) => {
        const violations = checkBlocks([section(x(n))]);
        return (violations.length === 0) === (n <= LIMITS.sectionText);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses an empty text object and a non-array', () => {
    expect(checkBlocks([section('')]).map((v) => v.rule)).toEqual(['min_length']);
    expect(checkBlocks({} as unknown)[0]?.rule).toBe('type');
    expect(checkMessage({ text: '' }).error).toBe('no_text');
    expect(checkView({ type: 'modal', title: { type: 'plain_text', text: 'T' }, blocks: [{ type: 'input', label: { type: 'plain_text', text: 'L' }, element: { type: 'plain_text_input' } }] })
      .map((v) => v.pointer)).toEqual(['/view/submit']);
  });
});

describe('rate tiers', () => {
  let now: number;
  beforeEach(async () => {
    now = 5_000_000;
    await start({ clock: () => now, rateLimits: { windowMs: 2000, postMessagePerChannel: { burst: 3, intervalMs: 100 } } });
  });

  it('answers the 51st Tier 3 call in a window with 429, Retry-After and a WebAPIRateLimitedError', async () => {
    for (let i = 0; i < 50; i++) await web.conversations.open({ users: 'U0PAT' });
    const err = await web.conversations.open({ users: 'U0PAT' }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.RateLimitedError });
    expect((err as { retryAfter: number }).retryAfter).toBeGreaterThanOrEqual(1);
    expect(emu.rateLimitedCount('conversations.open')).toBe(1);

    const raw = await fetch(`${emu.url}conversations.open`, { method: 'POST', headers: { authorization: `Bearer ${emu.botToken}` }, body: new URLSearchParams({ users: 'U0PAT' }) });
    expect(raw.status).toBe(429);
    expect(raw.headers.get('retry-after')).toBe('2');
    expect(await raw.json()).toEqual({ ok: false, error: 'ratelimited' });

    // other methods have their own windows
    await expect(web.users.info({ user: 'U0PAT' })).resolves.toMatchObject({ ok: true });
    now += 2000;
    await expect(web.conversations.open({ users: 'U0PAT' })).resolves.toMatchObject({ ok: true });
  });

  it('slides the window rather than resetting it on a fixed boundary', async () => {
    for (let i = 0; i < 25; i++) await web.chat.update({ channel: CH, ts: 'x', text: 'x' }).catch(() => undefined);
    now += 1000;
    for (let i = 0; i < 25; i++) await web.chat.update({ channel: CH, ts: 'x', text: 'x' }).catch(() => undefined);
    now += 500;
    const err = await web.chat.update({ channel: CH, ts: 'x', text: 'x' }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.RateLimitedError, retryAfter: 1 });
    now += 501; // the first 25 have left the window, the second 25 have not
    for (let i = 0; i < 25; i++) {
      const r = await web.chat.update({ channel: CH, ts: 'x', text: 'x' }).then(() => 'ok', (e: { code: string }) => e.code);
      expect(r).toBe(ErrorCode.PlatformError); // message_not_found, i.e. let through
    }
    await expect(web.chat.update({ channel: CH, ts: 'x', text: 'x' })).rejects.toMatchObject({ code: ErrorCode.RateLimitedError });
  });

  it('limits users.list at Tier 2 (20 per window)', async () => {
    for (let i = 0; i < 20; i++) await web.users.list({ limit: 1 });
    await expect(web.users.list({ limit: 1 })).rejects.toMatchObject({ code: ErrorCode.RateLimitedError });
  });

  it('paces chat.postMessage per channel with a small burst', async () => {
    for (let i = 0; i < 3; i++) await web.chat.postMessage({ channel: CH, text: `m${i}` });
    await expect(web.chat.postMessage({ channel: CH, text: 'too fast' })).rejects.toMatchObject({ code: ErrorCode.RateLimitedError });
    await expect(web.chat.postMessage({ channel: 'C0GENERAL', text: 'other channel' })).resolves.toMatchObject({ ok: true });
    now += 100;
    await expect(web.chat.postMessage({ channel: CH, text: 'after a pause' })).resolves.toMatchObject({ ok: true });
    expect(emu.messages(CH).map((m) => m.text)).toEqual(['m0', 'm1', 'm2', 'after a pause']);
    expect(emu.rateLimitedCount()).toBe(1);
  });

  it('does not limit at all with rateLimits: false', async () => {
    const free = await startSlackEmulator({ rateLimits: false });
    try {
      const c = client(free);
      await Promise.all(Array.from({ length: 120 }, (_, i) => c.chat.postMessage({ channel: CH, text: `m${i}` })));
      expect(free.messages(CH)).toHaveLength(120);
      expect(free.rateLimitedCount()).toBe(0);
    } finally {
      await free.close();
    }
  });
});

describe('fault injection', () => {
  beforeEach(() => start({ rateLimits: false }));

  it('fails the next N calls of a method with an error, a 5xx or a 429, then recovers', async () => {
    emu.failNext('chat.postMessage', { error: 'fatal_error', times: 2 });
    emu.failNext('chat.postMessage', { status: 503 });
    emu.failNext('chat.postMessage', { status: 429, retryAfter: 7 });
    expect((await slackError(web.chat.postMessage({ channel: CH, text: 'a' }))).error).toBe('fatal_error');
    expect((await slackError(web.chat.postMessage({ channel: CH, text: 'a' }))).error).toBe('fatal_error');
    await expect(web.chat.postMessage({ channel: CH, text: 'a' })).rejects.toMatchObject({ code: ErrorCode.HTTPError, statusCode: 503 });
    await expect(web.chat.postMessage({ channel: CH, text: 'a' })).rejects.toMatchObject({ code: ErrorCode.RateLimitedError, retryAfter: 7 });
    await expect(web.chat.postMessage({ channel: CH, text: 'a' })).resolves.toMatchObject({ ok: true });
    expect(emu.messages(CH)).toHaveLength(1);
    expect(emu.calls('chat.postMessage').map((c) => c.status)).toEqual([200, 200, 503, 429, 200]);
    expect(emu.rateLimitedCount('chat.postMessage')).toBe(1);
  });

  it('adds latency', async () => {
    emu.setLatency('auth.test', 150);
    const t0 = performance.now();
    await web.auth.test();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('a client that honours Retry-After delivers the message exactly once after a 429', async () => {
    emu.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    const patient = new WebClient(emu.botToken, { slackApiUrl: emu.url, retryConfig: { retries: 2, minTimeout: 10, maxTimeout: 20 }, logger: quiet });
    const t0 = performance.now();
    await patient.chat.postMessage({ channel: CH, text: 'approved' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(950);
    expect(emu.messages(CH).map((m) => m.text)).toEqual(['approved']);
  });
});

describe('users.list paging', () => {
  it('pages with cursor and limit, capped at 1000 per page', async () => {
    const users: SeedUser[] = Array.from({ length: 2500 }, (_, i) => ({ id: `U${String(i).padStart(6, '0')}`, name: `user${i}`, email: `user${i}@client.example` }));
    await start({ users, rateLimits: false });
    const pages: number[] = [];
    const ids: string[] = [];
    for await (const page of web.paginate('users.list', { limit: 5000 })) {
      const members = (page as unknown as { members: Array<{ id: string }> }).members;
      pages.push(members.length);
      ids.push(...members.map((m) => m.id));
    }
    expect(pages).toEqual([1000, 1000, 501]); // 2500 seeded + the bot user
    expect(new Set(ids).size).toBe(2501);
    const small = await web.users.list({ limit: 2 });
    expect(small.members).toHaveLength(2);
    expect(small.response_metadata?.next_cursor).toBeTruthy();
    expect((await slackError(web.users.list({ cursor: 'bm9wZQ==' }))).error).toBe('invalid_cursor');
  });
});

describe('request signing against Bolt\'s own verifier', () => {
  const secret = 'shh-signing-secret';
  const body = 'payload=%7B%22type%22%3A%22block_actions%22%7D';
  const verify = (headers: { 'x-slack-signature': string; 'x-slack-request-timestamp': string }, b = body) =>
    isValidSlackRequest({ signingSecret: secret, body: b, headers: { ...headers, 'x-slack-request-timestamp': Number(headers['x-slack-request-timestamp']) } });

  it('accepts a signature made with the secret', () => {
    const headers = signSlackRequest(secret, body);
    expect(headers['x-slack-signature']).toMatch(/^v0=[0-9a-f]{64}$/);
    expect(() => verifySlackRequest({ signingSecret: secret, body, headers: { ...headers, 'x-slack-request-timestamp': Number(headers['x-slack-request-timestamp']) } })).not.toThrow();
  });

  it('is refused when forged, stale, or the body was changed', () => {
    expect(verify(signSlackRequest('not-the-secret', body))).toBe(false);
    expect(verify(signSlackRequest(secret, body, staleTimestamp()))).toBe(false);
    expect(verify(signSlackRequest(secret, body), `${body}x`)).toBe(false);
  });
});

describe('interactions through a real Bolt app', () => {
  const secret = 'bolt-signing-secret';
  let app: App;
  let eventsUrl: string;
  const seen: Array<{ kind: string; body: Record<string, unknown> }> = [];

  beforeEach(async () => {
    seen.length = 0;
    await start({ rateLimits: false });
    app = new App({ token: emu.botToken, signingSecret: secret, clientOptions: { slackApiUrl: emu.url, logger: quiet }, logger: quiet });
    app.action('approve', async ({ ack, body, client, respond }) => {
      await ack();
      seen.push({ kind: 'action', body: body as unknown as Record<string, unknown> });
      const b = body as unknown as { channel: { id: string }; message: { ts: string }; actions: Array<{ value: string }> };
      await client.chat.update({ channel: b.channel.id, ts: b.message.ts, text: `approved ${b.actions[0]?.value}` });
      await respond({ response_type: 'ephemeral', text: 'noted' });
    });
    app.action('open_hold', async ({ ack, body, client }) => {
      await ack();
      await client.views.open({
        trigger_id: (body as unknown as { trigger_id: string }).trigger_id,
        view: {
          type: 'modal', callback_id: 'hold', title: { type: 'plain_text', text: 'Hold' }, submit: { type: 'plain_text', text: 'Hold' },
          blocks: [{ type: 'input', block_id: 'reason', label: { type: 'plain_text', text: 'Reason' }, element: { type: 'plain_text_input', action_id: 'reason', max_length: 200 } }],
        },
      });
    });
    app.view('hold', async ({ ack, view }) => {
      await ack();
      seen.push({ kind: 'view', body: view as unknown as Record<string, unknown> });
    });
    app.command('/patch', async ({ ack, command, respond }) => {
      await ack();
      seen.push({ kind: 'command', body: command as unknown as Record<string, unknown> });
      await respond({ text: `usage: /patch status` });
    });
    app.event('app_home_opened', async ({ event }) => {
      seen.push({ kind: 'event', body: event as unknown as Record<string, unknown> });
    });
    const server = (await app.start(0)) as unknown as { address(): AddressInfo };
    eventsUrl = `http://127.0.0.1:${server.address().port}/slack/events`;
  });

  afterEach(async () => {
    await app.stop();
  });

  async function postDigest(): Promise<string> {
    const { ts } = await web.chat.postMessage({
      channel: CH,
      text: 'KB5034763',
      blocks: [section('*KB5034763*'), actions([button('approve', { value: 'KB5034763' }), button('open_hold', { value: 'KB5034763' })], { block_id: 'act-KB5034763' })],
    });
    return ts!;
  }

  it('delivers a click built from the posted button; the handler edits the message once and replies via response_url', async () => {
    const ts = await postDigest();
    const click = buildBlockActions(emu, { user: 'U0PAT', actionId: 'approve', blockId: 'act-KB5034763' });
    expect(click.payload.container).toMatchObject({ type: 'message', message_ts: ts, channel_id: CH });
    const res = await postSigned(eventsUrl, click.body, { secret });
    expect(res.status).toBe(200);
    await expect.poll(() => emu.responses().length).toBe(1);
    expect(seen.map((s) => s.kind)).toEqual(['action']);
    expect(emu.message(CH, ts)?.edits).toBe(1);
    expect(emu.message(CH, ts)?.text).toBe('approved KB5034763');
    expect(emu.ephemerals({ user: 'U0PAT' }).map((e) => e.text)).toEqual(['noted']);
  });

  it('refuses a forged and a stale click with 401, and nothing happens', async () => {
    const ts = await postDigest();
    const click = buildBlockActions(emu, { user: 'U0PAT', actionId: 'approve' });
    expect((await postSigned(eventsUrl, click.body, { secret, forge: true })).status).toBe(401);
    expect((await postSigned(eventsUrl, click.body, { secret, timestamp: staleTimestamp() })).status).toBe(401);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual([]);
    expect(emu.message(CH, ts)?.edits).toBe(0);
    expect(emu.calls('chat.update')).toHaveLength(0);
  });

  it('cannot click a button the bot never posted', async () => {
    await postDigest();
    expect(() => buildBlockActions(emu, { user: 'U0PAT', actionId: 'withdraw' })).toThrow(/no posted message/);
  });

  it('opens a modal from a click and submits it as Slack would', async () => {
    await postDigest();
    await postSigned(eventsUrl, buildBlockActions(emu, { user: 'U0PAT', actionId: 'open_hold' }).body, { secret });
    await expect.poll(() => emu.views({ user: 'U0PAT', type: 'modal' }).length).toBe(1);
    expect(() => buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'hold', values: { reason: '' } })).toThrow(/required/);
    expect(() => buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'hold', values: { reason: x(201) } })).toThrow(/max_length/);
    const sub = buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'hold', values: { reason: 'breaks the EMR <!channel>' } });
    expect((await postSigned(eventsUrl, sub.body, { secret })).status).toBe(200);
    const view = seen.find((s) => s.kind === 'view')?.body as { state: { values: Record<string, Record<string, { value: string }>> } };
    expect(view.state.values.reason?.reason?.value).toBe('breaks the EMR <!channel>');
  });

  it('delivers slash commands and App Home events', async () => {
    const cmd = buildSlashCommand(emu, { user: 'U0SAM', text: 'hold KB5034763 breaks printing' });
    expect((await postSigned(eventsUrl, cmd.body, { secret })).status).toBe(200);
    await expect.poll(() => emu.ephemerals({ user: 'U0SAM' }).length).toBe(1);
    expect(seen[0]?.body).toMatchObject({ command: '/patch', text: 'hold KB5034763 breaks printing', user_id: 'U0SAM', channel_id: CH });

    await web.views.publish({ user_id: 'U0SAM', view: { type: 'home', blocks: [actions([button('approve', { value: 'all' })], { block_id: 'home-act' })] } });
    const homeClick = buildViewBlockActions(emu, { user: 'U0SAM', actionId: 'approve' });
    expect(homeClick.payload.container).toMatchObject({ type: 'view' });
    expect(() => buildViewBlockActions(emu, { user: 'U0PAT', actionId: 'approve' })).toThrow();

    expect((await postSigned(eventsUrl, buildAppHomeOpened(emu, 'U0SAM').body, { secret })).status).toBe(200);
    await expect.poll(() => seen.some((s) => s.kind === 'event')).toBe(true);
  });

  it('a response_url accepts five posts, then answers used_url', async () => {
    const url = emu.issueResponseUrl({ kind: 'slash_command', channel: CH, user: 'U0PAT' });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      statuses.push((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: `r${i}` }) })).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 404]);
  });
});
