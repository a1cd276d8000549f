/**
 * Test helpers for the inbound side of Slack: request signing, and interaction / slash-command / event bodies
 * built the way Slack builds them. Button clicks are built FROM a message the bot actually posted to the
 * emulator, so a test cannot click a button the product never rendered.
 *
 * Signing (Slack's "verifying requests" scheme): `x-slack-signature: v0=<hex HMAC-SHA256(secret, "v0:{ts}:{raw}")>`
 * and `x-slack-request-timestamp: {ts}` in seconds.
 */
import { createHmac, randomUUID } from 'node:crypto';
import type { SlackEmulator, StoredMessage, StoredView } from './slack-emulator.ts';

export interface SlackSignatureHeaders {
  'x-slack-signature': string;
  'x-slack-request-timestamp': string;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A timestamp Bolt must refuse: older than its 5-minute tolerance. */
export const staleTimestamp = (): number => nowSeconds() - 6 * 60;

export function signSlackRequest(secret: string, rawBody: string, timestamp: number = nowSeconds()): SlackSignatureHeaders {
  const hex = createHmac('sha256', secret).update(`v0:${timestamp}:${rawBody}`).digest('hex');
  return { 'x-slack-signature': `v0=${hex}`, 'x-slack-request-timestamp': String(timestamp) };
}

export interface PostSignedOptions {
  secret: string;
  /** Seconds; default now. Use {@link staleTimestamp} for a replay. */
  timestamp?: number;
  /** Sign with a secret other than `secret`, as an attacker without it would. */
  forge?: boolean;
  /** Default: JSON when the body starts with `{`, else form-encoded (interactions and slash commands). */
  contentType?: string;
  /** Extra headers, e.g. `x-slack-retry-num` for an Events API retry. */
  headers?: Record<string, string>;
}

/** POST a body to the app as Slack would, signed (or forged). */
export function postSigned(url: string, body: string, opts: PostSignedOptions): Promise<Response> {
  const secret = opts.forge ? `forged-${opts.secret}-${randomUUID()}` : opts.secret;
  const contentType = opts.contentType ?? (body.trimStart().startsWith('{') ? 'application/json' : 'application/x-www-form-urlencoded');
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': contentType, ...signSlackRequest(secret, body, opts.timestamp), ...(opts.headers ?? {}) },
    body,
  });
}

