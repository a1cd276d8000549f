// The rollout's buttons end to end: the real Bolt app on our HTTP server, the real rollout engine writing its
// messages to the outbox, the real deliverer posting them to the Slack emulator, and clicks built from the
// buttons the bot actually posted, signed as Slack signs them. Real Postgres and redis-server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { createSlackApp, type SlackApp } from '../../src/bot/slack/app.ts';
import { HOLD_CLIENT_ACTION, PROMOTE_ACTION, RETRY_FAILED_ACTION } from '../../src/chat/slack/window-blocks.ts';
import type { Config } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { loadBook } from '../../src/db/rollout-repo.ts';
import { PILOT_REPLY_CHAMPION_ACTION, reportPilotProblem } from '../../src/use-cases/pilot.ts';
import { deliveryClient, OutboxNotifier, startOutboxDeliverer, type OutboxDeliverer } from '../../src/jobs/outbox.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { createHttpServer, type HttpServer } from '../../src/runtime/http.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { worldInventory, worldRelease } from '../support/rollout-world.ts';
import { startSlackEmulator, type SlackEmulator } from '../support/slack-emulator.ts';
import { buildBlockActions, buildSlashCommand, buildViewSubmission, postSigned } from '../support/slack-signing.ts';

const SECRET = 'e2e-rollout-secret';
const CH = 'C0ENGINEERS';
// Warnings and errors are kept, so a test can say that a click made Slack's side of the app complain.
const logged: Array<{ level: number; msg?: string; component?: string }> = [];
const log = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) });
// 02:30 in Chicago on 14 Feb 2024: inside every device's 01:00-05:00 window (07:00Z-11:00Z).
const clock = { now: new Date('2024-02-14T08:30:00Z') };

let database: TestDatabase;
let redis: TestRedis;
let emu: SlackEmulator;
let http: HttpServer;
let slack: SlackApp;
let eventsUrl: string;
let connection: Redis;
let notifier: OutboxNotifier;
let deliverer: OutboxDeliverer;
let engine: RolloutEngine;

async function count(query: ReturnType<typeof sql>): Promise<number> {
  const [row] = rowsOf<{ n: string | number }>(await database.db.execute(query));
  return Number(row?.n ?? 0);
}

/** Everything queued is delivered (or the test fails saying what is stuck). */
async function delivered(): Promise<void> {
  await deliverer.sweep();
  await expect.poll(() => count(sql`select count(*) as n from chat_outbox where state <> 'sent'`), { timeout: 15_000 }).toBe(0);
}

const messageWith = (actionId: string) => emu.messages(CH).find((m) => (JSON.stringify(m.blocks) ?? '').includes(`"action_id":"${actionId}"`));
const click = (user: string, actionId: string, messageTs?: string) =>
  postSigned(eventsUrl, buildBlockActions(emu, { user, actionId, channel: CH, ...(messageTs ? { messageTs } : {}) }).body, { secret: SECRET });
const command = async (user: string, text: string): Promise<string> => {
  const before = emu.responses().length;
  expect((await postSigned(eventsUrl, buildSlashCommand(emu, { user, text }).body, { secret: SECRET })).status).toBe(200);
  await expect.poll(() => emu.responses().length, { timeout: 10_000 }).toBe(before + 1);
  return String((emu.responses().at(-1)!.body as { text: string }).text);
};

beforeAll(async () => {
  [database, redis, emu] = await Promise.all([openTestDatabase(), startTestRedis(), startSlackEmulator({ rateLimits: false })]);
  const db = database.db;
  const inventory = worldInventory({ mspDevices: 2, mspSettings: { soakHours: 1 }, clients: [{ id: 'acme', pilot: 1, broad: 4 }, { id: 'cedar', pilot: 1, broad: 2 }] });
  inventory.msp.engineers = ['U0PAT', 'U0SAM'];
  inventory.msp.channel = CH;
  inventory.clients[1]!.champions = [{ email: 'dana@cedar.example', teamsId: '29:dana', name: 'Dana' }];
  await applyInventory(db, inventory, clock.now);
  await storeRelease(db, worldRelease(), { fetchedAt: clock.now, now: clock.now });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U0PAT', 'slack', 'e2e-approve-release', ${clock.now.toISOString()}::timestamptz)`);

  connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  notifier = new OutboxNotifier(connection, redis.prefix);
  deliverer = await startOutboxDeliverer({ database, connection, prefix: redis.prefix, log, slack: deliveryClient(emu.botToken, emu.url), channelIntervalMs: 10 });
  engine = new RolloutEngine({ config: {} as Config, database, redis: connection, prefix: redis.prefix, log, roles: new Set(['worker']), now: () => clock.now });
  slack = createSlackApp({ botToken: emu.botToken, signingSecret: SECRET, apiUrl: emu.url, database, log, now: () => clock.now, notifyOutbox: (ids) => notifier.notify(ids) });
  http = createHttpServer({ log, readiness: [] });
  http.mount('/slack/events', slack.handler!);
  eventsUrl = `http://127.0.0.1:${await http.listen(0, '127.0.0.1')}/slack/events`;
});

