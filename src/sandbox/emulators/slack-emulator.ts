/**
 * A Slack Web API emulator for tests: an HTTP server on loopback that the real `@slack/web-api` WebClient talks
 * to through its `slackApiUrl` option. It answers like Slack (`ok`, `error`, `response_metadata`), keeps channel
 * history (threads, edits in place, deletions), enforces the Block Kit limits (./block-kit-limits.ts) and the
 * rate tiers (429 with `Retry-After`), and can inject faults. Independent of src/: it is the oracle the product's
 * Slack code is tested against.
 *
 * WebClient sends `POST {slackApiUrl}{method}` with `Authorization: Bearer <token>` and an
 * `application/x-www-form-urlencoded` body in which objects (blocks, view) are JSON strings. Slack also accepts
 * JSON bodies and a `token` form field; both are accepted here.
 *
 *   const emu = await startSlackEmulator({ rateLimits: { windowMs: 2000 } });
 *   const web = new WebClient(emu.botToken, { slackApiUrl: emu.url, retryConfig: { retries: 0 }, rejectRateLimitedCalls: true });
 *   await web.chat.postMessage({ channel: 'C0ENGINEERS', text: 'digest', blocks });
 *   expect(emu.messages('C0ENGINEERS')).toHaveLength(1);   // then emu.message(ch, ts).edits, emu.calls('chat.update')...
 *   await emu.close();
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { checkMessage, checkView, formatViolation, type Violation } from './block-kit-limits.ts';

export type Tier = 1 | 2 | 3 | 4;

/** Slack's published tiers, per method per workspace per minute. */
export const TIER_LIMITS: Record<Tier, number> = { 1: 1, 2: 20, 3: 50, 4: 100 };

/**
 * Method -> tier, from Slack's method reference pages. chat.postMessage is "special": about one message per
 * second per channel with short bursts, modelled by `postMessagePerChannel` instead of a tier.
 */
export const METHOD_TIERS: Record<string, Tier | 'special'> = {
  'chat.postMessage': 'special',
  'chat.update': 3,
  'chat.delete': 3,
  'chat.postEphemeral': 4,
  'conversations.open': 3,
  'users.list': 2,
  'users.lookupByEmail': 3,
  'users.info': 4,
  'views.open': 4,
  'views.update': 4,
  'views.publish': 4,
  'auth.test': 4,
};

export interface RateLimitOptions {
  /** Length of "a minute": tier limits apply per this window. Default 60_000; tests compress it. */
  windowMs?: number;
  /** Override calls per window for a tier. */
  tiers?: Partial<Record<Tier, number>>;
  /** Override or add method tiers. */
  methodTiers?: Record<string, Tier | 'special'>;
  /**
   * chat.postMessage per channel: a token bucket refilling one message per `intervalMs` (default windowMs / 60,
   * i.e. one per second at real speed) holding at most `burst` (default 3). `false` turns it off.
   */
  postMessagePerChannel?: { intervalMs?: number; burst?: number } | false;
  /**
   * chat.postMessage across the workspace, per window: Slack documents a workspace-wide limit on top of the
   * per-channel one ("several hundred messages per minute") without a number. Off unless set, so suites that
   * predate it are unchanged; a fan-out of DMs (one channel each) sets it.
   */
  postMessagePerWorkspace?: number;
}

export interface SeedUser {
  id: string;
  name: string;
  real_name?: string;
  email?: string;
  tz?: string;
  tz_offset?: number;
  is_bot?: boolean;
  is_admin?: boolean;
  deleted?: boolean;
}

export interface SeedChannel {
  id: string;
  name: string;
}

export interface SlackEmulatorOptions {
  /** The bot token the emulator accepts. Default `xoxb-emulator-token`. */
  botToken?: string;
  team?: { id: string; domain: string; name?: string };
  bot?: { userId: string; botId: string; appId: string; name?: string };
  /** Workspace members (the bot user is added on top). Default: {@link DEFAULT_USERS}. */
  users?: SeedUser[];
  /** Public channels. Default: {@link DEFAULT_CHANNELS}. Posting elsewhere answers `channel_not_found`. */
  channels?: SeedChannel[];
  /** `false` for tests that do not care about rate limits. */
  rateLimits?: RateLimitOptions | false;
  /** `msg_blocks_too_long` threshold on serialised blocks. Default 13,000 characters. */
  maxBlocksJsonChars?: number;
  /** Where action_id must be unique; see block-kit-limits.ts. Default `block` (Slack's documented rule). */
  actionIdScope?: 'block' | 'message';
  /** Clock in ms; rate windows, trigger expiry and `at` use it. Default Date.now. */
  clock?: () => number;
  /**
   * The time stamped on messages, edits and ephemerals when it differs from the rate clock: the sandbox's clock
   * runs faster than real time, while Slack's limits are counted in real time. Default `clock`.
   */
  stampClock?: () => number;
  /** How long a trigger_id stays exchangeable. Default 3000 ms (Slack: 3 s). */
  triggerTtlMs?: number;
  /** A response_url accepts this many posts. Default 5 (Slack: 5 times within 30 minutes). */
  responseUrlUses?: number;
  /** Legacy verification token put into payloads (`token` field). */
  verificationToken?: string;
  /** What an earlier run of the emulator held (see `history()`): the sandbox keeps its channels across restarts. */
  restore?: SlackEmulatorHistory;
}

