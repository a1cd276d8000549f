/**
 * Delivers chat_outbox rows to Slack. Postgres holds the messages; Redis holds only "deliver row N" jobs
 * (jobId `outbox-N`), added right after the writing transaction commits and re-added by a sweep from the
 * table whenever one is lost (Redis restarted, a process died between commit and add).
 *
 * Per channel, rows go out in id order: a job takes the channel's lock (Redis, with a TTL so a dead holder
 * cannot block for long) and delivers the channel's oldest unsent rows until its own is sent, pacing posts
 * about one per second per channel. A 429 hands Slack's Retry-After to BullMQ (worker.rateLimit) and puts the
 * row back as pending: nothing is lost and the attempt is not counted. Refusals no retry can fix (channel
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
import { ErrorCode, WebClient, type WebAPIPlatformError, type WebAPIRateLimitedError } from '@slack/web-api';
import type { Database } from '../db/client.ts';
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
import { ChatSendError, type ChatSender } from '../bot/chat-port.ts';
import { createTeamsAdapter } from '../bot/teams/app.ts';
import { TeamsSender } from '../bot/teams/sender.ts';
import { longestWindowMs, retryDelayMs, TEAMS_CONVERSATION_LIMITS, TEAMS_TENANT_LIMITS, waitBeforeSend, type RateWindow } from '../domain/teams-pacing.ts';
import type { JobContext, JobModule, RunningJobs } from './context.ts';

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

/** Teams counts a call when it arrives; this much slack keeps our count from racing theirs. */
const TEAMS_PACE_MARGIN_MS = 150;

/** Sends after this many calls that may have reached Slack stop: the row is dead and someone must look. */
const MAX_SENDS = 8;

/** Slack errors that say "try again later"; any other refusal is final for that row. */
const TRANSIENT_SLACK_ERRORS = new Set(['internal_error', 'fatal_error', 'service_unavailable', 'request_timeout', 'ratelimited', 'team_added_to_org']);

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
  /** Unset when only Teams is configured: Slack rows then wait in the table until it is. */
  slack?: WebClient;
  /** Teams rows go through this port (src/bot/teams/sender.ts); unset: they wait in the table. */
  teams?: ChatSender;
  now?: () => Date;
  /** Least time between two posts or edits in one channel. Default 1000 ms (Slack: about one per second). */
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
}

export interface OutboxDeliverer extends RunningJobs {
  /** Hands every due unsent row back to the queue; returns how many. */
  sweep(): Promise<number>;
  worker: Worker;
  notifier: OutboxNotifier;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Web API client for the deliverer: 429s are thrown to us (BullMQ waits), not retried inside the call. */
export function deliveryClient(token: string, apiUrl: string): WebClient {
  return new WebClient(token, { slackApiUrl: apiUrl, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } });
}

