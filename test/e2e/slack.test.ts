// The engineers' Slack side end to end: the real Bolt app mounted on our HTTP server, real Postgres and
// redis-server, the real WebClient in the outbox deliverer talking to the Slack emulator, and clicks built
// from the buttons the bot actually posted, signed as Slack signs them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import { createSlackApp, type SlackApp } from '../../src/bot/slack/app.ts';
import { MRKDWN_BREAK } from '../../src/chat/slack/block-kit.ts';
import { rowsOf } from '../../src/db/client.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { chatIdentities, clients, devices, locations, msp, people, personRoles } from '../../src/db/schema.ts';
import { deliveryClient, OutboxNotifier, startOutboxDeliverer, type OutboxDeliverer } from '../../src/jobs/outbox.ts';
import { createHttpServer, type HttpServer } from '../../src/runtime/http.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { startSlackEmulator, type SlackEmulator } from '../support/slack-emulator.ts';
import { buildBlockSuggestion, buildViewSubmissionWithExternal } from '../support/slack-external-select.ts';
import {
  buildAppHomeOpened,
  buildBlockActions,
  buildSlashCommand,
  buildViewSubmission,
  nowSeconds,
  postSigned,
  staleTimestamp,
} from '../support/slack-signing.ts';

const SECRET = 'e2e-signing-secret';
const CH = 'C0ENGINEERS';
const repoRoot = path.resolve(import.meta.dirname, '../..');
const release = parseCvrf(readFileSync(path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json'), 'utf8'));
const log = pino({ level: 'silent' });

let database: TestDatabase;
let redis: TestRedis;
let emu: SlackEmulator;
let http: HttpServer;
let slack: SlackApp;
let eventsUrl: string;
let connection: Redis;
let notifier: OutboxNotifier;
let deliverer: OutboxDeliverer | undefined;
let prefix: string;

async function startDeliverer(): Promise<OutboxDeliverer> {
  deliverer = await startOutboxDeliverer({
    database,
    connection,
    prefix,
    log,
    slack: deliveryClient(emu.botToken, emu.url),
    channelIntervalMs: 10,
  });
  return deliverer;
}

async function count(query: ReturnType<typeof sql>): Promise<number> {
  const [row] = rowsOf<{ n: string | number }>(await database.db.execute(query));
  return Number(row?.n ?? 0);
}

let months = 0;
/** A release of its own for each test (a copy of the fixture under another month), posted to the channel. */
async function postedRelease(): Promise<{ id: string; parentTs: string }> {
  const names = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const n = months++;
  const id = `${2010 + Math.floor(n / 12)}-${names[n % 12]}`;
  const day = new Date(Date.UTC(2010 + Math.floor(n / 12), n % 12, 10, 17)).toISOString();
  const copy = { ...release, id, initialReleaseDate: day, currentReleaseDate: day };
  const now = new Date();
  const stored = await storeRelease(database.db, copy, { fetchedAt: now, now });
  expect(stored.queued).toBeGreaterThan(0);
  await deliverer!.sweep();
  await expect.poll(() => count(sql`select count(*) as n from chat_outbox where subject like ${`digest:${id}%`} and state <> 'sent'`), { timeout: 15_000 }).toBe(0);
  const [parent] = rowsOf<{ message_id: string }>(await database.db.execute(sql`select message_id from chat_messages where subject = ${`digest:${id}`}`));
  return { id, parentTs: parent!.message_id };
}

/** The posted thread message holding an update's buttons, for a release. */
async function messageOf(releaseId: string, updateKey: string): Promise<string> {
  const rows = rowsOf<{ message_id: string; subject: string }>(
    await database.db.execute(sql`select m.message_id, m.subject from chat_messages m join chat_outbox o on o.subject = m.subject and o.action = 'post'
      where m.subject like ${`digest:${releaseId}%`} and o.payload->'blocks' @> ${JSON.stringify([{ block_id: `update:${updateKey}` }])}::jsonb`),
  );
  expect(rows).toHaveLength(1);
  return rows[0]!.message_id;
}

function click(user: string, actionId: string, messageTs: string, updateKey?: string) {
  return buildBlockActions(emu, { user, actionId, channel: CH, messageTs, ...(updateKey ? { blockId: `actions:update:${updateKey}` } : {}) });
}

const textOf = (blocks: unknown): string => JSON.stringify(blocks);
/** What escapeMrkdwn puts on both sides of `*`, `_`, `~` and backticks in text patchbay did not write. */
const Z = MRKDWN_BREAK;

beforeAll(async () => {
  [database, redis, emu] = await Promise.all([openTestDatabase(), startTestRedis(), startSlackEmulator({ rateLimits: false })]);
  prefix = redis.prefix;
  const db = database.db;
  const now = new Date();
  await db.insert(msp).values({ id: 1, name: 'Test MSP', timezone: 'America/Chicago', channel: CH, windows: { desktop: 'daily 01:00-05:00' } });
  await db.insert(clients).values([
    { id: 'acme-dental', name: 'Acme Dental', timezone: 'America/Chicago', windows: { desktop: 'daily 01:00-05:00', server: 'sun 01:00-05:00' } },
    { id: 'globex', name: 'Globex', timezone: 'America/New_York', windows: { desktop: 'daily 01:00-05:00' } },
  ]);
  // Devices running what the fixture's KBs patch, so those updates are in the fleet and get buttons.
  await db.insert(locations).values({ clientId: 'acme-dental', id: 'main', name: 'Main office' });
  await db.insert(devices).values([
    { name: 'ACME-WS1', clientId: 'acme-dental', locationId: 'main', class: 'desktop', ring: 'pilot', os: 'Windows 11 Version 23H2 for x64-based Systems' },
    { name: 'ACME-SRV1', clientId: 'acme-dental', locationId: 'main', class: 'server', ring: 'broad', os: 'Windows Server 2022' },
    { name: 'ACME-EX1', clientId: 'acme-dental', locationId: 'main', class: 'server', ring: 'broad', os: 'Microsoft Exchange Server 2019 Cumulative Update 14' },
  ]);
  for (const [user, role] of [['U0PAT', 'engineer'], ['U0SAM', 'engineer'], ['U0LEE', 'champion']] as const) {
    const [person] = await db.insert(people).values({ key: `slack:${user}`, createdAt: now, updatedAt: now }).returning({ id: people.id });
    await db.insert(personRoles).values({ personId: person!.id, role, clientId: role === 'champion' ? 'acme-dental' : null });
    await db.insert(chatIdentities).values({ personId: person!.id, platform: 'slack', externalId: user, source: 'inventory' });
  }

  connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  notifier = new OutboxNotifier(connection, prefix);
  slack = createSlackApp({ botToken: emu.botToken, signingSecret: SECRET, apiUrl: emu.url, database, log, now: () => new Date(), notifyOutbox: (ids) => notifier.notify(ids) });
  http = createHttpServer({ log, readiness: [] });
  http.mount('/slack/events', slack.handler!);
  const port = await http.listen(0, '127.0.0.1');
  eventsUrl = `http://127.0.0.1:${port}/slack/events`;
  await startDeliverer();
});

afterAll(async () => {
  await deliverer?.close();
  await notifier?.close();
  await http?.close();
  connection?.disconnect();
  await Promise.all([database?.close(), redis?.stop(), emu?.close()]);
});

describe('Slack: signatures', () => {
  it('refuses a forged signature and a stale timestamp with 401, and records nothing', async () => {
    const { id, parentTs } = await postedRelease();
    const ts = await messageOf(id, '5099001');
    const body = click('U0PAT', 'update.approve', ts, '5099001').body;
    expect((await postSigned(eventsUrl, body, { secret: SECRET, forge: true })).status).toBe(401);
    expect((await postSigned(eventsUrl, body, { secret: SECRET, timestamp: staleTimestamp() })).status).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    expect(await count(sql`select count(*) as n from decisions where release_id = ${id}`)).toBe(0);
    expect(await count(sql`select count(*) as n from audit_log where subject like ${`update:${id}:%`}`)).toBe(0);
    expect(emu.message(CH, ts)?.edits).toBe(0);
    expect(emu.message(CH, parentTs)?.edits).toBe(0);
  });

  it('refuses a correctly signed request stamped 10 minutes ahead with 401, and records nothing', async () => {
    const { id, parentTs } = await postedRelease();
    const ts = await messageOf(id, '5099001');
    const body = click('U0PAT', 'update.approve', ts, '5099001').body;
    // Signed with the right secret: only the time is wrong (Bolt itself refuses only old timestamps).
    expect((await postSigned(eventsUrl, body, { secret: SECRET, timestamp: nowSeconds() + 10 * 60 })).status).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    expect(await count(sql`select count(*) as n from decisions where release_id = ${id}`)).toBe(0);
    expect(await count(sql`select count(*) as n from audit_log where subject like ${`update:${id}:%`}`)).toBe(0);
    expect(emu.message(CH, ts)?.edits).toBe(0);
    expect(emu.message(CH, parentTs)?.edits).toBe(0);
    // The same click stamped now is taken: the refusal was the timestamp's alone.
    expect((await postSigned(eventsUrl, body, { secret: SECRET })).status).toBe(200);
    await expect.poll(() => count(sql`select count(*) as n from decisions where release_id = ${id}`), { timeout: 15_000 }).toBe(1);
  });
});

describe('Slack: approve', () => {
  it('refuses a non-engineer with an ephemeral message and changes nothing', async () => {
    const { id } = await postedRelease();
    const ts = await messageOf(id, '5099001');
    const before = emu.ephemerals({ user: 'U0LEE' }).length;
    const res = await postSigned(eventsUrl, click('U0LEE', 'update.approve', ts, '5099001').body, { secret: SECRET });
    expect(res.status).toBe(200);
    await expect.poll(() => emu.ephemerals({ user: 'U0LEE' }).length).toBe(before + 1);
    expect(emu.ephemerals({ user: 'U0LEE' }).at(-1)?.text).toMatch(/Only the MSP.s engineers/);
    expect(await count(sql`select count(*) as n from decisions where release_id = ${id}`)).toBe(0);
    expect(await count(sql`select count(*) as n from chat_outbox where subject like ${`digest:${id}%`} and action = 'update'`)).toBe(0);
    expect(emu.message(CH, ts)?.edits).toBe(0);
  });

  it('makes one decision, one audit row and one message edit from 50 concurrent clicks by two engineers', async () => {
    const { id } = await postedRelease();
    const ts = await messageOf(id, '5099002');
    const bodies = Array.from({ length: 50 }, (_, i) => click(i % 2 ? 'U0SAM' : 'U0PAT', 'update.approve', ts, '5099002').body);
    const answers = await Promise.all(bodies.map((b) => postSigned(eventsUrl, b, { secret: SECRET })));
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    // The 49 that lost are told who won (ephemeral, through their response_url).
    await expect.poll(() => emu.responses().filter((r) => r.context.message_ts === ts).length, { timeout: 15_000 }).toBe(49);
    await expect.poll(() => emu.message(CH, ts)?.edits, { timeout: 15_000 }).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(emu.message(CH, ts)?.edits).toBe(1);
    expect(await count(sql`select count(*) as n from decisions where release_id = ${id} and kind = 'approve'`)).toBe(1);
    expect(await count(sql`select count(*) as n from audit_log where subject = ${`update:${id}:5099002`} and action = 'decision.approve'`)).toBe(1);
    const text = textOf(emu.message(CH, ts)?.blocks);
    expect(text).toMatch(/Approved\* by <@U0(PAT|SAM)> at \d\d:\d\d C[SD]T/);
    // Only that update's section changed: the other updates in the message carry no status.
    expect(text.match(/Approved/g)).toHaveLength(1);
    expect(emu.responses().filter((r) => r.context.message_ts === ts).every((r) => /already approved/.test(JSON.stringify(r.body)))).toBe(true);
  });

  it('still edits the message exactly once when the deliverer dies after the commit (job kept, and job lost)', async () => {
    const { id } = await postedRelease();
    const tsA = await messageOf(id, '5099001');
    const tsB = await messageOf(id, '5099003');
    await deliverer!.close();
    deliverer = undefined;
    await postSigned(eventsUrl, click('U0PAT', 'update.approve', tsA, '5099001').body, { secret: SECRET });
    await postSigned(eventsUrl, click('U0PAT', 'update.approve', tsB, '5099003').body, { secret: SECRET });
    await expect.poll(() => count(sql`select count(*) as n from chat_outbox where subject like ${`digest:${id}%`} and action = 'update' and state = 'pending'`)).toBe(2);
    expect(emu.message(CH, tsA)?.edits).toBe(0);
    // Lose Redis's copy of one job, as a Redis restart without persistence would: the sweep must find it from Postgres.
    const [rowB] = rowsOf<{ id: number }>(await database.db.execute(sql`select o.id from chat_outbox o where o.action = 'update' and o.subject like ${`digest:${id}%`} order by id desc limit 1`));
    await notifier.queue.remove(`outbox-${rowB!.id}`);
    expect(await notifier.queue.getJob(`outbox-${rowB!.id}`)).toBeUndefined();

    await startDeliverer();
    await expect.poll(() => [emu.message(CH, tsA)?.edits, emu.message(CH, tsB)?.edits], { timeout: 15_000 }).toEqual([1, 1]);
    await deliverer!.sweep();
    await new Promise((r) => setTimeout(r, 500));
    expect([emu.message(CH, tsA)?.edits, emu.message(CH, tsB)?.edits]).toEqual([1, 1]);
    expect(await count(sql`select count(*) as n from chat_outbox where subject like ${`digest:${id}%`} and state <> 'sent'`)).toBe(0);
  });

  it('waits out a 429 from Slack and loses nothing', async () => {
    const { id } = await postedRelease();
    const ts = await messageOf(id, '5099001');
    emu.failNext('chat.update', { status: 429, retryAfter: 1 });
    const limitedBefore = emu.rateLimitedCount('chat.update');
    const started = Date.now();
    await postSigned(eventsUrl, click('U0SAM', 'update.approve', ts, '5099001').body, { secret: SECRET });
    await expect.poll(() => emu.message(CH, ts)?.edits, { timeout: 15_000 }).toBe(1);
    expect(emu.rateLimitedCount('chat.update')).toBe(limitedBefore + 1);
    // Retry-After was 1 s: the edit came no sooner.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(textOf(emu.message(CH, ts)?.blocks)).toMatch(/Approved\* by <@U0SAM>/);
    const row = async () =>
      rowsOf<{ state: string; attempts: number }>(await database.db.execute(sql`select state, attempts from chat_outbox where action = 'update' and subject like ${`digest:${id}%`}`))[0];
    await expect.poll(async () => (await row())?.state).toBe('sent');
    // The refused call is not counted as an attempt: only the one Slack acted on.
    expect((await row())?.attempts).toBe(1);
  });
});

describe('Slack: hold and note modals', () => {
  it('holds an update for chosen clients through the modal, reason stored as typed and shown escaped', async () => {
    const { id } = await postedRelease();
    const ts = await messageOf(id, '5099003');
    await postSigned(eventsUrl, click('U0PAT', 'update.hold', ts, '5099003').body, { secret: SECRET });
    await expect.poll(() => emu.views({ user: 'U0PAT', type: 'modal' }).filter((v) => v.view.callback_id === 'patchbay.hold').length).toBeGreaterThan(0);

    // The server refuses what Slack's client would not send (an empty or over-long reason), with a clear message.
    const empty = buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'patchbay.hold', values: { reason: '', scope: 'all' }, unchecked: true });
    const emptyAnswer = (await (await postSigned(eventsUrl, empty.body, { secret: SECRET })).json()) as { response_action: string; errors: Record<string, string> };
    expect(emptyAnswer).toMatchObject({ response_action: 'errors', errors: { reason: expect.stringMatching(/needs a reason/) } });
    const long = buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'patchbay.hold', values: { reason: 'x'.repeat(501), scope: 'all' }, unchecked: true });
    const longAnswer = (await (await postSigned(eventsUrl, long.body, { secret: SECRET })).json()) as { errors: Record<string, string> };
    expect(longAnswer.errors.reason).toMatch(/501 characters; keep it to 500/);
    const noClients = buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'patchbay.hold', values: { reason: 'x', scope: 'chosen' } });
    expect(((await (await postSigned(eventsUrl, noClients.body, { secret: SECRET })).json()) as { errors: Record<string, string> }).errors.clients).toMatch(/Choose at least one client/);
    // Issue 13 finding 6: a client picked while "All clients" stayed selected is refused next to the choice,
    // never read as a hold on every client.
    const mixed = buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'patchbay.hold', values: { reason: 'x', scope: 'all', clients: ['acme-dental'] } });
    const mixedAnswer = (await (await postSigned(eventsUrl, mixed.body, { secret: SECRET })).json()) as { response_action: string; errors: Record<string, string> };
    expect(mixedAnswer).toMatchObject({ response_action: 'errors', errors: { scope: expect.stringMatching(/"All clients" is selected/) } });
    expect(await count(sql`select count(*) as n from holds where release_id = ${id}`)).toBe(0);

    const reason = 'Breaks the <!channel> EMR *print* & <@U123> said so';
    const ok = buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'patchbay.hold', values: { reason, scope: 'chosen', clients: ['acme-dental'] } });
    const res = await postSigned(eventsUrl, ok.body, { secret: SECRET });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    await expect.poll(() => emu.message(CH, ts)?.edits, { timeout: 15_000 }).toBe(1);
    const holds = rowsOf<{ reason: string; client_id: string; scope: string; placed_by: string }>(await database.db.execute(sql`select reason, client_id, scope, placed_by from holds where release_id = ${id}`));
    expect(holds).toEqual([{ reason, client_id: 'acme-dental', scope: 'update', placed_by: 'U0PAT' }]);
    const text = textOf(emu.message(CH, ts)?.blocks);
    // The client by its name, not its inventory id.
    expect(text).toContain('Held* (Acme Dental) by <@U0PAT>');
    // Shown as typed: no ping, no mention, and the stars stay stars (a zero-width space keeps them from pairing).
    expect(text).toContain(`&lt;!channel&gt; EMR ${Z}*${Z}print${Z}*${Z} &amp; &lt;@U123&gt;`);
    expect(text).not.toContain('*print*');
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<@U123>');
    expect(await count(sql`select count(*) as n from audit_log where action = 'decision.hold' and subject = ${`update:${id}:5099003`}`)).toBe(1);

    // Releasing it with /patch clears the line, with the same audit.
    await postSigned(eventsUrl, buildSlashCommand(emu, { user: 'U0SAM', text: 'release acme-dental' }).body, { secret: SECRET });
    await expect.poll(() => emu.message(CH, ts)?.edits, { timeout: 15_000 }).toBe(2);
    expect(textOf(emu.message(CH, ts)?.blocks)).not.toContain('Held');
    expect(await count(sql`select count(*) as n from holds where release_id = ${id} and released_at is null`)).toBe(0);
    expect(await count(sql`select count(*) as n from audit_log where action = 'decision.release_hold'`)).toBeGreaterThanOrEqual(1);
  });

  it('stores a note as typed and renders it escaped; refuses an over-long note in the modal', async () => {
    const { id } = await postedRelease();
    const ts = await messageOf(id, '5099001');
    await postSigned(eventsUrl, click('U0SAM', 'update.note', ts, '5099001').body, { secret: SECRET });
    await expect.poll(() => emu.views({ user: 'U0SAM', type: 'modal' }).filter((v) => v.view.callback_id === 'patchbay.note').length).toBeGreaterThan(0);

    const tooLong = buildViewSubmission(emu, { user: 'U0SAM', callbackId: 'patchbay.note', values: { text: 'y'.repeat(3001) }, unchecked: true });
    const refused = (await (await postSigned(eventsUrl, tooLong.body, { secret: SECRET })).json()) as { response_action: string; errors: Record<string, string> };
    expect(refused).toMatchObject({ response_action: 'errors', errors: { text: expect.stringMatching(/3001 characters; keep it to 3000/) } });

    const typed = 'Heads up <!channel>: ask <@U123> first.\nReboots *twice* on Dell & HP; run `wusa` _first_, ~not~ later';
    const sub = buildViewSubmission(emu, { user: 'U0SAM', callbackId: 'patchbay.note', values: { text: typed, tags: ['conflict', 'reboot-twice'] } });
    expect((await postSigned(eventsUrl, sub.body, { secret: SECRET })).status).toBe(200);
    await expect.poll(() => emu.message(CH, ts)?.edits, { timeout: 15_000 }).toBe(1);
    const [note] = rowsOf<{ body: string; tags: string[] }>(await database.db.execute(sql`select n.body, n.tags from research_notes n join updates u on u.id = n.update_id where u.release_id = ${id}`));
    expect(note!.body).toBe(typed);
    expect(note!.tags).toEqual(['conflict', 'reboot-twice']);
    const text = textOf(emu.message(CH, ts)?.blocks);
    expect(text).toContain('&lt;!channel&gt;: ask &lt;@U123&gt; first.');
    expect(text).toContain(`Reboots ${Z}*${Z}twice${Z}*${Z} on Dell &amp; HP; run ${Z}\`${Z}wusa${Z}\`${Z} ${Z}_${Z}first${Z}_${Z}, ${Z}~${Z}not${Z}~${Z} later`);
    for (const formatted of ['*twice*', '`wusa`', '_first_', '~not~']) expect(text).not.toContain(formatted);
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<@U123>');

    // Resubmitting the same modal (same view id) adds nothing.
    await postSigned(eventsUrl, sub.body, { secret: SECRET });
    await new Promise((r) => setTimeout(r, 300));
    expect(await count(sql`select count(*) as n from research_notes n join updates u on u.id = n.update_id where u.release_id = ${id}`)).toBe(1);
  });
});