export interface BuiltInteraction {
  /** The raw request body (`payload=<urlencoded JSON>` for interactions; form fields for slash commands). */
  body: string;
  /** The same payload as an object, for assertions. */
  payload: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function userPayload(emu: SlackEmulator, user: string): Json {
  const u = emu.user(user);
  return { id: user, username: u?.name ?? user, name: u?.name ?? user, team_id: emu.team.id };
}

function teamPayload(emu: SlackEmulator): Json {
  return { id: emu.team.id, domain: emu.team.domain };
}

function formPayload(payload: Json): string {
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/** Interactive elements of a block, with where they sit. */
function elementsOf(block: Json): Json[] {
  const out: Json[] = [];
  if (Array.isArray(block.elements) && block.type === 'actions') for (const e of block.elements) if (isObject(e)) out.push(e);
  if (isObject(block.accessory)) out.push(block.accessory);
  if (isObject(block.element)) out.push(block.element);
  return out;
}

interface Found {
  block: Json;
  element: Json;
}

function findElement(blocks: unknown, actionId: string, blockId?: string): Found | undefined {
  if (!Array.isArray(blocks)) return undefined;
  for (const b of blocks) {
    if (!isObject(b)) continue;
    if (blockId !== undefined && b.block_id !== blockId) continue;
    for (const el of elementsOf(b)) if (el.action_id === actionId) return { block: b, element: el };
  }
  return undefined;
}

function actionPayload(found: Found, selectedValue: string | undefined, actionTs: string): Json {
  const { block, element } = found;
  const base: Json = { action_id: element.action_id, block_id: block.block_id, type: element.type, action_ts: actionTs };
  if (element.type === 'button') {
    return { ...base, text: element.text, ...(element.value !== undefined ? { value: element.value } : {}), ...(element.style !== undefined ? { style: element.style } : {}) };
  }
  const options = Array.isArray(element.options) ? element.options.filter(isObject) : [];
  if (element.type === 'overflow' || element.type === 'static_select' || element.type === 'radio_buttons') {
    const option = options.find((o) => o.value === selectedValue);
    if (!option) throw new Error(`no option with value ${String(selectedValue)} in ${String(element.action_id)}`);
    return { ...base, selected_option: option };
  }
  throw new Error(`clicking a ${String(element.type)} is not supported by this helper`);
}

const actionTsNow = (): string => (Date.now() / 1000).toFixed(6);

export interface BlockActionsOptions {
  /** Who clicks. */
  user: string;
  actionId: string;
  /** Needed when the same action_id appears in several blocks (one button per update). */
  blockId?: string;
  /** Limit the search to one channel. */
  channel?: string;
  /** A specific message; default the newest live message holding the element. */
  messageTs?: string;
  /** For overflow / static_select / radio_buttons: the option value chosen. */
  selectedValue?: string;
}

/**
 * A `block_actions` click on an element of a message the bot posted (found in the emulator's history), with
 * user, team, channel, container, message, a response_url and a trigger_id issued by the emulator.
 * Throws when no live message holds that element: Slack cannot send a click on a button that is not there.
 */
export function buildBlockActions(emu: SlackEmulator, opts: BlockActionsOptions): BuiltInteraction {
  const candidates: StoredMessage[] = emu
    .messages(opts.channel)
    .filter((m) => opts.messageTs === undefined || m.ts === opts.messageTs)
    .reverse();
  let hit: { message: StoredMessage; found: Found } | undefined;
  for (const m of candidates) {
    const found = findElement(m.blocks, opts.actionId, opts.blockId);
    if (found) {
      hit = { message: m, found };
      break;
    }
  }
  if (!hit) {
    throw new Error(`no posted message has action_id ${opts.actionId}${opts.blockId ? ` in block ${opts.blockId}` : ''}`);
  }
  const { message, found } = hit;
  const channelName = emu.channelName(message.channel) ?? message.channel;
  const payload: Json = {
    type: 'block_actions',
    user: userPayload(emu, opts.user),
    api_app_id: emu.bot.appId,
    token: emu.verificationToken,
    container: {
      type: 'message',
      message_ts: message.ts,
      channel_id: message.channel,
      is_ephemeral: false,
      ...(message.thread_ts !== undefined ? { thread_ts: message.thread_ts } : {}),
    },
    trigger_id: emu.issueTriggerId(opts.user),
    team: teamPayload(emu),
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: message.channel, name: channelName },
    message: emu.messagePayload(message),
    state: { values: {} },
    response_url: emu.issueResponseUrl({ kind: 'block_actions', channel: message.channel, message_ts: message.ts, user: opts.user }),
    actions: [actionPayload(found, opts.selectedValue, actionTsNow())],
  };
  return { body: formPayload(payload), payload };
}

export interface ViewBlockActionsOptions {
  user: string;
  actionId: string;
  blockId?: string;
  /** The view clicked in; default the user's Home tab. */
  viewId?: string;
  selectedValue?: string;
}

/** A `block_actions` click on an element of a view (modal or the App Home tab) the bot opened or published. */
export function buildViewBlockActions(emu: SlackEmulator, opts: ViewBlockActionsOptions): BuiltInteraction {
  const view = opts.viewId !== undefined ? emu.view(opts.viewId) : emu.homeView(opts.user);
  if (!view) throw new Error(`no view ${opts.viewId ?? `(home of ${opts.user})`}`);
  if (view.user !== opts.user) throw new Error(`view ${view.id} is shown to ${view.user}, not ${opts.user}`);
  const found = findElement(view.view.blocks, opts.actionId, opts.blockId);
  if (!found) throw new Error(`view ${view.id} has no action_id ${opts.actionId}`);
  const payload: Json = {
    type: 'block_actions',
    user: userPayload(emu, opts.user),
    api_app_id: emu.bot.appId,
    token: emu.verificationToken,
    container: { type: 'view', view_id: view.id },
    trigger_id: emu.issueTriggerId(opts.user),
    team: teamPayload(emu),
    enterprise: null,
    is_enterprise_install: false,
    view: emu.viewPayload(view),
    actions: [actionPayload(found, opts.selectedValue, actionTsNow())],
  };
  return { body: formPayload(payload), payload };
}

/** What a user typed or picked, keyed by the input element's action_id. */
export type SubmittedValues = Record<string, string | string[] | null>;

export interface ViewSubmissionOptions {
  user: string;
  /** The modal; default the newest modal shown to the user (matching callbackId when given). */
  viewId?: string;
  callbackId?: string;
  values: SubmittedValues;
  /**
   * Slack's client will not submit a required input left empty or text over max_length; by default this
   * helper refuses to build such a payload. `true` builds it anyway (a hand-made, hostile request).
   */
  unchecked?: boolean;
}

function inputState(el: Json, value: string | string[] | null | undefined, pointer: string, unchecked: boolean): Json {
  const type = String(el.type);
  const options = Array.isArray(el.options) ? el.options.filter(isObject) : [];
  const pick = (v: string): Json => {
    const o = options.find((x) => x.value === v);
    if (!o) throw new Error(`${pointer}: no option with value ${v}`);
    return o;
  };
  const list = value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];
  const one = list[0] ?? null;
  switch (type) {
    case 'plain_text_input':
    case 'email_text_input':
    case 'url_text_input':
    case 'number_input': {
      if (!unchecked && one !== null && typeof el.max_length === 'number' && one.length > el.max_length) {
        throw new Error(`${pointer}: ${one.length} characters, over max_length ${el.max_length}; Slack's client would not submit it`);
      }
      return { type, value: one };
    }
    case 'static_select':
    case 'radio_buttons':
      return { type, selected_option: one === null ? null : pick(one) };
    case 'multi_static_select':
    case 'checkboxes':
      return { type, selected_options: list.map(pick) };
    case 'users_select':
      return { type, selected_user: one };
    case 'multi_users_select':
      return { type, selected_users: list };
    case 'conversations_select':
      return { type, selected_conversation: one };
    case 'multi_conversations_select':
      return { type, selected_conversations: list };
    case 'channels_select':
      return { type, selected_channel: one };
    case 'multi_channels_select':
      return { type, selected_channels: list };
    case 'datepicker':
      return { type, selected_date: one };
    case 'timepicker':
      return { type, selected_time: one };
    default:
      return { type, value: one };
  }
}

