// "Save your work tonight" end to end: the inventory imported through the product, the Slack directory read with
// users.list (paged) from the emulator, the tick planning the night with the rollout's own plan, the real outbox
// deliverer posting DMs through the real WebClient, and clicks built from the buttons actually posted, signed as
// Slack signs them, into the real Bolt app. A fake clock drives the tick across zones and a DST night.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DateTime } from 'luxon';
import { Redis } from 'ioredis';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { WebClient } from '@slack/web-api';
import { listSlackMembers } from '../../src/adapters/directory/slack-users.ts';
import { createSlackApp, type SlackApp } from '../../src/bot/slack/app.ts';
import { rowsOf } from '../../src/db/client.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { storeSlackDirectory, unmatchedUsers } from '../../src/db/directory-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { deliveryClient, OutboxNotifier, startOutboxDeliverer, type OutboxDeliverer } from '../../src/jobs/outbox.ts';
import { queueUserDms } from '../../src/jobs/user-dm.ts';
import { recentOfflineRuns } from '../../src/db/user-dm-repo.ts';
import { enqueueOutbox } from '../../src/db/outbox-repo.ts';
import { loadAudiences } from '../../src/chat/audiences.ts';
import { renderNotice } from '../../src/chat/notices.ts';
import type { UserDmNotice } from '../../src/chat/notices/user-dms.ts';
import { createHttpServer, type HttpServer } from '../../src/runtime/http.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { scheduleGate, worldInventory, worldRelease, WIN11 } from '../support/rollout-world.ts';
import { DEFAULT_USERS, startSlackEmulator, type SeedUser, type SlackEmulator } from '../support/slack-emulator.ts';
import { buildBlockActions, buildSlashCommand, postSigned } from '../support/slack-signing.ts';

const SECRET = 'user-dm-signing-secret';
const CH = 'C0ENGINEERS';
const log = pino({ level: 'silent' });
const CROWD = 30;

let database: TestDatabase;
let redis: TestRedis;
let emu: SlackEmulator;
let http: HttpServer;
let slack: SlackApp;
let eventsUrl: string;
let connection: Redis;
let notifier: OutboxNotifier;
let deliverer: OutboxDeliverer | undefined;
let clock = new Date('2024-03-09T20:00:00Z');

const users: SeedUser[] = [
  ...DEFAULT_USERS,
  { id: 'U0ANN', name: 'ann', real_name: 'Ann Front', email: 'ann@acme.example', tz: 'America/Chicago' },
  { id: 'U0BOB', name: 'bob', real_name: 'Bob Back', email: 'bob@acme.example', tz: 'America/Chicago' },
  { id: 'U0CAT', name: 'cat', real_name: 'Cat Lab', email: 'Cat@Acme.example', tz: 'America/Chicago' },
  { id: 'U0EVE', name: 'eve', real_name: 'Eve Remote', email: 'eve@acme.example', tz: 'Europe/London' },
  ...Array.from({ length: CROWD }, (_, i) => ({ id: `U1C${String(i).padStart(3, '0')}`, name: `crowd${i}`, email: `crowd${i}@globex.example`, tz: 'America/New_York' })),
];

async function count(query: ReturnType<typeof sql>): Promise<number> {
  const [row] = rowsOf<{ n: string | number }>(await database.db.execute(query));
  return Number(row?.n ?? 0);
}

async function startDeliverer(extra: Partial<Parameters<typeof startOutboxDeliverer>[0]> = {}): Promise<OutboxDeliverer> {
  deliverer = await startOutboxDeliverer({ database, connection, prefix: redis.prefix, log, slack: deliveryClient(emu.botToken, emu.url), channelIntervalMs: 10, now: () => clock, ...extra });
  return deliverer;
}

async function tick(at: string): Promise<number[]> {
  clock = new Date(at);
  const report = await queueUserDms(database.db, clock);
  await notifier.notify(report.outboxIds);
  return report.outboxIds;
}

const unsent = () => count(sql`select count(*) as n from chat_outbox where state not in ('sent', 'dead')`);
const dmsTo = (user: string) => emu.messages(emu.dmChannelFor(user));

function click(user: string, actionId: string, dmUser: string) {
  return buildBlockActions(emu, { user, actionId, channel: emu.dmChannelFor(dmUser) });
}

