/**
 * The Teams side end to end: the real Teams SDK App (every inbound turn over HTTP, with a Bot Framework token the
 * Bot Connector emulator minted, through the SDK's token check; its replies go to the emulator as Teams' would),
 * real Postgres and Redis, the real outbox deliverer sending through the SDK's Bot Connector client to the local
 * Bot Connector emulator that enforces Teams' limits and card rules, and the Slack emulator for the engineers' thread. Every card the bot produces is validated as
 * Adaptive Card 1.5 under 28 KB (the emulator refuses any that is not).
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { enqueueOutbox } from '../../src/db/outbox-repo.ts';
import { userDmPayload } from '../../src/chat/user-dm-render.ts';
import { loadBook, saveGates, insertRuns } from '../../src/db/rollout-repo.ts';
import { transition, type RolloutEvent } from '../../src/domain/rollout.ts';
import { createTeamsApp, createTeamsBot, teamsRequestHandler, type TeamsAuthOptions } from '../../src/bot/teams/app.ts';
import { TeamsSender } from '../../src/bot/teams/sender.ts';
import { hold } from '../../src/use-cases/decisions.ts';
import { createLinkCode } from '../../src/use-cases/teams-link.ts';
import { deliveryClient, startOutboxDeliverer, type OutboxDeliverer } from '../../src/jobs/outbox.ts';
import { queueClientMessages } from '../../src/jobs/teams.ts';
import { createLogger } from '../../src/log.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { startSlackEmulator, type SlackEmulator } from '../support/slack-emulator.ts';
import { startBotConnectorEmulator, type BotConnectorEmulator } from '../support/bot-connector-emulator.ts';
import { adaptiveCardProblems } from '../support/adaptive-card.ts';
import { worldInventory, worldRelease } from '../support/rollout-world.ts';

const APP_ID = '11111111-2222-3333-4444-555555555555';
const TENANT = 'tenant-msp';
const CLIENTS = ['acme', 'beta', 'gamma', 'delta'] as const;
const champion = (client: string, n: number) => `aad-${client}-${n}`;

/** What the bot sends the emulator instead of an Entra ID token: JWT-shaped (the SDK reads it), unsigned. */
const OUTBOUND_TOKEN = `${[{ alg: 'none', typ: 'JWT' }, { iss: 'test', aud: 'https://api.botframework.com' }].map((p) => Buffer.from(JSON.stringify(p)).toString('base64url')).join('.')}.`;

/** An activity as Teams sends it, loosely typed: tests also send what Teams should not. */
type Activity = { type: string; id?: string; text?: string; value?: unknown; [key: string]: unknown };

let database: TestDatabase;
let db: AppDatabase;
let redis: TestRedis;
let connection: Redis;
let slack: SlackEmulator;
let connector: BotConnectorEmulator;
let deliverer: OutboxDeliverer;
let server: http.Server;
let messagesUrl: string;
/** What the bot sent back in each turn, by the inbound activity's id; and every such reply's id. */
const replies = new Map<string, Activity[]>();
const replyIds = new Set<string>();
let turnSeq = 0;
const log = createLogger('silent');
const now = () => new Date();

async function applyGate(clientId: string, event: RolloutEvent) {
  const before = await loadBook(db, '2024-Feb');
  const t = transition(before, event, now());
  if (t.outcome !== 'applied') throw new Error(`${event.type} for ${clientId}: ${t.outcome}`);
  await saveGates(db, before, t.book, t.changed, now());
}

/** The ring's devices (a client's, or the MSP's own) ran a window that began at `windowStart` and installed `updates`. */
async function installed(ring: 'msp' | 'pilot', clientId: string | null, windowStart: string, updates: string[]) {
  const devices = rowsOf<{ id: number }>(await db.execute(sql`select id from devices where ring = ${ring} and client_id is not distinct from ${clientId} and os is not null`));
  const [rollout] = rowsOf<{ id: number }>(await db.execute(sql`select id from rollouts where ring = ${ring} and client_id is not distinct from ${clientId}`));
  const windowEnd = new Date(Date.parse(windowStart) + 4 * 3_600_000).toISOString();
  const ids = await insertRuns(db, devices.map((d) => ({ deviceId: d.id, releaseId: '2024-Feb', rolloutId: rollout!.id, windowStart, windowEnd, updates })), now());
  await db.execute(sql`update runs set state = 'succeeded', reboots = 2, finished_at = ${windowEnd}::timestamptz
    where id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)::bigint)`);
}

