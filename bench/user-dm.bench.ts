/**
 * 5,000 "save your work tonight" DMs through the Slack emulator enforcing Slack's limits: chat.postMessage about
 * one per second per channel and, workspace-wide, 300 per "minute" (Slack says "several hundred"; 300 is the
 * figure the emulator enforces here), users.list at Tier 2. TIME IS COMPRESSED 10x: the emulator's "minute" is
 * 6 seconds (its `windowMs` option) and the deliverer's pacing uses the same compressed minute, so delivery takes
 * ~105 s instead of ~17 minutes. Real PostgreSQL, redis-server, the real WebClient, the product's own tick.
 *
 * Why 10x and not more: the share of the allowed rate is a measurement of the pacing only while the allowed rate
 * sits below what the sender can do at all. On two shared cores the deliverer tops out near 65-70 posts/s
 * (database, Redis and HTTP per post). At 30x the allowed rate is 150/s, so the figure (at most ~45%) measured
 * that ceiling, not the pacing; at 10x it is 50/s (paced at 47.5/s), well under the ceiling, and the figure reads
 * the pacing: 94.5-94.7% measured, against the 95% (285 of 300) the deliverer aims at.
 *
 * BENCH lines: the achieved post rate as a share of the allowed rate (target >= 90%), the 429s received, the
 * directory read (users.list calls for 5,000 members) and the time to plan and write the night's 5,000 DM rows.
 *
 * Planning alone is also measured at 25,000 users (issue 19: <= 5 s), in its own database and without delivery
 * (pacing 25,000 posts would take ~9 minutes and measures nothing new). Its ratio is against a same-process
 * baseline: a raw multi-row INSERT of the same 25,000 outbox rows into a copy of chat_outbox, the least any
 * planner that writes them must do. A second tick right after must write nothing (exactly once at scale).
 * Then the morning after, every one of those machines having been off: the 08:00 tick that tells each user so
 * (against the same raw insert), and the tick a minute later, which finds nobody left to tell (against the first).
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { WebClient } from '@slack/web-api';
import { listSlackMembers } from '../src/adapters/directory/slack-users.ts';
import { openDatabase, rowsOf, type AppDatabase } from '../src/db/client.ts';
import { applyInventory } from '../src/db/inventory-repo.ts';
import { storeSlackDirectory } from '../src/db/directory-repo.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { storeRelease } from '../src/use-cases/store-release.ts';
import { deliveryClient, startOutboxDeliverer } from '../src/jobs/outbox.ts';
import { queueUserDms } from '../src/jobs/user-dm.ts';
import { startPrivateRedis } from '../src/runtime/redis-server.ts';
import { scheduleGate, worldInventory, worldRelease, WIN11 } from '../test/support/rollout-world.ts';
import { startSlackEmulator } from '../test/support/slack-emulator.ts';
import { report, scratchPostgres, sized } from './lib.ts';

const userId = (i: number) => `U${String(i).padStart(6, '0')}`;
const SETUP_AT = new Date('2024-06-01T12:00:00Z');
/** The tick at 15:00 CDT, when the night's DMs are due. */
const TICK_AT = new Date('2024-06-11T20:00:00Z');

const USERS = sized(5000, 50);
const PLAN_USERS = sized(25_000, 60);
const MINUTE_MS = 6000; // 10x compression: see the header for why not more
const WORKSPACE_POSTS_PER_MINUTE = 300;