/** A `view_submission` for a modal the bot opened, with `state.values` shaped as Slack sends them. */
export function buildViewSubmission(emu: SlackEmulator, opts: ViewSubmissionOptions): BuiltInteraction {
  let view: StoredView | undefined;
  if (opts.viewId !== undefined) view = emu.view(opts.viewId);
  else {
    view = emu
      .views({ user: opts.user, type: 'modal' })
      .filter((v) => opts.callbackId === undefined || v.view.callback_id === opts.callbackId)
      .at(-1);
  }
  if (!view) throw new Error(`no modal ${opts.viewId ?? opts.callbackId ?? ''} shown to ${opts.user}`);
  if (view.type !== 'modal') throw new Error(`view ${view.id} is not a modal`);
  if (view.user !== opts.user) throw new Error(`modal ${view.id} is shown to ${view.user}, not ${opts.user}`);

  const unchecked = opts.unchecked ?? false;
  const values: Record<string, Record<string, Json>> = {};
  const used = new Set<string>();
  const blocks = Array.isArray(view.view.blocks) ? view.view.blocks.filter(isObject) : [];
  for (const b of blocks) {
    if (b.type !== 'input' || !isObject(b.element)) continue;
    const actionId = String(b.element.action_id);
    const blockId = String(b.block_id);
    const given = opts.values[actionId];
    if (given !== undefined) used.add(actionId);
    const empty = given === undefined || given === null || given === '' || (Array.isArray(given) && given.length === 0);
    if (!unchecked && empty && b.optional !== true) {
      throw new Error(`input ${blockId}/${actionId} is required; Slack's client would not submit the modal`);
    }
    values[blockId] = { [actionId]: inputState(b.element, given, `${blockId}/${actionId}`, unchecked) };
  }
  const unknown = Object.keys(opts.values).filter((k) => !used.has(k));
  if (unknown.length > 0 && !unchecked) throw new Error(`modal ${view.id} has no input with action_id ${unknown.join(', ')}`);

  const payload: Json = {
    type: 'view_submission',
    team: teamPayload(emu),
    user: userPayload(emu, opts.user),
    api_app_id: emu.bot.appId,
    token: emu.verificationToken,
    trigger_id: emu.issueTriggerId(opts.user),
    view: { ...emu.viewPayload(view), state: { values } },
    response_urls: [],
    is_enterprise_install: false,
    enterprise: null,
  };
  return { body: formPayload(payload), payload };
}

