/**
 * A platform as the outbox deliverer sees it: its sender, the actions it can deliver, how sends are paced to
 * stay under its limits, and how a failed send is retried. Pacing state lives in Redis so every worker process
 * shares it. The limits differ in kind, which is why they are the platform's business and not the deliverer's:
 *
 * - Slack: about one post per second per channel, and "several hundred per minute" per workspace; a 429 is
 *   workspace-wide, so it pauses the whole queue for Retry-After.
 * - Teams: sliding windows per conversation and per tenant (src/domain/teams-pacing.ts); every call counts,
 *   answered or not; a 429 only makes that row wait.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { longestWindowMs, retryDelayMs, TEAMS_CONVERSATION_LIMITS, TEAMS_TENANT_LIMITS, waitBeforeSend, type RateWindow } from '../domain/teams-pacing.ts';
import type { ChatAction, ChatSendError, ChatSender } from './port.ts';

export interface PacedSend {
  action: ChatAction;
  channel: string;
}

/** A reserved turn to send: tell it when the call goes out and when the platform took it. */
export interface SendSlot {
  starting(): Promise<void>;
  accepted(): Promise<void>;
}

/** What to do with a send the platform will take later. */
export interface RetryPlan {
  delayMs: number;
  /** A 429 is "not now", not a failed send: it leaves the row's attempts alone. */
  countsAttempt: boolean;
  /** The limit was workspace-wide: the whole queue waits `delayMs` (BullMQ's worker.rateLimit). */
  pauseQueue: boolean;
  /** Also hand the failure to BullMQ's job backoff (Slack's original contract). */
  rethrow: boolean;
}

export interface ChatOutlet {
  readonly sender: ChatSender;
  canDeliver(action: ChatAction): boolean;
  /** Waits until one more send fits the platform's limits. */
  pace(send: PacedSend): Promise<SendSlot>;
  retry(error: ChatSendError, attempts: number): RetryPlan;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nothing = async (): Promise<void> => {};

export interface SlackPacing {
  /** Least time between two posts or edits in one channel. */
  channelIntervalMs: number;
  /** chat.postMessage workspace-wide, per `minuteMs`. */
  postsPerMinute: number;
  minuteMs: number;
}

export function slackOutlet(sender: ChatSender, connection: Redis, prefix: string, pacing: SlackPacing): ChatOutlet {
  const interval = pacing.channelIntervalMs;
  const postSpacingMs = pacing.minuteMs / pacing.postsPerMinute;
  const paceKey = (channel: string) => `${prefix}:outbox:last:slack:${channel}`;

  /**
   * Reserves the next workspace-wide slot for a post and waits for it. Slots are handed out by Redis in one
   * atomic step, so posts from all workers and processes are spaced evenly (no burst then a 429).
   */
  async function waitForPostSlot(): Promise<void> {
    const script =
      "local now = tonumber(ARGV[1]); local slot = math.max(now, tonumber(redis.call('get', KEYS[1]) or '0')); redis.call('set', KEYS[1], tostring(slot + tonumber(ARGV[2])), 'PX', 60000); return tostring(slot - now)";
    const wait = Number(await connection.eval(script, 1, `${prefix}:outbox:slack:post-slot`, String(Date.now()), String(postSpacingMs)));
    if (wait > 0) await sleep(wait);
  }

  return {
    sender,
    canDeliver: () => true,
    async pace({ action, channel }) {
      // An ephemeral message is not channel history: Slack does not count it against the channel's pace.
      const counted = action !== 'ephemeral';
      if (counted) {
        const wait = Number((await connection.get(paceKey(channel))) ?? 0) + interval - Date.now();
        if (wait > 0) await sleep(wait);
      }
      if (action === 'post') await waitForPostSlot();
      return {
        starting: nothing,
        accepted: async () => {
          if (counted) await connection.set(paceKey(channel), String(Date.now()), 'PX', Math.max(interval * 2, 1000));
        },
      };
    },
    retry(error, attempts) {
      if (error.status === 429) return { delayMs: Math.max(1000, error.retryAfterMs ?? 0), countsAttempt: false, pauseQueue: true, rethrow: false };
      return { delayMs: 2 ** Math.min(attempts, 10) * 1000, countsAttempt: true, pauseQueue: false, rethrow: true };
    },
  };
}

/** Teams counts a call when it arrives; this much slack keeps our count from racing theirs. */
const TEAMS_PACE_MARGIN_MS = 150;

export function teamsOutlet(sender: ChatSender, connection: Redis, prefix: string): ChatOutlet {
  /**
   * Waits until one more send fits the windows under `key`. Send instants live in Redis sorted sets so every
   * worker process sees them; the channel lock makes the conversation's check exact, while the tenant's can
   * overshoot by the few sends racing between check and record (worker concurrency).
   */
  async function waitForWindows(key: string, limits: readonly RateWindow[]): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const t = Date.now();
      await connection.zremrangebyscore(key, 0, t - longestWindowMs(limits));
      const sent = ((await connection.call('zrange', key, '0', '-1', 'WITHSCORES')) as string[]).filter((_, idx) => idx % 2 === 1).map(Number);
      const wait = waitBeforeSend(sent, t, limits, TEAMS_PACE_MARGIN_MS);
      if (wait <= 0) return;
      await sleep(Math.min(wait, 5_000));
    }
  }

  async function record(key: string, limits: readonly RateWindow[]): Promise<void> {
    const t = Date.now();
    await connection.zadd(key, t, `${t}:${randomUUID()}`);
    await connection.pexpire(key, longestWindowMs(limits));
  }

  return {
    sender,
    canDeliver: (action) => action === 'post' || action === 'update',
    async pace({ channel }) {
      const conversationKey = `${prefix}:outbox:teams:conv:${channel}`;
      const tenantKey = `${prefix}:outbox:teams:tenant:${(await sender.scopeOf?.(channel)) ?? 'unknown'}`;
      await waitForWindows(conversationKey, TEAMS_CONVERSATION_LIMITS);
      await waitForWindows(tenantKey, TEAMS_TENANT_LIMITS);
      return {
        // Every call counts against the limits, answered or not: record before learning the outcome.
        starting: async () => {
          await Promise.all([record(conversationKey, TEAMS_CONVERSATION_LIMITS), record(tenantKey, TEAMS_TENANT_LIMITS)]);
        },
        accepted: nothing,
      };
    },
    retry(error, attempts) {
      return { delayMs: retryDelayMs(attempts, error.retryAfterMs), countsAttempt: error.status !== 429, pauseQueue: false, rethrow: false };
    },
  };
}