export default async function run(): Promise<void> {
  await benchPlanning(PLAN_USERS);
  const scratch = await scratchPostgres('userdm');
  if (!scratch) return;
  const log = pino({ level: 'silent' });
  const redisDir = await mkdtemp(path.join(os.tmpdir(), 'patchbay-bench-redis-'));
  const redis = await startPrivateRedis({ dir: redisDir, appendOnly: false });
  const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 12 });
  const emu = await startSlackEmulator({
    users: Array.from({ length: USERS }, (_, i) => ({ id: userId(i), name: `user${i}`, email: `user${i}@acme.example`, tz: 'America/Chicago' })),
    rateLimits: { windowMs: MINUTE_MS, postMessagePerWorkspace: WORKSPACE_POSTS_PER_MINUTE },
  });
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  let deliverer: Awaited<ReturnType<typeof startOutboxDeliverer>> | undefined;
  try {
    await migrateDatabase(database);
    const db = database.db;
    await seedBroadNight(db, SETUP_AT, USERS);
    await benchDirectory(db, emu, SETUP_AT);
    // The tick at 15:00 CDT: plan the night and write 5,000 DM rows with their outbox posts.
    const t1 = performance.now();
    const tickReport = await queueUserDms(db, TICK_AT);
    const planMs = performance.now() - t1;
    report('user_dm.plan_and_write_5000', planMs, 'ms', tickReport.dms / USERS);

    // The deliverer reads the DMs' clock, as in production: a DM is not sent after its window's notice deadline.
    const deliveryStarted = Date.now();
    deliverer = await startOutboxDeliverer({
      database,
      connection,
      prefix: 'benchdm',
      log,
      now: () => new Date(TICK_AT.getTime() + (Date.now() - deliveryStarted)),
      slack: deliveryClient(emu.botToken, emu.url),
      channelIntervalMs: MINUTE_MS / 60,
      minuteMs: MINUTE_MS,
      slackPostsPerMinute: Math.floor(WORKSPACE_POSTS_PER_MINUTE * 0.95),
      concurrency: 16,
      jobsPerSecond: 10_000,
    });
    await deliverer.notifier.notify(tickReport.outboxIds);
    await benchDelivery(db, emu);
  } finally {
    await deliverer?.close();
    connection.disconnect();
    await emu.close();
    await database.close();
    await redis.stop();
    await rm(redisDir, { recursive: true, force: true });
    await scratch.drop();
  }
}

type Emulator = Awaited<ReturnType<typeof startSlackEmulator>>;

/** Plans and writes `users` DMs (no delivery), against a raw INSERT of the same outbox rows; a re-run writes none. */
async function benchPlanning(users: number): Promise<void> {
  const scratch = await scratchPostgres('userdmplan');
  if (!scratch) return;
  const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 4 });
  try {
    await migrateDatabase(database);
    const db = database.db;
    await seedBroadNight(db, SETUP_AT, users);
    const members = Array.from({ length: users }, (_, i) => ({ id: userId(i), email: `user${i}@acme.example`, tz: 'America/Chicago', realName: `user${i}` }));
    await storeSlackDirectory(db, members, SETUP_AT);
    const t0 = performance.now();
    const tick = await queueUserDms(db, TICK_AT);
    const planMs = performance.now() - t0;
    if (tick.dms !== users) throw new Error(`planned ${tick.dms} DMs for ${users} users`);
    const baselineMs = await rawOutboxInsert(db);
    report(`user_dm.raw_outbox_insert_${users}`, baselineMs, 'ms', 1);
    report(`user_dm.plan_and_write_${users}`, planMs, 'ms', planMs / baselineMs);
    const t1 = performance.now();
    const again = await queueUserDms(db, new Date(TICK_AT.getTime() + 60_000));
    const againMs = performance.now() - t1;
    if (again.dms !== 0 || again.outboxIds.length !== 0) throw new Error(`a second tick wrote ${again.dms} DMs again`);
    // The tick a minute later, and every minute until the window opens: everyone was told, nothing to write.
    report(`user_dm.plan_next_tick_${users}`, againMs, 'ms', againMs / planMs);
    await benchMorningAfter(db, users, baselineMs);
  } finally {
    await database.close();
    await scratch.drop();
  }
}

/** The morning after the tick's night. */
const MORNING_AT = new Date('2024-06-12T13:00:00Z');

/**
 * Every one of those machines was off that night: the 08:00 tick tells each user once (against the same raw outbox
 * insert), and the ticks after it, every minute of the day, find nobody left to tell and should cost next to nothing.
 */
async function benchMorningAfter(db: AppDatabase, users: number, baselineMs: number): Promise<void> {
  await db.execute(sql`insert into runs (device_id, release_id, window_start, window_end, state, scheduled_at, finished_at)
    select id, '2024-Feb', '2024-06-12T06:00:00Z', '2024-06-12T10:00:00Z', 'offline', now(), now() from devices where user_email is not null`);
  const t0 = performance.now();
  const first = await queueUserDms(db, MORNING_AT);
  const firstMs = performance.now() - t0;
  if (first.offline !== users) throw new Error(`told ${first.offline} of ${users} users their machine was off`);
  const t1 = performance.now();
  const later = await queueUserDms(db, new Date(MORNING_AT.getTime() + 60_000));
  const laterMs = performance.now() - t1;
  if (later.offline !== 0) throw new Error(`the next tick told ${later.offline} users again`);
  report(`user_dm.offline_first_morning_${users}`, firstMs, 'ms', firstMs / baselineMs);
  report(`user_dm.offline_next_tick_${users}`, laterMs, 'ms', laterMs / firstMs);
}

