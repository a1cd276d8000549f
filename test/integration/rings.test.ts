/**
 * Each update through every ring, on real Postgres and a real redis-server under a clock the test controls: the
 * orderings a month in the sandbox showed broken (issue 13): a late approval, a pilot where nothing installed, a
 * desktop KB waiting for the Sunday server window.
 */
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedFleet } from '../../src/adapters/deployers/simulated.ts';
import type { Config } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { loadBook } from '../../src/db/rollout-repo.ts';
import { loadMspPicture } from '../../src/db/eligibility-repo.ts';
import { approve, hold, releaseHold } from '../../src/use-cases/decisions.ts';
import { loadSignoff } from '../../src/use-cases/pilot.ts';
import { promoteRelease, skipRing } from '../../src/use-cases/rollout-actions.ts';
import { releaseStatus } from '../../src/use-cases/status.ts';
import { statusModel } from '../../src/domain/status.ts';
import { queueClientMessages } from '../../src/jobs/teams.ts';
import { RolloutEngine } from '../../src/jobs/rollout/index.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { seedWorld, SERVER, worldInventory, type WorldOptions } from '../support/rollout-world.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';

const log = pino({ level: 'silent' });
const cli = { platform: 'cli' as const, id: 'pat' };
let redisServer: TestRedis;
beforeAll(async () => {
  redisServer = await startTestRedis();
});
afterAll(async () => {
  await redisServer?.stop();
});

const open: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of open.splice(0).reverse()) await fn().catch(() => {});
});

let worlds = 0;
/** A world where only `approved` updates are approved (by the engineers' own use-case, which starts ring msp). */
async function world(at: string, options: WorldOptions, approved: string[]) {
  const database: TestDatabase = await openTestDatabase();
  open.push(() => database.close());
  const db = database.db;
  const clock = { now: new Date(at) };
  await seedWorld(db, options, clock.now);
  await db.execute(sql`delete from decisions where idempotency_key = 'test-approve-release'`);
  const ctx = { db, now: () => clock.now };
  for (const key of approved) expect(await approve(ctx, { actor: cli, releaseId: '2024-Feb', updateKey: key })).toMatchObject({ outcome: 'applied' });
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  open.push(async () => redis.disconnect());
  const fleet = new SimulatedFleet({ clock: () => clock.now });
  const engine = new RolloutEngine(
    { config: {} as Config, database, redis, prefix: `${redisServer.prefix}rings${++worlds}`, log, roles: new Set(['worker']), now: () => clock.now },
    { deployer: fleet, pollMs: 1, realDelayMs: () => 0 },
  );
  open.push(() => engine.close());
  /** A sweep, then every run it planned driven to its end, then a sweep that sees them finished. */
  const night = async (iso: string) => {
    clock.now = new Date(iso);
    await engine.sweep();
    for (const { id } of rowsOf<{ id: number }>(await db.execute(sql`select id from runs where state = 'scheduled' order by id`))) await engine.processRun(Number(id));
    return engine.sweep();
  };
  const runsOf = async (prefix: string) =>
    rowsOf<{ name: string; updates: string[]; state: string }>(
      await db.execute(sql`select d.name, r.updates, r.state from runs r join devices d on d.id = r.device_id where d.name like ${`${prefix}%`} order by r.id`),
    );
  const gate = async (key: string) => (await loadBook(db, '2024-Feb')).gates[key];
  return { db, clock, ctx, engine, fleet, night, runsOf, gate };
}

