/**
 * No unwarned reboot, for the people the first version failed (issue 13), on real Postgres and a real
 * redis-server, with the DM tick (queueUserDms), the rollout sweep and the engineers' use-case under a clock the
 * test controls. The outbox's delivery is played by marking a DM's outbox row sent when the platform took it.
 *
 * - Dan is in no chat directory: no DM can reach him, so his machine waits, until an engineer waives the notice
 *   for him (`/patch notice waive dan@… REASON`, audited); it is then patched in its next window, and only there.
 * - Ann has desktops in a 22:00-02:00 window and, once the laptop is added to the inventory an hour after her
 *   first DM went, a laptop in the next day's 12:00-14:00 window: both DMs fall on the same local date, and each
 *   window's machines get their own warning (keyed by date, the second was dropped and the laptop never patched).
 */
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { storeSlackDirectory, unmatchedUsers } from '../../src/db/directory-repo.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { noticeWaivers, unwarnedRuns } from '../../src/db/notice-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { noticeStatusText } from '../../src/chat/notice-status.ts';
import { broadFirstNights } from '../../src/use-cases/broad-night.ts';
import { revokeNoticeWaiver, waiveNotice } from '../../src/use-cases/notice-waiver.ts';
import { answerUserDm } from '../../src/use-cases/user-dm.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import type { Inventory } from '../../src/domain/inventory.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { queueUserDms } from '../../src/jobs/user-dm.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { scheduleGate, worldInventory, worldRelease, WIN11 } from '../support/rollout-world.ts';

const log = pino({ level: 'silent' });
let database: TestDatabase;
let redisServer: TestRedis;
let redis: Redis;
let engine: RolloutEngine;
const clock = { now: new Date('2024-03-01T12:00:00Z') };
const engineer = { platform: 'slack' as const, id: 'U_ENG' };
const ctx = () => ({ db: database.db, now: () => clock.now });

function inventory(withLaptop: boolean, withEve = false): Inventory {
  const inv = worldInventory({ clients: [{ id: 'acme', desktopWindow: 'daily 22:00-02:00', pilot: 0, broad: 0 }] });
  const laptop = parseWindowSpec('daily 12:00-14:00');
  if (!laptop.ok) throw new Error(laptop.error);
  inv.clients[0]!.windows.laptop = laptop.value;
  inv.clients[0]!.locations[0]!.devices = [
    { name: 'ANN-PC', class: 'desktop', ring: 'broad', os: WIN11, user: 'ann@acme.example' },
    { name: 'ANN-PC2', class: 'desktop', ring: 'broad', os: WIN11, user: 'ann@acme.example' },
    ...(withLaptop ? [{ name: 'ANN-LAPTOP', class: 'laptop', ring: 'broad' as const, os: WIN11, user: 'ann@acme.example' }] : []),
    // Dan is in no chat directory.
    { name: 'DAN-PC', class: 'desktop', ring: 'broad', os: WIN11, user: 'dan@acme.example' },
    // Eve joins later, in no directory either.
    ...(withEve ? [{ name: 'EVE-PC', class: 'desktop', ring: 'broad' as const, os: WIN11, user: 'eve@acme.example' }] : []),
  ];
  return inv;
}

async function runsOf(name: string): Promise<string[]> {
  return rowsOf<{ ws: string }>(
    await database.db.execute(sql`select to_char(r.window_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI') as ws from runs r join devices d on d.id = r.device_id
      where d.name = ${name} order by r.window_start`),
  ).map((r) => r.ws);
}

async function dmsTo(email: string): Promise<Array<{ key: string; night: string; devices: string[] }>> {
  return rowsOf<{ key: string; night: string; devices: string[] | string }>(
    await database.db.execute(sql`select u.key, to_char(u.night, 'YYYY-MM-DD') as night, (select jsonb_agg(e ->> 'name' order by e ->> 'name') from jsonb_array_elements(u.devices) e) as devices
      from user_dms u join people p on p.id = u.person_id where p.email = ${email} and u.kind = 'tonight' order by u.id`),
  ).map((r) => ({ key: r.key, night: r.night, devices: typeof r.devices === 'string' ? (JSON.parse(r.devices) as string[]) : r.devices }));
}

/** The platform took every DM queued so far at `at`. */
async function delivered(at: string): Promise<void> {
  await database.db.execute(sql`update chat_outbox set state = 'sent', sent_at = ${at}::timestamptz where idempotency_key like 'userdm:%' and state <> 'sent'`);
}

