/**
 * The Teams front on Microsoft's Teams SDK (@microsoft/teams.apps 2.0.x): install capture, link codes, and the
 * pilot sign-off card's actions. Everything of the SDK is in this folder; the rest of the product sees the
 * use-cases it calls and the ChatSender it hands the outbox (sender.ts). Handlers are thin: read the activity,
 * call a use-case, render its answer.
 *
 * patchbay serves one HTTP server, so the SDK's own (express) server is never started: the App is given an
 * adapter that only hands back the SDK's /api/messages route, and teamsRequestHandler feeds it Node's request.
 * That route is the SDK's own: every request needs a Bot Framework JWT for this app (signature from the
 * published keys, issuer, audience, expiry, and the serviceurl claim matching the activity's); anything less is
 * a 401 before any handler runs.
 */
import type http from 'node:http';
import { App, type HttpMethod, type HttpRouteHandler, type IActivityContext, type IHttpServerAdapter } from '@microsoft/teams.apps';
import { PUBLIC, withOverrides, type Activity, type AdaptiveCardActionResponse, type InvokeResponse } from '@microsoft/teams.api';
import type { ILogger } from '@microsoft/teams.common';
import type { AppDatabase } from '../../db/client.ts';
import type { Logger } from '../../log.ts';
import type { RequestHandler } from '../../runtime/http.ts';
import type { Actor, UseCaseContext } from '../../use-cases/decisions.ts';
import { answerUserDm, type DmAnswer } from '../../use-cases/user-dm.ts';
import { VERB_DM_DEFER, VERB_DM_OK } from '../../chat/teams/user-dm-card.ts';
import { confirmPilot, loadSignoff, reportPilotProblem, type PilotResult } from '../../use-cases/pilot.ts';
import { captureInstall, findLinkCode, noteTeamsUser, redeemLinkCode, removeConversation, type InstallInput, type LinkResult } from '../../use-cases/teams-link.ts';
import { renderSignoffCard, VERB_CONFIRM, VERB_PROBLEM, VERB_REFRESH } from '../../chat/teams/signoff-card.ts';
import { KeyEndorsements } from './endorsements.ts';

export interface TeamsAuthOptions {
  appId: string | undefined;
  appPassword: string | undefined;
  tenantId: string | undefined;
  /**
   * The Bot Framework's OpenID metadata. Default: the public cloud's. The SDK takes the signing keys from the
   * sibling `…/keys` of a `…/openidconfiguration` URL, as the Bot Framework publishes them.
   */
  openIdMetadataUrl?: string;
  /** The issuer tokens must carry. Default: https://api.botframework.com. */
  tokenIssuer?: string;
  /** The sandbox's Bot Connector emulator takes this bearer (a JWT: the SDK reads it); never for Teams. */
  staticOutboundToken?: string;
}

/** patchbay mounts /api/messages on its own server: this adapter keeps the SDK's handler for it and serves nothing. */
class MountedRoute implements IHttpServerAdapter {
  handler: HttpRouteHandler | undefined;
  registerRoute(method: HttpMethod, path: string, handler: HttpRouteHandler): void {
    if (method === 'POST' && path === '/api/messages') this.handler = handler;
  }
}

/** The SDK's App, shared by the receiver and the sender (whose bearer it fetches from Entra ID). */
export interface TeamsApp {
  app: App;
  route: MountedRoute;
  /** Resolves once the App built its token validator and registered its route. */
  ready(): Promise<void>;
  /** The channels each signing key may sign for: checked before the SDK sees a request (endorsements.ts). */
  endorsements: KeyEndorsements;
}

/** The SDK's log lines into ours. Objects it logs (activities, errors) are reduced to text, never a token's bytes. */
function sdkLogger(log: Logger, name = 'teams-sdk'): ILogger {
  const child = log.child({ component: name });
  const line = (msg: unknown[]) => msg.map((m) => (typeof m === 'string' ? m : m instanceof Error ? m.message : '')).filter(Boolean).join(' ');
  const logger: ILogger = {
    debug: (...msg) => child.debug(line(msg)),
    info: (...msg) => child.info(line(msg)),
    // A refused token is logged by the SDK as an error; for patchbay it is a request it answered 401.
    warn: (...msg) => child.warn(line(msg)),
    error: (...msg) => child.warn(line(msg)),
    trace: (...msg) => child.trace(line(msg)),
    log: (level, ...msg) => logger[level === 'error' ? 'error' : level](...msg),
    child: (sub) => sdkLogger(log, `${name}/${sub}`),
  };
  return logger;
}

