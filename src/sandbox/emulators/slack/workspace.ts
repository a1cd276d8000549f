/**
 * The emulated workspace's state (members, channels, history, views, triggers) and the rules every method
 * family shares: how a channel argument resolves, how a message is validated, posted and edited, and the
 * objects Slack puts in its answers. The method families (./chat.ts, ./views.ts, ...) act through it.
 */
import { randomBytes } from 'node:crypto';
import { checkMessage, checkView, formatViolation, type Violation } from '../block-kit-limits.ts';
import { jsonArg, SlackError, str, withGeneratedIds, type Args } from './protocol.ts';
import { DEFAULT_CHANNELS, DEFAULT_USERS, type SeedChannel, type SeedUser, type SlackEmulatorHistory, type SlackEmulatorOptions, type StoredEphemeral, type StoredMessage, type StoredView } from './types.ts';

export class Workspace {
  readonly clock: () => number;
  /** The time stamped on messages, edits and ephemerals (see SlackEmulatorOptions.stampClock). */
  readonly stampClock: () => number;
  readonly botToken: string;
  readonly team: { id: string; domain: string; name: string };
  readonly bot: { userId: string; botId: string; appId: string; name: string };
  readonly triggerTtlMs: number;
  private readonly actionIdScope: 'block' | 'message';
  private readonly maxBlocksJsonChars: number | undefined;

  readonly users = new Map<string, SeedUser>();
  readonly channels = new Map<string, SeedChannel>();
  readonly messages: StoredMessage[] = [];
  readonly ephemerals: StoredEphemeral[] = [];
  readonly views = new Map<string, StoredView>();
  readonly triggers = new Map<string, { user: string; issuedAt: number; used: boolean }>();
  private tsCounter = 0;
  private viewCounter = 0;

  constructor(options: SlackEmulatorOptions) {
    this.clock = options.clock ?? Date.now;
    this.stampClock = options.stampClock ?? this.clock;
    this.botToken = options.botToken ?? 'xoxb-emulator-token';
    this.team = { name: 'Patchbay Test MSP', ...(options.team ?? { id: 'T0PATCHBAY', domain: 'patchbay-test' }) };
    this.bot = { name: 'patchbay', ...(options.bot ?? { userId: 'U0BOT', botId: 'B0BOT', appId: 'A0PATCHBAY' }) };
    this.triggerTtlMs = options.triggerTtlMs ?? 3000;
    this.actionIdScope = options.actionIdScope ?? 'block';
    this.maxBlocksJsonChars = options.maxBlocksJsonChars;
    for (const u of options.users ?? DEFAULT_USERS) this.users.set(u.id, { ...u });
    this.users.set(this.bot.userId, { id: this.bot.userId, name: this.bot.name, real_name: this.bot.name, is_bot: true });
    for (const c of options.channels ?? DEFAULT_CHANNELS) this.channels.set(c.id, { ...c });
    if (options.restore) this.restore(options.restore);
  }

  private restore(history: SlackEmulatorHistory): void {
    this.messages.push(...history.messages);
    this.ephemerals.push(...history.ephemerals);
    // Home tabs come back; modals do not: a restart ends the session they were open in, and Slack would have
    // closed them (a submit to the restarted bot would land on a view it never opened).
    for (const v of history.views) if (v.type !== 'modal') this.views.set(v.id, v);
    this.tsCounter = history.tsCounter;
    this.viewCounter = history.viewCounter;
  }

  history(): SlackEmulatorHistory {
    return { messages: [...this.messages], ephemerals: [...this.ephemerals], views: [...this.views.values()], tsCounter: this.tsCounter, viewCounter: this.viewCounter };
  }

  /** Deterministic, strictly increasing message timestamps in Slack's "seconds.microseconds" form. */
  nextTs(): string {
    this.tsCounter += 100;
    const secs = 1_700_000_000 + Math.floor(this.tsCounter / 1_000_000);
    return `${secs}.${String(this.tsCounter % 1_000_000).padStart(6, '0')}`;
  }

  nextViewId(): string {
    return `V${String(++this.viewCounter).padStart(8, '0')}`;
  }

  newHash(): string {
    return `${Math.floor(this.clock() / 1000)}.${randomBytes(4).toString('hex')}`;
  }

  readonly dmChannelFor = (user: string): string => `D${user.replace(/^[UW]/, '')}`;

  dmUser(channel: string): string | undefined {
    if (!channel.startsWith('D')) return undefined;
    const id = `U${channel.slice(1)}`;
    return this.users.has(id) ? id : undefined;
  }

