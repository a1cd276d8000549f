/**
 * What the sandbox page (src/sandbox/page/) reads and sends. The page is plain browser JavaScript with no build
 * step, so these types are its contract with src/sandbox/server.ts rather than something it imports.
 *
 * The page never changes anything itself: every click it sends is turned by the server into the request Slack or
 * Teams would send (a signed interaction to /slack/events, a Bot Framework token-bearing invoke to /api/messages),
 * so what the page shows is what the bot did with a real click.
 */

/** A Slack message as the emulator holds it, with its thread replies. */
export interface SandboxSlackMessage {
  channel: string;
  ts: string;
  threadTs?: string;
  /** Who posted: the bot's user id, or a person's. */
  user: string;
  userName: string;
  text: string;
  blocks: unknown[];
  /** Times the bot edited it in place (chat.update). */
  edits: number;
  /** Real time of the last version, ms since epoch (for "edited" marks and ordering). */
  updatedAt: number;
  replies: SandboxSlackMessage[];
  /** Files shared with this message (files.completeUploadExternal), as this start's emulator holds them. */
  files?: SandboxSlackFile[];
}

/** A file the bot uploaded; its bytes are at `/sandbox/api/slack/file?id=<id>` (with the page token). */
export interface SandboxSlackFile {
  id: string;
  name: string;
  title: string;
  size: number;
  mimetype: string;
}

export interface SandboxSlackEphemeral {
  channel: string;
  /** Only this user sees it. */
  user: string;
  text: string;
  blocks: unknown[];
  at: number;
}

export interface SandboxSlackView {
  id: string;
  /** The modal is shown to this user. */
  user: string;
  /** The view JSON as the bot sent it to views.open / views.update (title, blocks, submit, close, callback_id). */
  view: Record<string, unknown>;
}

export interface SandboxPerson {
  id: string;
  name: string;
  /** engineer: may approve, hold, promote; user: an end user with a device; champion: a client's Teams champion. */
  role: 'engineer' | 'user' | 'champion' | 'other';
  /** For users and champions. */
  client?: string;
  email?: string;
}

export interface SandboxTeamsActivity {
  id: string;
  text: string;
  /** An Adaptive Card 1.5, when the activity carries one (the latest version, as refreshed or replaced). */
  card?: Record<string, unknown>;
  updatedAt: number;
  /** Set when a person wrote it (shown on the right, like one's own message); absent for the bot's. */
  from?: string;
}

export interface SandboxTeamsConversation {
  id: string;
  /** E.g. "Acme Dental — team" or "Jane Roe (personal)". */
  title: string;
  clientId?: string;
  kind: 'personal' | 'groupChat' | 'channel';
  /** Who the page acts as in this conversation by default (the champion, or the personal chat's user). */
  defaultActor?: string;
  activities: SandboxTeamsActivity[];
}

export interface SandboxClock {
  /** The sandbox's clock (ISO with offset, in the MSP's zone). */
  now: string;
  zone: string;
  /** Clock milliseconds per real millisecond (1 = real time). */
  rate: number;
  /** The jump buttons to offer, in order (draw these rather than a fixed list). */
  jumps: Array<{ jump: SandboxJump; label: string }>;
}

export interface SandboxState {
  /** Increases on every change; the page compares it with the last one it drew. */
  seq: number;
  clock: SandboxClock;
  msp: { name: string; channel: string };
  slack: {
    /** Channels the bot posts in (the engineers' channel first), top-level messages oldest first. */
    channels: Array<{ id: string; name: string; messages: SandboxSlackMessage[] }>;
    /** One per user the bot has written to directly. */
    dms: Array<{ user: string; userName: string; channel: string; messages: SandboxSlackMessage[] }>;
    ephemerals: SandboxSlackEphemeral[];
    /** Modals currently open (newest last). */
    modals: SandboxSlackView[];
    /** App Home tab per user, when the bot published one. */
    home: Record<string, Record<string, unknown>>;
    people: SandboxPerson[];
  };
  teams: {
    conversations: SandboxTeamsConversation[];
    people: SandboxPerson[];
  };
  /** With PATCHBAY_SANDBOX_DEPLOYER=tactical: the emulator's agents and the newest 50 requests it was asked. */
  tactical?: {
    agents: Array<{ hostname: string; status: string; needsReboot: boolean; bootTime: string }>;
    requests: Array<{ at: string; method: string; path: string; status: number | 'timeout' }>;
  };
  /** With PATCHBAY_SANDBOX_DEPLOYER=ninjaone: how many devices the NinjaOne emulator holds (the panel reads /sandbox/api/ninjaone). */
  ninjaone?: { devices: number };
}