/** The baseline: the tick's DM outbox rows copied into an empty chat_outbox twin with multi-row INSERTs of 1,000. */
async function rawOutboxInsert(db: AppDatabase): Promise<number> {
  const rows = rowsOf<{ k: string; platform: string; channel: string; action: string; subject: string; payload: unknown }>(
    await db.execute(sql`select idempotency_key as k, platform, channel, action, subject, payload from chat_outbox where subject like 'userdm:%' order by id`),
  );
  await db.execute(sql`create table bench_outbox (like chat_outbox including all)`);
  const t0 = performance.now();
  const at = TICK_AT.toISOString();
  for (let i = 0; i < rows.length; i += 1000) {
    const values = rows.slice(i, i + 1000).map((r) => sql`(${r.k}, ${r.platform}, ${r.channel}, ${r.action}, ${r.subject}, ${typeof r.payload === 'string' ? r.payload : JSON.stringify(r.payload)}::jsonb, ${at}::timestamptz, ${at}::timestamptz, ${at}::timestamptz)`);
    await db.execute(sql`insert into bench_outbox (idempotency_key, platform, channel, action, subject, payload, next_attempt_at, created_at, updated_at)
      values ${sql.join(values, sql`, `)} on conflict (idempotency_key) do nothing returning id`);
  }
  return performance.now() - t0;
}

/** One client whose desktops, each with its own user, are all in tonight's broad window. */
async function seedBroadNight(db: AppDatabase, setupAt: Date, users: number): Promise<void> {
  const inventory = worldInventory({ clients: [{ id: 'acme', pilot: 0, broad: 0 }] });
  inventory.clients[0]!.locations[0]!.devices = Array.from({ length: users }, (_, i) => ({ name: `ACME-PC-${i}`, class: 'desktop', ring: 'broad' as const, os: WIN11, user: `user${i}@acme.example` }));
  await applyInventory(db, inventory, setupAt);
  await storeRelease(db, worldRelease(), { fetchedAt: setupAt, now: setupAt });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at) values ('approve', '2024-Feb', 'U_ENG', 'slack', 'bench', now())`);
  await scheduleGate(db, 'broad', 'acme', setupAt);
}

/** The directory: users.list, paged, Tier 2 (20 per compressed minute). */
async function benchDirectory(db: AppDatabase, emu: Emulator, setupAt: Date): Promise<void> {
  const web = new WebClient(emu.botToken, { slackApiUrl: emu.url });
  const t0 = performance.now();
  const { members, calls } = await listSlackMembers(web);
  const stored = await storeSlackDirectory(db, members, setupAt);
  const directoryMs = performance.now() - t0;
  report('user_dm.directory_users_list_calls', calls, 'calls', calls / USERS);
  report('user_dm.directory_sync_5000', directoryMs, 'ms', stored.matched / USERS);
}

/** Waits for every DM to go out, reports the rate achieved against the allowed one, and fails on a duplicate. */
async function benchDelivery(db: AppDatabase, emu: Emulator): Promise<void> {
  const posts = () => emu.calls('chat.postMessage').filter((c) => c.ok);
  const started = Date.now();
  while (posts().length < USERS) {
    if (Date.now() - started > 300_000) throw new Error(`only ${posts().length} of ${USERS} DMs went out in 5 minutes`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const ok = posts();
  const spanMs = ok.at(-1)!.at - ok[0]!.at;
  const achieved = ((ok.length - 1) / spanMs) * 1000;
  const allowed = (WORKSPACE_POSTS_PER_MINUTE / MINUTE_MS) * 1000;
  report('user_dm.posts_per_s_compressed', achieved, 'posts/s', achieved / allowed);
  report('user_dm.share_of_allowed_rate', (achieved / allowed) * 100, '%', achieved / allowed);
  report('user_dm.rate_limited_429s', emu.rateLimitedCount('chat.postMessage'), '429s', emu.rateLimitedCount('chat.postMessage') / USERS);
  const [dupes] = rowsOf<{ n: string }>(await db.execute(sql`select count(*) - count(distinct channel) as n from chat_outbox where subject like 'userdm:%'`));
  const perChannel = new Map<string, number>();
  for (const m of emu.messages()) perChannel.set(m.channel, (perChannel.get(m.channel) ?? 0) + 1);
  const twice = [...perChannel.values()].filter((n) => n > 1).length;
  if (Number(dupes?.n) !== 0 || twice !== 0) throw new Error(`duplicate DMs: ${dupes?.n} rows, ${twice} channels`);
}