async function outboxText(key: string): Promise<string | undefined> {
  return rowsOf<{ text: string }>(await database.db.execute(sql`select payload ->> 'text' as text from chat_outbox where idempotency_key = ${key}`))[0]?.text;
}

beforeAll(async () => {
  [database, redisServer] = await Promise.all([openTestDatabase(), startTestRedis()]);
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const db = database.db;
  const at = clock.now;
  await applyInventory(db, inventory(false), at);
  await storeRelease(db, worldRelease(), { fetchedAt: at, now: at });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U_ENG', 'slack', 'people-approve', ${at.toISOString()}::timestamptz)`);
  await storeSlackDirectory(db, [{ id: 'U0ANN', email: 'ann@acme.example', tz: 'America/Chicago', realName: 'Ann' }], at);
  // Past ring msp and acme's pilot (audited skips, as an engineer records them): acme's broad ring is next.
  await scheduleGate(db, 'broad', 'acme', at);
  engine = new RolloutEngine({ config: {} as Config, database, redis, prefix: `${redisServer.prefix}people`, log, roles: new Set(['worker']), now: () => clock.now });
});

afterAll(async () => {
  await engine?.close();
  redis?.disconnect();
  await Promise.all([database?.close(), redisServer?.stop()]);
});

describe('two windows on one local date (issue 13)', () => {
  it('at 15:00 Ann gets one DM for her two desktops in tonight\u2019s window; Dan, unreachable, is listed with the command that lets him be patched', async () => {
    clock.now = new Date('2024-03-12T20:00:00Z'); // Tue 15:00 CDT
    expect((await queueUserDms(database.db, clock.now)).dms).toBe(1);
    expect(await dmsTo('ann@acme.example')).toEqual([expect.objectContaining({ night: '2024-03-12', devices: ['ANN-PC', 'ANN-PC2'] })]);
    const note = await outboxText('userdm-unmatched:acme:2024-03-12');
    expect(note).toContain('dan@acme.example: DAN-PC');
    expect(note).toContain('/patch notice waive USER-EMAIL|DEVICE|CLIENT [REASON]');
  });

  it('her laptop, added an hour later in tomorrow\u2019s 12:00-14:00 window, gets its own DM the same date; both windows patch', async () => {
    clock.now = new Date('2024-03-12T21:00:00Z'); // Tue 16:00 CDT: the laptop's DM (due 15:00) can still go
    await applyInventory(database.db, inventory(true), clock.now);
    expect((await queueUserDms(database.db, clock.now)).dms).toBe(1);
    const dms = await dmsTo('ann@acme.example');
    expect(dms.map((d) => [d.night, d.devices])).toEqual([
      ['2024-03-12', ['ANN-PC', 'ANN-PC2']],
      ['2024-03-12', ['ANN-LAPTOP']],
    ]);
    expect(new Set(dms.map((d) => d.key)).size).toBe(2);
    // A retried tick writes neither again.
    expect((await queueUserDms(database.db, clock.now)).dms).toBe(0);
    await delivered('2024-03-12T21:00:30Z');

    clock.now = new Date('2024-03-13T03:00:00Z'); // Tue 22:00 CDT
    await engine.sweep();
    expect(await runsOf('ANN-PC')).toEqual(['2024-03-13T03:00']);
    expect(await runsOf('ANN-PC2')).toEqual(['2024-03-13T03:00']);
    expect(await runsOf('ANN-LAPTOP')).toEqual([]);
    expect(await runsOf('DAN-PC')).toEqual([]);

    clock.now = new Date('2024-03-13T17:00:00Z'); // Wed 12:00 CDT
    await engine.sweep();
    expect(await runsOf('ANN-LAPTOP')).toEqual(['2024-03-13T17:00']);
    expect(await unwarnedRuns(database.db)).toEqual([]);
  });
});