/** The conversation history, without the call log, rate windows or tokens: what a restart should find again. */
export interface SlackEmulatorHistory {
  messages: StoredMessage[];
  ephemerals: StoredEphemeral[];
  views: StoredView[];
  tsCounter: number;
  viewCounter: number;
}

export const DEFAULT_USERS: SeedUser[] = [
  { id: 'U0PAT', name: 'pat', real_name: 'Pat Engineer', email: 'pat@msp.example', tz: 'America/Chicago', tz_offset: -21600 },
  { id: 'U0SAM', name: 'sam', real_name: 'Sam Engineer', email: 'sam@msp.example', tz: 'America/Chicago', tz_offset: -21600 },
  { id: 'U0LEE', name: 'lee', real_name: 'Lee Outsider', email: 'lee@msp.example', tz: 'Europe/London', tz_offset: 0 },
];

export const DEFAULT_CHANNELS: SeedChannel[] = [
  { id: 'C0ENGINEERS', name: 'patch-engineers' },
  { id: 'C0GENERAL', name: 'general' },
];

export interface RecordedCall {
  method: string;
  /** Arguments as received, with JSON-string fields (blocks, view, ...) parsed. The token is left out. */
  args: Record<string, unknown>;
  at: number;
  status: number;
  ok: boolean;
  error?: string;
}

export interface MessageVersion {
  text?: string;
  blocks?: unknown[];
  at: number;
}

export interface StoredMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text?: string;
  blocks?: unknown[];
  metadata?: unknown;
  user: string;
  bot_id: string;
  /** Number of successful chat.update (or response_url replace_original) applied to this message. */
  edits: number;
  /** Every version, the original first. */
  versions: MessageVersion[];
  deleted: boolean;
  /** Posted without a top-level `text` fallback. */
  missingText: boolean;
  reply_count: number;
  postedAt: number;
}

export interface StoredEphemeral {
  channel: string;
  user: string;
  text?: string;
  blocks?: unknown[];
  message_ts: string;
  thread_ts?: string;
  at: number;
  /** `api` for chat.postEphemeral, `response_url` for an ephemeral reply through a response_url. */
  via: 'api' | 'response_url';
}

export interface StoredView {
  id: string;
  type: 'modal' | 'home';
  /** The user the view is shown to. */
  user: string;
  view: Record<string, unknown>;
  hash: string;
  external_id?: string;
  updates: number;
  trigger_id?: string;
}

export interface ResponseUrlContext {
  channel?: string;
  message_ts?: string;
  user?: string;
  kind: 'block_actions' | 'slash_command' | 'view_submission';
}

export interface ResponseUrlPost {
  id: string;
  body: unknown;
  at: number;
  status: number;
  context: ResponseUrlContext;
}

export interface Fault {
  /** Answer HTTP 200 `{ok:false, error}`. */
  error?: string;
  /** Answer this HTTP status (5xx, or 429 with `retryAfter`). */
  status?: number;
  /** Seconds for `Retry-After` when status is 429. Default 1. */
  retryAfter?: number;
  /** How many calls this fault applies to. Default 1. */
  times?: number;
}

export interface SlackEmulator {
  /** Base for WebClient's `slackApiUrl`: `http://127.0.0.1:PORT/api/`. */
  url: string;
  /** `http://127.0.0.1:PORT` (response_url endpoints live under it). */
  origin: string;
  botToken: string;
  team: { id: string; domain: string; name: string };
  bot: { userId: string; botId: string; appId: string; name: string };
  verificationToken: string;
  close(): Promise<void>;

  calls(method?: string): RecordedCall[];
  /** Live, non-deleted messages in posting order (all channels when channel is omitted). */
  messages(channel?: string, opts?: { includeDeleted?: boolean }): StoredMessage[];
  message(channel: string, ts: string): StoredMessage | undefined;
  /** Replies in a thread (not the parent), in order. */
  replies(channel: string, threadTs: string): StoredMessage[];
  ephemerals(filter?: { channel?: string; user?: string }): StoredEphemeral[];
  views(filter?: { user?: string; type?: 'modal' | 'home' }): StoredView[];
  view(id: string): StoredView | undefined;
  homeView(user: string): StoredView | undefined;
  history(): SlackEmulatorHistory;
  responses(): ResponseUrlPost[];
  /** 429 answers given (rate limit or injected), in total or for one method. */
  rateLimitedCount(method?: string): number;

  user(id: string): SeedUser | undefined;
  channelName(id: string): string | undefined;
  addUser(user: SeedUser): void;
  addChannel(channel: SeedChannel): void;
  /** The DM channel id Slack would use for the bot and this user. */
  dmChannelFor(user: string): string;

  failNext(method: string, fault: Fault): void;
  /** Delay every answer to `method` ('*' for all) by `ms`; 0 removes. */
  setLatency(method: string, ms: number): void;
  /** Forget the rate-limit windows (not the history). */
  resetRateLimits(): void;

