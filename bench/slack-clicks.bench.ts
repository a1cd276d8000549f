/**
 * A burst of 200 signed Approve clicks, each on a different update, fired at once at the real Bolt receiver on
 * our HTTP server (loopback), with real PostgreSQL, redis-server, the outbox deliverer and the Slack emulator.
 * Reports ack latency p50/p99 (what Slack's 3-second limit applies to) against a bare HTTP round trip
 * (GET /healthz on the same server, 200 of them fired in the same burst, interleaved with the clicks, so both meet
 * the same load), and decisions per second (until all 200 are committed) against bare transactions per second on the
 * same pool (200 concurrent one-row insert transactions, just before the burst, with nothing else running; the best of five).
 * A third figure, the floor: the same 200 signed clicks through the same server, Bolt and middleware, to a listener
 * that commits one bare row each. It is what the decisions would reach were deciding free, so `decisions-vs-floor`
 * says how much of the gap to bare transactions is the decision and how much is receiving a click at all.
 *
 * The clicks are signed before the clock starts, and sent from a worker thread: signing and sending are the sender's
 * work (Slack's). Done inside the timers, on the server's event loop, they were charged to every click's ack (the
 * 200th waited for 199 signatures) and, with the bodies' upload, far more to the clicks than to the bare round trips.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { mkdtemp, rm } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { sql, type SQL } from 'drizzle-orm';
import type { App } from '@slack/bolt';
import pino from 'pino';
import { parseCvrf } from '../src/adapters/msrc/to-release.ts';
import { createSlackApp } from '../src/bot/slack/app.ts';
import { openDatabase, rowsOf, type AppDatabase, type Database } from '../src/db/client.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { storeRelease } from '../src/use-cases/store-release.ts';
import { generateInventory } from '../src/adapters/inventory/generate.ts';
import { applyInventory } from '../src/db/inventory-repo.ts';
import type { Inventory, InventoryClient } from '../src/domain/inventory.ts';
import { parseWindowSpec, type WindowRule } from '../src/domain/window-spec.ts';
import { deliveryClient, OutboxNotifier, startOutboxDeliverer } from '../src/jobs/outbox.ts';
import { createHttpServer } from '../src/runtime/http.ts';
import { startPrivateRedis } from '../src/runtime/redis-server.ts';
import { startSlackEmulator } from '../test/support/slack-emulator.ts';
import { buildBlockActions, postSigned, signSlackRequest } from '../test/support/slack-signing.ts';
import { bestOf, report, scratchPostgres, sized } from './lib.ts';

const CLICKS = sized(200, 10);
const SECRET = 'bench-signing-secret';
const CH = 'C0ENGINEERS';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function timed(send: () => Promise<Response>): Promise<number> {
  const started = process.hrtime.bigint();
  const res = await send();
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`answered ${res.status}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

export default async function run(): Promise<void> {
  const scratch = await scratchPostgres('slack');
  if (!scratch) return;
  const log = pino({ level: 'silent' });
  const redisDir = await mkdtemp(path.join(os.tmpdir(), 'patchbay-bench-redis-'));
  const redis = await startPrivateRedis({ dir: redisDir, appendOnly: false });
  const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 10 });
  const emu = await startSlackEmulator({ rateLimits: false });
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const notifier = new OutboxNotifier(connection, 'bench');
  const http = createHttpServer({ log, readiness: [] });
  const parts: BenchParts = { database, connection, log, emu };
  let deliverer: Deliverer | undefined;
  try {
    await migrateDatabase(database);
    deliverer = await startDeliverer(parts, true);
    const db = database.db;
    const now = new Date();
    await seedWorkspace(db, now);
    await postDigests(db, deliverer, now);
    await deliverer.close();
    deliverer = undefined; // already closed: if the restart fails, `finally` must not close it again
    deliverer = await startDeliverer(parts, false);

    const slack = createSlackApp({ botToken: emu.botToken, signingSecret: SECRET, apiUrl: emu.url, database, log, now: () => new Date(), notifyOutbox: (ids) => notifier.notify(ids) });
    http.mount('/slack/events', slack.handler!);
    const port = await http.listen(0, '127.0.0.1');
    const base = `http://127.0.0.1:${port}`;
    const clicks = approveClicks(emu);
    // Warm up: Bolt's first request checks the token (auth.test); connections open.
    await timed(() => postSigned(`${base}/slack/events`, clicks[CLICKS]!, { secret: SECRET }));
    await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/healthz`).then((r) => r.arrayBuffer())));

    const txSeconds = await burstOfBareTransactions(db);
    const floorSeconds = await burstOfFloorClicks(db, slack.app, port, clicks);
    const { acks, bare, seconds: decisionsSeconds } = await burstOfClicks(db, port, clicks.slice(0, CLICKS), sql`select count(*) as n from decisions where kind = 'approve'`, CLICKS + 1);
    reportFigures(bare, acks, decisionsSeconds, txSeconds);
    report('slack-clicks.floor-per-s', CLICKS / floorSeconds, 'clicks/s', CLICKS / floorSeconds / (CLICKS / txSeconds));
    report('slack-clicks.decisions-vs-floor', CLICKS / decisionsSeconds, 'decisions/s', floorSeconds / decisionsSeconds);
  } finally {
    await deliverer?.close();
    await notifier.close();
    await http.close();
    connection.disconnect();
    await emu.close();
    await database.close();
    await redis.stop();
    await rm(redisDir, { recursive: true, force: true });
    await scratch.drop();
  }
}

type Deliverer = Awaited<ReturnType<typeof startOutboxDeliverer>>;
type Emulator = Awaited<ReturnType<typeof startSlackEmulator>>;

interface BenchParts {
  database: Database;
  connection: Redis;
  log: pino.Logger;
  emu: Emulator;
}

function startDeliverer({ database, connection, log, emu }: BenchParts, setup: boolean): Promise<Deliverer> {
  return startOutboxDeliverer({
    database,
    connection,
    prefix: 'bench',
    log,
    slack: deliveryClient(emu.botToken, emu.url),
    channelIntervalMs: 0,
    // Setup posts 67 digests (335 messages); at the workspace-wide pace (285 a minute) that alone takes
    // ~70 s, longer than setup waits, and it is not what is measured. The clicks then meet the deliverer as
    // shipped (default workspace pacing), so the measured part competes with the same delivery work as in
    // production.
    ...(setup ? { slackPostsPerMinute: Number.POSITIVE_INFINITY } : {}),
  });
}

/**
 * The MSP with two engineers, one client with three devices, and a generated fleet around them (20,000 devices over
 * 200 clients by default; BENCH_CLICKS_FLEET=3 is the bare workspace earlier figures were taken on): a decision
 * redraws the digest, and what that reads of the fleet must not grow with it.
 */
