/** The emulator's public data shapes: what it is seeded with, what it stores, what tests read back. */

export type Tier = 1 | 2 | 3 | 4;

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
  /** Whether the bot is a member; default true. Sharing a file into a channel the bot is not in: `not_in_channel`. */
  member?: boolean;
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
  /** How long an upload_url from files.getUploadURLExternal takes its one POST. Default 10 minutes. */
  uploadTtlMs?: number;
  /** Files one files.completeUploadExternal may name. Default 10 (see ./files.ts). */
  maxFilesPerComplete?: number;
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
  /** Ids of the files shared with this message (files.completeUploadExternal). */
  files?: string[];
}

/** A file completed through files.completeUploadExternal: its bytes as uploaded, and where it was shared. */
export interface StoredFile {
  id: string;
  name: string;
  title: string;
  size: number;
  /** As Slack's file object has it, from the file name's extension. */
  mimetype: string;
  bytes: Buffer;
  altText?: string;
  at: number;
  /** Unset: completed without a channel, so private to the bot. */
  channel?: string;
  /** The message that shares it. */
  ts?: string;
  thread_ts?: string;
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