  /** A trigger_id as Slack would put in an interaction payload; views.open accepts it once, within the TTL. */
  issueTriggerId(user: string): string;
  /** A response_url pointing at this emulator, recording what is posted to it. */
  issueResponseUrl(context: ResponseUrlContext): string;

  /** The message object Slack puts in API answers and interaction payloads. */
  messagePayload(m: StoredMessage): Record<string, unknown>;
  /** The view object Slack puts in API answers and interaction payloads. */
  viewPayload(v: StoredView): Record<string, unknown>;
}

type Args = Record<string, unknown>;

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

class SlackError extends Error {
  constructor(
    readonly error: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(error);
  }
}

const JSON_FIELDS = ['blocks', 'attachments', 'view', 'metadata'];

function parseArgs(raw: string, contentType: string | undefined, query: URLSearchParams): Args {
  const args: Args = {};
  for (const [k, v] of query) args[k] = v;
  if (raw.length > 0) {
    if (contentType?.includes('application/json')) {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed === 'object' && parsed !== null) Object.assign(args, parsed);
    } else {
      for (const [k, v] of new URLSearchParams(raw)) args[k] = v;
    }
  }
  return args;
}

function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

function bool(v: unknown): boolean {
  return v === true || v === 'true' || v === '1' || v === 1;
}

/**
 * Slack fills in a block_id (and an action_id on interactive elements) when the app leaves them out, and
 * payloads carry the generated ones; do the same so a click on such a button looks like Slack's.
 */