export function createTeamsApp(options: TeamsAuthOptions, log: Logger): TeamsApp {
  const route = new MountedRoute();
  const overrides = { ...(options.openIdMetadataUrl ? { openIdMetadataUrl: options.openIdMetadataUrl } : {}), ...(options.tokenIssuer ? { tokenIssuer: options.tokenIssuer } : {}) };
  const staticToken = options.staticOutboundToken;
  const cloud = withOverrides(PUBLIC, overrides);
  // The SDK reads its keys from the same place: the sibling `/keys` of the OpenID metadata URL.
  const endorsements = new KeyEndorsements({ keysUrl: cloud.openIdMetadataUrl.replace(/\/openidconfiguration$/, '/keys'), log });
  const app = new App({
    ...(options.appId ? { clientId: options.appId } : {}),
    ...(staticToken ? { token: () => staticToken } : options.appPassword ? { clientSecret: options.appPassword } : {}),
    // New bots are single-tenant; a bot registered multi-tenant leaves TEAMS_TENANT_ID unset and gets its tokens
    // from the Bot Framework's tenant (said here, or the SDK would read a TENANT_ID variable meant for something else).
    tenantId: options.tenantId ?? PUBLIC.loginTenant,
    cloud,
    httpServerAdapter: route,
    logger: sdkLogger(log),
    // Explicit, so the SDK's DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS environment variable cannot turn it off.
    dangerouslyAllowUnauthenticatedRequests: false,
    activity: { mentions: { stripText: true } },
  });
  let initialized: Promise<void> | undefined;
  return { app, route, ready: () => (initialized ??= app.initialize()), endorsements };
}

export interface TeamsBotOptions {
  db: AppDatabase;
  log: Logger;
  now: () => Date;
  notifyOutbox?: (ids: number[]) => void | Promise<void>;
  teams: TeamsApp;
}

const WELCOME_LINKED = (client: string) =>
  `Hello! This chat is linked to ${client}. After each month's updates reach your test machines, I'll ask here whether everything works, and I'll post how each night's updates went.`;
const WELCOME_USER = (client: string) =>
  `Hello! I'm the patch assistant of ${client}'s IT provider. Before updates restart your computer, I'll tell you here so you can save your work.`;
const WELCOME_UNKNOWN =
  'Hello! I don’t know which organisation this chat belongs to yet, so I won’t post anything here. If your IT provider gave you a code (it looks like PB-ABCD-EFGH), send it to me here.';
const HELP =
  'I post your monthly patch checks and results here. If your IT provider gave you a link code (PB-ABCD-EFGH), send it to me to connect this chat.';

/** The fields of an inbound activity the handlers read, as Teams sends them. */
interface Inbound {
  id?: string;
  type: string;
  action?: string;
  text?: string;
  serviceUrl?: string;
  channelId?: string;
  locale?: string;
  from?: { id: string; aadObjectId?: string; name?: string };
  recipient?: { id: string; name?: string };
  conversation: { id: string; conversationType?: string; tenantId?: string };
  channelData?: { tenant?: { id?: string } };
  membersAdded?: Array<{ id: string }>;
  membersRemoved?: Array<{ id: string }>;
  value?: unknown;
}

type Ctx = IActivityContext<Activity>;
const inbound = (ctx: Ctx) => ctx.activity as unknown as Inbound;

function actorOf(activity: Inbound): Actor & { platform: 'teams' } {
  // The AAD object id is the stable id across chats; `from.id` (the MRI) differs per bot and conversation.
  return { platform: 'teams', id: activity.from?.aadObjectId ?? activity.from?.id ?? 'unknown' };
}

function conversationKind(activity: Inbound): InstallInput['kind'] {
  const type = activity.conversation.conversationType;
  return type === 'channel' || type === 'groupChat' ? type : 'personal';
}

function tenantOf(activity: Inbound): string | undefined {
  return activity.conversation.tenantId ?? activity.channelData?.tenant?.id;
}

/** Who added the bot, with their email when Teams will tell us (a roster lookup through the Bot Connector). */
async function installer(ctx: Ctx): Promise<InstallInput['by']> {
  const from = inbound(ctx).from;
  const by: InstallInput['by'] = { id: from?.aadObjectId, mri: from?.id, email: undefined, upn: undefined, name: from?.name };
  if (!from) return by;
  try {
    const member = await ctx.api.conversations.getMemberById(ctx.activity.conversation.id, from.id);
    by.email = member.email ?? undefined;
    by.upn = member.userPrincipalName ?? undefined;
    by.id = by.id ?? member.aadObjectId ?? undefined;
  } catch {
    // No roster access: the Teams id alone still matches inventory champions.
  }
  return by;
}