beforeAll(async () => {
  [database, redis, emu] = await Promise.all([openTestDatabase(), startTestRedis(), startSlackEmulator({ users, rateLimits: false })]);
  const db = database.db;
  const now = new Date('2024-03-01T12:00:00Z');
  const inventory = worldInventory({ clients: [{ id: 'acme', pilot: 0, broad: 0 }, { id: 'globex', timezone: 'America/New_York', pilot: 0, broad: 0 }] });
  inventory.msp.engineers = ['U0PAT'];
  inventory.msp.channel = CH;
  const desktop = (name: string, user: string, os: string | undefined = WIN11) => ({ name, class: 'desktop', ring: 'broad' as const, os, user });
  inventory.clients[0]!.locations[0]!.devices = [
    desktop('ACME-FRONT-1', 'ann@acme.example'),
    desktop('ACME-FRONT-2', 'ann@acme.example'),
    desktop('ACME-BACK-1', 'bob@acme.example'),
    desktop('ACME-LAB-1', 'cat@acme.example'),
    desktop('ACME-HOME-1', 'eve@acme.example'),
    desktop('ACME-TEMP-1', 'dan@acme.example'),
    // Nothing in the release applies to this OS: its user hears nothing.
    desktop('ACME-MAC-1', 'mo@acme.example', 'macOS 14'),
  ];
  inventory.clients[1]!.locations[0]!.devices = Array.from({ length: CROWD }, (_, i) => desktop(`GLOBEX-PC-${i}`, `crowd${i}@globex.example`));
  await applyInventory(db, inventory, now);
  await storeRelease(db, worldRelease(), { fetchedAt: now, now });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U0PAT', 'slack', 'test-approve', ${now.toISOString()}::timestamptz)`);
  await db.execute(sql`update clients set settings = ${JSON.stringify({ maxDeferralsPerRelease: 1 })}::jsonb where id = 'acme'`);
  await scheduleGate(db, 'broad', 'acme', now);

  connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  notifier = new OutboxNotifier(connection, redis.prefix);
  slack = createSlackApp({ botToken: emu.botToken, signingSecret: SECRET, apiUrl: emu.url, database, log, now: () => clock, notifyOutbox: (ids) => notifier.notify(ids) });
  http = createHttpServer({ log, readiness: [] });
  http.mount('/slack/events', slack.handler!);
  eventsUrl = `http://127.0.0.1:${await http.listen(0, '127.0.0.1')}/slack/events`;

  // The release thread the engineers' notes go into.
  const web = new WebClient(emu.botToken, { slackApiUrl: emu.url });
  const parent = await web.chat.postMessage({ channel: CH, text: '2024-Feb digest' });
  await db.execute(sql`insert into chat_messages (platform, channel, message_id, subject) values ('slack', ${CH}, ${parent.ts!}, 'digest:2024-Feb')`);
  await startDeliverer();
});

afterAll(async () => {
  await deliverer?.close();
  await notifier?.close();
  await http?.close();
  connection?.disconnect();
  await Promise.all([database?.close(), redis?.stop(), emu?.close()]);
});

describe('directory', () => {
  it('matches inventory emails to Slack members with paged users.list, never lookupByEmail, and keeps their zones', async () => {
    const web = new WebClient(emu.botToken, { slackApiUrl: emu.url });
    const { members, calls } = await listSlackMembers(web, 10);
    expect(calls).toBe(Math.ceil((users.length + 1) / 10));
    const stored = await storeSlackDirectory(database.db, members, new Date('2024-03-09T12:00:00Z'));
    expect(stored.matched).toBe(4 + CROWD);
    expect(emu.calls('users.lookupByEmail')).toHaveLength(0);
    const [eve] = rowsOf<{ timezone: string }>(await database.db.execute(sql`select timezone from people where email = 'eve@acme.example'`));
    expect(eve?.timezone).toBe('Europe/London');
    // Dan and Mo are not in Slack: listed, not dropped.
    expect((await unmatchedUsers(database.db)).map((u) => u.email)).toEqual(['dan@acme.example', 'mo@acme.example']);
  });
});