async function seedWorkspace(db: AppDatabase, now: Date): Promise<void> {
  const fleetDevices = Number(process.env.BENCH_CLICKS_FLEET ?? 20_000);
  const generated = fleetDevices > 3 ? generateInventory({ clients: 200, devices: fleetDevices - 3, seed: 11 }) : undefined;
  const desktop = parsedRule('daily 01:00-05:00');
  const acme: InventoryClient = {
    id: 'acme',
    name: 'Acme',
    timezone: 'America/Chicago',
    windows: { desktop, server: desktop },
    software: [],
    champions: [],
    locations: [
      {
        id: 'hq',
        name: undefined,
        devices: [
          { name: 'WS1', class: 'desktop', ring: 'pilot', os: 'Windows 11 Version 23H2 for x64-based Systems', user: undefined },
          { name: 'SRV1', class: 'server', ring: 'broad', os: 'Windows Server 2022', user: undefined },
          { name: 'EX1', class: 'server', ring: 'broad', os: 'Microsoft Exchange Server 2019 Cumulative Update 14', user: undefined },
        ],
      },
    ],
  };
  const inventory: Inventory = {
    msp: { name: 'Bench MSP', engineers: ['U0PAT', 'U0SAM'], channel: CH, timezone: 'America/Chicago', windows: { desktop }, devices: [] },
    clients: [acme, ...(generated?.clients ?? [])],
  };
  await applyInventory(db, inventory, now);
}

