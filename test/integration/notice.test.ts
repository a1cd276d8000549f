/**
 * No unwarned reboot, on real Postgres and a real redis-server: the DM tick (queueUserDms), the rollout sweep, the
 * plan card and the user's answer, under a clock the test controls. The repro of issue 13's finding 2: a champion
 * confirms at 23:08 while the client's 22:00-02:00 window is open (here an engineer, on the client's behalf,
 * through the same use-case). The outbox's delivery is played by marking a
 * DM's outbox row sent at the moment the platform would have taken it.
 */
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { storeSlackDirectory } from '../../src/db/directory-repo.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { answerUserDm } from '../../src/use-cases/user-dm.ts';
import { confirmPilot, planItems } from '../../src/use-cases/pilot.ts';
import { insertRuns, loadBook, loadReleaseFacts, saveGates } from '../../src/db/rollout-repo.ts';
import { unwarnedRuns } from '../../src/db/notice-repo.ts';
import { pilotAsk } from '../../src/domain/eligibility.ts';
import { transition, type RolloutEvent } from '../../src/domain/rollout.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { queueUserDms } from '../../src/jobs/user-dm.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { worldInventory, worldRelease, WIN11 } from '../support/rollout-world.ts';

const log = pino({ level: 'silent' });
let database: TestDatabase;
let redisServer: TestRedis;
let redis: Redis;
let engine: RolloutEngine;
const clock = { now: new Date('2024-03-12T04:08:00Z') };

/** One gate event through the domain, saved the way the engine saves it. */
async function step(event: RolloutEvent, at: string): Promise<void> {
  const before = await loadBook(database.db, '2024-Feb');
  const t = transition(before, event, new Date(at));
  if (t.outcome !== 'applied') throw new Error(`${event.type}: ${t.outcome}`);
  await saveGates(database.db, before, t.book, t.changed, new Date(at));
}

/** The ring's desktops (the client's, or the MSP's own) ran the gate's window and installed `updates`: a succeeded run carries each. */
async function installed(ring: 'msp' | 'pilot', clientId: string | null, window: { start: string; end: string }, updates: string[]): Promise<void> {
  const db = database.db;
  const devices = rowsOf<{ id: number }>(
    await db.execute(sql`select id from devices where ring = ${ring} and client_id is not distinct from ${clientId} and class = 'desktop' order by id`),
  );
  const [rollout] = rowsOf<{ id: number }>(await db.execute(sql`select id from rollouts where release_id = '2024-Feb' and ring = ${ring} and client_id is not distinct from ${clientId}`));
  const ids = await insertRuns(
    db,
    devices.map((d) => ({ deviceId: Number(d.id), releaseId: '2024-Feb', rolloutId: Number(rollout!.id), windowStart: window.start, windowEnd: window.end, updates })),
    new Date(window.start),
  );
  await db.execute(sql`update runs set state = 'succeeded', finished_at = ${window.end}::timestamptz
    where id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)::bigint)`);
}

async function runsOf(name: string): Promise<string[]> {
  return rowsOf<{ ws: string }>(
    await database.db.execute(sql`select to_char(r.window_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI') as ws from runs r join devices d on d.id = r.device_id
      where d.name = ${name} order by r.window_start`),
  ).map((r) => r.ws);
}

/** The platform took the user's DM at `at` (what the outbox deliverer records when a post succeeds). */
async function delivered(email: string, at: string): Promise<void> {
  await database.db.execute(sql`update chat_outbox set state = 'sent', sent_at = ${at}::timestamptz
    where idempotency_key in (select 'userdm:' || u.key from user_dms u join people p on p.id = u.person_id where p.email = ${email})`);
}