describe('the afternoon before a DST night', () => {
  it('sends at 15:00 in each user\u2019s zone: London first, Chicago at 15:00 CST; one DM per user however many devices', async () => {
    // 14:59 in London: nobody yet.
    expect(await tick('2024-03-09T14:59:00Z')).toEqual([]);
    // 15:00 London: Eve (her Slack zone), not the Chicago users (09:00 there).
    await tick('2024-03-09T15:00:00Z');
    await expect.poll(unsent, { timeout: 15_000 }).toBe(0);
    expect(dmsTo('U0EVE')).toHaveLength(1);
    expect(dmsTo('U0EVE')[0]!.text).toContain('ACME-HOME-1 will be updated and may restart tomorrow between 7:00 and 10:00 AM GMT');
    expect(dmsTo('U0ANN')).toHaveLength(0);
    // 14:59 CST: still nobody in Chicago.
    await tick('2024-03-09T20:59:00Z');
    expect(dmsTo('U0ANN')).toHaveLength(0);
    await tick('2024-03-09T21:00:00Z');
    await expect.poll(unsent, { timeout: 15_000 }).toBe(0);
    for (const u of ['U0ANN', 'U0BOB', 'U0CAT', 'U0EVE']) expect(dmsTo(u), u).toHaveLength(1);
    const ann = dmsTo('U0ANN')[0]!;
    expect(ann.text).toContain('ACME-FRONT-1 and ACME-FRONT-2');
    // Spring-forward night: 01:00 CST to 05:00 CDT, three real hours.
    expect(ann.text).toContain('tonight between 1:00 AM CST and 5:00 AM CDT');
    expect(JSON.stringify(ann.blocks)).toContain('userdm.defer');
    // Mo's machine has nothing to install; the globex gate is not scheduled: no DMs there.
    expect(emu.messages().filter((m) => m.channel.startsWith('D1C'))).toHaveLength(0);
  });

  it('a retried tick writes nothing twice', async () => {
    expect(await tick('2024-03-09T21:05:00Z')).toEqual([]);
    expect(await count(sql`select count(*) as n from user_dms where kind = 'tonight'`)).toBe(4);
  });

  it('lists the user missing from the directory in the release thread, once', async () => {
    const thread = emu.replies(CH, (await rowsOf<{ message_id: string }>(await database.db.execute(sql`select message_id from chat_messages where subject = 'digest:2024-Feb'`)))[0]!.message_id);
    const notes = thread.filter((m) => m.text?.includes('could not be found in Slack'));
    expect(notes).toHaveLength(1);
    expect(notes[0]!.text).toContain('dan@acme.example: ACME-TEMP-1');
    expect(notes[0]!.text).not.toContain('mo@acme.example');
  });
});