/**
 * One inbound turn, posted to /api/messages as Teams posts it; returns what the bot sent back in that turn, and
 * the invoke's answer (the HTTP response) as an `invokeResponse`.
 */
async function turn(activity: Activity): Promise<Activity[]> {
  const id = activity.id ?? `turn-${++turnSeq}`;
  const token = connector.mintToken({ appId: APP_ID, serviceUrl: connector.url });
  const res = await fetch(messagesUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ ...activity, id }) });
  expect(res.status, 'the turn was accepted').toBe(200);
  const text = await res.text();
  const sent = replies.get(id) ?? [];
  replies.delete(id);
  return text ? [...sent, { type: 'invokeResponse', value: { status: res.status, body: JSON.parse(text) as unknown } }] : sent;
}

/** What reached a conversation other than the bot's replies within a turn: the outbox's posts. */
const posted = (conversationId: string) => connector.activities(conversationId).filter((a) => !replyIds.has(a.id));

function conversation(id: string, type: 'personal' | 'groupChat' | 'channel', tenantId: string) {
  return { id, conversationType: type, tenantId, isGroup: type !== 'personal' };
}

function from(aad: string) {
  return { id: `29:${aad}`, aadObjectId: aad, name: aad };
}

const BOT = { id: `28:${APP_ID}`, name: 'patchbay' };

function installActivity(conversationId: string, type: 'personal' | 'groupChat' | 'channel', tenant: string, by: string): Activity {
  return {
    type: 'conversationUpdate',
    channelId: 'msteams',
    serviceUrl: connector.url,
    from: from(by),
    recipient: BOT,
    conversation: conversation(conversationId, type, tenant),
    membersAdded: [BOT],
    channelData: { tenant: { id: tenant } },
  };
}

function invoke(conversationId: string, by: string, verb: string, data: Record<string, unknown>, id: string): Activity {
  return {
    type: 'invoke',
    name: 'adaptiveCard/action',
    id,
    channelId: 'msteams',
    serviceUrl: connector.url,
    from: from(by),
    recipient: BOT,
    conversation: conversation(conversationId, 'personal', TENANT),
    value: { action: { type: 'Action.Execute', verb, data } },
  };
}

function invokeAnswer(sent: Array<Activity>): { type: string; value: unknown } {
  const response = sent.find((a) => a.type === 'invokeResponse');
  expect(response, 'the invoke was answered').toBeDefined();
  const body = (response!.value as { status: number; body: { type: string; value: unknown } }).body;
  return body;
}

async function outboxSettled(timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = rowsOf<{ n: number }>(await db.execute(sql`select count(*)::int as n from chat_outbox where state not in ('sent', 'dead')`));
    if (Number(row!.n) === 0) {
      const dead = rowsOf(await db.execute(sql`select id, platform, channel, last_error from chat_outbox where state = 'dead'`));
      expect(dead, 'no outbox row was given up on').toEqual([]);
      return;
    }
    if (Date.now() > deadline) {
      const left = rowsOf(await db.execute(sql`select id, platform, channel, state, last_error, next_attempt_at from chat_outbox where state not in ('sent', 'dead')`));
      throw new Error(`outbox not settled: ${JSON.stringify(left)}`);
    }
    await deliverer.sweep();
    await new Promise((r) => setTimeout(r, 100));
  }
}

const gateState = async (clientId: string, ring = 'pilot') =>
  rowsOf<{ state: string }>(await db.execute(sql`select state from rollouts where release_id = '2024-Feb' and ring = ${ring} and client_id = ${clientId}`))[0]?.state;