  /** Resolve a channel argument (C.., D.., a user id for a DM, or a #name) to a channel id. */
  resolveChannel(arg: unknown): string {
    const raw = str(arg);
    if (raw === undefined || raw === '') throw new SlackError('channel_not_found');
    if (this.channels.has(raw)) return raw;
    if (this.users.has(raw) && raw !== this.bot.userId) return this.dmChannelFor(raw);
    if (this.dmUser(raw) !== undefined) return raw;
    const name = raw.replace(/^#/, '');
    for (const c of this.channels.values()) if (c.name === name) return c.id;
    throw new SlackError('channel_not_found');
  }

  findMessage(channel: string, ts: string | undefined): StoredMessage | undefined {
    if (ts === undefined) return undefined;
    return this.messages.find((m) => m.channel === channel && m.ts === ts && !m.deleted);
  }

  validateMessage(args: Args, requireContent: boolean): { blocks?: unknown[]; missingText: boolean } {
    const blocks = jsonArg(args, 'blocks', 'invalid_blocks_format');
    if (blocks !== undefined && !Array.isArray(blocks)) throw new SlackError('invalid_blocks_format');
    const attachments = jsonArg(args, 'attachments', 'invalid_attachments');
    const check = checkMessage({ text: str(args.text), blocks, attachments }, {
      actionIdScope: this.actionIdScope,
      maxBlocksJsonChars: this.maxBlocksJsonChars,
      requireContent,
    });
    if (check.error !== undefined) {
      throw new SlackError(check.error, { response_metadata: { messages: check.violations.map(formatViolation) } });
    }
    return { blocks: withGeneratedIds(blocks as unknown[] | undefined), missingText: check.missingText };
  }

  validateView(view: unknown, expect: 'modal' | 'home'): Record<string, unknown> {
    const violations: Violation[] = checkView(view, { expect, actionIdScope: this.actionIdScope });
    if (violations.length > 0) {
      throw new SlackError('invalid_arguments', { response_metadata: { messages: violations.map(formatViolation) } });
    }
    const v = view as Record<string, unknown>;
    return { ...v, blocks: withGeneratedIds(v.blocks as unknown[]) };
  }

  /** The thread a reply goes into: a reply to a reply lands in the parent's thread, as in Slack. */
  private threadParent(channel: string, threadTs: string | undefined): StoredMessage | undefined {
    if (threadTs === undefined || threadTs === '') return undefined;
    const parent = this.findMessage(channel, threadTs);
    if (parent === undefined) throw new SlackError('thread_not_found');
    if (parent.thread_ts !== undefined && parent.thread_ts !== parent.ts) return this.findMessage(channel, parent.thread_ts) ?? parent;
    return parent;
  }

  /** `allowEmpty`: a file share, whose message may carry no text of its own. */
  postMessage(channel: string, args: Args, at: number, opts: { allowEmpty?: boolean } = {}): { message: StoredMessage; missingText: boolean } {
    const { blocks, missingText } = this.validateMessage(args, opts.allowEmpty !== true);
    const parent = this.threadParent(channel, str(args.thread_ts));
    const text = str(args.text);
    const message: StoredMessage = {
      channel,
      ts: this.nextTs(),
      ...(parent !== undefined ? { thread_ts: parent.ts } : {}),
      ...(text !== undefined ? { text } : {}),
      ...(blocks !== undefined ? { blocks } : {}),
      ...(args.metadata !== undefined ? { metadata: jsonArg(args, 'metadata', 'invalid_metadata_format') } : {}),
      user: this.bot.userId,
      bot_id: this.bot.botId,
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
    this.messages.push(message);
    return { message, missingText };
  }

  applyEdit(m: StoredMessage, text: string | undefined, blocks: unknown[] | undefined, at: number): void {
    if (text !== undefined) m.text = text;
    // chat.update keeps the previous blocks when none are sent; an empty array removes them.
    if (blocks !== undefined) m.blocks = blocks;
    m.edits += 1;
    m.versions.push({ ...(m.text !== undefined ? { text: m.text } : {}), ...(m.blocks !== undefined ? { blocks: m.blocks } : {}), at });
  }

  /** An ephemeral message (chat.postEphemeral, or an ephemeral reply through a response_url). */
  postEphemeral(e: Omit<StoredEphemeral, 'message_ts'>): StoredEphemeral {
    const stored = { ...e, message_ts: this.nextTs() };
    this.ephemerals.push(stored);
    return stored;
  }

  /** The message object Slack puts in API answers and interaction payloads. */
  readonly messageJson = (m: StoredMessage): Record<string, unknown> => ({
    type: 'message',
    subtype: 'bot_message',
    text: m.text ?? '',
    user: m.user,
    bot_id: m.bot_id,
    app_id: this.bot.appId,
    team: this.team.id,
    ts: m.ts,
    ...(m.thread_ts !== undefined ? { thread_ts: m.thread_ts } : {}),
    ...(m.blocks !== undefined ? { blocks: m.blocks } : {}),
    ...(m.files !== undefined ? { files: m.files.map((id) => ({ id })) } : {}),
    ...(m.edits > 0 ? { edited: { user: this.bot.userId, ts: ((m.versions.at(-1)?.at ?? 0) / 1000).toFixed(6) } } : {}),
  });

  /** The view object Slack puts in API answers and interaction payloads. */
  readonly viewJson = (v: StoredView): Record<string, unknown> => ({
    id: v.id,
    team_id: this.team.id,
    app_id: this.bot.appId,
    bot_id: this.bot.botId,
    app_installed_team_id: this.team.id,
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
  });
}