describe('Slack: /patch and App Home', () => {
  it('answers status, notes, windows and help; unknown input gets usage; a non-engineer is refused', async () => {
    const { id } = await postedRelease();
    const ask = async (user: string, text: string): Promise<string> => {
      const before = emu.responses().length;
      const res = await postSigned(eventsUrl, buildSlashCommand(emu, { user, text }).body, { secret: SECRET });
      expect(res.status).toBe(200);
      await expect.poll(() => emu.responses().length).toBe(before + 1);
      return String((emu.responses().at(-1)!.body as { text: string }).text);
    };
    expect(await ask('U0PAT', 'hold 5099002 Waiting on <vendor> & co')).toContain('KB5099002 held for all clients');
    expect(await count(sql`select count(*) as n from holds where release_id = ${id} and released_at is null`)).toBe(1);

    const status = await ask('U0PAT', 'status');
    expect(status).toContain(`*${id}*`);
    expect(status).toMatch(/KB5099002: held for all clients by <@U0PAT>: Waiting on &lt;vendor&gt; &amp; co/);
    expect(status).toMatch(/Updates: 0 approved, 1 held, 4 waiting/);

    const unknown = await ask('U0PAT', 'frobnicate <!here>');
    expect(unknown).toContain("I don't know `frobnicate`");
    expect(unknown).toContain('/patch status');

    expect(await ask('U0PAT', 'help')).toContain('/patch hold KB|CLIENT|all REASON');
    expect(await ask('U0PAT', 'windows acme-dental')).toMatch(/Acme Dental\* \(acme-dental\), America\/Chicago[\s\S]*desktop `daily 01:00-05:00`/);
    expect(await ask('U0PAT', 'notes KB5099001')).toContain('No notes on KB5099001');
    expect(await ask('U0LEE', 'status')).toMatch(/for the MSP.s engineers/);
  });

  it('holds and releases one ring with ring:RING, audited, while a client called pilot stays a client', async () => {
    const { id } = await postedRelease();
    await database.db.insert(clients).values({ id: 'pilot', name: 'Pilot Air', timezone: 'America/Chicago', windows: { desktop: 'daily 01:00-05:00' } }).onConflictDoNothing();
    const ask = async (text: string): Promise<string> => {
      const before = emu.responses().length;
      expect((await postSigned(eventsUrl, buildSlashCommand(emu, { user: 'U0PAT', text }).body, { secret: SECRET })).status).toBe(200);
      await expect.poll(() => emu.responses().length).toBe(before + 1);
      return String((emu.responses().at(-1)!.body as { text: string }).text);
    };
    const holdsNow = async () =>
      rowsOf<{ scope: string; ring: string | null; client_id: string | null; update_id: number | null; reason: string; placed_by: string }>(
        await database.db.execute(sql`select scope, ring, client_id, update_id, reason, placed_by from holds where release_id = ${id} and released_at is null order by id`),
      );

    expect(await ask('hold ring:pilot Pilot sites closed until Monday')).toContain(`release ${id} held in ring pilot for all clients`);
    expect(await holdsNow()).toEqual([{ scope: 'ring', ring: 'pilot', client_id: null, update_id: null, reason: 'Pilot sites closed until Monday', placed_by: 'U0PAT' }]);
    const [audit] = rowsOf<{ subject: string; detail: { ring?: string; reason?: string } }>(
      await database.db.execute(sql`select subject, detail from audit_log where action = 'decision.hold' and subject = ${`release:${id}`}`),
    );
    expect(audit!.detail).toMatchObject({ ring: 'pilot', reason: 'Pilot sites closed until Monday' });
    // The release's line in the digest says which ring is held.
    await expect.poll(() => textOf(emu.messages(CH).map((m) => m.blocks)), { timeout: 15_000 }).toContain('Held* (ring pilot, whole release, all clients) by <@U0PAT>');
    // A second ring hold on the same ring is the first one, named; a bare `pilot` is the client of that name.
    expect(await ask('hold ring:pilot again')).toContain('already held in ring pilot');
    expect(await ask('hold pilot Their EMR upgrade is this week')).toContain(`release ${id} held for pilot`);
    expect((await holdsNow()).map((h) => [h.scope, h.ring, h.client_id])).toEqual([
      ['ring', 'pilot', null],
      ['client', null, 'pilot'],
    ]);

    expect(await ask('release ring:pilot')).toContain('Released 1 hold');
    expect((await holdsNow()).map((h) => [h.scope, h.ring, h.client_id])).toEqual([['client', null, 'pilot']]);
    const [released] = rowsOf<{ detail: { target?: unknown; ring?: string } }>(
      await database.db.execute(sql`select detail from decisions where kind = 'release_hold' and release_id = ${id}`),
    );
    expect(released!.detail).toMatchObject({ ring: 'pilot', target: { kind: 'ring', ring: 'pilot' } });
    expect(await ask('hold ring:canary why')).toContain('is not a ring');
    await ask('release pilot');
    // Spelled like a ring target: the client, and a client the inventory lacks is refused as one, not as an update.
    expect(await ask('hold client:pilot Their EMR upgrade')).toContain(`release ${id} held for pilot`);
    expect(await ask('hold client:nobody-here why')).toContain('No client nobody-here in the inventory');
    expect(await ask('release client:pilot')).toContain('Released 1 hold');
    expect(await holdsNow()).toEqual([]);
  });

  it('publishes the Home tab once per event, even when Slack retries it', async () => {
    await postedRelease();
    const event = buildAppHomeOpened(emu, 'U0PAT');
    const before = emu.calls('views.publish').length;
    await postSigned(eventsUrl, event.body, { secret: SECRET });
    await postSigned(eventsUrl, event.body, { secret: SECRET, headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' } });
    await expect.poll(() => emu.calls('views.publish').length).toBe(before + 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(emu.calls('views.publish').length).toBe(before + 1);
    expect(JSON.stringify(emu.homeView('U0PAT')?.view)).toMatch(/Current release: 20\d\d-[A-Z][a-z]{2}/);
  });
});

describe('Slack: Hold modal with more clients than a static select lists', () => {
  it('offers an external select answered by typed text (engineers only, at most 100), and holds a client past the first 100', async () => {
    const now = new Date();
    const many = Array.from({ length: 150 }, (_, i) => {
      const n = String(i + 1).padStart(3, '0');
      return { id: `client-${n}`, name: `Client ${n}`, timezone: 'America/Chicago', windows: { desktop: 'daily 01:00-05:00' }, createdAt: now, updatedAt: now };
    });
    // Last by name, so a list cut at 100 would never show it; its name has LIKE's own wildcards in it.
    many[149] = { ...many[149]!, id: 'zephyr-vet', name: 'Zephyr 100%_Vet' };
    await database.db.insert(clients).values(many).onConflictDoNothing();
    expect(await count(sql`select count(*) as n from clients where retired_at is null`)).toBeGreaterThan(150);

    const { id } = await postedRelease();
    const ts = await messageOf(id, '5099001');
    await postSigned(eventsUrl, click('U0SAM', 'update.hold', ts, '5099001').body, { secret: SECRET });
    await expect.poll(() => emu.views({ user: 'U0SAM', type: 'modal' }).filter((v) => v.view.callback_id === 'patchbay.hold').length).toBeGreaterThan(0);
    const modal = emu.views({ user: 'U0SAM', type: 'modal' }).filter((v) => v.view.callback_id === 'patchbay.hold').at(-1)!;
    const picker = (modal.view.blocks as Array<{ block_id?: string; element?: Record<string, unknown> }>).find((b) => b.block_id === 'clients')!.element!;
    expect(picker).toMatchObject({ type: 'multi_external_select', action_id: 'clients' });
    expect(picker.options).toBeUndefined();

    const suggest = async (user: string, value: string) => {
      const res = await postSigned(eventsUrl, buildBlockSuggestion(emu, { user, shownTo: 'U0SAM', callbackId: 'patchbay.hold', actionId: 'clients', value }).body, { secret: SECRET });
      expect(res.status).toBe(200);
      return ((await res.json()) as { options: Array<{ text: { text: string }; value: string }> }).options;
    };
    expect((await suggest('U0SAM', '')).length).toBe(100);
    const zephyr = await suggest('U0SAM', 'ZEPH');
    expect(zephyr.map((o) => o.value)).toEqual(['zephyr-vet']);
    expect(zephyr[0]!.text.text).toBe('Zephyr 100%_Vet (zephyr-vet)');
    // Typed % and _ are text: "0%_" is in Zephyr's name only, not a pattern matching every client.
    expect((await suggest('U0SAM', '0%_')).map((o) => o.value)).toEqual(['zephyr-vet']);
    expect((await suggest('U0SAM', 'client 14')).map((o) => o.value)).toEqual(['client-140', 'client-141', 'client-142', 'client-143', 'client-144', 'client-145', 'client-146', 'client-147', 'client-148', 'client-149']);
    // Someone who is not an engineer learns nothing about the MSP's clients.
    expect(await suggest('U0LEE', 'zeph')).toEqual([]);

    const submit = buildViewSubmissionWithExternal(
      emu,
      { user: 'U0SAM', callbackId: 'patchbay.hold', values: { reason: 'Vet imaging software breaks', scope: 'chosen' } },
      { clients: [zephyr[0]!, (await suggest('U0SAM', 'client-149'))[0]!] },
    );
    expect((await postSigned(eventsUrl, submit.body, { secret: SECRET })).status).toBe(200);
    await expect.poll(() => count(sql`select count(*) as n from holds where release_id = ${id} and released_at is null`), { timeout: 15_000 }).toBe(2);
    const holds = rowsOf<{ client_id: string; scope: string; reason: string }>(
      await database.db.execute(sql`select client_id, scope, reason from holds where release_id = ${id} order by client_id`),
    );
    expect(holds).toEqual([
      { client_id: 'client-149', scope: 'update', reason: 'Vet imaging software breaks' },
      { client_id: 'zephyr-vet', scope: 'update', reason: 'Vet imaging software breaks' },
    ]);
    // Chosen clients with none picked is refused next to the picker, as with the static list.
    const none = buildViewSubmissionWithExternal(emu, { user: 'U0SAM', callbackId: 'patchbay.hold', values: { reason: 'x', scope: 'chosen' } }, { clients: [] });
    expect(((await (await postSigned(eventsUrl, none.body, { secret: SECRET })).json()) as { errors: Record<string, string> }).errors.clients).toMatch(/Choose at least one client/);
  });
});
