/**
 * Delivers chat_outbox rows to their platform through its ChatOutlet (src/chat/outlets.ts: the sender behind the
 * ChatSender port, its pacing and retry rules); this module knows no platform's API. Postgres holds the messages; Redis holds only "deliver row N" jobs
 * (jobId `outbox-N`), added right after the writing transaction commits and re-added by a sweep from the
 * table whenever one is lost (Redis restarted, a process died between commit and add).
 *
 * Per channel, rows go out in id order: a job takes the channel's lock (Redis, with a TTL so a dead holder
 * cannot block for long) and delivers the channel's oldest unsent rows until its own is sent, pacing posts
 * each send as its platform's limits ask. A 429 puts the row back as pending with the platform's Retry-After
 * (Slack's, being workspace-wide, also pauses the queue through worker.rateLimit): nothing is lost and the
 * attempt is not counted. Refusals no retry can fix (channel
 * gone, blocks refused) mark the row dead, so the channel's later rows are not held up behind it.
 *
 * Crash window: the row is marked `sending` before the call and `sent` (with chat_messages) in one
 * transaction after Slack answers. A crash between Slack's answer and that commit leaves the row `sending`;
 * it is delivered again. For an edit that is harmless (the same content is set twice); for a post it can show
 * the message twice. That window is the few milliseconds between the answer and the commit; every other crash
 * (before the call, before the job ran, with the job lost from Redis) delivers exactly once.
 */
import { randomUUID } from 'node:crypto';
import { DelayedError, Queue, RateLimitError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AppDatabase, Database } from '../db/client.ts';
import {
  channelHead,
  dueOutboxIds,
  findChatMessage,
  loadOutboxRow,
  markDead,
  markFailed,
  markPending,
  markSending,
  markSent,
  newerUpdatePending,
  postPending,
  type OutboxRow,
} from '../db/outbox-repo.ts';
import type { Logger } from '../log.ts';
import { asSendError, type ChatAction, type ChatSender, type ReportFileSource } from '../chat/port.ts';
import { filesOfDelivery } from '../db/report-archive-repo.ts';
import { slackOutlet, teamsOutlet, type ChatOutlet } from '../chat/outlets.ts';
import { deliveryClient } from '../chat/slack-sender.ts';
import { createTeamsApp } from '../bot/teams/app.ts';
import { TeamsSender } from '../bot/teams/sender.ts';
import { refreshDigests } from '../use-cases/digest-refresh.ts';
import type { JobContext, JobModule, RunningJobs } from './context.ts';

/** Benchmarks and tests import the Slack sender from here, where they start the deliverer. */
export { deliveryClient };

export const OUTBOX_QUEUE = 'outbox';
const DELIVER = 'deliver';
const SWEEP = 'sweep';

export const outboxJobId = (id: number): string => `outbox-${id}`;

const JOB_DEFAULTS = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 1000 },
  // Finished jobs leave Redis, so the sweep can hand a row that is still unsent back under the same id.
  removeOnComplete: true,
  removeOnFail: true,
} as const;

/** Sends after this many calls that may have reached the platform stop: the row is dead and someone must look. */
const MAX_SENDS = 8;

const ACTIONS: readonly string[] = ['post', 'update', 'ephemeral'] satisfies ChatAction[];

/** Tells the deliverer about rows just committed. Any process that writes the outbox may hold one. */
export class OutboxNotifier {
  readonly queue: Queue;
  constructor(connection: Redis, prefix: string) {
    this.queue = new Queue(OUTBOX_QUEUE, { connection, prefix, defaultJobOptions: JOB_DEFAULTS });
  }