function withGeneratedIds(blocks: unknown[] | undefined): unknown[] | undefined {
  if (blocks === undefined) return undefined;
  const gen = (): string => randomBytes(4).toString('base64url').slice(0, 5);
  const element = (el: unknown): unknown => {
    if (typeof el !== 'object' || el === null || Array.isArray(el)) return el;
    const e = el as Record<string, unknown>;
    const interactive = typeof e.type === 'string' && !['image', 'plain_text', 'mrkdwn'].includes(e.type);
    return interactive && e.action_id === undefined ? { ...e, action_id: gen() } : e;
  };
  return blocks.map((b) => {
    if (typeof b !== 'object' || b === null || Array.isArray(b)) return b;
    const block = { ...(b as Record<string, unknown>) };
    if (block.block_id === undefined) block.block_id = gen();
    if (block.type === 'actions' && Array.isArray(block.elements)) block.elements = block.elements.map(element);
    if (block.accessory !== undefined) block.accessory = element(block.accessory);
    if (block.type === 'input' && block.element !== undefined) block.element = element(block.element);
    return block;
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startSlackEmulator(options: SlackEmulatorOptions = {}): Promise<SlackEmulator> {
  const clock = options.clock ?? Date.now;
  const stampClock = options.stampClock ?? clock;
  const botToken = options.botToken ?? 'xoxb-emulator-token';
  const team = { name: 'Patchbay Test MSP', ...(options.team ?? { id: 'T0PATCHBAY', domain: 'patchbay-test' }) };
  const bot = { name: 'patchbay', ...(options.bot ?? { userId: 'U0BOT', botId: 'B0BOT', appId: 'A0PATCHBAY' }) };
  const verificationToken = options.verificationToken ?? 'verification-token-unused';
  const triggerTtlMs = options.triggerTtlMs ?? 3000;
  const responseUrlUses = options.responseUrlUses ?? 5;
  const actionIdScope = options.actionIdScope ?? 'block';

  const users = new Map<string, SeedUser>();
  for (const u of options.users ?? DEFAULT_USERS) users.set(u.id, { ...u });
  users.set(bot.userId, { id: bot.userId, name: bot.name, real_name: bot.name, is_bot: true });
  const channels = new Map<string, SeedChannel>();
  for (const c of options.channels ?? DEFAULT_CHANNELS) channels.set(c.id, { ...c });

  const calls: RecordedCall[] = [];
  const messages: StoredMessage[] = [];
  const ephemerals: StoredEphemeral[] = [];
  const views = new Map<string, StoredView>();
  const responses: ResponseUrlPost[] = [];
  const responseUrls = new Map<string, { context: ResponseUrlContext; uses: number }>();
  const triggers = new Map<string, { user: string; issuedAt: number; used: boolean }>();
  const faults = new Map<string, Fault[]>();
  const latency = new Map<string, number>();
  const rateLimited = new Map<string, number>();

  // Deterministic, strictly increasing message timestamps in Slack's "seconds.microseconds" form.
  let tsCounter = 0;
  const nextTs = (): string => {
    tsCounter += 100;
    const secs = 1_700_000_000 + Math.floor(tsCounter / 1_000_000);
    return `${secs}.${String(tsCounter % 1_000_000).padStart(6, '0')}`;
  };
  let viewCounter = 0;
  if (options.restore) {
    messages.push(...options.restore.messages);
    ephemerals.push(...options.restore.ephemerals);
    // Home tabs come back; modals do not: a restart ends the session they were open in, and Slack would have
    // closed them (a submit to the restarted bot would land on a view it never opened).
    for (const v of options.restore.views) if (v.type !== 'modal') views.set(v.id, v);
    tsCounter = options.restore.tsCounter;
    viewCounter = options.restore.viewCounter;
  }

  // ---- rate limits -------------------------------------------------------------------------------------------
  const rl = options.rateLimits === false ? undefined : (options.rateLimits ?? {});
  const windowMs = rl?.windowMs ?? 60_000;
  const tierLimits = { ...TIER_LIMITS, ...(rl?.tiers ?? {}) };
  const methodTiers = { ...METHOD_TIERS, ...(rl?.methodTiers ?? {}) };
  const perChannel = rl?.postMessagePerChannel === false ? undefined : {
    intervalMs: rl?.postMessagePerChannel?.intervalMs ?? windowMs / 60,
    burst: rl?.postMessagePerChannel?.burst ?? 3,
  };
  const windows = new Map<string, number[]>();
  const buckets = new Map<string, { tokens: number; updatedAt: number }>();

  /** Returns the wait in ms when over the limit, undefined when the call may proceed (and counts it). */
  function takeTier(method: string): number | undefined {
    if (!rl) return undefined;
    const tier = methodTiers[method];
    if (tier === undefined || tier === 'special') return undefined;
    const limit = tierLimits[tier];
    const now = clock();
    const stamps = (windows.get(method) ?? []).filter((t) => t > now - windowMs);
    windows.set(method, stamps);
    if (stamps.length >= limit) return (stamps[0] ?? now) + windowMs - now;
    stamps.push(now);
    return undefined;
  }

  const workspacePosts: number[] = [];
  /** Sliding window of chat.postMessage calls workspace-wide; counted only when let through. */
  function takeWorkspacePost(): number | undefined {
    const limit = rl?.postMessagePerWorkspace;
    if (!rl || limit === undefined) return undefined;
    const now = clock();
    while (workspacePosts.length > 0 && workspacePosts[0]! <= now - windowMs) workspacePosts.shift();
    if (workspacePosts.length >= limit) return workspacePosts[0]! + windowMs - now;
    workspacePosts.push(now);
    return undefined;
  }

  function takeChannel(channel: string): number | undefined {
    if (!rl || !perChannel) return undefined;
    const now = clock();
    const b = buckets.get(channel) ?? { tokens: perChannel.burst, updatedAt: now };
    b.tokens = Math.min(perChannel.burst, b.tokens + (now - b.updatedAt) / perChannel.intervalMs);
    b.updatedAt = now;
    buckets.set(channel, b);
    if (b.tokens < 1) return (1 - b.tokens) * perChannel.intervalMs;
    b.tokens -= 1;
    return undefined;
  }

  function ratelimitedAnswer(method: string, waitMs: number): Answer {
    rateLimited.set(method, (rateLimited.get(method) ?? 0) + 1);
    // Retry-After is whole seconds (WebClient parses an integer); never 0, or a client would spin.
    const secs = Math.max(1, Math.ceil(waitMs / 1000));
    return {
      status: 429,
      body: { ok: false, error: 'ratelimited' },
      headers: { 'retry-after': String(secs), 'x-emulator-retry-after-ms': String(Math.ceil(waitMs)) },
    };
  }

  // ---- workspace helpers -------------------------------------------------------------------------------------
  const dmChannelFor = (user: string): string => `D${user.replace(/^[UW]/, '')}`;
  const dmUser = (channel: string): string | undefined => {
    if (!channel.startsWith('D')) return undefined;
    const id = `U${channel.slice(1)}`;
    return users.has(id) ? id : undefined;
  };

  /** Resolve a channel argument (C.., D.., a user id for a DM, or a #name) to a channel id. */
  function resolveChannel(arg: unknown): string {
    const raw = str(arg);
    if (raw === undefined || raw === '') throw new SlackError('channel_not_found');
    if (channels.has(raw)) return raw;
    if (users.has(raw) && raw !== bot.userId) return dmChannelFor(raw);
    if (dmUser(raw) !== undefined) return raw;
    const name = raw.replace(/^#/, '');
    for (const c of channels.values()) if (c.name === name) return c.id;
    throw new SlackError('channel_not_found');
  }

  function findMessage(channel: string, ts: string | undefined): StoredMessage | undefined {
    if (ts === undefined) return undefined;
    return messages.find((m) => m.channel === channel && m.ts === ts && !m.deleted);
  }

  function messageJson(m: StoredMessage): Record<string, unknown> {
    return {
      type: 'message',
      subtype: 'bot_message',
      text: m.text ?? '',
      user: m.user,
      bot_id: m.bot_id,
      app_id: bot.appId,
      team: team.id,
      ts: m.ts,
      ...(m.thread_ts !== undefined ? { thread_ts: m.thread_ts } : {}),
      ...(m.blocks !== undefined ? { blocks: m.blocks } : {}),
      ...(m.edits > 0 ? { edited: { user: bot.userId, ts: ((m.versions.at(-1)?.at ?? 0) / 1000).toFixed(6) } } : {}),
    };
  }

  function userJson(u: SeedUser): Record<string, unknown> {
    return {
      id: u.id,
      team_id: team.id,
      name: u.name,
      deleted: u.deleted ?? false,
      real_name: u.real_name ?? u.name,
      tz: u.tz ?? 'America/Chicago',
      tz_label: u.tz ?? 'America/Chicago',
      tz_offset: u.tz_offset ?? -21600,
      is_admin: u.is_admin ?? false,
      is_bot: u.is_bot ?? false,
      is_app_user: false,
      updated: 1_700_000_000,
      profile: {
        real_name: u.real_name ?? u.name,
        display_name: u.name,
        ...(u.email !== undefined ? { email: u.email } : {}),
        ...(u.is_bot ? { bot_id: bot.botId } : {}),
        team: team.id,
      },
    };
  }

  /** Parse a JSON-string argument; `undefined` when absent. */
  function jsonArg(args: Args, key: string, badFormat: string): unknown {
    const v = args[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v);
    } catch {
      throw new SlackError(badFormat);
    }
  }

  function validateMessage(args: Args, requireContent: boolean): { blocks?: unknown[]; missingText: boolean } {
    const blocks = jsonArg(args, 'blocks', 'invalid_blocks_format');
    if (blocks !== undefined && !Array.isArray(blocks)) throw new SlackError('invalid_blocks_format');
    const attachments = jsonArg(args, 'attachments', 'invalid_attachments');
    const check = checkMessage({ text: str(args.text), blocks, attachments }, {
      actionIdScope,
      maxBlocksJsonChars: options.maxBlocksJsonChars,
      requireContent,
    });
    if (check.error !== undefined) {
      throw new SlackError(check.error, { response_metadata: { messages: check.violations.map(formatViolation) } });
    }
    return { blocks: withGeneratedIds(blocks as unknown[] | undefined), missingText: check.missingText };
  }

  function missingTextWarning(missing: boolean): Record<string, unknown> {
    // Slack itself stays quiet; the emulator warns (like WebClient's own log line) so tests can catch it.
    return missing ? { warning: 'missing_text', response_metadata: { warnings: ['missing_text'] } } : {};
  }

  function viewJson(v: StoredView): Record<string, unknown> {
    return {
      id: v.id,
      team_id: team.id,
      app_id: bot.appId,
      bot_id: bot.botId,
      app_installed_team_id: team.id,
      state: { values: {} },
      hash: v.hash,
      previous_view_id: null,
      root_view_id: v.id,
      clear_on_close: false,
      notify_on_close: false,
      private_metadata: '',
      callback_id: '',
      external_id: v.external_id ?? '',
      ...v.view,
    };
  }

  function validateView(view: unknown, expect: 'modal' | 'home'): Record<string, unknown> {
    const violations: Violation[] = checkView(view, { expect, actionIdScope });
    if (violations.length > 0) {
      throw new SlackError('invalid_arguments', { response_metadata: { messages: violations.map(formatViolation) } });
    }
    const v = view as Record<string, unknown>;
    return { ...v, blocks: withGeneratedIds(v.blocks as unknown[]) };
  }

  const newHash = (): string => `${Math.floor(clock() / 1000)}.${randomBytes(4).toString('hex')}`;

  function postMessage(channel: string, args: Args, at: number): { message: StoredMessage; missingText: boolean } {
    const { blocks, missingText } = validateMessage(args, true);
    const threadTs = str(args.thread_ts);
    let parent: StoredMessage | undefined;
    if (threadTs !== undefined && threadTs !== '') {
      parent = findMessage(channel, threadTs);
      if (parent === undefined) throw new SlackError('thread_not_found');
      if (parent.thread_ts !== undefined && parent.thread_ts !== parent.ts) {
        // A reply to a reply lands in the parent's thread, as in Slack.
        parent = findMessage(channel, parent.thread_ts) ?? parent;
      }
    }
    const text = str(args.text);
    const message: StoredMessage = {
      channel,
      ts: nextTs(),
      ...(parent !== undefined ? { thread_ts: parent.ts } : {}),
      ...(text !== undefined ? { text } : {}),
      ...(blocks !== undefined ? { blocks } : {}),
      ...(args.metadata !== undefined ? { metadata: jsonArg(args, 'metadata', 'invalid_metadata_format') } : {}),
      user: bot.userId,
      bot_id: bot.botId,
      edits: 0,
      versions: [{ ...(text !== undefined ? { text } : {}), ...(blocks !== undefined ? { blocks } : {}), at }],
      deleted: false,
      missingText,
      reply_count: 0,
      postedAt: at,
    };
    if (parent !== undefined) {
      parent.reply_count += 1;
      parent.thread_ts = parent.ts;
    }
    messages.push(message);
    return { message, missingText };
  }

  function applyEdit(m: StoredMessage, text: string | undefined, blocks: unknown[] | undefined, at: number): void {
    if (text !== undefined) m.text = text;
    // chat.update keeps the previous blocks when none are sent; an empty array removes them.
    if (blocks !== undefined) m.blocks = blocks;
    m.edits += 1;
    m.versions.push({ ...(m.text !== undefined ? { text: m.text } : {}), ...(m.blocks !== undefined ? { blocks: m.blocks } : {}), at });
  }

  // ---- methods -----------------------------------------------------------------------------------------------
  const handlers: Record<string, (args: Args, at: number) => Record<string, unknown> | Answer> = {
    'auth.test': () => ({
      url: `https://${team.domain}.slack.com/`,
      team: team.name,
      user: bot.name,
      team_id: team.id,
      user_id: bot.userId,
      bot_id: bot.botId,
      is_enterprise_install: false,
    }),

    'chat.postMessage': (args, at) => {
      const channel = resolveChannel(args.channel);
      const workspaceWait = takeWorkspacePost();
      if (workspaceWait !== undefined) return ratelimitedAnswer('chat.postMessage', workspaceWait);
      const wait = takeChannel(channel);
      if (wait !== undefined) return ratelimitedAnswer('chat.postMessage', wait);
      const { message, missingText } = postMessage(channel, args, at);
      return { channel, ts: message.ts, message: messageJson(message), ...missingTextWarning(missingText) };
    },

    'chat.update': (args, at) => {
      const channel = resolveChannel(args.channel);
      const m = findMessage(channel, str(args.ts));
      if (m === undefined) throw new SlackError('message_not_found');
      if (m.user !== bot.userId) throw new SlackError('cant_update_message');
      const text = str(args.text);
      const { blocks } = validateMessage(args, false);
      if (text === undefined && blocks === undefined && args.attachments === undefined) throw new SlackError('no_text');
      applyEdit(m, text, blocks, at);
      return { channel, ts: m.ts, text: m.text ?? '', message: messageJson(m) };
    },

    'chat.delete': (args) => {
      const channel = resolveChannel(args.channel);
      const m = findMessage(channel, str(args.ts));
      if (m === undefined) throw new SlackError('message_not_found');
      m.deleted = true;
      return { channel, ts: m.ts };
    },

    'chat.postEphemeral': (args, at) => {
      const channel = resolveChannel(args.channel);
      const user = str(args.user);
      if (user === undefined || !users.has(user)) throw new SlackError('user_not_found');
      const { blocks, missingText } = validateMessage(args, true);
      const text = str(args.text);
      const threadTs = str(args.thread_ts);
      const e: StoredEphemeral = {
        channel,
        user,
        ...(text !== undefined ? { text } : {}),
        ...(blocks !== undefined ? { blocks } : {}),
        ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
        message_ts: nextTs(),
        at,
        via: 'api',
      };
      ephemerals.push(e);
      return { message_ts: e.message_ts, ...missingTextWarning(missingText) };
    },

    'conversations.open': (args) => {
      const channelArg = str(args.channel);
      if (channelArg !== undefined) {
        if (dmUser(channelArg) === undefined) throw new SlackError('channel_not_found');
        return { channel: { id: channelArg } };
      }
      const ids = (str(args.users) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      if (ids.length === 0) throw new SlackError('users_list_not_supplied');
      for (const id of ids) if (!users.has(id)) throw new SlackError('user_not_found');
      const [first] = ids;
      if (ids.length === 1 && first !== undefined) {
        return { no_op: false, already_open: false, channel: { id: dmChannelFor(first) } };
      }
      return { channel: { id: `G${ids.map((i) => i.slice(1)).sort().join('')}`.slice(0, 21) } };
    },

    'users.list': (args) => {
      const all = [...users.values()].sort((a, b) => a.id.localeCompare(b.id));
      const limitArg = Number(str(args.limit) ?? 0);
      // No limit: Slack tries to return everything; explicit limits are capped at 1000.
      const limit = !Number.isFinite(limitArg) || limitArg <= 0 ? all.length : Math.min(limitArg, 1000);
      let start = 0;
      const cursor = str(args.cursor);
      if (cursor !== undefined && cursor !== '') {
        const decoded = Buffer.from(cursor, 'base64').toString('utf8');
        const m = /^user:(.+)$/.exec(decoded);
        const idx = m ? all.findIndex((u) => u.id === m[1]) : -1;
        if (idx < 0) throw new SlackError('invalid_cursor');
        start = idx;
      }
      const page = all.slice(start, start + limit);
      const next = all[start + limit];
      return {
        members: page.map(userJson),
        cache_ts: Math.floor(clock() / 1000),
        response_metadata: { next_cursor: next ? Buffer.from(`user:${next.id}`).toString('base64') : '' },
      };
    },

    'users.lookupByEmail': (args) => {
      const email = str(args.email);
      if (email === undefined || email === '') throw new SlackError('invalid_arguments');
      const u = [...users.values()].find((x) => x.email?.toLowerCase() === email.toLowerCase() && !x.deleted);
      if (!u) throw new SlackError('users_not_found');
      return { user: userJson(u) };
    },

    'users.info': (args) => {
      const u = users.get(str(args.user) ?? '');
      if (!u) throw new SlackError('user_not_found');
      return { user: userJson(u) };
    },

    'views.open': (args) => {
      const triggerId = str(args.trigger_id);
      const trig = triggerId !== undefined ? triggers.get(triggerId) : undefined;
      if (triggerId === undefined || trig === undefined) throw new SlackError('invalid_trigger_id');
      if (trig.used) throw new SlackError('exchanged_trigger_id');
      if (clock() - trig.issuedAt > triggerTtlMs) throw new SlackError('expired_trigger_id');
      const view = validateView(jsonArg(args, 'view', 'invalid_arguments'), 'modal');
      trig.used = true;
      const id = `V${String(++viewCounter).padStart(8, '0')}`;
      const stored: StoredView = {
        id, type: 'modal', user: trig.user, view, hash: newHash(), updates: 0, trigger_id: triggerId,
        ...(typeof view.external_id === 'string' ? { external_id: view.external_id } : {}),
      };
      views.set(id, stored);
      return { view: viewJson(stored) };
    },

    'views.update': (args) => {
      const viewId = str(args.view_id);
      const externalId = str(args.external_id);
      const stored = viewId !== undefined
        ? views.get(viewId)
        : [...views.values()].find((v) => externalId !== undefined && v.external_id === externalId);
      if (!stored) throw new SlackError('not_found');
      const hash = str(args.hash);
      if (hash !== undefined && hash !== '' && hash !== stored.hash) throw new SlackError('hash_conflict');
      stored.view = validateView(jsonArg(args, 'view', 'invalid_arguments'), stored.type);
      stored.hash = newHash();
      stored.updates += 1;
      return { view: viewJson(stored) };
    },

    'views.publish': (args) => {
      const user = str(args.user_id);
      if (user === undefined || !users.has(user)) throw new SlackError('user_not_found');
      const view = validateView(jsonArg(args, 'view', 'invalid_arguments'), 'home');
      const existing = [...views.values()].find((v) => v.type === 'home' && v.user === user);
      const hash = str(args.hash);
      if (existing && hash !== undefined && hash !== '' && hash !== existing.hash) throw new SlackError('hash_conflict');
      const stored: StoredView = existing ?? { id: `V${String(++viewCounter).padStart(8, '0')}`, type: 'home', user, view, hash: '', updates: -1 };
      stored.view = view;
      stored.hash = newHash();
      stored.updates += 1;
      views.set(stored.id, stored);
      return { view: viewJson(stored) };
    },
  };

  async function handleApi(method: string, req: IncomingMessage, raw: string, query: URLSearchParams): Promise<Answer> {
    const at = clock();
    let args: Args = {};
    const record = (answer: Answer): Answer => {
      const body = answer.body as { ok?: boolean; error?: string } | undefined;
      const { token: _token, ...rest } = args;
      const parsed: Args = { ...rest };
      for (const k of JSON_FIELDS) {
        const v = parsed[k];
        if (typeof v === 'string') {
          try {
            parsed[k] = JSON.parse(v);
          } catch {
            // keep the raw string: the call was refused for it
          }
        }
      }
      calls.push({
        method,
        args: parsed,
        at,
        status: answer.status,
        ok: answer.status === 200 && body?.ok === true,
        ...(body?.error !== undefined ? { error: body.error } : {}),
      });
      return answer;
    };

    try {
      args = parseArgs(raw, req.headers['content-type'], query);
    } catch {
      return record({ status: 200, body: { ok: false, error: 'invalid_json' } });
    }

    const delay = (latency.get(method) ?? 0) + (latency.get('*') ?? 0);
    if (delay > 0) await sleep(delay);

    const queue = faults.get(method);
    const fault = queue?.[0];
    if (queue && fault) {
      fault.times = (fault.times ?? 1) - 1;
      if (fault.times <= 0) queue.shift();
      if (fault.status === 429) {
        rateLimited.set(method, (rateLimited.get(method) ?? 0) + 1);
        return record({ status: 429, body: { ok: false, error: 'ratelimited' }, headers: { 'retry-after': String(fault.retryAfter ?? 1) } });
      }
      if (fault.status !== undefined && fault.status !== 200) {
        return record({ status: fault.status, body: `emulated HTTP ${fault.status}` });
      }
      return record({ status: 200, body: { ok: false, error: fault.error ?? 'fatal_error' } });
    }

    const handler = handlers[method];
    if (!handler) return record({ status: 200, body: { ok: false, error: 'unknown_method', req_method: method } });

    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length) : str(args.token);
    if (token === undefined || token === '') return record({ status: 200, body: { ok: false, error: 'not_authed' } });
    if (token !== botToken) return record({ status: 200, body: { ok: false, error: 'invalid_auth' } });

    const wait = takeTier(method);
    if (wait !== undefined) return record(ratelimitedAnswer(method, wait));

    try {
      const out = handler(args, stampClock());
      if ('status' in out && typeof out.status === 'number' && 'body' in out) return record(out as Answer);
      const { response_metadata, ...rest } = out as Record<string, unknown>;
      return record({ status: 200, body: { ok: true, ...rest, response_metadata: response_metadata ?? {} } });
    } catch (e) {
      if (e instanceof SlackError) return record({ status: 200, body: { ok: false, error: e.error, ...e.extra } });
      throw e;
    }
  }

  function handleResponseUrl(id: string, raw: string): Answer {
    const entry = responseUrls.get(id);
    const at = stampClock();
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = raw;
    }
    const answer = (status: number, b: unknown): Answer => {
      if (entry) responses.push({ id, body, at, status, context: entry.context });
      return { status, body: b };
    };
    if (!entry) return { status: 404, body: { ok: false, error: 'no_such_response_url' } };
    if (entry.uses >= responseUrlUses) return answer(404, { ok: false, error: 'used_url' });
    entry.uses += 1;
    if (typeof body !== 'object' || body === null) return answer(400, { ok: false, error: 'invalid_payload' });
    const b = body as Args;
    const ctx = entry.context;
    try {
      if (bool(b.delete_original)) {
        const m = ctx.channel !== undefined ? findMessage(ctx.channel, ctx.message_ts) : undefined;
        if (!m) return answer(404, { ok: false, error: 'message_not_found' });
        m.deleted = true;
        return answer(200, { ok: true });
      }
      if (bool(b.replace_original)) {
        const m = ctx.channel !== undefined ? findMessage(ctx.channel, ctx.message_ts) : undefined;
        if (!m) return answer(404, { ok: false, error: 'message_not_found' });
        const { blocks } = validateMessage(b, true);
        applyEdit(m, str(b.text), blocks ?? [], at);
        return answer(200, { ok: true });
      }
      if (ctx.channel === undefined) return answer(404, { ok: false, error: 'channel_not_found' });
      if (b.response_type === 'in_channel') {
        postMessage(ctx.channel, { ...b, thread_ts: b.thread_ts }, at);
        return answer(200, { ok: true });
      }
      const { blocks } = validateMessage(b, true);
      const text = str(b.text);
      ephemerals.push({
        channel: ctx.channel,
        user: ctx.user ?? '',
        ...(text !== undefined ? { text } : {}),
        ...(blocks !== undefined ? { blocks } : {}),
        message_ts: nextTs(),
        at,
        via: 'response_url',
      });
      return answer(200, { ok: true });
    } catch (e) {
      if (e instanceof SlackError) return answer(400, { ok: false, error: e.error, ...e.extra });
      throw e;
    }
  }

  async function route(req: IncomingMessage, raw: string): Promise<Answer> {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const api = /^\/api\/([A-Za-z0-9_.]+)$/.exec(u.pathname);
    if (api?.[1] !== undefined) return handleApi(api[1], req, raw, u.searchParams);
    const resp = /^\/response_url\/([A-Za-z0-9_-]+)$/.exec(u.pathname);
    if (resp?.[1] !== undefined && req.method === 'POST') return handleResponseUrl(resp[1], raw);
    return { status: 404, body: { ok: false, error: 'not_found' } };
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      route(req, Buffer.concat(chunks).toString('utf8'))
        .then((a) => {
          const isText = typeof a.body === 'string';
          res.writeHead(a.status, {
            'content-type': isText ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
            ...(a.headers ?? {}),
          });
          res.end(isText ? (a.body as string) : JSON.stringify(a.body));
        })
        .catch((e: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`emulator error: ${e instanceof Error ? e.stack : String(e)}`);
        });
    });
  });
  // Keep-alive sockets would make close() wait for idle clients.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}/api/`,
    origin,
    botToken,
    team,
    bot,
    verificationToken,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),

    calls: (method) => (method === undefined ? [...calls] : calls.filter((c) => c.method === method)),
    messages: (channel, opts) =>
      messages.filter((m) => (channel === undefined || m.channel === channel) && (opts?.includeDeleted || !m.deleted)),
    message: (channel, ts) => messages.find((m) => m.channel === channel && m.ts === ts),
    replies: (channel, threadTs) =>
      messages.filter((m) => m.channel === channel && m.thread_ts === threadTs && m.ts !== threadTs && !m.deleted),
    ephemerals: (filter) =>
      ephemerals.filter((e) => (filter?.channel === undefined || e.channel === filter.channel) && (filter?.user === undefined || e.user === filter.user)),
    views: (filter) =>
      [...views.values()].filter((v) => (filter?.user === undefined || v.user === filter.user) && (filter?.type === undefined || v.type === filter.type)),
    view: (id) => views.get(id),
    homeView: (user) => [...views.values()].find((v) => v.type === 'home' && v.user === user),
    history: () => ({ messages: [...messages], ephemerals: [...ephemerals], views: [...views.values()], tsCounter, viewCounter }),
    responses: () => [...responses],
    rateLimitedCount: (method) =>
      method === undefined ? [...rateLimited.values()].reduce((a, b) => a + b, 0) : (rateLimited.get(method) ?? 0),

    user: (id) => users.get(id),
    channelName: (id) => channels.get(id)?.name ?? (dmUser(id) !== undefined ? 'directmessage' : undefined),
    addUser: (u) => void users.set(u.id, { ...u }),
    addChannel: (c) => void channels.set(c.id, { ...c }),
    dmChannelFor,

    failNext: (method, fault) => {
      const q = faults.get(method) ?? [];
      q.push({ ...fault });
      faults.set(method, q);
    },
    setLatency: (method, ms) => void (ms > 0 ? latency.set(method, ms) : latency.delete(method)),
    resetRateLimits: () => {
      windows.clear();
      buckets.clear();
    },

    issueTriggerId: (user) => {
      const id = `${Math.floor(clock() / 1000)}.${randomBytes(5).readUIntBE(0, 5)}.${randomBytes(16).toString('hex')}`;
      triggers.set(id, { user, issuedAt: clock(), used: false });
      return id;
    },
    issueResponseUrl: (context) => {
      const id = `${team.id}-${randomBytes(12).toString('hex')}`;
      responseUrls.set(id, { context, uses: 0 });
      return `${origin}/response_url/${id}`;
    },

    messagePayload: messageJson,
    viewPayload: viewJson,
  };
}