describe('answers', () => {
  it('refuses another user pressing someone else\u2019s buttons (ephemeral), and changes nothing', async () => {
    const built = click('U0BOB', 'userdm.defer', 'U0ANN');
    expect((await postSigned(eventsUrl, built.body, { secret: SECRET })).status).toBe(200);
    const ts = dmsTo('U0ANN')[0]!.ts;
    await expect.poll(() => emu.responses().filter((r) => r.context.message_ts === ts).length).toBe(1);
    expect(JSON.stringify(emu.responses().find((r) => r.context.message_ts === ts)!.body)).toContain('for the person this message was sent to');
    await new Promise((r) => setTimeout(r, 200));
    expect(await count(sql`select count(*) as n from user_dms where answer is not null`)).toBe(0);
    expect(await count(sql`select count(*) as n from runs`)).toBe(0);
    expect(dmsTo('U0ANN')[0]!.edits).toBe(0);
  });

  it('OK: audited, and the DM shows the answer instead of the buttons', async () => {
    await postSigned(eventsUrl, click('U0ANN', 'userdm.ok', 'U0ANN').body, { secret: SECRET });
    await expect.poll(() => dmsTo('U0ANN')[0]!.edits, { timeout: 15_000 }).toBe(1);
    expect(JSON.stringify(dmsTo('U0ANN')[0]!.blocks)).not.toContain('userdm.');
    // Ann's DM named her two computers.
    expect(dmsTo('U0ANN')[0]!.text).toContain('you said you will leave them on');
    expect(await count(sql`select count(*) as n from decisions where kind = 'acknowledge' and actor = 'U0ANN'`)).toBe(1);
    expect(await count(sql`select count(*) as n from audit_log where action = 'user_dm.ok' and actor = 'U0ANN'`)).toBe(1);
  });

  it('I need it tonight: rolled runs for tonight (pre-inserted), the next window, then past the limit the engineers decide', async () => {
    // A double click: the same press arrives twice.
    const press = click('U0CAT', 'userdm.defer', 'U0CAT').body;
    await postSigned(eventsUrl, press, { secret: SECRET });
    await expect.poll(() => dmsTo('U0CAT')[0]!.edits, { timeout: 15_000 }).toBe(1);
    const [run] = rowsOf<{ state: string; deferred: string; rolled_to: Date; window_start: Date }>(
      await database.db.execute(sql`select r.state, r.detail->>'deferred' as deferred, r.rolled_to, r.window_start from runs r join devices d on d.id = r.device_id where d.name = 'ACME-LAB-1'`),
    );
    expect(run?.state).toBe('rolled');
    expect(run?.deferred).toBe('true');
    expect(new Date(run!.window_start).toISOString()).toBe('2024-03-10T07:00:00.000Z');
    expect(new Date(run!.rolled_to).toISOString()).toBe('2024-03-11T06:00:00.000Z');
    expect(dmsTo('U0CAT')[0]!.text).toContain('moves to Monday 11 March at 1:00 AM CDT.');
    // One time, labelled: not the moment of answering next to it, unlabelled.
    expect(dmsTo('U0CAT')[0]!.text).not.toMatch(/CDT \(/);
    expect(await count(sql`select count(*) as n from decisions where kind = 'defer' and actor = 'U0CAT'`)).toBe(1);
    await postSigned(eventsUrl, press, { secret: SECRET });
    await new Promise((r) => setTimeout(r, 300));
    expect(await count(sql`select count(*) as n from decisions where kind = 'defer' and actor = 'U0CAT'`)).toBe(1);

    // Next afternoon (15:00 CDT now, 20:00Z): Cat's machine is still due; a new DM for the new night.
    await tick('2024-03-10T19:59:00Z');
    // (Eve in London already has hers: 15:00 there was 15:00Z.)
    expect(await count(sql`select count(*) as n from user_dms where kind = 'tonight' and night = '2024-03-10' and person_id = (select id from people where email = 'cat@acme.example')`)).toBe(0);
    await tick('2024-03-10T20:00:00Z');
    await expect.poll(() => dmsTo('U0CAT').length, { timeout: 15_000 }).toBe(2);
    // Limit 1 for acme: this time the engineers are told and nothing moves.
    await postSigned(eventsUrl, buildBlockActions(emu, { user: 'U0CAT', actionId: 'userdm.defer', messageTs: dmsTo('U0CAT')[1]!.ts }).body, { secret: SECRET });
    await expect.poll(() => emu.messages(CH).filter((m) => m.text?.includes('past the limit')).length, { timeout: 15_000 }).toBe(1);
    await expect.poll(() => dmsTo('U0CAT')[1]!.edits, { timeout: 15_000 }).toBe(1);
    expect(dmsTo('U0CAT')[1]!.text).toContain('your IT team has been asked to decide');
    expect(await count(sql`select count(*) as n from runs r join devices d on d.id = r.device_id where d.name = 'ACME-LAB-1'`)).toBe(1);
    expect(await count(sql`select count(*) as n from audit_log where action = 'user_dm.defer_refused'`)).toBe(1);
  });
});

describe('the morning after', () => {
  it('tells a user whose machine was off, once per release, not every morning', async () => {
    const db = database.db;
    await db.execute(sql`insert into runs (device_id, release_id, window_start, window_end, state, scheduled_at, finished_at)
      select id, '2024-Feb', '2024-03-11T06:00:00Z', '2024-03-11T10:00:00Z', 'offline', now(), now() from devices where name = 'ACME-BACK-1'`);
    await tick('2024-03-11T12:59:00Z'); // 07:59 CDT: too early
    expect(await count(sql`select count(*) as n from user_dms where kind = 'offline'`)).toBe(0);
    await tick('2024-03-11T13:00:00Z');
    await expect.poll(() => dmsTo('U0BOB').filter((m) => m.text?.includes('was off last night')).length, { timeout: 15_000 }).toBe(1);
    await db.execute(sql`insert into runs (device_id, release_id, window_start, window_end, state, scheduled_at, finished_at)
      select id, '2024-Feb', '2024-03-12T06:00:00Z', '2024-03-12T10:00:00Z', 'offline', now(), now() from devices where name = 'ACME-BACK-1'`);
    await tick('2024-03-12T13:00:00Z');
    await new Promise((r) => setTimeout(r, 300));
    expect(dmsTo('U0BOB').filter((m) => m.text?.includes('was off last night'))).toHaveLength(1);
  });
});

describe('a crash mid fan-out', () => {
  it('closing the deliverer part-way and starting it again gives every user exactly one DM', async () => {
    await deliverer!.close();
    deliverer = undefined;
    await scheduleGate(database.db, 'broad', 'globex', new Date('2024-03-12T12:00:00Z'));
    // Slow Slack down so the fan-out is still going when the deliverer dies.
    emu.setLatency('chat.postMessage', 40);
    const d = await startDeliverer({ concurrency: 2 });
    // 15:00 EDT on 2024-03-12.
    await tick('2024-03-12T19:00:00Z');
    expect(await count(sql`select count(*) as n from user_dms where client_id = 'globex'`)).toBe(CROWD);
    const crowdSent = () => emu.messages().filter((m) => m.channel.startsWith('D1C')).length;
    await expect.poll(crowdSent, { timeout: 15_000, interval: 10 }).toBeGreaterThanOrEqual(5);
    await d.close();
    deliverer = undefined;
    const part = crowdSent();
    expect(part).toBeLessThan(CROWD);
    // The tick runs again (its worker died too): nothing new is written.
    expect(await tick('2024-03-12T19:01:00Z')).toEqual([]);
    emu.setLatency('chat.postMessage', 0);
    const again = await startDeliverer();
    await again.sweep();
    await expect.poll(crowdSent, { timeout: 20_000 }).toBe(CROWD);
    for (let i = 0; i < CROWD; i++) expect(dmsTo(`U1C${String(i).padStart(3, '0')}`), `crowd${i}`).toHaveLength(1);
  });
});

describe('a device named with mrkdwn in it', () => {
  it('the morning-after notice shows the inventory’s name as written: no ping, no bold', async () => {
    const db = database.db;
    await db.execute(sql`update devices set name = 'ANN_*LAPTOP*_<!channel>' where name = 'ACME-FRONT-1'`);
    await db.execute(sql`insert into runs (device_id, release_id, window_start, window_end, state, scheduled_at, finished_at)
      select id, '2024-Feb', '2024-03-13T06:00:00Z', '2024-03-13T10:00:00Z', 'offline', now(), now() from devices where name = 'ANN_*LAPTOP*_<!channel>'`);
    await tick('2024-03-13T13:00:00Z'); // 08:00 CDT
    const offline = () => dmsTo('U0ANN').filter((m) => m.text?.includes('was off last night'));
    await expect.poll(() => offline().length, { timeout: 15_000 }).toBe(1);
    const text = offline()[0]!.text!;
    expect(text).not.toContain('<!channel>');
    expect(text).toContain('&lt;!channel&gt;');
    expect(text).not.toMatch(/[^\u200B][*_]|[*_][^\u200B]/);
    expect(text.replaceAll('\u200B', '')).toContain('ANN_*LAPTOP*_&lt;!channel&gt;');
  });
});

describe('the morning after, for a whole client', () => {
  it('tells every user whose machine was off in one tick, and the next tick finds nobody left to tell', async () => {
    const db = database.db;
    await db.execute(sql`insert into runs (device_id, release_id, window_start, window_end, state, scheduled_at, finished_at)
      select id, '2024-Feb', '2024-03-14T06:00:00Z', '2024-03-14T10:00:00Z', 'offline', now(), now() from devices where client_id = 'globex' and user_email is not null`);
    const offlineDms = () => count(sql`select count(*) as n from user_dms where kind = 'offline' and client_id = 'globex'`);
    expect(await tick('2024-03-14T11:59:00Z')).toEqual([]); // 07:59 EDT
    expect(await tick('2024-03-14T12:00:00Z')).toHaveLength(CROWD);
    expect(await offlineDms()).toBe(CROWD);
    expect((await recentOfflineRuns(db, new Date('2024-03-14T12:01:00Z'))).filter((r) => r.clientId === 'globex')).toEqual([]);
    expect(await tick('2024-03-14T12:01:00Z')).toEqual([]);
    expect(await offlineDms()).toBe(CROWD);
  });
});

describe('/patch notice: a user Slack cannot reach (issue 13)', () => {
  const ask = async (user: string, text: string): Promise<string> => {
    const before = emu.responses().length;
    expect((await postSigned(eventsUrl, buildSlashCommand(emu, { user, text }).body, { secret: SECRET })).status).toBe(200);
    await expect.poll(() => emu.responses().length).toBe(before + 1);
    return String((emu.responses().at(-1)!.body as { text: string }).text);
  };

  it('status names who waits and the command; an engineer’s waiver is answered, told in the thread, and shown in status', async () => {
    const before = await ask('U0PAT', 'status');
    expect(before).toContain('their machines wait (2): dan@acme.example (acme, slack), mo@acme.example (acme, slack)');
    expect(before).toContain('/patch notice waive USER-EMAIL|DEVICE|CLIENT [REASON]');

    expect(await ask('U0ANN', 'notice waive dan@acme.example')).toMatch(/for the MSP.s engineers/);
    const answer = await ask('U0PAT', 'notice waive dan@acme.example temp <!channel> *staff*');
    expect(answer).toContain('Notice waived for user dan@acme.example (1 machine with a user)');
    expect(await count(sql`select count(*) as n from audit_log where action = 'notice.waive' and actor = 'U0PAT'`)).toBe(1);

    const thread = () =>
      emu.replies(CH, emu.messages(CH).find((m) => m.text === '2024-Feb digest')!.ts).filter((m) => m.text?.includes('waived the “save your work” notice'));
    await expect.poll(() => thread().length, { timeout: 15_000 }).toBe(1);
    // The reason is shown as typed: no ping, no bold.
    expect(thread()[0]!.text).toContain('<@U0PAT> waived');
    expect(thread()[0]!.text).not.toContain('<!channel>');

    const after = await ask('U0PAT', 'status');
    expect(after).toContain('their machines wait (1): mo@acme.example');
    expect(after).toMatch(/Notice waived, patched unwarned in their windows \(1\): user dan@acme\.example by <@U0PAT> .*: temp &lt;!channel&gt;/);
    expect(await ask('U0PAT', 'notice revoke dan@acme.example')).toContain('Notice required again for user dan@acme.example');
    expect(await ask('U0PAT', 'notice revoke dan@acme.example')).toContain('The notice is not waived for user dan@acme.example');
  });
});

describe('a DM held up past its window\u2019s notice deadline', () => {
  it('is not sent: it would ask the user to save their work for a night their machine is not patched in', async () => {
    const dm = (n: number, notAfter: Date): UserDmNotice => ({
      kind: 'user_dm_sent',
      dmId: 9000 + n,
      key: `tonight:${9000 + n}:${notAfter.toISOString()}`,
      platform: 'slack',
      channel: emu.dmChannelFor('U0BOB'),
      text: `held-up DM ${n}`,
      notAfter: notAfter.toISOString(),
    });
    // Queued in time; the platform is then out until after the first one's deadline.
    await deliverer!.close();
    deliverer = undefined;
    const queuedAt = clock;
    const late = dm(1, new Date(queuedAt.getTime() + 60_000));
    const inTime = dm(2, new Date(queuedAt.getTime() + 3 * 3_600_000));
    const ids = await enqueueOutbox(database.db, [...renderNotice(late, await loadAudiences(database.db)), ...renderNotice(inTime, await loadAudiences(database.db))], queuedAt);
    clock = new Date(queuedAt.getTime() + 3_600_000);
    const d = await startDeliverer();
    await d.sweep();
    await expect.poll(unsent, { timeout: 15_000 }).toBe(0);
    const texts = dmsTo('U0BOB').map((m) => m.text);
    expect(texts).toContain('held-up DM 2');
    expect(texts).not.toContain('held-up DM 1');
    const rows = rowsOf<{ state: string; last_error: string | null }>(await database.db.execute(sql`select state, last_error from chat_outbox where id in (${sql.join(ids.map((id) => sql`${id}`), sql`, `)}) order by id`));
    expect(rows.map((r) => r.state)).toEqual(['dead', 'sent']);
    expect(rows[0]!.last_error).toMatch(/not sent: it was of use only until/);
  });

  it('tells the engineers under the digest whose DM was dropped and which machines wait, once per client and night', async () => {
    const db = database.db;
    const [bob] = rowsOf<{ id: number }>(await db.execute(sql`select id from people where email = 'bob@acme.example'`));
    // Bob's DM for a window ten days on, as the tick writes it, held up past its deadline (the platform out).
    const queuedAt = clock;
    const windowStart = new Date(queuedAt.getTime() + 10 * 86_400_000);
    const notAfter = new Date(queuedAt.getTime() + 60_000);
    const key = `tonight:${bob!.id}:${windowStart.toISOString()}`;
    const devices = [{ name: 'ACME-BACK-1', windowStart: windowStart.toISOString(), windowEnd: new Date(windowStart.getTime() + 4 * 3_600_000).toISOString() }];
    const storeDm = async (dmKey: string, personId: number, releaseId: string, user: string, names: string[]) => {
      const [stored] = rowsOf<{ id: number }>(
        await db.execute(sql`insert into user_dms (key, kind, person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at)
          values (${dmKey}, 'tonight', ${personId}, 'acme', ${releaseId}, '2024-03-19', 'slack', ${emu.dmChannelFor(user)}, ${user}, 'America/Chicago',
            ${JSON.stringify(names.map((name) => ({ ...devices[0]!, name })))}::jsonb, ${queuedAt.toISOString()}::timestamptz) returning id`),
      );
      const sent: UserDmNotice = { kind: 'user_dm_sent', dmId: stored!.id, key: dmKey, platform: 'slack', channel: emu.dmChannelFor(user), text: `held-up DM for ${user}`, notAfter: notAfter.toISOString() };
      await enqueueOutbox(db, renderNotice(sent, await loadAudiences(db)), queuedAt);
    };
    // Ann's DM the same night belongs to an older release whose id sorts after 2024-Feb's ('2024-Jan' > '2024-Feb'):
    // the note goes under the release published last, the one whose digest is posted here.
    const [ann] = rowsOf<{ id: number }>(await db.execute(sql`select id from people where email = 'ann@acme.example'`));
    const older = '2024-Jan';
    await storeRelease(db, { ...worldRelease(), id: older, initialReleaseDate: '2024-01-09T18:00:00Z', currentReleaseDate: '2024-01-09T18:00:00Z' }, { fetchedAt: queuedAt, now: queuedAt });
    await deliverer!.close();
    deliverer = undefined;
    await storeDm(key, bob!.id, '2024-Feb', 'U0BOB', ['ACME-BACK-1']);
    await storeDm(`tonight:${ann!.id}:${windowStart.toISOString()}`, ann!.id, older, 'U0ANN', ['ACME-FRONT-1', 'ACME-FRONT-2']);
    clock = new Date(queuedAt.getTime() + 3_600_000);
    await (await startDeliverer()).sweep();
    await expect.poll(unsent, { timeout: 15_000 }).toBe(0);

    const [digest] = rowsOf<{ message_id: string }>(await db.execute(sql`select message_id from chat_messages where subject = 'digest:2024-Feb'`));
    const notes = () => emu.replies(CH, digest!.message_id).filter((m) => m.text?.includes('could not be sent by'));
    // Not before the deadline is ten minutes behind (the night's other held-up DMs are still being dropped).
    await tick(new Date(notAfter.getTime() + 5 * 60_000).toISOString());
    await expect.poll(unsent, { timeout: 15_000 }).toBe(0);
    expect(notes()).toHaveLength(0);
    await tick(new Date(notAfter.getTime() + 11 * 60_000).toISOString());
    await expect.poll(() => notes().length, { timeout: 15_000 }).toBe(1);
    const deadline = DateTime.fromJSDate(notAfter, { zone: 'America/Chicago' }).toFormat('ccc d LLL HH:mm');
    expect(notes()[0]!.text).toMatch(new RegExp(`^acme: 2 \u201csave your work\u201d messages could not be sent by ${deadline} C[SD]T, the latest they could go`));
    expect(notes()[0]!.text).toMatch(/: ACME-BACK-1$/m);
    expect(notes()[0]!.text).toMatch(/: ACME-FRONT-1 and ACME-FRONT-2$/m);
    expect(notes()[0]!.text).toContain('left out of that night\u2019s window');
    // The next tick finds it reported.
    await tick(new Date(notAfter.getTime() + 12 * 60_000).toISOString());
    await expect.poll(unsent, { timeout: 15_000 }).toBe(0);
    expect(notes()).toHaveLength(1);
  });
});