beforeAll(async () => {
  [database, redis, slack, connector] = await Promise.all([
    openTestDatabase(),
    startTestRedis(),
    startSlackEmulator({ rateLimits: false, channels: [{ id: 'C_ENG', name: 'patch-engineers' }] }),
    startBotConnectorEmulator(),
  ]);
  db = database.db;
  const inventory = worldInventory({ clients: CLIENTS.map((id) => ({ id, pilot: 1, broad: 3 })) });
  for (const client of inventory.clients) {
    client.champions = [
      { email: `one@${client.id}.example`, teamsId: champion(client.id, 1), name: `${client.id} champion one` },
      { email: `two@${client.id}.example`, teamsId: champion(client.id, 2), name: `${client.id} champion two` },
    ];
  }
  await applyInventory(db, inventory, now());
  await storeRelease(db, worldRelease(), { fetchedAt: now(), now: now() });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U_ENG', 'slack', 'test-approve-release', now())`);
  await db.execute(sql`insert into research_notes (update_id, body, tags, author, source)
    select id, 'Printers may need *re-adding* <b>after</b> the restart', '["client-visible"]'::jsonb, 'U_ENG', 'slack' from updates where update_key = '5034765'`);
  await db.execute(sql`insert into research_notes (update_id, body, tags, author, source)
    select id, 'internal only: EMR vendor ticket 4411', '[]'::jsonb, 'U_ENG', 'slack' from updates where update_key = '5034765'`);
  // Ring msp installed the desktop updates on the MSP's own machines and an engineer promoted them to every
  // client's pilot; each pilot has since run its window, installed them, and waits for its champions.
  const desktopUpdates = ['5034439', '5034765'];
  const engineer = { kind: 'engineer' as const, id: 'U_ENG' };
  const mspWindowStart = new Date(Date.now() - 3 * 86_400_000).toISOString();
  await applyGate('msp', { type: 'approved', id: 'test-approve-release' });
  await applyGate('msp', { type: 'window_opened', ring: 'msp', clientId: null, windowStart: mspWindowStart, holds: [] });
  await installed('msp', null, mspWindowStart, desktopUpdates);
  await applyGate('msp', { type: 'ring_finished', ring: 'msp', clientId: null, soakUntil: new Date(Date.now() - 86_400_000).toISOString() });
  await applyGate('msp', { type: 'promote', id: 'test-promote', actor: engineer, clients: [...CLIENTS], updates: desktopUpdates });
  const windowStart = new Date(Date.now() - 8 * 3_600_000).toISOString();
  for (const client of CLIENTS) {
    await applyGate(client, { type: 'window_opened', ring: 'pilot', clientId: client, windowStart, holds: [] });
    await installed('pilot', client, windowStart, desktopUpdates);
    // The sweep asks about what installed on the pilot (eligibility.ts pilotAsk).
    await applyGate(client, { type: 'ring_finished', ring: 'pilot', clientId: client, asked: desktopUpdates });
  }
  await db.execute(sql`update clients set settings = settings || '{"teamsTenantId": "tenant-beta"}'::jsonb where id = 'beta'`);

  connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const auth: TeamsAuthOptions = { appId: APP_ID, appPassword: undefined, tenantId: TENANT, openIdMetadataUrl: connector.openIdMetadataUrl, tokenIssuer: connector.issuer, staticOutboundToken: OUTBOUND_TOKEN };
  deliverer = await startOutboxDeliverer({
    database,
    connection,
    prefix: redis.prefix,
    log,
    slack: deliveryClient(slack.botToken, slack.url),
    teams: new TeamsSender(createTeamsApp(auth, log).app, db),
    channelIntervalMs: 20,
  });
  const teams = createTeamsApp(auth, log);
  const bot = createTeamsBot({ db, log, now, notifyOutbox: (ids) => deliverer.notifier.notify(ids), teams });
  bot.event('activity.sent', ({ activityId, activity }) => {
    if (activity.id) replyIds.add(activity.id);
    const key = activityId ?? '';
    replies.set(key, [...(replies.get(key) ?? []), activity as unknown as Activity]);
  });
  const handler = teamsRequestHandler(teams);
  server = http.createServer((req, res) => void handler(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  messagesUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/messages`;
  // Storing the release queued the engineers' digest: a problem report has a thread to go into.
  await outboxSettled();
}, 60_000);

afterAll(async () => {
  server?.closeAllConnections();
  server?.close();
  await deliverer?.close();
  await connection?.quit();
  await Promise.allSettled([slack?.close(), connector?.close(), redis?.stop(), database?.close()]);
});

describe('install capture', () => {
  it('links a champion’s personal chat to their client and keeps the reference in Postgres', async () => {
    for (const client of CLIENTS) {
      const sent = await turn(installActivity(`a:personal-${client}`, 'personal', TENANT, champion(client, 1)));
      expect(sent.map((a) => a.text).join(' ')).toContain(`linked to ${client}`);
    }
    const rows = rowsOf<{ conversation_id: string; client_id: string; kind: string; reference: { serviceUrl: string; conversation: { id: string } } }>(
      await db.execute(sql`select conversation_id, client_id, kind, reference from teams_conversations order by id`),
    );
    expect(rows.map((r) => [r.conversation_id, r.client_id, r.kind])).toEqual(CLIENTS.map((c) => [`a:personal-${c}`, c, 'personal']));
    expect(rows[0]!.reference.serviceUrl).toBe(connector.url);
    expect(rows[0]!.reference.conversation.id).toBe('a:personal-acme');
  });

  it('links a team channel by the tenant configured for the client, whoever installs it', async () => {
    await turn({ ...installActivity('19:beta-general@thread.tacv2', 'channel', 'tenant-beta', 'aad-it-admin'), type: 'installationUpdate', action: 'add', membersAdded: undefined } as Activity);
    const [row] = rowsOf<{ client_id: string; kind: string }>(await db.execute(sql`select client_id, kind from teams_conversations where conversation_id = '19:beta-general@thread.tacv2'`));
    expect(row).toEqual({ client_id: 'beta', kind: 'channel' });
  });

  it('answers an unknown conversation politely and links nothing; a code from an engineer links it once', async () => {
    const sent = await turn(installActivity('19:stranger-chat', 'groupChat', 'tenant-other', 'aad-stranger'));
    expect(sent.map((a) => a.text).join(' ')).toMatch(/don’t know which organisation/);
    const [row] = rowsOf<{ client_id: string | null }>(await db.execute(sql`select client_id from teams_conversations where conversation_id = '19:stranger-chat'`));
    expect(row!.client_id).toBeNull();

    const refused = await createLinkCode({ db, now }, { actor: { platform: 'slack', id: 'U_NOBODY' }, clientId: 'gamma' });
    expect(refused.outcome).toBe('refused');
    const created = await createLinkCode({ db, now }, { actor: { platform: 'slack', id: 'U_ENG' }, clientId: 'gamma' });
    if (created.outcome !== 'created') throw new Error(created.message);
    const message = (text: string): Activity => ({ type: 'message', text, channelId: 'msteams', serviceUrl: connector.url, from: from('aad-stranger'), recipient: BOT, conversation: conversation('19:stranger-chat', 'groupChat', 'tenant-other') });
    const reply = await turn(message(`here it is: ${created.code.toLowerCase()}`));
    expect(reply.map((a) => a.text).join(' ')).toContain('linked to gamma');
    const again = await turn(message(created.code));
    expect(again.map((a) => a.text).join(' ')).toMatch(/not valid/);
    const audit = rowsOf<{ action: string }>(await db.execute(sql`select action from audit_log where subject = 'teams:19:stranger-chat' order by id`)).map((r) => r.action);
    expect(audit).toEqual(['teams.installed_unlinked', 'teams.linked', 'teams.link_code_refused']);
    // The conversation now belongs to gamma; unlink it again so the rest of the file counts only personal chats.
    await db.execute(sql`update teams_conversations set removed_at = now() where conversation_id = '19:stranger-chat'`);
  });

  // Issue 13 finding 7: a staff member's personal chat, matched to the client by tenant alone, got the champion welcome.
  it('welcomes an end user in their personal chat as a user, not as a champion', async () => {
    await db.execute(sql`update clients set settings = settings || '{"teamsTenantId": "tenant-gamma"}'::jsonb where id = 'gamma'`);
    const sent = await turn(installActivity('a:personal-gamma-user', 'personal', 'tenant-gamma', 'aad-gamma-user'));
    const text = sent.map((a) => a.text).join(' ');
    expect(text).toMatch(/save your work/);
    expect(text).not.toMatch(/whether everything works/);
  });
});

describe('pilot sign-off', () => {
  it('sends each client’s champions a valid 1.5 card with their pilot devices, updates in plain words and only client-visible notes', async () => {
    const ids = await queueClientMessages(db, now());
    await deliverer.notifier.notify(ids);
    await outboxSettled();
    const again = await queueClientMessages(db, now());
    expect(again, 'a second tick queues nothing').toEqual([]);
    for (const client of CLIENTS) {
      const outbox = posted(`a:personal-${client}`);
      const cards = outbox.map((p) => (p.activity.attachments as Array<{ content: Record<string, unknown> }>)[0]!.content);
      for (const card of cards) expect(adaptiveCardProblems(card)).toEqual([]);
      const signoffs = cards.filter((c) => JSON.stringify(c).includes('Patch check for'));
      expect(signoffs, client).toHaveLength(1);
      const card = signoffs[0]!;
      expect(outbox[0]!.activity.text).toMatch(/please check your test machines/);
      // The window's summary went to the client too, counting their pilot machine only.
      const summary = cards.find((c) => JSON.stringify(c).includes('Last night'));
      expect(JSON.stringify(summary)).toContain('{"title":"Updated","value":"1"}');
      expect(adaptiveCardProblems(card)).toEqual([]);
      const json = JSON.stringify(card);
      expect(json).toContain(`${client.toUpperCase()}-PILOT-1`);
      expect(json).toContain('restarted 2 times');
      expect(json).toContain('KB5034765');
      expect(json).toContain('Printers may need \\\\*re-adding\\\\*');
      expect(json).not.toContain('EMR vendor ticket');
      expect(json).not.toContain('-PC-0000');
      expect(json).toContain('pilot.confirm');
      expect(json).toContain('Action.Submit');
      // Teams refreshes the card for the users its MRIs name (not AAD ids): the champion seen so far, by the
      // `from.id` of their install; the second champion has not been seen yet.
      expect((card.refresh as { userIds: string[] }).userIds).toEqual([`29:${champion(client, 1)}`]);
    }
    // Beta's channel got one too (linked by tenant).
    expect(connector.activities('19:beta-general@thread.tacv2').filter((a) => JSON.stringify(a.activity).includes('Patch check for'))).toHaveLength(1);
  });

  it('refuses a champion of another client politely and changes nothing', async () => {
    const sent = await turn(invoke('a:personal-acme', champion('beta', 1), 'pilot.confirm', { releaseId: '2024-Feb', clientId: 'acme' }, 'cross-1'));
    const answer = invokeAnswer(sent);
    expect(answer.type).toBe('application/vnd.microsoft.activity.message');
    expect(String(answer.value)).toMatch(/Only this client’s champions/);
    // A client without Universal Actions sends the Action.Submit fallback: a message whose value names the verb.
    const submitted = await turn({ type: 'message', channelId: 'msteams', serviceUrl: connector.url, from: from(champion('beta', 1)), recipient: BOT, conversation: conversation('a:personal-acme', 'personal', TENANT), value: { verb: 'pilot.confirm', releaseId: '2024-Feb', clientId: 'acme' } });
    expect(submitted.map((a) => a.text)).toEqual([expect.stringMatching(/Only this client’s champions/)]);
    expect(await gateState('acme')).toBe('awaiting_confirmation');
    expect(rowsOf(await db.execute(sql`select 1 from decisions where client_id = 'acme'`))).toHaveLength(0);
  });

  it('Everything works confirms the pilot, schedules broad, refreshes the card for everyone and sends the plan', async () => {
    const sent = await turn(invoke('a:personal-acme', champion('acme', 1), 'pilot.confirm', { releaseId: '2024-Feb', clientId: 'acme' }, 'confirm-1'));
    const answer = invokeAnswer(sent);
    expect(answer.type).toBe('application/vnd.microsoft.card.adaptive');
    const card = answer.value as Record<string, unknown>;
    expect(adaptiveCardProblems(card)).toEqual([]);
    expect(JSON.stringify(card)).toContain('acme champion one said everything works');
    expect(card.actions, 'no buttons once answered').toBeUndefined();
    expect(await gateState('acme')).toBe('confirmed');
    expect(await gateState('acme', 'broad')).toBe('scheduled');
    const decisions = rowsOf<{ kind: string; actor: string; source: string }>(await db.execute(sql`select kind, actor, source from decisions where client_id = 'acme'`));
    expect(decisions).toEqual([{ kind: 'confirm_pilot', actor: champion('acme', 1), source: 'teams' }]);
    // The same click again (a Teams re-send) is one confirmation.
    await turn(invoke('a:personal-acme', champion('acme', 1), 'pilot.confirm', { releaseId: '2024-Feb', clientId: 'acme' }, 'confirm-1'));
    expect(rowsOf(await db.execute(sql`select 1 from decisions where client_id = 'acme'`))).toHaveLength(1);
    await outboxSettled();
    const posted = connector.activities('a:personal-acme');
    const signoff = posted.find((a) => JSON.stringify(a.activity).includes('Patch check for'))!;
    expect(signoff.versions.length, 'the card was edited in place').toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(signoff.activity)).toContain('said everything works');
    const plan = posted.find((a) => JSON.stringify(a.activity).includes('save your work'));
    expect(plan, 'the plan reached the client').toBeDefined();
    // Issue 13 finding 8: the engineers' thread hears who confirmed, by name.
    const [digestRow] = rowsOf<{ message_id: string }>(await db.execute(sql`select message_id from chat_messages where platform = 'slack' and subject = 'digest:2024-Feb'`));
    const confirmed = slack.replies('C_ENG', digestRow!.message_id).filter((m) => m.text?.includes('confirmed the pilot'));
    expect(confirmed.map((m) => m.text)).toEqual([expect.stringContaining("acme's champion acme champion one confirmed the pilot of 2024-Feb")]);
  });

  it('Report a problem holds the client and posts the champion’s words, escaped, into the engineers’ thread with a reply button', async () => {
    const text = 'Reception PC cannot print <!channel> since the update';
    const sent = await turn(invoke('a:personal-gamma', champion('gamma', 2), 'pilot.problem', { releaseId: '2024-Feb', clientId: 'gamma', problem: text }, 'problem-1'));
    const card = invokeAnswer(sent).value as Record<string, unknown>;
    expect(adaptiveCardProblems(card)).toEqual([]);
    expect(JSON.stringify(card)).toContain('reported a problem');
    expect(await gateState('gamma')).toBe('problem');
    const holds = rowsOf<{ scope: string; reason: string }>(await db.execute(sql`select scope, reason from holds where client_id = 'gamma' and released_at is null`));
    expect(holds).toEqual([{ scope: 'client', reason: `Pilot problem: ${text}` }]);
    await outboxSettled();
    const [digestRow] = rowsOf<{ message_id: string }>(await db.execute(sql`select message_id from chat_messages where platform = 'slack' and subject = 'digest:2024-Feb'`));
    const digest = { ts: digestRow!.message_id };
    const replies = slack.replies('C_ENG', digest.ts).filter((m) => m.text?.includes('reported a pilot problem'));
    expect(replies).toHaveLength(1);
    const blocks = JSON.stringify(replies[0]!.blocks);
    expect(blocks).toContain('&lt;!channel&gt;');
    expect(blocks).not.toContain('<!channel>');
    expect(blocks).toContain('teams.microsoft.com/l/chat/0/0?users=two%40gamma.example');
  });

  it('two champions answering at once give one outcome, and both cards show it', async () => {
    const [a, b] = await Promise.all([
      turn(invoke('a:personal-delta', champion('delta', 1), 'pilot.confirm', { releaseId: '2024-Feb', clientId: 'delta' }, 'race-1')),
      turn(invoke('a:personal-delta', champion('delta', 2), 'pilot.problem', { releaseId: '2024-Feb', clientId: 'delta', problem: 'Outlook crashes' }, 'race-2')),
    ]);
    const state = await gateState('delta');
    expect(['confirmed', 'problem']).toContain(state);
    expect(rowsOf(await db.execute(sql`select 1 from decisions where client_id = 'delta'`))).toHaveLength(1);
    const cards = [a, b].map((sent) => JSON.stringify(invokeAnswer(sent).value));
    // Delta's second champion was first seen in their click: the card they get back refreshes for them too.
    expect(JSON.parse(cards[1]!).refresh.userIds).toEqual([`29:${champion('delta', 1)}`, `29:${champion('delta', 2)}`]);
    const shown = state === 'confirmed' ? 'said everything works' : 'reported a problem';
    for (const card of cards) expect(card).toContain(shown);
    const heldNow = rowsOf(await db.execute(sql`select 1 from holds where client_id = 'delta' and released_at is null`));
    expect(heldNow).toHaveLength(state === 'problem' ? 1 : 0);
  });

  it('an answer after an engineer held the client is refused, and the card shows the hold', async () => {
    const held = await hold({ db, now }, { actor: { platform: 'slack', id: 'U_ENG' }, releaseId: '2024-Feb', updateKey: null, clients: ['beta'], reason: 'vendor says wait', requestId: 'hold-beta' });
    expect(held.outcome).toBe('applied');
    const sent = await turn(invoke('a:personal-beta', champion('beta', 1), 'pilot.confirm', { releaseId: '2024-Feb', clientId: 'beta' }, 'late-1'));
    const card = invokeAnswer(sent).value as Record<string, unknown>;
    expect(adaptiveCardProblems(card)).toEqual([]);
    expect(JSON.stringify(card)).toContain('On hold by the engineers');
    expect(JSON.stringify(card)).toContain('vendor says wait');
    expect(card.actions).toBeUndefined();
    expect(await gateState('beta')).toBe('awaiting_confirmation');
    expect(await gateState('beta', 'broad')).toBeUndefined();
  });

  // Issue 13 finding 7: users' personal chats got sign-off cards, summaries and another person's problem report.
  it('sends an end user’s personal chat none of the champions’ traffic', async () => {
    await deliverer.notifier.notify(await queueClientMessages(db, now()));
    await outboxSettled();
    expect(connector.activities('a:personal-gamma').some((a) => JSON.stringify(a.activity).includes('reported a problem')), 'gamma’s champions saw it').toBe(true);
    expect(posted('a:personal-gamma-user')).toEqual([]);
    expect(rowsOf(await db.execute(sql`select subject from chat_outbox where channel = 'a:personal-gamma-user'`))).toEqual([]);
  });
});

describe('save-your-work card answers', () => {
  async function teamsDm(recipient: string, key: string): Promise<number> {
    const [row] = rowsOf<{ id: number }>(
      await db.execute(sql`insert into user_dms (key, kind, person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at)
        select ${key}, 'tonight', p.id, 'acme', '2024-Feb', '2026-03-03', 'teams', 'a:personal-acme', ${recipient}, 'America/Chicago', '[]'::jsonb, now()
        from people p order by p.id limit 1
        returning id`),
    );
    // Posted as the DM job posts it, so the answer has a card to edit.
    await enqueueOutbox(db, [{ key: `userdm:${key}`, platform: 'teams', channel: 'a:personal-acme', action: 'post', subject: `userdm:${key}`, payload: userDmPayload('teams', { dmId: row!.id, text: 'Please leave ACME-PC-01 on tonight.' }) }], now());
    await outboxSettled();
    return row!.id;
  }
  const dmAnswer = async (dmId: number) =>
    rowsOf<{ answer: string | null }>(await db.execute(sql`select answer from user_dms where id = ${dmId}`))[0]?.answer ?? null;
  const dmEdits = async (dmId: number) =>
    rowsOf<{ state: string }>(await db.execute(sql`select state from chat_outbox where idempotency_key = ${`userdm:${dmId}:answered`}`)).map((r) => r.state);

  it('only the person the card was sent to can answer it; their answer is recorded once and the card edited', async () => {
    const dmId = await teamsDm('aad-user-jane', 'tonight:teams-test:2026-03-03');
    const other = invokeAnswer(await turn(invoke('a:personal-acme', 'aad-user-bob', 'userdm.ok', { dmId }, 'dm-other-1')));
    expect(JSON.stringify(other.value)).toContain('for the person this message was sent to');
    expect(await dmAnswer(dmId)).toBeNull();
    expect(await dmEdits(dmId)).toEqual([]);

    await turn(invoke('a:personal-acme', 'aad-user-jane', 'userdm.ok', { dmId }, 'dm-jane-1'));
    await turn(invoke('a:personal-acme', 'aad-user-jane', 'userdm.ok', { dmId }, 'dm-jane-2'));
    expect(await dmAnswer(dmId)).toBe('ok');
    await outboxSettled();
    expect(await dmEdits(dmId)).toEqual(['sent']);
    const audits = rowsOf<{ actor: string; source: string }>(
      await db.execute(sql`select actor, source from audit_log where subject = 'userdm:tonight:teams-test:2026-03-03'`),
    );
    expect(audits).toEqual([{ actor: 'aad-user-jane', source: 'teams' }]);
  });

  it('shows its words once, in the card, with the template\u2019s *bold* rendered as bold', async () => {
    const text = 'Hi Jane, your computer PC-1 will be updated.\nPlease *save your work* before you leave.';
    const [row] = rowsOf<{ id: number }>(
      await db.execute(sql`insert into user_dms (key, kind, person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at)
        select 'tonight:teams-words:2026-03-04', 'tonight', p.id, 'acme', '2024-Feb', '2026-03-04', 'teams', 'a:personal-acme', 'aad-user-jane', 'America/Chicago', '[]'::jsonb, now()
        from people p order by p.id limit 1 returning id`),
    );
    await enqueueOutbox(db, [{ key: 'userdm:tonight:teams-words:2026-03-04', platform: 'teams', channel: 'a:personal-acme', action: 'post', subject: 'userdm:tonight:teams-words:2026-03-04', payload: userDmPayload('teams', { dmId: row!.id, text }) }], now());
    await outboxSettled();
    const posted = connector.activities('a:personal-acme').filter((a) => JSON.stringify(a.activity).includes('teams-words') || JSON.stringify(a.activity).includes('PC'));
    const activity = posted.at(-1)!.activity as { text?: string; summary?: string; attachments?: Array<{ content: { body: Array<{ text: string }> } }> };
    // Teams shows an activity's text above its card: the words must be in one of them only.
    expect(activity.text ?? '').toBe('');
    expect(activity.summary).toContain('Hi Jane');
    // A notification shows the summary unformatted: the words, not the template's asterisks.
    expect(activity.summary).toContain('Please save your work before');
    const body = activity.attachments![0]!.content.body.map((b) => b.text).join('\n');
    expect(body).toContain('Please **save your work** before you leave.');
    expect(body).not.toContain('\\*save');
    expect(body.match(/Hi Jane/g)).toHaveLength(1);
  });
});

describe('proactive delivery', () => {
  it('paces a burst to one conversation within Teams’ limits: no 429, each message once, in order', async () => {
    const before = connector.calls().filter((c) => c.status === 429).length;
    const items = Array.from({ length: 10 }, (_, i) => ({ key: `burst-${i}`, platform: 'teams' as const, channel: 'a:personal-delta', action: 'post' as const, subject: `burst:${i}`, payload: { text: `message ${i}` } }));
    const ids = await enqueueOutbox(db, items, now());
    await deliverer.notifier.notify(ids);
    await outboxSettled(30_000);
    const texts = connector.activities('a:personal-delta').map((a) => a.activity.text).filter((t) => typeof t === 'string' && t.startsWith('message '));
    expect(texts, 'each once, in order').toEqual(items.map((i) => i.payload.text));
    expect(connector.calls().filter((c) => c.status === 429).length - before, 'pacing kept under the limits').toBe(0);
    const sends = connector.calls().filter((c) => c.conversationId === 'a:personal-delta' && c.status === 201).map((c) => c.at);
    for (let i = 8; i < sends.length; i++) expect(sends[i]! - sends[i - 8]!).toBeGreaterThanOrEqual(2000);
    expect(connector.calls().every((c) => c.authorization === `Bearer ${OUTBOUND_TOKEN}`)).toBe(true);
  }, 40_000);

  it('retries 429 (after Retry-After), 502 and 412 and delivers the message once', async () => {
    const mark = connector.calls().length;
    connector.failNext(429, 1);
    connector.failNext(502);
    connector.failNext(412);
    const ids = await enqueueOutbox(db, [{ key: 'retry-1', platform: 'teams', channel: 'a:personal-gamma', action: 'post', subject: 'retry:1', payload: { text: 'after the storm' } }], now());
    await deliverer.notifier.notify(ids);
    await outboxSettled(30_000);
    const statuses = connector.calls().slice(mark).map((c) => c.status);
    expect(statuses).toEqual([429, 502, 412, 201]);
    const at = connector.calls().slice(mark).map((c) => c.at);
    expect(at[1]! - at[0]!, 'Retry-After: 1 was honoured').toBeGreaterThanOrEqual(1000);
    expect(connector.activities('a:personal-gamma').filter((a) => a.activity.text === 'after the storm')).toHaveLength(1);
  }, 40_000);
});

describe('inbound authentication', () => {
  // The same /api/messages every turn above went through; these send what Teams would not.
  const post = (token: string | undefined) =>
    fetch(messagesUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ type: 'message', id: 'm1', text: 'hello', channelId: 'msteams', serviceUrl: connector.url, from: from(champion('acme', 1)), recipient: BOT, conversation: conversation('a:personal-acme', 'personal', TENANT) }),
    });

  it('refuses a request without a token, with a forged one, an expired one, one for another app, another issuer or another service URL', async () => {
    expect((await post(undefined)).status).toBe(401);
    expect((await post('not-a-jwt')).status).toBe(401);
    expect((await post(connector.mintToken({ appId: APP_ID, serviceUrl: connector.url, forged: true }))).status).toBe(401);
    expect((await post(connector.mintToken({ appId: APP_ID, serviceUrl: connector.url, expiresInSeconds: -600 }))).status).toBe(401);
    expect((await post(connector.mintToken({ appId: 'someone-else', serviceUrl: connector.url }))).status).toBe(401);
    expect((await post(connector.mintToken({ appId: APP_ID, serviceUrl: connector.url, issuer: 'https://sts.example.com/' }))).status).toBe(401);
    expect((await post(connector.mintToken({ appId: APP_ID, serviceUrl: 'https://smba.example.com/' }))).status).toBe(401);
  });

  it('refuses a valid signature by a key endorsed for another channel (Web Chat), as botbuilder did and the Teams SDK does not', async () => {
    const before = connector.activities('a:personal-acme').length;
    const res = await post(connector.mintToken({ appId: APP_ID, serviceUrl: connector.url, webchatKey: true }));
    expect(res.status).toBe(401);
    expect(connector.activities('a:personal-acme').length).toBe(before);
  });

  it('accepts a valid token and answers through the connector', async () => {
    const before = connector.activities('a:personal-acme').length;
    const res = await post(connector.mintToken({ appId: APP_ID, serviceUrl: connector.url }));
    expect(res.status).toBe(200);
    const after = connector.activities('a:personal-acme');
    expect(after.length).toBe(before + 1);
    expect(String(after.at(-1)!.activity.text)).toMatch(/monthly patch checks/);
  });
});