/** What a proactive send needs later, in the Bot Framework's conversation reference shape (kept as stored before). */
function installInput(activity: Inbound, by: InstallInput['by']): InstallInput {
  const reference = {
    activityId: activity.id,
    user: activity.from,
    bot: activity.recipient,
    conversation: activity.conversation,
    channelId: activity.channelId,
    locale: activity.locale,
    serviceUrl: activity.serviceUrl,
  };
  return {
    conversationId: activity.conversation.id,
    tenantId: tenantOf(activity),
    kind: conversationKind(activity),
    reference: JSON.parse(JSON.stringify(reference)) as Record<string, unknown>,
    by,
  };
}

function linkReply(result: LinkResult): string {
  if (result.outcome === 'linked') return result.audience === 'user' ? WELCOME_USER(result.clientName) : WELCOME_LINKED(result.clientName);
  if (result.outcome === 'refused') return result.message;
  return WELCOME_UNKNOWN;
}

/** The App with patchbay's handlers on it. */
export function createTeamsBot(options: TeamsBotOptions): App {
  const { db, log } = options;
  const app = options.teams.app;
  const ctx: UseCaseContext = { db, now: options.now, ...(options.notifyOutbox ? { onCommitted: options.notifyOutbox } : {}) };
  // Whoever Teams shows us, we remember by their MRI too: a card's refresh.userIds must name people by it.
  app.use(async (turn) => {
    const from = inbound(turn).from;
    if (from) await noteTeamsUser(ctx, { aadObjectId: from.aadObjectId, mri: from.id });
    return turn.next();
  });
  onInstall(app, ctx, log);
  app.on('card.action', (turn) => cardAction(ctx, turn));
  // After the link-code route (registered in onInstall): a message it did not take.
  app.on('message', async (turn) => {
    const activity = inbound(turn);
    if (activity.value && typeof activity.value === 'object') return void (await cardSubmit(ctx, turn, activity.value as CardData));
    if (activity.text) await turn.send(HELP);
  });
  app.event('error', ({ error }) => log.error({ err: error }, 'teams handler failed'));
  return app;
}

/** The bot added to or removed from a conversation, and link codes sent to it. */
function onInstall(app: App, ctx: UseCaseContext, log: Logger): void {
  app.on('conversationUpdate', async (turn) => {
    const activity = inbound(turn);
    const bot = activity.recipient?.id;
    if ((activity.membersRemoved ?? []).some((m) => m.id === bot)) {
      await removeConversation(ctx, activity.conversation.id, actorOf(activity).id);
      return;
    }
    if (!(activity.membersAdded ?? []).some((m) => m.id === bot)) return;
    const result = await captureInstall(ctx, installInput(activity, await installer(turn)));
    log.info({ conversation: activity.conversation.id, outcome: result.outcome }, 'teams: bot added to a conversation');
    await turn.send(linkReply(result));
  });

  // Teams sends installationUpdate as well as (or, for some installs, instead of) conversationUpdate; capture is
  // an upsert, so both arriving stores one reference. The welcome is said once, on conversationUpdate.
  app.on('installationUpdate', async (turn) => {
    const activity = inbound(turn);
    if ((activity.action ?? '').startsWith('remove')) {
      await removeConversation(ctx, activity.conversation.id, actorOf(activity).id);
      return;
    }
    await captureInstall(ctx, installInput(activity, await installer(turn)));
  });

  app.message(/\bPB-[A-Z0-9]{4}-[A-Z0-9]{4}\b/i, async (turn) => {
    const activity = inbound(turn);
    const code = findLinkCode(activity.text ?? '')!;
    const result = await redeemLinkCode(ctx, code, installInput(activity, await installer(turn)));
    await turn.send(linkReply(result));
  });
}

interface CardData {
  verb?: string;
  releaseId?: string;
  clientId?: string;
  problem?: string;
  dmId?: number;
}

function signoffTarget(data: CardData): { releaseId: string; clientId: string } | undefined {
  return typeof data.releaseId === 'string' && typeof data.clientId === 'string' ? { releaseId: data.releaseId, clientId: data.clientId } : undefined;
}

/** The activity id is unique per click; a re-sent invoke carries the same one. */
function requestIdOf(activity: Inbound): string {
  return activity.id ?? `${Date.now()}`;
}