afterAll(async () => {
  await engine?.close();
  await deliverer?.close();
  await notifier?.close();
  await http?.close();
  connection?.disconnect();
  await Promise.all([database?.close(), redis?.stop(), emu?.close()]);
});

describe('Slack: rollout buttons', () => {
  it('offers Promote to pilot as a button once ring msp soaked; a click promotes once, audited, and edits the offer', async () => {
    await delivered(); // the release's digest: the thread the rollout posts into
    // Ring msp through the engine's own events: approved, its window, finished; then the soak runs out.
    expect((await engine.applyEvent('2024-Feb', { type: 'approved', id: 'a1' })).outcome).toBe('applied');
    expect((await engine.applyEvent('2024-Feb', { type: 'window_opened', ring: 'msp', clientId: null, windowStart: '2024-02-14T07:00:00.000Z', holds: [] })).outcome).toBe('applied');
    // What the MSP's desktops installed that night, recorded as the run worker records it: promotion covers installs.
    await database.db.execute(sql`insert into runs (device_id, release_id, rollout_id, window_start, window_end, updates, state, step, scheduled_at, finished_at, detail, updated_at)
      select d.id, '2024-Feb', g.id, '2024-02-14T07:00:00Z'::timestamptz, '2024-02-14T11:00:00Z'::timestamptz, '["5034765", "5034439"]'::jsonb, 'succeeded', 'done',
        '2024-02-14T07:00:00Z'::timestamptz, '2024-02-14T08:30:00Z'::timestamptz, '{"seq":3}'::jsonb, now()
      from devices d join rollouts g on g.release_id = '2024-Feb' and g.ring = 'msp' where d.ring = 'msp'`);
    expect((await engine.applyEvent('2024-Feb', { type: 'ring_finished', ring: 'msp', clientId: null, soakHours: 1 })).outcome).toBe('applied');
    // Too early: a /patch promote is refused by the gate machine, and nothing is offered yet.
    expect(await command('U0PAT', 'promote 2024-Feb')).toMatch(/soaking until/);
    expect(messageWith(PROMOTE_ACTION)).toBeUndefined();
    clock.now = new Date('2024-02-14T09:31:00Z');
    expect((await engine.applyEvent('2024-Feb', { type: 'tick' })).outcome).toBe('applied');
    await delivered();
    const offer = messageWith(PROMOTE_ACTION)!;
    expect(offer, 'the offer carries a Promote to pilot button').toBeDefined();
    expect(offer.thread_ts, 'posted in the release thread').toBeDefined();

    // A non-engineer is refused and changes nothing.
    await click('U0LEE', PROMOTE_ACTION, offer.ts);
    await expect.poll(() => emu.responses().filter((r) => r.context.message_ts === offer.ts).length).toBe(1);
    expect(JSON.stringify(emu.responses().at(-1)!.body)).toMatch(/Only the MSP.s engineers/);
    expect((await loadBook(database.db, '2024-Feb')).gates.msp!.state).toBe('ready');

    // Ten clicks by two engineers at once: one promotion, one decision, one audit row, one edit.
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => click(i % 2 ? 'U0SAM' : 'U0PAT', PROMOTE_ACTION, offer.ts)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    await expect.poll(() => emu.responses().filter((r) => r.context.message_ts === offer.ts).length, { timeout: 15_000 }).toBe(1 + 9);
    await delivered();
    expect(emu.message(CH, offer.ts)?.edits).toBe(1);
    const book = await loadBook(database.db, '2024-Feb');
    expect(book.gates.msp!.state).toBe('promoted');
    expect(Object.keys(book.gates).sort()).toEqual(['msp', 'pilot/acme', 'pilot/cedar']);
    expect(await count(sql`select count(*) as n from decisions where kind = 'promote'`)).toBe(1);
    expect(await count(sql`select count(*) as n from audit_log where action = 'decision.promote'`)).toBe(1);
    const edited = JSON.stringify(emu.message(CH, offer.ts)?.blocks);
    expect(edited).toMatch(/Promoted to pilot\* by <@U0(PAT|SAM)>.*2 client pilots scheduled/);
    expect(edited, 'the answered button is gone').not.toContain(PROMOTE_ACTION);
    expect(await command('U0SAM', 'promote 2024-Feb')).toMatch(/Already promoted to pilot/);
  });

  it('/patch confirm CLIENT confirms a pilot on the champion\u2019s behalf through the pilot use-case, audited as the engineer', async () => {
    await engine.applyEvent('2024-Feb', { type: 'window_opened', ring: 'pilot', clientId: 'acme', windowStart: '2024-02-15T07:00:00.000Z', holds: [] });
    expect(await command('U0PAT', 'confirm acme')).toMatch(/pilot for acme is running/i);
    await engine.applyEvent('2024-Feb', { type: 'ring_finished', ring: 'pilot', clientId: 'acme' });
    expect(await command('U0LEE', 'confirm acme')).toMatch(/for the MSP.s engineers/);
    expect(await command('U0PAT', 'confirm acme')).toMatch(/confirmed on the champion.s behalf/);
    expect(await command('U0SAM', 'confirm acme')).toMatch(/already confirmed/);
    const book = await loadBook(database.db, '2024-Feb');
    expect(book.gates['pilot/acme']!.confirmation).toMatchObject({ by: 'U0PAT', as: 'engineer' });
    expect(book.gates['broad/acme']!.state).toBe('scheduled');
    expect(await count(sql`select count(*) as n from decisions where kind = 'confirm_pilot' and client_id = 'acme' and source = 'slack'`)).toBe(1);
    expect(await count(sql`select count(*) as n from audit_log where action = 'decision.confirm_pilot' and actor = 'U0PAT'`)).toBe(1);
  });

  it('a window summary\u2019s Hold this client and Retry failed act once each, and the summary is edited to show both', async () => {
    // acme's broad window: 2 succeeded, 2 failed, recorded as the engine records them; then the window closes.
    const gate = (await loadBook(database.db, '2024-Feb')).gates['broad/acme']!;
    expect(gate).toBeDefined();
    const ws = '2024-02-16T07:00:00.000Z';
    await database.db.execute(sql`insert into runs (device_id, release_id, rollout_id, window_start, window_end, updates, state, step, error, scheduled_at, finished_at, detail, updated_at)
      select d.id, '2024-Feb', g.id, ${ws}::timestamptz, '2024-02-16T11:00:00Z'::timestamptz, '["5034765"]'::jsonb,
        case when d.name ~ '0000[12]$' then 'succeeded' else 'failed' end, 'done',
        case when d.name ~ '0000[12]$' then null else 'Install failed: 0x80070643 <!channel>' end,
        ${ws}::timestamptz, '2024-02-16T09:00:00Z'::timestamptz, '{"seq":3}'::jsonb, now()
      from devices d join rollouts g on g.release_id = '2024-Feb' and g.ring = 'broad' and g.client_id = 'acme'
      where d.client_id = 'acme' and d.ring = 'broad'`);
    clock.now = new Date('2024-02-16T11:05:00Z');
    await engine.reportWindows(clock.now);
    await delivered();
    const summary = emu.messages(CH).find((m) => (JSON.stringify(m.blocks) ?? '').includes(RETRY_FAILED_ACTION))!;
    expect(summary).toBeDefined();
    expect(JSON.stringify(summary.blocks)).toContain(HOLD_CLIENT_ACTION);

    // Hold this client: a reason modal, then the engineers' hold use-case scoped to acme. Issue 13 finding 6: the
    // modal and the hold line name the client as people know it, not by its inventory id.
    await database.db.execute(sql`update clients set name = 'Acme Dental' where id = 'acme'`);
    await click('U0PAT', HOLD_CLIENT_ACTION, summary.ts);
    await expect.poll(() => emu.views({ user: 'U0PAT', type: 'modal' }).filter((v) => v.view.callback_id === 'rollout.hold_client').length).toBe(1);
    expect(JSON.stringify(emu.views({ user: 'U0PAT', type: 'modal' }).find((v) => v.view.callback_id === 'rollout.hold_client')!.view)).toContain('Hold Acme Dental: nothing new starts');
    const empty = buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'rollout.hold_client', values: { reason: '' }, unchecked: true });
    expect(((await (await postSigned(eventsUrl, empty.body, { secret: SECRET })).json()) as { errors: Record<string, string> }).errors.reason).toMatch(/reason/);
    const submit = buildViewSubmission(emu, { user: 'U0PAT', callbackId: 'rollout.hold_client', values: { reason: 'EMR prints blank <@U123>' } });
    await postSigned(eventsUrl, submit.body, { secret: SECRET });
    await postSigned(eventsUrl, submit.body, { secret: SECRET }); // Slack resending the same submission
    await expect.poll(() => count(sql`select count(*) as n from holds where client_id = 'acme' and released_at is null`)).toBe(1);
    expect(await count(sql`select count(*) as n from holds where client_id = 'acme' and scope = 'client' and placed_by = 'U0PAT' and reason = 'EMR prints blank <@U123>'`)).toBe(1);
    expect(await count(sql`select count(*) as n from audit_log where action = 'decision.hold' and actor = 'U0PAT'`)).toBe(1);
    await delivered();
    expect(emu.message(CH, summary.ts)?.edits).toBe(1);
    let text = JSON.stringify(emu.message(CH, summary.ts)?.blocks);
    expect(text).toMatch(/Acme Dental held\* by <@U0PAT>/);
    expect(text).toContain('EMR prints blank &lt;@U123&gt;');
    expect(text).not.toContain(HOLD_CLIENT_ACTION);
    expect(text, 'Retry failed is still offered').toContain(RETRY_FAILED_ACTION);

    // Retry failed, clicked 8 times by two engineers: the two failed devices get one new run each, in their next window.
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => click(i % 2 ? 'U0SAM' : 'U0PAT', RETRY_FAILED_ACTION, summary.ts)));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    await expect.poll(() => count(sql`select count(*) as n from decisions where kind = 'retry_failed'`)).toBe(1);
    await expect.poll(() => emu.responses().filter((r) => r.context.message_ts === summary.ts && /already retried/.test(JSON.stringify(r.body))).length, { timeout: 15_000 }).toBe(7);
    const retried = rowsOf<{ name: string; state: string; window_start: Date }>(
      await database.db.execute(sql`select d.name, r.state, r.window_start from runs r join devices d on d.id = r.device_id
        where d.client_id = 'acme' and r.window_start > ${ws}::timestamptz order by d.name`),
    );
    // 11:05Z is after Friday's window: the next is Saturday 01:00 CST (07:00Z).
    expect(retried.map((r) => [r.name, r.state, new Date(r.window_start).toISOString()])).toEqual([
      ['ACME-PC-00003', 'scheduled', '2024-02-17T07:00:00.000Z'],
      ['ACME-PC-00004', 'scheduled', '2024-02-17T07:00:00.000Z'],
    ]);
    expect(await count(sql`select count(*) as n from runs where window_start = ${ws}::timestamptz and state = 'failed' and detail ? 'retriedTo'`)).toBe(2);
    expect(await count(sql`select count(*) as n from audit_log where action = 'decision.retry_failed'`)).toBe(1);
    await delivered();
    expect(emu.message(CH, summary.ts)?.edits).toBe(2);
    text = JSON.stringify(emu.message(CH, summary.ts)?.blocks);
    expect(text, 'the hold line is kept').toMatch(/Acme Dental held\*/);
    expect(text).toMatch(/Retry\* by <@U0(PAT|SAM)>.*2 in the next window/);
    expect(text).not.toContain(RETRY_FAILED_ACTION);
  });

  it('Reply to champion, a link button on a reported pilot problem, is acked at once: 200, no warning', async () => {
    await engine.applyEvent('2024-Feb', { type: 'window_opened', ring: 'pilot', clientId: 'cedar', windowStart: '2024-02-17T07:00:00.000Z', holds: [] });
    await engine.applyEvent('2024-Feb', { type: 'ring_finished', ring: 'pilot', clientId: 'cedar' });
    const reported = await reportPilotProblem(
      { db: database.db, now: () => clock.now, onCommitted: (ids) => notifier.notify(ids) },
      { actor: { platform: 'teams', id: '29:dana' }, releaseId: '2024-Feb', clientId: 'cedar', text: 'The label printer stopped', requestId: 'problem-1' },
    );
    expect(reported.outcome).toBe('applied');
    await delivered();
    const alert = messageWith(PILOT_REPLY_CHAMPION_ACTION)!;
    expect(alert, 'the alert carries the reply button').toBeDefined();
    expect(JSON.stringify(alert.blocks)).toContain('https://teams.microsoft.com/l/chat/0/0?users=dana%40cedar.example');

    const before = logged.length;
    const started = Date.now();
    const answer = await click('U0SAM', PILOT_REPLY_CHAMPION_ACTION, alert.ts);
    expect(answer.status).toBe(200);
    expect(Date.now() - started, 'acked well inside Slack\u2019s 3 seconds').toBeLessThan(2500);
    // Give a late "not acknowledged" or a failed listener time to show up.
    await new Promise((r) => setTimeout(r, 500));
    expect(logged.slice(before).filter((entry) => entry.component === 'slack' || /slack listener/.test(entry.msg ?? ''))).toEqual([]);
    expect(emu.responses().filter((r) => r.context.message_ts === alert.ts), 'nothing is said back to the engineer').toEqual([]);
  });
});