  async notify(ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.queue.addBulk(ids.map((id) => ({ name: DELIVER, data: { id }, opts: { jobId: outboxJobId(id) } })));
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

export interface OutboxDelivererOptions {
  database: Database;
  connection: Redis;
  prefix: string;
  log: Logger;
  /** Slack rows go through this sender (deliveryClient, src/chat/slack-sender.ts); unset: they wait in the table. */
  slack?: ChatSender;
  /** Teams rows go through this sender (src/bot/teams/sender.ts); unset: they wait in the table. */
  teams?: ChatSender;
  now?: () => Date;
  /** Least time between two posts or edits in one Slack channel. Default 1000 ms (Slack: about one per second). */
  channelIntervalMs?: number;
  concurrency?: number;
  /** How long a channel lock lives without renewal; a crashed holder blocks the channel at most this long. */
  lockTtlMs?: number;
  /**
   * chat.postMessage across the whole workspace, per `minuteMs`. Slack allows about one post per second per
   * channel and, on top, "several hundred per minute" per workspace: a fan-out of DMs (each its own channel)
   * meets the second limit, not the first. Default 285 (5% under 300), shared by every worker through Redis.
   */
  slackPostsPerMinute?: number;
  /** The length of "a minute" for slackPostsPerMinute; benchmarks compress time against a compressed emulator. */
  minuteMs?: number;
  /** BullMQ's queue-wide limiter (jobs per second); it is what worker.rateLimit() pauses. Default 50. */
  jobsPerSecond?: number;
  /** Run before each sweep, so rows it writes go out with the sweep (the digest redraws a crash left marked). */
  beforeSweep?: () => Promise<void>;
}

export interface OutboxDeliverer extends RunningJobs {
  /** Hands every due unsent row back to the queue; returns how many. */
  sweep(): Promise<number>;
  worker: Worker;
  notifier: OutboxNotifier;
}

/** What every step of a delivery shares. */
interface Delivery {
  db: Database['db'];
  connection: Redis;
  prefix: string;
  log: Logger;
  now: () => Date;
  lockTtl: number;
  /** The configured platforms, by the name rows carry in `platform`. */
  outlets: ReadonlyMap<string, ChatOutlet>;
  notifier: OutboxNotifier;
  beforeSweep: (() => Promise<void>) | undefined;
}

function outletsFor(options: OutboxDelivererOptions): Map<string, ChatOutlet> {
  const { connection, prefix } = options;
  const outlets = new Map<string, ChatOutlet>();
  const slackPacing = {
    channelIntervalMs: options.channelIntervalMs ?? 1000,
    postsPerMinute: options.slackPostsPerMinute ?? 285,
    minuteMs: options.minuteMs ?? 60_000,
  };
  if (options.slack) outlets.set('slack', slackOutlet(options.slack, connection, prefix, slackPacing));
  if (options.teams) outlets.set('teams', teamsOutlet(options.teams, connection, prefix));
  return outlets;
}

export async function startOutboxDeliverer(options: OutboxDelivererOptions): Promise<OutboxDeliverer> {
  const { connection, prefix, log } = options;
  const d: Delivery = {
    db: options.database.db,
    connection,
    prefix,
    log,
    now: options.now ?? (() => new Date()),
    lockTtl: options.lockTtlMs ?? 15_000,
    outlets: outletsFor(options),
    notifier: new OutboxNotifier(connection, prefix),
    beforeSweep: options.beforeSweep,
  };
  const worker = startWorker(d, options);
  // Whatever was committed while no deliverer ran (or whose job Redis lost) goes out now; if the database is
  // not answering yet, the scheduled sweep tries again.
  await sweep(d).catch((error: unknown) => log.warn({ err: error }, 'outbox: first sweep failed; the next one will catch up'));
  return {
    worker,
    notifier: d.notifier,
    sweep: () => sweep(d),
    async close() {
      await worker.close();
      await d.notifier.close();
    },
  };
}

function startWorker(d: Delivery, options: OutboxDelivererOptions): Worker {
  const worker: Worker = new Worker(
    OUTBOX_QUEUE,
    async (job, token) => {
      if (job.name === SWEEP) {
        await sweep(d);
        return;
      }
      await deliverJob(d, job, token, worker);
    },
    // BullMQ honours worker.rateLimit() only when a limiter is set; this one is loose (pacing is per channel,
    // in the outlets), it is here so a Slack 429's Retry-After stops the whole queue (its limits are per workspace).
    { connection: d.connection, prefix: d.prefix, concurrency: options.concurrency ?? 4, autorun: true, limiter: { max: options.jobsPerSecond ?? 50, duration: 1000 } },
  );
  worker.on('error', (error) => d.log.error({ err: error }, 'outbox worker error'));
  worker.on('failed', (job, error) => {
    if (job && !(error instanceof DelayedError) && !(error instanceof RateLimitError)) {
      d.log.warn({ jobId: job.id, attempts: job.attemptsMade, err: error.message }, 'outbox delivery failed; will retry');
    }
  });
  return worker;
}

async function sweep(d: Delivery): Promise<number> {
  // Its failure must not stop the sweep: what it left undone is tried again at the next one.
  await d.beforeSweep?.().catch((error: unknown) => d.log.warn({ err: error }, 'outbox: the work before the sweep failed'));
  const ids = await dueOutboxIds(d.db, d.now(), [...d.outlets.keys()]);
  await d.notifier.notify(ids);
  return ids.length;
}

/**
 * Delivers a job's row, and before it the channel's older unsent rows: per channel, rows go out in id order,
 * under a Redis lock so only one job drains a channel at a time.
 */
async function deliverJob(d: Delivery, job: Job, token: string | undefined, worker: Worker): Promise<void> {
  const id = Number((job.data as { id: number }).id);
  const row = await loadOutboxRow(d.db, id);
  if (!row || row.state === 'sent' || row.state === 'dead') return;
  const key = `${d.prefix}:outbox:lock:${row.platform}:${row.channel}`;
  const lockToken = randomUUID();
  const locked = await d.connection.set(key, lockToken, 'PX', d.lockTtl, 'NX');
  if (locked !== 'OK') {
    // Another job is draining this channel; look again shortly (order is kept by the holder).
    await job.moveToDelayed(Date.now() + 150 + Math.floor(Math.random() * 100), token);
    throw new DelayedError();
  }
  try {
    // Drain the channel's oldest rows until ours has gone: earlier rows must reach the platform first.
    for (let guard = 0; guard < 200; guard++) {
      const head = await channelHead(d.db, row.platform, row.channel);
      if (!head || head.id > id) return;
      // A row told to wait (Retry-After, backoff) holds back the channel's later rows too: order is kept.
      const due = head.nextAttemptAt.getTime() - d.now().getTime();
      if (due > 0) {
        await job.moveToDelayed(Date.now() + due, token);
        throw new DelayedError();
      }
      await d.connection.pexpire(key, d.lockTtl);
      await deliverOne(d, head, worker);
    }
  } finally {
    await d.connection.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end", 1, key, lockToken);
  }
}

/** Sends one row; returns normally when the row is settled (sent, dead, or told when to try again), throws to retry. */
async function deliverOne(d: Delivery, row: OutboxRow, worker: Worker): Promise<void> {
  if (row.action === 'update') {
    const newer = await newerUpdatePending(d.db, row);
    if (newer !== undefined) return markSent(d.db, row, { messageId: undefined, threadId: undefined, note: `superseded by #${newer}` }, d.now());
  }
  const late = tooLate(row, d.now());
  if (late) return markDead(d.db, row.id, late, d.now());
  const targets = await findTargets(d, row);
  if (targets === undefined) return;
  if (!ACTIONS.includes(row.action)) return markDead(d.db, row.id, `unknown action ${row.action}`, d.now());
  if (row.attempts >= MAX_SENDS) return markDead(d.db, row.id, `gave up after ${row.attempts} sends`, d.now());
  const outlet = d.outlets.get(row.platform);
  // A platform not configured here: the row waits in the table until one is.
  if (!outlet) return;
  const action = row.action as ChatAction;
  if (!outlet.canDeliver(action)) return markDead(d.db, row.id, `${row.platform} cannot ${action}`, d.now());

  const slot = await outlet.pace({ action, channel: row.channel });
  await markSending(d.db, row.id, d.now());
  try {
    await slot.starting();
    const sent = await outlet.sender.send({ action, channel: row.channel, ...targets, payload: row.payload });
    await markSent(d.db, row, { messageId: sent.messageId, threadId: sent.threadId }, d.now());
    await slot.accepted();
  } catch (error) {
    await sendFailed(d, outlet, row, error, worker);
  }
}

/**
 * Why a row is no longer worth sending, if it is not: its payload's `notAfter` (ISO) has passed. A user's DM for a
 * window carries the window's notice deadline: delayed past it (a platform outage, a long Retry-After), it would
 * tell them to save their work for a night the sweep no longer patches their machine in.
 */
function tooLate(row: OutboxRow, now: Date): string | undefined {
  const notAfter = row.payload.notAfter;
  if (typeof notAfter !== 'string' || !(now.getTime() > Date.parse(notAfter))) return undefined;
  return `not sent: it was of use only until ${notAfter}`;
}

/**
 * The platform ids a row refers to: the thread a post replies in, the message an update edits. Undefined when
 * the row cannot go yet (throws: its parent's post is still pending) or ever (marked dead: it never was posted).
 */
async function findTargets(d: Delivery, row: OutboxRow): Promise<{ threadId?: string; messageId?: string } | undefined> {
  const posted = async (subject: string): Promise<string | undefined> => {
    const found = await findChatMessage(d.db, row.platform, row.channel, subject);
    if (found) return found.messageId;
    if (await postPending(d.db, row.platform, row.channel, subject)) throw new Error(`waiting for the post "${subject}"`);
    await markDead(d.db, row.id, `no message "${subject}" was ever posted in ${row.channel}`, d.now());
    return undefined;
  };
  const threadSubject = row.payload.threadSubject;
  if (row.action === 'post' && typeof threadSubject === 'string') {
    const threadId = await posted(threadSubject);
    return threadId === undefined ? undefined : { threadId };
  }
  if (row.action === 'update') {
    if (row.subject === null) return void (await markDead(d.db, row.id, 'an update names no subject', d.now()));
    const messageId = await posted(row.subject);
    return messageId === undefined ? undefined : { messageId };
  }
  return {};
}

/** Settles a failed send as its platform's rules say: dead when refused, else pending or failed until a retry. */
async function sendFailed(d: Delivery, outlet: ChatOutlet, row: OutboxRow, error: unknown, worker: Worker): Promise<void> {
  const e = asSendError(error);
  const where = { outboxId: row.id, channel: row.channel, action: row.action, status: e.status };
  if (e.kind === 'refused') {
    d.log.error({ ...where, err: e.message }, `${row.platform} refused an outbox message; marked dead`);
    return markDead(d.db, row.id, e.message, d.now());
  }
  const plan = outlet.retry(e, row.attempts);
  const retryAt = new Date(d.now().getTime() + plan.delayMs);
  if (plan.countsAttempt) await markFailed(d.db, row.id, e.message, retryAt, d.now());
  else await markPending(d.db, row.id, retryAt, d.now());
  d.log.warn({ ...where, retryInMs: plan.delayMs }, `${row.platform} send will be retried`);
  if (plan.pauseQueue) {
    await worker.rateLimit(plan.delayMs);
    throw new RateLimitError();
  }
  if (plan.rethrow) throw e;
}

/** Report files are read back from the report archive by the delivery key a row names. */
function reportFileSource(db: AppDatabase): ReportFileSource {
  return async (key) => (await filesOfDelivery(db, key)).map((f) => ({ name: f.fileName, mimeType: f.mimeType, bytes: f.bytes }));
}

/** Every this often the sweep re-adds unsent rows: the bound on how long a lost job delays a message. */
export const SWEEP_EVERY_MS = 10_000;

/** The job module: the deliverer on workers (when Slack or Teams is configured), the sweep schedule on schedulers. */
export const outboxJobs: JobModule = async (context: JobContext) => {
  const running: RunningJobs[] = [];
  const { config } = context;
  const teamsAppId = config.teams.appId;
  if (context.roles.has('worker') && (config.slack.botToken || teamsAppId)) {
    running.push(
      await startOutboxDeliverer({
        database: context.database,
        connection: context.redis,
        prefix: context.prefix,
        log: context.log,
        ...(config.slack.botToken ? { slack: deliveryClient(config.slack.botToken, config.slack.apiUrl, reportFileSource(context.database.db)) } : {}),
        ...(teamsAppId ? { teams: new TeamsSender(createTeamsApp(config.teams, context.log).app, context.database.db) } : {}),
        now: context.now,
        // A decision's digest redraw runs right after its commit; one a crash cut short is still marked, and drawn here.
        beforeSweep: () => refreshDigests({ db: context.database.db, now: context.now }),
      }),
    );
  }
  if (context.roles.has('scheduler') && (config.slack.botToken || teamsAppId)) {
    const queue = new Queue(OUTBOX_QUEUE, { connection: context.redis, prefix: context.prefix });
    await queue.upsertJobScheduler('outbox-sweep', { every: context.pace?.tickMs ?? SWEEP_EVERY_MS }, { name: SWEEP, opts: { removeOnComplete: true, removeOnFail: true } });
    running.push({ close: () => queue.close() });
  }
  return {
    async close() {
      await Promise.allSettled(running.map((r) => r.close()));
    },
  };
};