describe('a user no chat can reach, waived by an engineer (issue 13)', () => {
  it('only an engineer may waive, and only for something the inventory knows', async () => {
    clock.now = new Date('2024-03-13T18:00:00Z'); // Wed 13:00 CDT
    expect(await waiveNotice(ctx(), { actor: { platform: 'slack', id: 'U0ANN' }, target: 'dan@acme.example', reason: 'x' })).toMatchObject({ outcome: 'refused', code: 'not_engineer' });
    expect(await waiveNotice(ctx(), { actor: engineer, target: 'nobody@acme.example', reason: 'x' })).toMatchObject({ outcome: 'refused' });
    expect(await noticeWaivers(database.db)).toEqual([]);
  });

  it('names a device as the inventory spells it, and the MSP\u2019s own machines as msp', async () => {
    expect(await waiveNotice(ctx(), { actor: engineer, target: 'dan-pc', reason: '' })).toMatchObject({ outcome: 'applied', message: expect.stringContaining('device DAN-PC (1 machine with a user)') });
    expect(await waiveNotice(ctx(), { actor: engineer, target: 'msp', reason: '' })).toMatchObject({ outcome: 'applied', message: expect.stringContaining('client Example IT (0 machines with a user)') });
    expect((await noticeWaivers(database.db)).map((w) => [w.scope, w.target, w.reason])).toEqual([
      ['device', 'DAN-PC', 'cannot be reached in chat'],
      ['client', 'msp', 'cannot be reached in chat'],
    ]);
    expect(await revokeNoticeWaiver(ctx(), { actor: engineer, target: 'DAN-PC' })).toMatchObject({ outcome: 'applied' });
    expect(await revokeNoticeWaiver(ctx(), { actor: engineer, target: 'msp' })).toMatchObject({ outcome: 'applied' });
    expect(await noticeWaivers(database.db, clock.now)).toEqual([]);
  });

  it('the waiver is audited, told in the thread, shown in status, and Dan\u2019s machine is patched in its next window, not outside it', async () => {
    const db = database.db;
    const result = await waiveNotice(ctx(), { actor: engineer, target: 'Dan@Acme.example', reason: 'not in Slack; told by phone' });
    expect(result).toMatchObject({ outcome: 'applied', by: 'U_ENG' });
    expect(result.message).toContain('/patch notice revoke dan@acme.example');
    // A second waive changes nothing and says who did it.
    expect(await waiveNotice(ctx(), { actor: engineer, target: 'dan@acme.example', reason: 'again' })).toMatchObject({ outcome: 'noop', by: 'U_ENG' });
    const [audit] = rowsOf<{ actor: string; detail: { scope: string; target: string; reason: string } }>(
      await db.execute(sql`select actor, detail from audit_log where action = 'notice.waive' and subject = 'notice:user:dan@acme.example'`),
    );
    expect(audit).toMatchObject({ actor: 'U_ENG', detail: { scope: 'user', target: 'dan@acme.example', reason: 'not in Slack; told by phone' } });
    const [thread] = rowsOf<{ text: string; thread: string }>(
      await db.execute(sql`select payload ->> 'text' as text, payload ->> 'threadSubject' as thread from chat_outbox where idempotency_key like 'notice-waive:user:%'`),
    );
    expect(thread).toMatchObject({ thread: 'digest:2024-Feb', text: expect.stringContaining('waived the \u201csave your work\u201d notice for user dan@acme.example') });
    const status = noticeStatusText(await unmatchedUsers(db), await noticeWaivers(db, clock.now), 'America/Chicago', clock.now)!;
    // Who (U_ENG is no real Slack id, so it shows as text rather than a mention), when in the reader's zone, why.
    expect(status).toContain('user dan@acme.example by U');
    expect(status).toContain('ENG 13:00 CDT: not in Slack; told by phone');
    expect(status).not.toContain('their machines wait');

    // Outside its window the waiver admits nothing.
    await engine.sweep();
    expect(await runsOf('DAN-PC')).toEqual([]);
    // The afternoon's tick no longer lists Dan as waiting: his machine is patched anyway.
    clock.now = new Date('2024-03-13T20:00:00Z'); // Wed 15:00 CDT
    await queueUserDms(db, clock.now);
    expect(await outboxText('userdm-unmatched:acme:2024-03-13')).toBeUndefined();
    clock.now = new Date('2024-03-14T03:00:00Z'); // Wed 22:00 CDT
    await engine.sweep();
    expect(await runsOf('DAN-PC')).toEqual(['2024-03-14T03:00']);
    // The run was planned under a waiver in force: not an unwarned run.
    expect(await unwarnedRuns(db)).toEqual([]);
  });

  it('revoked, the waiver stays history: the run it allowed stays allowed, and Dan is listed as waiting again', async () => {
    const db = database.db;
    clock.now = new Date('2024-03-14T15:00:00Z');
    expect(await revokeNoticeWaiver(ctx(), { actor: engineer, target: 'dan@acme.example' })).toMatchObject({ outcome: 'applied' });
    expect(await revokeNoticeWaiver(ctx(), { actor: engineer, target: 'dan@acme.example' })).toMatchObject({ outcome: 'noop' });
    expect(await noticeWaivers(db, clock.now)).toEqual([]);
    expect((await noticeWaivers(db)).filter((w) => w.scope === 'user')).toEqual([expect.objectContaining({ target: 'dan@acme.example', revokedAt: clock.now })]);
    expect(await unwarnedRuns(db)).toEqual([]);
    const status = noticeStatusText(await unmatchedUsers(db), await noticeWaivers(db, clock.now), 'America/Chicago', clock.now)!;
    expect(status).toContain('their machines wait (1): dan@acme.example');
    expect(rowsOf(await db.execute(sql`select 1 from audit_log where action = 'notice.revoke_waiver' and subject = 'notice:user:dan@acme.example'`))).toHaveLength(1);
  });

  it('a whole client waived (its users are in no chat it has): its machines start in the window open now, and the thread\u2019s night says so', async () => {
    const db = database.db;
    clock.now = new Date('2024-03-15T03:30:00Z'); // Thu 22:30 CDT, inside acme's desktop window
    await applyInventory(db, inventory(true, true), clock.now);
    const desktop = async () => (await broadFirstNights(db, { releaseId: '2024-Feb', clientId: 'acme', covered: [] }, clock.now)).find((n) => n.deviceClass === 'desktop');
    expect(await desktop()).toMatchObject({ users: true, night: 'Fri 15 Mar, 22:00–02:00 CDT' });
    await engine.sweep();
    expect(await runsOf('EVE-PC')).toEqual([]);

    expect(await waiveNotice(ctx(), { actor: engineer, target: 'acme', reason: 'acme has no chat for its staff' })).toMatchObject({ outcome: 'applied' });
    expect(await desktop()).toMatchObject({ users: false, night: 'Thu 14 Mar, 22:00–02:00 CDT' });
    await engine.sweep();
    expect(await runsOf('EVE-PC')).toEqual(['2024-03-15T03:00']);
    expect(await unwarnedRuns(db)).toEqual([]);
    expect(await revokeNoticeWaiver(ctx(), { actor: engineer, target: 'acme' })).toMatchObject({ outcome: 'applied' });
  });
});