describe('each update through every ring', () => {
  it('finding 1: a pilot where nothing installed sends no sign-off card and lists nothing; the thread says why the client waits', async () => {
    // Only the server KB is approved; the desktop KB is held for acme (it breaks their EMR). Acme's pilots are desktops.
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspExtra: [{ name: 'MSP-SRV-01', class: 'server', ring: 'msp', os: SERVER, user: undefined }], clients: [{ id: 'acme', pilot: 2, broad: 2 }] }, ['5034770']);
    expect(await hold(w.ctx, { actor: cli, releaseId: '2024-Feb', updateKey: 'KB5034765', clients: ['acme'], reason: 'breaks the EMR', requestId: 'h1' })).toMatchObject({ outcome: 'applied' });
    await w.db.execute(sql`insert into teams_conversations (conversation_id, kind, client_id, reference) values ('conv-acme', 'channel', 'acme', '{}'::jsonb)`);
    await w.night('2024-02-18T07:30:00Z'); // Sunday 01:30 CST: the MSP's server installs the server KB
    expect(await w.runsOf('MSP-SRV')).toEqual([{ name: 'MSP-SRV-01', updates: ['5034770'], state: 'succeeded' }]);
    w.clock.now = new Date('2024-02-19T08:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-20T07:30:00Z'); // acme's pilot window: both desktops have nothing to install
    expect((await w.runsOf('ACME-PILOT')).map((r) => r.state)).toEqual(['skipped', 'skipped']);
    expect((await w.gate('pilot/acme'))?.state).toBe('waiting');
    const view = await loadSignoff(w.db, '2024-Feb', 'acme');
    expect(view?.updates).toEqual([]);
    expect(await queueClientMessages(w.db, new Date('2024-02-20T15:00:00Z'))).toBeDefined();
    const cards = rowsOf(await w.db.execute(sql`select 1 from chat_outbox where subject like 'signoff:%'`));
    expect(cards).toEqual([]);
    const thread = rowsOf<{ text: string }>(await w.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject = 'rollout:2024-Feb:pilot:acme'`));
    expect(thread.map((t) => t.text)).toEqual([expect.stringContaining('nothing installed on acme')]);
  });

  it('finding 3: an update approved after Promote runs on ring msp first; the pilot gets only what installed there, broad only what the client confirmed', async () => {
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspSettings: { soakHours: 2 }, clients: [{ id: 'acme', pilot: 1, broad: 1 }] }, ['5034765']);
    await w.night('2024-02-14T07:30:00Z');
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    // Late: approved after the promotion. Ring msp runs again for it, whatever the release has reached.
    expect(await approve(w.ctx, { actor: cli, releaseId: '2024-Feb', updateKey: '5034439' })).toMatchObject({ outcome: 'applied' });
    expect((await w.gate('msp'))?.state).toBe('scheduled');
    await w.night('2024-02-15T07:30:00Z');
    expect(await w.runsOf('MSP-PC')).toEqual([
      { name: 'MSP-PC-001', updates: ['5034765'], state: 'succeeded' },
      { name: 'MSP-PC-001', updates: ['5034439'], state: 'succeeded' },
    ]);
    expect(await w.runsOf('ACME-PILOT')).toEqual([{ name: 'ACME-PILOT-1', updates: ['5034765'], state: 'succeeded' }]);
    expect((await w.gate('pilot/acme'))?.asked).toEqual(['5034765']);
    await w.engine.applyEvent('2024-Feb', { type: 'confirm_pilot', id: 'c1', actor: { kind: 'engineer', id: 'pat' }, clientId: 'acme' });
    await w.night('2024-02-16T07:30:00Z');
    // The late update soaked on ring msp but nobody promoted it: acme's broad machine gets only what acme confirmed.
    expect(await w.runsOf('ACME-PC')).toEqual([{ name: 'ACME-PC-00001', updates: ['5034765'], state: 'succeeded' }]);
    // Its own promotion, later, covers it alone, and acme's pilot runs again for it.
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    expect((await w.gate('msp'))?.promotions?.map((p) => p.updates)).toEqual([['5034765'], ['5034439']]);
    await w.night('2024-02-17T07:30:00Z');
    expect((await w.runsOf('ACME-PILOT')).map((r) => r.updates)).toEqual([['5034765'], ['5034439']]);
    expect((await w.runsOf('ACME-PC')).map((r) => r.updates)).toEqual([['5034765']]);
  });

  it('ring msp passes an update per product: a KB installed only on the MSP\u2019s Windows 11 machine does not reach a client\u2019s Server 2022 pilot', async () => {
    // 5034439 fixes Windows 11 and Server 2022; the MSP has one Windows 11 desktop and no server. Acme's pilot is a server.
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspSettings: { soakHours: 2 }, clients: [{ id: 'acme', pilot: 1, broad: 0, pilotOs: SERVER }] }, ['5034439']);
    await w.night('2024-02-14T07:30:00Z');
    expect(await w.runsOf('MSP-PC')).toEqual([{ name: 'MSP-PC-001', updates: ['5034439'], state: 'succeeded' }]);
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-15T07:30:00Z');
    // Untested on Server 2022: no run, and no "nothing to install" row either (it waits for ring msp, or a skip).
    expect(await w.runsOf('ACME-PILOT')).toEqual([]);
    expect((await w.gate('pilot/acme'))?.state).toBe('waiting');
    // The thread says where it waits, and offers the skip that fits: ring msp, not acme's pilot (that would send
    // it to acme's broad machines untested on their OS).
    const notes = rowsOf<{ text: string }>(await w.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject like 'rollout:2024-Feb:untested:%'`));
    expect(notes.map((n) => n.text)).toEqual([expect.stringContaining("KB5034439 installed on our own machines, but on none running the OS of acme's pilot machines")]);
    expect(notes[0]!.text).toContain('/patch skip msp KB5034439');
  });

  it('a hold released after the client\u2019s pilot and broad ring finished reopens them: the update reaches those machines, and the champion is asked about it alone', async () => {
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspSettings: { soakHours: 2 }, clients: [{ id: 'acme', pilot: 1, broad: 1 }] }, ['5034765', '5034439']);
    expect(await hold(w.ctx, { actor: cli, releaseId: '2024-Feb', updateKey: 'KB5034439', clients: ['acme'], reason: 'check the EMR first', requestId: 'h1' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-14T07:30:00Z');
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-15T07:30:00Z');
    expect(await w.runsOf('ACME-PILOT')).toEqual([{ name: 'ACME-PILOT-1', updates: ['5034765'], state: 'succeeded' }]);
    await w.engine.applyEvent('2024-Feb', { type: 'confirm_pilot', id: 'c1', actor: { kind: 'engineer', id: 'pat' }, clientId: 'acme' });
    await w.night('2024-02-16T07:30:00Z');
    expect(await w.runsOf('ACME-PC')).toEqual([{ name: 'ACME-PC-00001', updates: ['5034765'], state: 'succeeded' }]);
    expect([(await w.gate('pilot/acme'))?.state, (await w.gate('broad/acme'))?.state]).toEqual(['confirmed', 'finished']);

    w.clock.now = new Date('2024-02-16T15:00:00Z');
    expect(await releaseHold(w.ctx, { actor: cli, releaseId: '2024-Feb', target: { kind: 'update', updateKey: '5034439' }, requestId: 'r1' })).toMatchObject({ outcome: 'applied' });
    // The pilot has the released update to install; broad waits for acme's pilot and confirmation; ring msp is done with it.
    expect((await w.gate('pilot/acme'))?.state).toBe('scheduled');
    expect((await w.gate('broad/acme'))?.state).toBe('finished');
    expect((await w.gate('msp'))?.state).toBe('promoted');
    await w.night('2024-02-17T07:30:00Z');
    expect((await w.runsOf('ACME-PILOT')).map((r) => r.updates)).toEqual([['5034765'], ['5034439']]);
    expect((await w.gate('pilot/acme'))?.asked).toEqual(['5034439']);
    await w.engine.applyEvent('2024-Feb', { type: 'confirm_pilot', id: 'c2', actor: { kind: 'engineer', id: 'pat' }, clientId: 'acme' });
    await w.night('2024-02-18T07:30:00Z');
    expect((await w.runsOf('ACME-PC')).map((r) => r.updates)).toEqual([['5034765'], ['5034439']]);
    // Done: a later sweep neither reopens nor re-finishes anything.
    const before = rowsOf<{ v: number }>(await w.db.execute(sql`select sum(version)::int as v from rollouts`))[0]!.v;
    await w.night('2024-02-19T07:30:00Z');
    expect(rowsOf<{ v: number }>(await w.db.execute(sql`select sum(version)::int as v from rollouts`))[0]!.v).toBe(before);
  });

  it('the Teams tick tells every champion conversation each sign-off round and window summary once, a conversation linked late too', async () => {
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspSettings: { soakHours: 2 }, clients: [{ id: 'acme', pilot: 1, broad: 1 }] }, ['5034765', '5034439']);
    expect(await hold(w.ctx, { actor: cli, releaseId: '2024-Feb', updateKey: 'KB5034439', clients: ['acme'], reason: 'check the EMR first', requestId: 'h1' })).toMatchObject({ outcome: 'applied' });
    const link = (id: string) => w.db.execute(sql`insert into teams_conversations (conversation_id, kind, client_id, reference) values (${id}, 'channel', 'acme', '{}'::jsonb)`);
    const keys = async (like: string) =>
      rowsOf<{ key: string }>(await w.db.execute(sql`select idempotency_key as key from chat_outbox where idempotency_key like ${like} order by idempotency_key`)).map((r) => r.key);
    const summaries = async (conversation: string) => (await keys(`teams:window:acme:%:${conversation}:summary`)).map((k) => k.split(`:${conversation}:`)[0]);
    await link('conv-acme');
    await w.night('2024-02-14T07:30:00Z');
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-15T07:30:00Z');
    expect((await w.gate('pilot/acme'))?.state).toBe('awaiting_confirmation');
    const tick = (iso: string) => queueClientMessages(w.db, new Date(iso));
    expect((await tick('2024-02-15T15:00:00Z')).length).toBeGreaterThan(0);
    expect(await keys('teams:signoff:%')).toEqual(['teams:signoff:2024-Feb:acme:conv-acme:post']);
    const pilotNight = await summaries('conv-acme');
    expect(pilotNight).toHaveLength(1);
    expect(await tick('2024-02-15T15:00:15Z')).toEqual([]);
    // Linked after the card and the summary went out: it gets both, and the first conversation nothing again.
    await link('conv-late');
    expect((await tick('2024-02-15T15:00:30Z')).length).toBe(2);
    expect(await keys('teams:signoff:%')).toEqual(['teams:signoff:2024-Feb:acme:conv-acme:post', 'teams:signoff:2024-Feb:acme:conv-late:post']);
    expect(await summaries('conv-late')).toEqual(pilotNight);
    expect(await tick('2024-02-15T15:00:45Z')).toEqual([]);
    // The hold released after acme confirmed: a second round asks about the released update alone, a card of its own.
    await w.engine.applyEvent('2024-Feb', { type: 'confirm_pilot', id: 'c1', actor: { kind: 'engineer', id: 'pat' }, clientId: 'acme' });
    await w.night('2024-02-16T07:30:00Z');
    w.clock.now = new Date('2024-02-16T15:00:00Z');
    expect(await releaseHold(w.ctx, { actor: cli, releaseId: '2024-Feb', target: { kind: 'update', updateKey: '5034439' }, requestId: 'r1' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-17T07:30:00Z');
    expect((await w.gate('pilot/acme'))?.state).toBe('awaiting_confirmation');
    await tick('2024-02-17T15:00:00Z');
    expect(await keys('teams:signoff:%')).toEqual([
      'teams:signoff:2024-Feb:acme:conv-acme:post',
      'teams:signoff:2024-Feb:acme:conv-acme:post:5034439',
      'teams:signoff:2024-Feb:acme:conv-late:post',
      'teams:signoff:2024-Feb:acme:conv-late:post:5034439',
    ]);
    expect(await summaries('conv-late')).toEqual(await summaries('conv-acme'));
    expect((await summaries('conv-acme')).length).toBeGreaterThan(pilotNight.length);
    expect(await tick('2024-02-17T15:00:15Z')).toEqual([]);
  });

  it('a closed window is told once in each of its channels, one given to the client after the window closed too', async () => {
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspSettings: { soakHours: 2 }, clients: [{ id: 'acme', pilot: 1, broad: 0 }] }, ['5034765']);
    await w.night('2024-02-14T07:30:00Z');
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-15T07:30:00Z');
    const told = async () =>
      rowsOf<{ key: string }>(await w.db.execute(sql`select idempotency_key as key from chat_outbox where subject like 'window%:acme:%' order by id`)).map((r) => r.key.replace(/^window:acme:[^:]+:\d\dZ:/, ''));
    w.clock.now = new Date('2024-02-15T15:00:00Z');
    await w.engine.sweep();
    const engineers = await told();
    expect(engineers.filter((k) => k.endsWith(':final') || k.endsWith(':summary'))).toHaveLength(2);
    expect(await w.engine.sweep()).toMatchObject({ messages: 0 });
    // Acme gets a channel of its own after its window closed: the window's post, final edit and summary go there once.
    await w.db.execute(sql`update clients set settings = settings || '{"slackChannel": "C_ACME"}'::jsonb where id = 'acme'`);
    w.clock.now = new Date('2024-02-15T15:01:00Z');
    await w.engine.sweep();
    w.clock.now = new Date('2024-02-15T15:02:00Z');
    await w.engine.sweep();
    expect((await told()).filter((k) => k.startsWith('C_ACME:')).sort()).toEqual(['C_ACME:final', 'C_ACME:post', 'C_ACME:summary']);
    expect(await w.engine.sweep()).toMatchObject({ messages: 0 });
    expect((await told()).filter((k) => !k.startsWith('C_ACME:'))).toEqual(engineers);
  });

  it('ring msp\u2019s standings read from the machines that ran under it are those read from the whole release', async () => {
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 2, mspSettings: { soakHours: 2 }, clients: [{ id: 'acme', pilot: 1, broad: 2 }] }, ['5034765', '5034439']);
    const same = async () => {
      const [all, msp] = [await loadMspPicture(w.db, '2024-Feb', w.clock.now, []), await loadMspPicture(w.db, '2024-Feb', w.clock.now, [], 'msp')];
      expect(msp!.standings).toEqual(all!.standings);
      return msp!.standings.map((s) => [s.key, s.state, s.installedOn.length]);
    };
    await w.night('2024-02-14T07:30:00Z');
    // Installed on ring msp's machines, so the comparison is over outcomes that are there.
    expect((await same()).map(([, state, installed]) => [state, installed])).toEqual([['soaking', 2], ['soaking', 2]]);
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect((await same()).map(([, state]) => state)).toEqual(['ready', 'ready']);
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-15T07:30:00Z');
    await w.engine.applyEvent('2024-Feb', { type: 'confirm_pilot', id: 'c1', actor: { kind: 'engineer', id: 'pat' }, clientId: 'acme' });
    await w.night('2024-02-16T07:30:00Z');
    expect(await w.runsOf('ACME-PC')).toHaveLength(2);
    expect((await same()).map(([, state]) => state)).toEqual(['promoted', 'promoted']);
  });

  it('a machine imported into a ring that already finished gets what passed there; the champion is not asked again about what they confirmed', async () => {
    const options = { mspDevices: 1, mspSettings: { soakHours: 2 }, clients: [{ id: 'acme', pilot: 1, broad: 1 }] };
    const w = await world('2024-02-14T03:00:00Z', options, ['5034765']);
    await w.night('2024-02-14T07:30:00Z');
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-15T07:30:00Z');
    await w.engine.applyEvent('2024-Feb', { type: 'confirm_pilot', id: 'c1', actor: { kind: 'engineer', id: 'pat' }, clientId: 'acme' });
    await w.night('2024-02-16T07:30:00Z');
    const cards = rowsOf(await w.db.execute(sql`select 1 from chat_outbox where subject like 'signoff:%'`)).length;
    w.clock.now = new Date('2024-02-16T15:00:00Z');
    await applyInventory(w.db, worldInventory({ ...options, clients: [{ id: 'acme', pilot: 2, broad: 2 }] }), w.clock.now);
    await w.engine.sweep();
    expect([(await w.gate('pilot/acme'))?.state, (await w.gate('broad/acme'))?.state]).toEqual(['scheduled', 'scheduled']);
    await w.night('2024-02-17T07:30:00Z');
    expect(await w.runsOf('ACME-PILOT-2')).toEqual([{ name: 'ACME-PILOT-2', updates: ['5034765'], state: 'succeeded' }]);
    expect(await w.runsOf('ACME-PC-00002')).toEqual([{ name: 'ACME-PC-00002', updates: ['5034765'], state: 'succeeded' }]);
    expect([(await w.gate('pilot/acme'))?.state, (await w.gate('broad/acme'))?.state]).toEqual(['confirmed', 'finished']);
    expect(rowsOf(await w.db.execute(sql`select 1 from chat_outbox where subject like 'signoff:%'`)).length).toBe(cards);
  });

  it('a pilot a later promotion reopened with nothing eligible for its machines goes back to confirmed: no card, no "client waits" note, status says so', async () => {
    // The server KB finishes on the MSP's server on Sunday and is promoted; acme's pilot is a desktop.
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspSettings: { soakHours: 2 }, mspExtra: [{ name: 'MSP-SRV-01', class: 'server', ring: 'msp', os: SERVER, user: undefined }], clients: [{ id: 'acme', pilot: 1, broad: 1 }] }, ['5034765', '5034770']);
    await w.night('2024-02-14T07:30:00Z');
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-15T07:30:00Z');
    await w.engine.applyEvent('2024-Feb', { type: 'confirm_pilot', id: 'c1', actor: { kind: 'engineer', id: 'pat' }, clientId: 'acme' });
    await w.night('2024-02-16T07:30:00Z');
    await w.night('2024-02-18T07:30:00Z'); // Sunday 01:30 CST: the server KB installs on the MSP's server
    w.clock.now = new Date('2024-02-18T12:00:00Z');
    await w.engine.sweep();
    const cards = async () => rowsOf(await w.db.execute(sql`select 1 from chat_outbox where subject like 'signoff:%'`)).length;
    const notes = async () => rowsOf(await w.db.execute(sql`select 1 from chat_outbox where subject = 'rollout:2024-Feb:pilot:acme'`)).length;
    const [cardsBefore, notesBefore] = [await cards(), await notes()];
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    expect((await w.gate('pilot/acme'))?.state).toBe('scheduled');
    // The next sweep (daytime, no window open) finds nothing for acme's desktop pilot: it rests confirmed again.
    w.clock.now = new Date('2024-02-18T13:00:00Z');
    await w.engine.sweep();
    expect((await w.gate('pilot/acme'))?.state).toBe('confirmed');
    const status = await releaseStatus(w.db, '2024-Feb');
    expect(status?.rings.find((r) => r.ring === 'pilot')?.state).toBe('confirmed');
    await w.night('2024-02-19T07:30:00Z');
    expect((await w.gate('pilot/acme'))?.state).toBe('confirmed');
    expect(await w.runsOf('ACME-PILOT')).toHaveLength(1);
    expect([await cards(), await notes()]).toEqual([cardsBefore, notesBefore]);
  });

  it('a new pilot whose machines all have users and need nothing promoted finishes as the no-user pilot does: waiting, one "client waits" note, status not "scheduled"', async () => {
    // Only the desktop KB is approved; acme's two pilots are servers with users: nothing promoted applies to them,
    // so no "save your work" DM ever goes out and no window of theirs can open.
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspSettings: { soakHours: 2 }, clients: [{ id: 'acme', pilot: 2, broad: 1, pilotOs: SERVER, pilotUsers: true }] }, ['5034765']);
    await w.night('2024-02-14T07:30:00Z');
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    expect((await w.gate('pilot/acme'))?.state).toBe('scheduled');
    await w.night('2024-02-15T07:30:00Z');
    await w.night('2024-02-18T07:30:00Z'); // Sunday: the servers' own window
    expect((await w.gate('pilot/acme'))?.state).toBe('waiting');
    const notes = rowsOf<{ text: string }>(await w.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject = 'rollout:2024-Feb:pilot:acme'`));
    expect(notes.map((n) => n.text)).toEqual([expect.stringContaining('nothing installed on acme')]);
    const status = await releaseStatus(w.db, '2024-Feb');
    expect(status?.rings.find((r) => r.ring === 'pilot')?.state).not.toContain('scheduled');
  });

  it('a client with no pilot machines is not left "scheduled" in silence: its pilot waits, and the thread says how to skip it', async () => {
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspSettings: { soakHours: 2 }, clients: [{ id: 'acme', pilot: 0, broad: 2 }] }, ['5034765']);
    await w.night('2024-02-14T07:30:00Z');
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.engine.sweep();
    expect((await w.gate('pilot/acme'))?.state).toBe('waiting');
    const notes = rowsOf<{ text: string }>(await w.db.execute(sql`select payload ->> 'text' as text from chat_outbox where subject like 'rollout:2024-Feb:%acme%'`));
    expect(notes.map((n) => n.text).join('\n')).toContain('/patch skip pilot KB5034765 acme');
    expect((await w.gate('broad/acme'))).toBeUndefined();
    const status = await releaseStatus(w.db, '2024-Feb');
    expect(status?.rings.find((r) => r.ring === 'pilot')?.state).not.toContain('scheduled');
  });

  it('a new pilot whose machines (all with users) need an update still on ring msp stays scheduled, and status says it waits for ring msp', async () => {
    // The desktop KB passes ring msp Wednesday and is promoted; the server KB (acme's server pilots need it) waits
    // for the MSP's Sunday server window. Acme's pilot has work coming: it is not finished, nor "scheduled" idly.
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspSettings: { soakHours: 2 }, mspExtra: [{ name: 'MSP-SRV-01', class: 'server', ring: 'msp', os: SERVER, user: undefined }], clients: [{ id: 'acme', pilot: 1, broad: 0, pilotOs: SERVER, pilotUsers: true }] }, ['5034765', '5034770']);
    await w.night('2024-02-14T07:30:00Z');
    w.clock.now = new Date('2024-02-14T10:00:00Z');
    await w.engine.sweep();
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-15T07:30:00Z');
    expect((await w.gate('pilot/acme'))?.state).toBe('scheduled');
    expect(rowsOf(await w.db.execute(sql`select 1 from chat_outbox where subject = 'rollout:2024-Feb:pilot:acme'`))).toEqual([]);
    const status = await releaseStatus(w.db, '2024-Feb');
    const view = statusModel(status!, { clients: new Map([['acme', 'Acme Dental']]), people: new Map() });
    expect(view.rings.find((r) => r.ring === 'pilot')?.state).toBe('waiting for ring msp to pass what its machines need');
  });

  it('Promote before the MSP\u2019s window says the update is not finished on our machines, with the count, not that it is installing', async () => {
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1 }, ['5034765']);
    const early = await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' });
    expect(early.outcome).toBe('refused');
    expect(early.message).toContain('KB5034765: not finished on our own machines yet (0 of 1 done)');
    expect(early.message).not.toMatch(/installing/);
  });

  it('finding 4: a desktop KB finished on the MSP desktop Wednesday night is offered Thursday, not after the Sunday server window; times in the MSP zone', async () => {
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, mspExtra: [{ name: 'MSP-SRV-01', class: 'server', ring: 'msp', os: SERVER, user: undefined }] }, ['5034765']);
    await w.night('2024-02-14T07:01:28Z'); // 01:01 CST Wednesday night
    expect((await w.gate('msp'))?.state).toBe('soaking');
    w.clock.now = new Date('2024-02-14T18:00:00Z');
    const early = await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' });
    expect(early.outcome).toBe('refused');
    expect(early.message).toContain('soaking until Thu 15 Feb 01:01 CST');
    expect(early.message).not.toMatch(/\d{4}-\d\d-\d\dT/);
    const offers = async () => rowsOf(await w.db.execute(sql`select 1 from chat_outbox where subject = 'rollout:2024-Feb:promote'`)).length;
    w.clock.now = new Date('2024-02-15T07:02:00Z');
    await w.engine.sweep();
    expect(await offers()).toBe(1);
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
  });

  it('an update no test machine runs waits at each ring for an engineer\u2019s skip: audited, told in the thread, shown in status', async () => {
    // The server KB: the MSP has no server, and acme's pilot is a desktop; acme's broad ring has a server.
    const w = await world('2024-02-14T03:00:00Z', { mspDevices: 1, clients: [{ id: 'acme', pilot: 1, broad: 0 }] }, ['5034770']);
    await w.db.execute(sql`insert into devices (name, class, ring, os, client_id, location_id, created_at, updated_at)
      select 'ACME-SRV-01', 'server', 'broad', ${SERVER}, 'acme', location_id, now(), now() from devices where name = 'ACME-PILOT-1'`);
    await w.night('2024-02-14T07:30:00Z');
    const thread = async () =>
      rowsOf<{ text: string }>(await w.db.execute(sql`select payload ->> 'text' as text from chat_outbox where payload ->> 'threadSubject' = 'digest:2024-Feb' order by id`)).map((r) => r.text);
    expect((await thread()).filter((t) => t.includes('KB5034770'))).toEqual([expect.stringContaining('KB5034770 did not install on our own machines (ring msp)')]);
    const refused = await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' });
    expect(refused).toMatchObject({ outcome: 'refused' });
    expect(refused.message).toContain('/patch skip msp KB5034770');
    // Only engineers skip; a champion or a stranger on Slack is refused.
    expect(await skipRing(w.ctx, { actor: { platform: 'slack', id: 'U_STRANGER' }, releaseId: '2024-Feb', ring: 'msp', update: 'KB5034770', clientId: null, reason: 'x' })).toMatchObject({ outcome: 'refused' });
    expect(await skipRing(w.ctx, { actor: cli, releaseId: '2024-Feb', ring: 'msp', update: 'KB5034770', clientId: null, reason: 'no server of ours' })).toMatchObject({ outcome: 'applied' });
    expect(await skipRing(w.ctx, { actor: cli, releaseId: '2024-Feb', ring: 'msp', update: 'KB5034770', clientId: null, reason: 'again' })).toMatchObject({ outcome: 'noop', by: 'pat' });
    expect((await thread()).at(-1)).toContain('skipped ring msp for KB5034770 (no test machine): no server of ours');
    w.clock.now = new Date('2024-02-14T09:00:00Z');
    expect(await promoteRelease(w.ctx, { actor: cli, releaseId: '2024-Feb' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-15T07:30:00Z'); // acme's pilot desktop has nothing to install
    expect((await w.gate('pilot/acme'))?.state).toBe('waiting');
    expect((await thread()).some((t) => t.includes("KB5034770 did not install on acme's pilot machines"))).toBe(true);
    expect(await skipRing(w.ctx, { actor: cli, releaseId: '2024-Feb', ring: 'pilot', update: '5034770', clientId: 'acme', reason: 'no server pilot' })).toMatchObject({ outcome: 'applied' });
    await w.night('2024-02-18T07:30:00Z'); // Sunday: acme's server
    expect(await w.runsOf('ACME-SRV')).toEqual([{ name: 'ACME-SRV-01', updates: ['5034770'], state: 'succeeded' }]);
    const audit = rowsOf<{ action: string; reason: string }>(
      await w.db.execute(sql`select action, detail ->> 'reason' as reason from audit_log where action = 'decision.skip_ring' order by id`),
    );
    expect(audit).toEqual([
      { action: 'decision.skip_ring', reason: 'no server of ours' },
      { action: 'decision.skip_ring', reason: 'no server pilot' },
    ]);
    const status = await releaseStatus(w.db, '2024-Feb');
    expect(status?.skips?.map((k) => [k.ring, k.clientId, k.updateKey, k.by])).toEqual([
      ['msp', null, '5034770', 'pat'],
      ['pilot', 'acme', '5034770', 'pat'],
    ]);
  });
});