/** POST /sandbox/api/slack/action: a click on an element of a message. */
export interface SandboxSlackActionRequest {
  user: string;
  channel: string;
  ts: string;
  actionId: string;
  blockId?: string;
  /** For a static_select / overflow: the option value chosen. */
  selectedValue?: string;
}

/** POST /sandbox/api/slack/view-action: a click on an element inside an open modal (e.g. a select that redraws it). */
export interface SandboxSlackViewActionRequest {
  user: string;
  viewId: string;
  actionId: string;
  blockId?: string;
  selectedValue?: string;
}

/** POST /sandbox/api/slack/view-submit: the modal's Submit. Values keyed by the input element's action_id. */
export interface SandboxSlackViewSubmitRequest {
  user: string;
  viewId: string;
  values: Record<string, string | string[] | null>;
}

/** POST /sandbox/api/slack/view-close: the modal's Close (Slack sends nothing to the app unless notify_on_close). */
export interface SandboxSlackViewCloseRequest {
  user: string;
  viewId: string;
}

/** POST /sandbox/api/slack/command: a slash command typed in a channel. */
export interface SandboxSlackCommandRequest {
  user: string;
  channel: string;
  /** The whole line, e.g. "/patch status". */
  text: string;
}

/** POST /sandbox/api/teams/action: an Action.Execute (or Action.Submit) on a card. */
export interface SandboxTeamsActionRequest {
  /** The AAD object id of who pressed it. */
  user: string;
  conversationId: string;
  activityId: string;
  verb: string;
  /** The action's data merged with the card's input values, as Teams sends them. */
  data: Record<string, unknown>;
}

/** POST /sandbox/api/teams/message: text typed into a Teams conversation (e.g. a link code). */
export interface SandboxTeamsMessageRequest {
  user: string;
  conversationId: string;
  text: string;
}

export type SandboxJump = 'next-window' | 'window-end' | 'next-dm' | 'next-patch-tuesday' | 'plus-hour' | 'next-morning';

/** POST /sandbox/api/clock */
export interface SandboxClockRequest {
  jump?: SandboxJump;
  /** Clock ms per real ms. */
  rate?: number;
}

/** Every POST answers this: ok, or an error a person can read (shown by the page, never swallowed). */
export interface SandboxAnswer {
  ok: boolean;
  error?: string;
  /** What the jump landed on, e.g. "Acme Dental desktop window, Wed 9 Dec 01:00 CST". */
  detail?: string;
  /** For view-submit: Slack's per-block errors the bot answered with (response_action: errors). */
  errors?: Record<string, string>;
}

/*
 * GET /                    the page (src/sandbox/page/index.html)
 * GET /sandbox/assets/*    the page's script and style, and adaptivecards.js from the adaptivecards package
 * GET /sandbox/api/state   SandboxState (every API call sends the page token; see page-guard.ts)
 * GET /sandbox/events      Server-Sent Events (token in ?token=): `event: change` with `data: {"seq": N}` whenever anything changes
 */

/**
 * GET /sandbox/api/tactical (PATCHBAY_SANDBOX_DEPLOYER=tactical; 404 otherwise): the Tactical RMM emulator's
 * agents as its API would show them, and what it was asked, newest first.
 */
export interface SandboxTacticalState {
  agents: SandboxTacticalAgent[];
  /** The newest requests, newest first (at most `limit`), and how many it answered in all. */
  requests: SandboxTacticalRequest[];
  total: number;
}

export interface SandboxTacticalAgent {
  hostname: string;
  client: string;
  site: string;
  /** Agent.status: online, offline or overdue. */
  status: string;
  needsReboot: boolean;
  /** boot_time as an ISO instant. */
  bootTime: string;
  /** Whether patchbay may drive the agent: its effective patch policy would not act on its own. */
  policy: { ok: boolean; problems: string[] };
}

export interface SandboxTacticalRequest {
  /** On the sandbox clock. */
  at: string;
  method: string;
  /** Path and query, as sent. */
  path: string;
  status: number | 'timeout';
}

/**
 * GET /sandbox/api/ninjaone (PATCHBAY_SANDBOX_DEPLOYER=ninjaone; 404 otherwise): the NinjaOne emulator's devices
 * as its API would show them, and what it was asked, newest first.
 */
export interface SandboxNinjaOneState {
  devices: SandboxNinjaOneDevice[];
  /** The newest requests, newest first (at most `limit`), and how many it answered in all. */
  requests: SandboxTacticalRequest[];
  total: number;
}

export interface SandboxNinjaOneDevice {
  systemName: string;
  organization: string;
  location: string;
  online: boolean;
  needsReboot: boolean;
  /** os.lastBootTime as an ISO instant. */
  lastBootTime: string;
  /** Maintenance holds NinjaOne's own patching back now (patchbay sets it for its installs). */
  maintenance: boolean;
}