beforeAll(async () => {
  [database, redisServer] = await Promise.all([openTestDatabase(), startTestRedis()]);
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const db = database.db;
  const at = new Date('2024-03-01T12:00:00Z');
  const inventory = worldInventory({ clients: [{ id: 'acme', desktopWindow: 'daily 22:00-02:00', broad: 0 }] });
  inventory.clients[0]!.locations[0]!.devices = [
    { name: 'ANN-PC', class: 'desktop', ring: 'broad', os: WIN11, user: 'ann@acme.example' },
    { name: 'BOB-PC', class: 'desktop', ring: 'broad', os: WIN11, user: 'bob@acme.example' },
    // A kiosk has no user to warn: it follows its window alone.
    { name: 'KIOSK-1', class: 'desktop', ring: 'broad', os: WIN11, user: undefined },
    // Where acme tries the release first.
    { name: 'ACME-PILOT-1', class: 'desktop', ring: 'pilot', os: WIN11, user: undefined },
  ];
  await applyInventory(db, inventory, at);
  await storeRelease(db, worldRelease(), { fetchedAt: at, now: at });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U_ENG', 'slack', 'notice-approve', ${at.toISOString()}::timestamptz)`);
  await storeSlackDirectory(
    db,
    [
      { id: 'U0ANN', email: 'ann@acme.example', tz: 'America/Chicago', realName: 'Ann' },
      { id: 'U0BOB', email: 'bob@acme.example', tz: 'America/Chicago', realName: 'Bob' },
    ],
    at,
  );
  await db.execute(sql`insert into teams_conversations (conversation_id, kind, client_id, reference) values ('19:acme@thread', 'channel', 'acme', '{}'::jsonb)`);
  // The release reached acme's pilot the way the engine takes it there: ring msp installed it on the MSP's own
  // machines, an engineer promoted what installed, acme's pilot machine installed it, and its sign-off asks about
  // what installed there. The pilot finished and waits for its confirmation.
  const desktopUpdates = ['5034439', '5034765'];
  const engineer = { kind: 'engineer' as const, id: 'U_ENG' };
  const mspWindow = { start: '2024-03-02T07:00:00Z', end: '2024-03-02T11:00:00Z' };
  await step({ type: 'approved', id: 'notice-approve' }, at.toISOString());
  await step({ type: 'window_opened', ring: 'msp', clientId: null, windowStart: mspWindow.start, holds: [] }, mspWindow.start);
  await installed('msp', null, mspWindow, desktopUpdates);
  await step({ type: 'ring_finished', ring: 'msp', clientId: null, soakUntil: '2024-03-03T11:00:00Z' }, mspWindow.end);
  await step({ type: 'promote', id: 'notice-promote', actor: engineer, clients: ['acme'], updates: desktopUpdates }, '2024-03-03T15:00:00Z');
  const pilotWindow = { start: '2024-03-05T04:00:00Z', end: '2024-03-05T08:00:00Z' };
  await step({ type: 'window_opened', ring: 'pilot', clientId: 'acme', windowStart: pilotWindow.start, holds: [] }, pilotWindow.start);
  await installed('pilot', 'acme', pilotWindow, desktopUpdates);
  const asked = pilotAsk((await loadReleaseFacts(db, ['2024-Feb'])).get('2024-Feb')!, 'acme', []);
  expect(asked).toEqual(desktopUpdates);
  await step({ type: 'ring_finished', ring: 'pilot', clientId: 'acme', asked }, pilotWindow.end);
  engine = new RolloutEngine({ config: {} as Config, database, redis, prefix: `${redisServer.prefix}notice`, log, roles: new Set(['worker']), now: () => clock.now });
});

afterAll(async () => {
  await engine?.close();
  redis?.disconnect();
  await Promise.all([database?.close(), redisServer?.stop()]);
});