function parsedRule(spec: string): WindowRule {
  const parsed = parseWindowSpec(spec);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

/** Enough releases (copies of the fixture, three fleet updates each) that every click is a distinct decision; their digests posted. */
async function postDigests(db: AppDatabase, deliverer: Deliverer, now: Date): Promise<void> {
  const release = parseCvrf(readFileSync(path.join(root, 'test/fixtures/msrc/edge-cases.json'), 'utf8'));
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const releases = Math.ceil((CLICKS + 1) / 3);
  for (let n = 0; n < releases; n++) {
    const day = new Date(Date.UTC(2000 + Math.floor(n / 12), n % 12, 10, 17)).toISOString();
    await storeRelease(db, { ...release, id: `${2000 + Math.floor(n / 12)}-${months[n % 12]}`, initialReleaseDate: day, currentReleaseDate: day }, { fetchedAt: now, now });
  }
  await deliverer.sweep();
  for (let i = 0; ; i++) {
    const [left] = rowsOf<{ n: string }>(await db.execute(sql`select count(*) as n from chat_outbox where state <> 'sent'`));
    if (Number(left!.n) === 0) break;
    if (i > 1200) throw new Error('digests were not delivered');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A signed Approve click per update button posted, alternating between the two engineers. */
function approveClicks(emu: Emulator): string[] {
  const clicks = emu
    .messages(CH)
    .flatMap((m) => ['5099001', '5099002', '5099003'].filter((kb) => JSON.stringify(m.blocks).includes(`actions:update:${kb}`)).map((kb) => ({ ts: m.ts, kb })))
    .map(({ ts, kb }, i) => buildBlockActions(emu, { user: i % 2 ? 'U0SAM' : 'U0PAT', actionId: 'update.approve', channel: CH, messageTs: ts, blockId: `actions:update:${kb}` }).body);
  if (clicks.length < CLICKS + 1) throw new Error(`only ${clicks.length} buttons posted`);
  return clicks;
}

/**
 * The sender, in a worker thread: Slack and the engineers' browsers are not in our process, and a sender sharing the
 * server's event loop charged its own work to every ack and every bare round trip. It is as cheap as a sender can
 * be, so that what is measured is our server: every request is written ready-made (signed and serialised before the
 * clock starts) on a connection of its own opened during the warm-up (HTTP/1.1 keep-alive, as Slack's are), and its
 * answer is read off the socket. With `fetch` (undici) the sender alone spent ~1.7 ms of a core per click and bare
 * round trip, so it, not the server, set the pace on two cores: the floor could not pass ~0.2 of bare transactions
 * however little the server did.
 * It says when it starts, fires each click followed by a bare GET /healthz, and answers with their latencies.
 */
const SENDER = `
const net = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');
function open(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.setNoDelay(true);
    socket.once('error', reject);
  });
}
/** Milliseconds from writing the request until its whole answer (Content-Length or chunked) has been read. */
function roundTrip(socket, request) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    let got = Buffer.alloc(0);
    const onData = (chunk) => {
      got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
      const headEnd = got.indexOf('\\r\\n\\r\\n');
      if (headEnd < 0) return;
      const head = got.subarray(0, headEnd).toString('latin1');
      const length = /\\r\\ncontent-length: *(\\d+)/i.exec(head);
      const complete = length ? got.length >= headEnd + 4 + Number(length[1]) : !/\\r\\ntransfer-encoding: *chunked/i.test(head) || got.subarray(headEnd + 4).includes('0\\r\\n\\r\\n');
      if (!complete) return;
      socket.off('data', onData);
      const status = Number(head.slice(9, 12));
      if (status !== 200) reject(new Error(head.split('\\r\\n')[0] + ' for ' + request.slice(0, request.indexOf('\\r\\n'))));
      else resolve(Number(process.hrtime.bigint() - started) / 1e6);
    };
    socket.on('data', onData);
    socket.write(request);
  });
}
(async () => {
  const { port, clicks, bare } = workerData;
  const sockets = await Promise.all([...clicks, ...bare].map(() => open(port)));
  // Warm-up: each connection answers once before the clock starts.
  await Promise.all(sockets.map((socket) => roundTrip(socket, bare[0])));
  parentPort.postMessage({ started: true });
  const sent = clicks.map((click, i) => ({ ack: roundTrip(sockets[2 * i], click), bare: roundTrip(sockets[2 * i + 1], bare[i]) }));
  const acks = await Promise.all(sent.map((s) => s.ack));
  const bareTrips = await Promise.all(sent.map((s) => s.bare));
  for (const socket of sockets) socket.destroy();
  parentPort.postMessage({ acks, bare: bareTrips });
})().catch((error) => parentPort.postMessage({ error: String(error) }));
`;

/** A signed click as the bytes Slack would send: request line, headers, form body. */
function clickRequest(port: number, body: string): string {
  const headers = { host: `127.0.0.1:${port}`, 'content-type': 'application/x-www-form-urlencoded', ...signSlackRequest(SECRET, body), 'content-length': String(Buffer.byteLength(body)) };
  return `POST /slack/events HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`;
}

/**
 * The clicks all at once, each followed by a bare GET /healthz, from the sender: each ack's and each bare round
 * trip's latency, sorted, and how long from the sender's start until `committed` counts `expected` rows.
 */
async function burstOfClicks(db: AppDatabase, port: number, clicks: string[], committed: SQL, expected: number): Promise<{ acks: number[]; bare: number[]; seconds: number }> {
  const workerData = { port, clicks: clicks.map((body) => clickRequest(port, body)), bare: clicks.map(() => `GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`) };
  let started = process.hrtime.bigint();
  const sender = new Worker(SENDER, { eval: true, workerData });
  const answer = await new Promise<{ acks: number[]; bare: number[] }>((resolve, reject) => {
    sender.on('error', reject);
    sender.on('message', (m: { started?: boolean; acks?: number[]; bare?: number[]; error?: string }) => {
      if (m.started) started = process.hrtime.bigint();
      else if (m.error) reject(new Error(m.error));
      else resolve({ acks: m.acks!, bare: m.bare! });
    });
  });
  await sender.terminate();
  for (;;) {
    const [made] = rowsOf<{ n: string }>(await db.execute(committed));
    if (Number(made!.n) >= expected) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const sorted = (v: number[]) => [...v].sort((a, b) => a - b);
  return { acks: sorted(answer.acks), bare: sorted(answer.bare), seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

const FLOOR_ACTION = 'bench.floor';

/**
 * The floor: the approve clicks with their action renamed, so that Bolt routes them (after the same middleware) to
 * a listener of the bench's that acks and commits one bare row, as a decision's transaction would. Seconds until all
 * are committed.
 */
async function burstOfFloorClicks(db: AppDatabase, app: App, port: number, clicks: string[]): Promise<number> {
  await db.execute(sql`create table bench_floor (id serial primary key, at timestamptz not null)`);
  app.action(FLOOR_ACTION, async ({ ack }) => {
    await ack();
    await db.transaction(async (tx) => void (await tx.execute(sql`insert into bench_floor (at) values (now())`)));
  });
  const floorClicks = clicks.slice(0, CLICKS + 1).map(renamedAction);
  await timed(() => postSigned(`http://127.0.0.1:${port}/slack/events`, floorClicks[CLICKS]!, { secret: SECRET }));
  const { seconds } = await burstOfClicks(db, port, floorClicks.slice(0, CLICKS), sql`select count(*) as n from bench_floor`, CLICKS + 1);
  return seconds;
}

function renamedAction(body: string): string {
  const form = new URLSearchParams(body);
  const payload = JSON.parse(form.get('payload')!) as { actions: Array<{ action_id: string }> };
  payload.actions[0]!.action_id = FLOOR_ACTION;
  form.set('payload', JSON.stringify(payload));
  return form.toString();
}

/**
 * Baseline for throughput: the same number of bare one-row transactions, all at once, on the same pool; the best of
 * five bursts. One burst lasts ~0.1 s, and one disturbed by anything else on the machine moved the ratio by half.
 */
async function burstOfBareTransactions(db: AppDatabase): Promise<number> {
  await db.execute(sql`create table bench_tx (id serial primary key, at timestamptz not null)`);
  const burst = () => Promise.all(Array.from({ length: CLICKS }, () => db.transaction(async (tx) => void (await tx.execute(sql`insert into bench_tx (at) values (now())`)))));
  return (await bestOf(5, burst)).ms / 1000;
}

function reportFigures(bare: number[], acks: number[], decisionsSeconds: number, txSeconds: number): void {
  const bareP50 = percentile(bare, 50);
  const bareP99 = percentile(bare, 99);
  report('slack-clicks.bare-http-p50', bareP50, 'ms', 1);
  report('slack-clicks.bare-http-p99', bareP99, 'ms', 1);
  report('slack-clicks.ack-p50', percentile(acks, 50), 'ms', percentile(acks, 50) / bareP50);
  report('slack-clicks.ack-p99', percentile(acks, 99), 'ms', percentile(acks, 99) / bareP99);
  report('slack-clicks.bare-tx-per-s', CLICKS / txSeconds, 'tx/s', 1);
  report('slack-clicks.decisions-per-s', CLICKS / decisionsSeconds, 'decisions/s', CLICKS / decisionsSeconds / (CLICKS / txSeconds));
}