describe('deferrals with a DM per window', () => {
  /** A "save your work" DM to Ann for ANN-PC in the window opening at `windowStart`, sent the afternoon of `night`. */
  async function dmToAnn(night: string, windowStart: string, device: string): Promise<number> {
    const db = database.db;
    const [d] = rowsOf<{ id: number }>(await db.execute(sql`select id from devices where name = ${device}`));
    const [gate] = rowsOf<{ id: number }>(await db.execute(sql`select id from rollouts where release_id = '2024-Feb' and ring = 'broad' and client_id = 'acme'`));
    const end = new Date(Date.parse(windowStart) + 2 * 3_600_000).toISOString();
    const devices = [{ deviceId: Number(d!.id), name: device, releaseId: '2024-Feb', rolloutId: Number(gate!.id), windowStart, windowEnd: end, updates: ['5034765'] }];
    const [row] = rowsOf<{ id: number }>(
      await db.execute(sql`insert into user_dms (key, kind, person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at)
        select ${`tonight:test:${device}:${windowStart}`}, 'tonight', p.id, 'acme', '2024-Feb', ${night}::date, 'slack', 'U0ANN', 'U0ANN', 'America/Chicago',
          ${JSON.stringify(devices)}::jsonb, ${night}::date + interval '20 hours' from people p where p.email = 'ann@acme.example' returning id`),
    );
    return Number(row!.id);
  }
  const defer = (dmId: number) => answerUserDm(ctx(), { actor: { platform: 'slack', id: 'U0ANN' }, dmId, answer: 'defer' });

  it('putting off both of one afternoon\u2019s DMs (two windows) is one night\u2019s deferral, as when they shared a DM', async () => {
    await database.db.execute(sql`update clients set settings = settings || '{"maxDeferralsPerRelease": 1}'::jsonb where id = 'acme'`);
    clock.now = new Date('2024-03-20T21:00:00Z'); // Wed 16:00 CDT
    const desktop = await dmToAnn('2024-03-20', '2024-03-21T03:00:00.000Z', 'ANN-PC');
    const laptop = await dmToAnn('2024-03-20', '2024-03-21T17:00:00.000Z', 'ANN-LAPTOP');
    expect(await defer(desktop)).toMatchObject({ outcome: 'applied', answer: 'defer' });
    expect(await defer(laptop)).toMatchObject({ outcome: 'applied', answer: 'defer' });
    // The next afternoon is a second night: past the limit of one, the engineers decide.
    clock.now = new Date('2024-03-21T21:00:00Z');
    const next = await dmToAnn('2024-03-21', '2024-03-22T03:00:00.000Z', 'ANN-PC2');
    expect(await defer(next)).toMatchObject({ outcome: 'applied', answer: 'escalated' });
  });
});