type CardAnswer = AdaptiveCardActionResponse;
const OUT_OF_DATE = 'This card is out of date.';
const message = (value: string): CardAnswer => ({ statusCode: 200, type: 'application/vnd.microsoft.activity.message', value });
const cardAnswer = (card: Record<string, unknown>): CardAnswer => ({ statusCode: 200, type: 'application/vnd.microsoft.card.adaptive', value: card as never });

function signoffAnswer(result: PilotResult): CardAnswer {
  if (result.outcome === 'refused' && (result.code === 'not_champion' || !result.view)) return message(result.message);
  if (result.outcome === 'refused' && result.code === 'text_required') return message(result.message);
  return cardAnswer(renderSignoffCard(result.view!));
}

/** What a click asks, whichever way it came (a Universal Action invoke, or the Action.Submit fallback message). */
async function runVerb(ctx: UseCaseContext, activity: Inbound, verb: string, data: CardData): Promise<PilotResult | { message: string } | undefined> {
  const actor = actorOf(activity);
  const requestId = requestIdOf(activity);
  if (verb === VERB_DM_OK || verb === VERB_DM_DEFER) {
    if (typeof data.dmId !== 'number') return { message: 'This message is out of date.' };
    const answer: DmAnswer = verb === VERB_DM_OK ? 'ok' : 'defer';
    return answerUserDm(ctx, { actor, dmId: data.dmId, answer });
  }
  const t = signoffTarget(data);
  if (verb === VERB_CONFIRM) return t ? confirmPilot(ctx, { actor, ...t, requestId }) : { message: OUT_OF_DATE };
  if (verb === VERB_PROBLEM) return t ? reportPilotProblem(ctx, { actor, ...t, text: String(data.problem ?? ''), requestId }) : { message: OUT_OF_DATE };
  return undefined;
}

/**
 * An Action.Execute (adaptiveCard/action invoke), routed by its verb as Teams sends it. The sign-off answers with
 * the card as it now stands (for the clicker; the outbox edits the shared message); "save your work" answers in
 * words, its card edited through the outbox.
 */
async function cardAction(ctx: UseCaseContext, turn: Ctx): Promise<InvokeResponse<'adaptiveCard/action'>> {
  const activity = inbound(turn);
  const action = (activity.value as { action?: { verb?: string; data?: CardData } } | undefined)?.action;
  const verb = action?.verb ?? '';
  const data = action?.data ?? {};
  if (verb === VERB_REFRESH) {
    const t = signoffTarget(data);
    const view = t ? await loadSignoff(ctx.db, t.releaseId, t.clientId) : undefined;
    return { status: 200, body: view ? cardAnswer(renderSignoffCard(view)) : message(OUT_OF_DATE) };
  }
  const result = await runVerb(ctx, activity, verb, data);
  if (!result) return { status: 200, body: message('This button is not known any more.') };
  if ('outcome' in result && (verb === VERB_CONFIRM || verb === VERB_PROBLEM)) return { status: 200, body: signoffAnswer(result) };
  return { status: 200, body: message(result.message) };
}

/** Clients without Universal Actions send the Action.Submit fallback as a message whose value names the verb. */
async function cardSubmit(ctx: UseCaseContext, turn: Ctx, data: CardData): Promise<void> {
  if (typeof data.verb !== 'string') return;
  const result = await runVerb(ctx, inbound(turn), data.verb, data);
  if (result) await turn.send(result.message);
}

const MAX_BODY_BYTES = 1024 * 1024;

async function readJson(req: http.IncomingMessage): Promise<{ body: unknown } | { status: number; text?: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return { status: 413 };
    chunks.push(chunk as Buffer);
  }
  try {
    return { body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown };
  } catch {
    return { status: 400, text: 'expected a JSON activity' };
  }
}

/** Node's request into the SDK's route (token check, then the App), and its answer back out. */
export function teamsRequestHandler(teams: TeamsApp): RequestHandler {
  return async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const read = await readJson(req);
    if (!('body' in read)) {
      res.writeHead(read.status, { 'content-type': 'text/plain' }).end(read.text ?? '');
      return;
    }
    const channelId = (read.body as { channelId?: unknown } | null)?.channelId;
    if (!(await teams.endorsements.allows(req.headers.authorization, channelId))) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('the signing key is not endorsed for this channel');
      return;
    }
    await teams.ready();
    const handler = teams.route.handler;
    if (!handler) throw new Error('the Teams SDK registered no /api/messages route');
    const answer = await handler({ body: read.body, headers: req.headers as Record<string, string | string[]> });
    if (answer.body === undefined) {
      res.writeHead(answer.status).end();
      return;
    }
    res.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(answer.body));
  };
}