describe('a confirmation inside an open window', () => {
  it('the release thread says the broad machines start the next night, not the window already open', async () => {
    // Confirmed at 23:08 CDT on Monday 11 March, inside acme's 22:00-02:00 window.
    const result = await confirmPilot({ db: database.db, now: () => clock.now }, { actor: { platform: 'slack', id: 'U_ENG' }, releaseId: '2024-Feb', clientId: 'acme', requestId: 'confirm-1' });
    expect(result.outcome).toBe('applied');
    // One confirmation, one thread note: who confirmed, what, and which night the broad ring runs.
    const notes = rowsOf<{ text: string }>(
      await database.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject in ('pilot-confirmed:2024-Feb:acme', 'rollout:2024-Feb:broad-night:acme')`),
    );
    expect(notes).toHaveLength(1);
    const note = notes[0]!;
    expect(note.text).toMatch(/confirmed acme's pilot of 2024-Feb \(KB\d+/);
    for (const key of ['5034439', '5034765']) expect(note.text).toContain(`KB${key}`);
    expect(note.text).toContain('desktop (3): Tue 12 Mar, 22:00');
    expect(note.text).not.toContain('Mon 11 Mar');
  });

  it('installs nothing on users\u2019 machines tonight (their users were not told), only on the kiosk', async () => {
    expect((await queueUserDms(database.db, clock.now)).dms).toBe(0);
    await engine.sweep();
    expect(await runsOf('KIOSK-1')).toEqual(['2024-03-12T03:00']);
    expect(await runsOf('ANN-PC')).toEqual([]);
    expect(await runsOf('BOB-PC')).toEqual([]);
    expect(await unwarnedRuns(database.db)).toEqual([]);
  });

  it('the plan card names the next night its users can be told about, not the window already open', async () => {
    const [item] = await planItems(database.db, '2024-Feb', 'acme', clock.now);
    const nights = JSON.stringify(item!.payload.card);
    expect(nights).toContain('Tue 12 Mar, 22:00');
    expect(nights).not.toContain('Mon 11 Mar');
  });

  it('the next afternoon its users are told; a machine whose DM the platform took in time is patched that night, one whose DM went late is not', async () => {
    clock.now = new Date('2024-03-12T20:00:00Z'); // 15:00 CDT
    expect((await queueUserDms(database.db, clock.now)).dms).toBe(2);
    await delivered('ann@acme.example', '2024-03-12T20:00:30Z');
    // Bob's DM reached Slack only at 21:30, half an hour before his window.
    await delivered('bob@acme.example', '2024-03-13T02:30:00Z');
    clock.now = new Date('2024-03-13T03:00:00Z'); // 22:00 CDT
    await engine.sweep();
    expect(await runsOf('ANN-PC')).toEqual(['2024-03-13T03:00']);
    expect(await runsOf('BOB-PC')).toEqual([]);
    expect(await unwarnedRuns(database.db)).toEqual([]);
  });

  it('a user who answered their DM is patched even though it reached them late', async () => {
    clock.now = new Date('2024-03-13T03:10:00Z');
    const [dm] = rowsOf<{ id: number }>(await database.db.execute(sql`select u.id from user_dms u join people p on p.id = u.person_id where p.email = 'bob@acme.example'`));
    const answer = await answerUserDm({ db: database.db, now: () => clock.now }, { actor: { platform: 'slack', id: 'U0BOB' }, dmId: Number(dm!.id), answer: 'ok' });
    expect(answer.outcome).toBe('applied');
    await engine.sweep();
    expect(await runsOf('BOB-PC')).toEqual(['2024-03-13T03:00']);
    expect(await unwarnedRuns(database.db)).toEqual([]);
  });

  it('a deferral pressed once the window opened is refused, and one pressed after it ended says it is over', async () => {
    const [dm] = rowsOf<{ id: number }>(await database.db.execute(sql`select u.id from user_dms u join people p on p.id = u.person_id where p.email = 'ann@acme.example'`));
    const defer = (at: string) => answerUserDm({ db: database.db, now: () => new Date(at) }, { actor: { platform: 'slack', id: 'U0ANN' }, dmId: Number(dm!.id), answer: 'defer' });
    const during = await defer('2024-03-13T03:10:00Z'); // her 22:00-02:00 CDT window is open
    expect(during).toMatchObject({ outcome: 'refused', code: 'too_late' });
    expect(during.message).toContain('already started');
    const after = await defer('2024-03-13T08:00:00Z');
    expect(after).toMatchObject({ outcome: 'refused', code: 'too_late' });
    expect(after.message).toContain('That window is over');
    expect(await runsOf('ANN-PC')).toEqual(['2024-03-13T03:00']);
  });

  it('an OK pressed after the window ended is refused: it would record a warning taken after the restart', async () => {
    const [dm] = rowsOf<{ id: number }>(await database.db.execute(sql`select u.id from user_dms u join people p on p.id = u.person_id where p.email = 'ann@acme.example'`));
    const ok = await answerUserDm({ db: database.db, now: () => new Date('2024-03-13T08:00:00Z') }, { actor: { platform: 'slack', id: 'U0ANN' }, dmId: Number(dm!.id), answer: 'ok' });
    expect(ok).toMatchObject({ outcome: 'refused', code: 'too_late' });
    expect(ok.message).toContain('nothing left to confirm');
    const recorded = rowsOf<{ answer: string | null }>(await database.db.execute(sql`select answer from user_dms where id = ${dm!.id}`));
    expect(recorded).toEqual([{ answer: null }]);
  });

  it('unwarnedRuns (the check for invariant I3) names a run on a user\u2019s machine that nobody warned, and not the kiosk\u2019s', async () => {
    const db = database.db;
    await db.execute(sql`insert into runs (device_id, release_id, window_start, window_end, state, scheduled_at)
      select id, '2024-Feb', '2024-03-14T03:00:00Z', '2024-03-14T07:00:00Z', 'succeeded', '2024-03-14T03:00:00Z' from devices where name in ('ANN-PC', 'KIOSK-1')`);
    const [ann] = rowsOf<{ id: number }>(await db.execute(sql`select id from devices where name = 'ANN-PC'`));
    expect(await unwarnedRuns(db)).toEqual([expect.objectContaining({ deviceId: Number(ann!.id), windowStart: '2024-03-14T03:00:00.000Z' })]);
    await db.execute(sql`delete from runs where window_start = '2024-03-14T03:00:00Z'`);
  });
});