export async function startOutboxDeliverer(options: OutboxDelivererOptions): Promise<OutboxDeliverer> {
  const { database, connection, prefix, log } = options;
  const platforms = [...(options.slack ? ['slack'] : []), ...(options.teams ? ['teams'] : [])];
  const db = database.db;
  const now = options.now ?? (() => new Date());
  const interval = options.channelIntervalMs ?? 1000;
  const lockTtl = options.lockTtlMs ?? 15_000;
  const notifier = new OutboxNotifier(connection, prefix);

  const lockKey = (row: Pick<OutboxRow, 'platform' | 'channel'>) => `${prefix}:outbox:lock:${row.platform}:${row.channel}`;
  const paceKey = (row: Pick<OutboxRow, 'platform' | 'channel'>) => `${prefix}:outbox:last:${row.platform}:${row.channel}`;

  async function unlock(key: string, token: string): Promise<void> {
    await connection.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end", 1, key, token);
  }

  const postSpacingMs = (options.minuteMs ?? 60_000) / (options.slackPostsPerMinute ?? 285);
  const postSlotKey = `${prefix}:outbox:slack:post-slot`;
  /**
   * Reserves the next workspace-wide slot for a Slack post and waits for it. Slots are handed out by Redis in one
   * atomic step, so posts from all workers and processes are spaced evenly (no burst then a 429).
   */
  async function paceSlackPost(): Promise<void> {
    const wait = Number(
      await connection.eval(
        "local now = tonumber(ARGV[1]); local slot = math.max(now, tonumber(redis.call('get', KEYS[1]) or '0')); redis.call('set', KEYS[1], tostring(slot + tonumber(ARGV[2])), 'PX', 60000); return tostring(slot - now)",
        1,
        postSlotKey,
        String(Date.now()),
        String(postSpacingMs),
      ),
    );
    if (wait > 0) await sleep(wait);
  }

  async function sweep(): Promise<number> {
    const ids = await dueOutboxIds(db, now(), platforms);
    await notifier.notify(ids);
    return ids.length;
  }

  /** Sends one row; returns normally when the row is settled (sent or dead), throws to retry. */
  async function deliverOne(row: OutboxRow, worker: Worker): Promise<void> {
    const payload = row.payload;
    if (row.action === 'update') {
      const newer = await newerUpdatePending(db, row);
      if (newer !== undefined) {
        await markSent(db, row, { messageId: undefined, threadId: undefined, note: `superseded by #${newer}` }, now());
        return;
      }
    }
    let threadTs: string | undefined;
    let ts: string | undefined;
    const needs = async (subject: string): Promise<string | undefined> => {
      const found = await findChatMessage(db, row.platform, row.channel, subject);
      if (found) return found.messageId;
      if (await postPending(db, row.platform, row.channel, subject)) throw new Error(`waiting for the post "${subject}"`);
      await markDead(db, row.id, `no message "${subject}" was ever posted in ${row.channel}`, now());
      return undefined;
    };
    if (row.action === 'post' && typeof payload.threadSubject === 'string') {
      threadTs = await needs(payload.threadSubject);
      if (threadTs === undefined) return;
    }
    if (row.action === 'update') {
      if (row.subject === null) return markDead(db, row.id, 'an update names no subject', now());
      ts = await needs(row.subject);
      if (ts === undefined) return;
    }
    if (row.action !== 'post' && row.action !== 'update' && row.action !== 'ephemeral') {
      return markDead(db, row.id, `unknown action ${row.action}`, now());
    }
    if (row.attempts >= MAX_SENDS) return markDead(db, row.id, `gave up after ${row.attempts} sends`, now());
    if (row.platform === 'teams') return deliverThroughPort(row, ts);
    const slack = options.slack;
    if (!slack) return;

    if (row.action !== 'ephemeral') {
      const last = Number((await connection.get(paceKey(row))) ?? 0);
      const wait = last + interval - Date.now();
      if (wait > 0) await sleep(wait);
    }

    if (row.action === 'post') await paceSlackPost();
    await markSending(db, row.id, now());
    const blocks = payload.blocks as never;
    try {
      let messageId: string | undefined;
      if (row.action === 'post') {
        const res = await slack.chat.postMessage({ channel: row.channel, text: payload.text, ...(blocks ? { blocks } : {}), ...(threadTs ? { thread_ts: threadTs } : {}) });
        messageId = res.ts;
      } else if (row.action === 'update') {
        const res = await slack.chat.update({ channel: row.channel, ts: ts!, text: payload.text, ...(blocks ? { blocks } : {}) });
        messageId = res.ts ?? ts;
      } else {
        const user = typeof payload.user === 'string' ? payload.user : '';
        const res = await slack.chat.postEphemeral({ channel: row.channel, user, text: payload.text, ...(blocks ? { blocks } : {}) });
        messageId = res.message_ts;
      }
      await markSent(db, row, { messageId, threadId: threadTs }, now());
      if (row.action !== 'ephemeral') await connection.set(paceKey(row), String(Date.now()), 'PX', Math.max(interval * 2, 1000));
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === ErrorCode.RateLimitedError) {
        const seconds = (error as WebAPIRateLimitedError).retryAfter;
        const ms = Math.max(1, seconds) * 1000;
        await markPending(db, row.id, new Date(now().getTime() + ms), now());
        log.warn({ outboxId: row.id, channel: row.channel, retryAfterS: seconds }, 'slack rate limited the outbox; waiting as told');
        await worker.rateLimit(ms);
        throw new RateLimitError();
      }
      if (code === ErrorCode.PlatformError) {
        const slackError = (error as WebAPIPlatformError).data.error;
        if (!TRANSIENT_SLACK_ERRORS.has(slackError)) {
          await markDead(db, row.id, `slack refused: ${slackError}`, now());
          log.error({ outboxId: row.id, channel: row.channel, action: row.action, slackError }, 'slack refused an outbox message; marked dead');
          return;
        }
      }
      const message = error instanceof Error ? error.message : String(error);
      await markFailed(db, row.id, message, new Date(now().getTime() + 2 ** Math.min(row.attempts, 10) * 1000), now());
      throw error;
    }
  }

  /**
   * Waits until one more send fits Teams' windows for the conversation and for its tenant. Send instants live in
   * Redis sorted sets so every worker process sees them; the channel lock makes the conversation's check exact,
   * while the tenant's can overshoot by the few sends racing between check and record (worker concurrency).
   */
  async function paceTeams(key: string, limits: readonly RateWindow[]): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const t = Date.now();
      await connection.zremrangebyscore(key, 0, t - longestWindowMs(limits));
      const sent = ((await connection.call('zrange', key, '0', '-1', 'WITHSCORES')) as string[]).filter((_, idx) => idx % 2 === 1).map(Number);
      const wait = waitBeforeSend(sent, t, limits, TEAMS_PACE_MARGIN_MS);
      if (wait <= 0) return;
      await sleep(Math.min(wait, 5_000));
    }
  }

  async function recordTeamsSend(key: string, limits: readonly RateWindow[]): Promise<void> {
    const t = Date.now();
    await connection.zadd(key, t, `${t}:${randomUUID()}`);
    await connection.pexpire(key, longestWindowMs(limits));
  }

  async function deliverThroughPort(row: OutboxRow, messageId: string | undefined): Promise<void> {
    const sender = options.teams;
    if (!sender || (row.action !== 'post' && row.action !== 'update')) {
      return markDead(db, row.id, `teams cannot ${row.action}`, now());
    }
    const conversationKey = `${prefix}:outbox:teams:conv:${row.channel}`;
    const tenant = (await sender.scopeOf?.(row.channel)) ?? 'unknown';
    const tenantKey = `${prefix}:outbox:teams:tenant:${tenant}`;
    await paceTeams(conversationKey, TEAMS_CONVERSATION_LIMITS);
    await paceTeams(tenantKey, TEAMS_TENANT_LIMITS);
    await markSending(db, row.id, now());
    try {
      // Every call counts against the limits, answered or not: record before learning the outcome.
      await Promise.all([recordTeamsSend(conversationKey, TEAMS_CONVERSATION_LIMITS), recordTeamsSend(tenantKey, TEAMS_TENANT_LIMITS)]);
      const sent = await sender.send({ action: row.action, channel: row.channel, ...(messageId ? { messageId } : {}), payload: row.payload });
      await markSent(db, row, { messageId: sent.messageId, threadId: undefined }, now());
    } catch (error) {
      const e = error instanceof ChatSendError ? error : new ChatSendError('retry', error instanceof Error ? error.message : String(error));
      if (e.kind === 'refused') {
        log.error({ outboxId: row.id, channel: row.channel, status: e.status, err: e.message }, 'teams refused an outbox message; marked dead');
        return markDead(db, row.id, e.message, now());
      }
      const delay = retryDelayMs(row.attempts, e.retryAfterMs);
      const retryAt = new Date(now().getTime() + delay);
      // A 429 is Teams saying "not now", not a failed send: it does not use up the row's attempts.
      if (e.status === 429) await markPending(db, row.id, retryAt, now());
      else await markFailed(db, row.id, e.message, retryAt, now());
      log.warn({ outboxId: row.id, channel: row.channel, status: e.status, retryInMs: delay }, 'teams send will be retried');
    }
  }

  async function deliver(job: Job, token: string | undefined, worker: Worker): Promise<void> {
    const id = Number((job.data as { id: number }).id);
    const row = await loadOutboxRow(db, id);
    if (!row || row.state === 'sent' || row.state === 'dead') return;
    const key = lockKey(row);
    const lockToken = randomUUID();
    const locked = await connection.set(key, lockToken, 'PX', lockTtl, 'NX');
    if (locked !== 'OK') {
      // Another job is draining this channel; look again shortly (order is kept by the holder).
      await job.moveToDelayed(Date.now() + 150 + Math.floor(Math.random() * 100), token);
      throw new DelayedError();
    }
    try {
      // Drain the channel's oldest rows until ours has gone: earlier rows must reach Slack first.
      for (let guard = 0; guard < 200; guard++) {
        const head = await channelHead(db, row.platform, row.channel);
        if (!head || head.id > id) return;
        // A row told to wait (Retry-After, backoff) holds back the channel's later rows too: order is kept.
        const due = head.nextAttemptAt.getTime() - now().getTime();
        if (due > 0) {
          await job.moveToDelayed(Date.now() + due, token);
          throw new DelayedError();
        }
        await connection.pexpire(key, lockTtl);
        await deliverOne(head, worker);
      }
    } finally {
      await unlock(key, lockToken);
    }
  }

  const worker: Worker = new Worker(
    OUTBOX_QUEUE,
    async (job, token) => {
      if (job.name === SWEEP) {
        await sweep();
        return;
      }
      await deliver(job, token, worker);
    },
    // BullMQ honours worker.rateLimit() only when a limiter is set; this one is loose (pacing is per channel
    // above), it is here so a 429's Retry-After stops the whole queue, as Slack's limits are per workspace.
    { connection, prefix, concurrency: options.concurrency ?? 4, autorun: true, limiter: { max: options.jobsPerSecond ?? 50, duration: 1000 } },
  );
  worker.on('error', (error) => log.error({ err: error }, 'outbox worker error'));
  worker.on('failed', (job, error) => {
    if (job && !(error instanceof DelayedError) && !(error instanceof RateLimitError)) {
      log.warn({ jobId: job.id, attempts: job.attemptsMade, err: error.message }, 'outbox delivery failed; will retry');
    }
  });

  // Whatever was committed while no deliverer ran (or whose job Redis lost) goes out now; if the database is
  // not answering yet, the scheduled sweep tries again.
  await sweep().catch((error: unknown) => log.warn({ err: error }, 'outbox: first sweep failed; the next one will catch up'));

  return {
    worker,
    notifier,
    sweep,
    async close() {
      await worker.close();
      await notifier.close();
    },
  };
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
        ...(config.slack.botToken ? { slack: deliveryClient(config.slack.botToken, config.slack.apiUrl) } : {}),
        ...(teamsAppId ? { teams: new TeamsSender(createTeamsAdapter(config.teams), teamsAppId, context.database.db) } : {}),
        now: context.now,
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