export interface SlashCommandOptions {
  user: string;
  /** Default `/patch`. */
  command?: string;
  text: string;
  /** Default the first seeded channel, C0ENGINEERS. */
  channel?: string;
}

/** A slash-command request body (form fields, not a `payload=`), with response_url and trigger_id. */
export function buildSlashCommand(emu: SlackEmulator, opts: SlashCommandOptions): BuiltInteraction {
  const channel = opts.channel ?? 'C0ENGINEERS';
  const fields: Record<string, string> = {
    token: emu.verificationToken,
    team_id: emu.team.id,
    team_domain: emu.team.domain,
    channel_id: channel,
    channel_name: emu.channelName(channel) ?? channel,
    user_id: opts.user,
    user_name: emu.user(opts.user)?.name ?? opts.user,
    command: opts.command ?? '/patch',
    text: opts.text,
    api_app_id: emu.bot.appId,
    is_enterprise_install: 'false',
    response_url: emu.issueResponseUrl({ kind: 'slash_command', channel, user: opts.user }),
    trigger_id: emu.issueTriggerId(opts.user),
  };
  return { body: new URLSearchParams(fields).toString(), payload: fields };
}

/** An Events API `event_callback` envelope (JSON body). */
export function buildEvent(emu: SlackEmulator, event: Json, opts: { eventId?: string } = {}): BuiltInteraction {
  const payload: Json = {
    token: emu.verificationToken,
    team_id: emu.team.id,
    api_app_id: emu.bot.appId,
    event: { event_ts: actionTsNow(), ...event },
    type: 'event_callback',
    event_id: opts.eventId ?? `Ev${randomUUID().replace(/-/g, '').slice(0, 10).toUpperCase()}`,
    event_time: nowSeconds(),
    authorizations: [{ enterprise_id: null, team_id: emu.team.id, user_id: emu.bot.userId, is_bot: true, is_enterprise_install: false }],
    is_ext_shared_channel: false,
  };
  return { body: JSON.stringify(payload), payload };
}

/** `app_home_opened` on the Home tab, as Slack sends it when a user opens the app. */
export function buildAppHomeOpened(emu: SlackEmulator, user: string, opts: { eventId?: string } = {}): BuiltInteraction {
  const home = emu.homeView(user);
  return buildEvent(emu, {
    type: 'app_home_opened',
    user,
    channel: emu.dmChannelFor(user),
    tab: 'home',
    ...(home ? { view: emu.viewPayload(home) } : {}),
  }, opts);
}
