/**
 * The Teams front on @microsoft/teams-ai (v1): install capture, link codes, and the pilot sign-off card's
 * actions. Everything teams-ai and botbuilder is in this folder; the rest of the product sees the use-cases it
 * calls and the ChatSender it hands the outbox (sender.ts). Handlers are thin: read the activity, call a
 * use-case, render its answer.
 *
 * Inbound requests are authenticated by botbuilder's CloudAdapter: with TEAMS_APP_ID set every request needs a
 * Bot Framework JWT for this app (single-tenant when TEAMS_TENANT_ID is set); a missing, forged or expired one
 * is answered 401 before any handler runs.
 */
import type http from 'node:http';
import { Application, TeamsAdapter, TurnState, type AdaptiveCard } from '@microsoft/teams-ai';
import { ActivityTypes, TeamsInfo, TurnContext, type Activity, type ConversationReference } from 'botbuilder';
import { ServiceClientCredentialsFactory, type ServiceClientCredentials } from 'botframework-connector';
import type { AppDatabase } from '../../db/client.ts';
import type { Logger } from '../../log.ts';
import type { RequestHandler } from '../../runtime/http.ts';
import type { Actor, UseCaseContext } from '../../use-cases/decisions.ts';
import { answerUserDm, type DmAnswer } from '../../use-cases/user-dm.ts';
import { VERB_DM_DEFER, VERB_DM_OK } from '../../chat/teams/user-dm-card.ts';
import { confirmPilot, loadSignoff, reportPilotProblem, type PilotResult } from '../../use-cases/pilot.ts';
import { captureInstall, findLinkCode, redeemLinkCode, removeConversation, type InstallInput, type LinkResult } from '../../use-cases/teams-link.ts';
import { renderSignoffCard, VERB_CONFIRM, VERB_PROBLEM, VERB_REFRESH } from '../../chat/teams/signoff-card.ts';

export interface TeamsAuthOptions {
  appId: string | undefined;
  appPassword: string | undefined;
  tenantId: string | undefined;
  /** Where signing keys are published. Default: the Bot Framework's. Tests point it at a local JWKS. */
  openIdMetadataUrl?: string;
  /** The issuer tokens must carry. Default: https://api.botframework.com. */
  tokenIssuer?: string;
  /** How the bot gets its own outbound tokens. Default: app id + password against Entra ID. */
  credentialsFactory?: ServiceClientCredentialsFactory;
  /** The sandbox's Bot Connector emulator takes this bearer; Entra ID is not reachable there. */
  staticOutboundToken?: string;
}

/** Outbound calls carry a fixed bearer: for a local Bot Connector that checks one is present, never for Teams. */
class StaticTokenCredentials extends ServiceClientCredentialsFactory {
  constructor(
    private readonly appId: string | undefined,
    private readonly token: string,
  ) {
    super();
  }
  override async isValidAppId(appId: string): Promise<boolean> {
    return appId === this.appId;
  }
  override async isAuthenticationDisabled(): Promise<boolean> {
    return false;
  }
  override async createCredentials(): Promise<ServiceClientCredentials> {
    const token = this.token;
    return {
      async signRequest(request: { headers: { set(name: string, value: string): void } }) {
        request.headers.set('authorization', `Bearer ${token}`);
        return request;
      },
    } as unknown as ServiceClientCredentials;
  }
}

/** The CloudAdapter (TeamsAdapter) for inbound validation and proactive sends. */
export function createTeamsAdapter(options: TeamsAuthOptions): TeamsAdapter {
  const settings: Record<string, string> = {};
  if (options.appId) settings.MicrosoftAppId = options.appId;
  if (options.appPassword) settings.MicrosoftAppPassword = options.appPassword;
  // New bots are single-tenant; a bot registered multi-tenant simply leaves TEAMS_TENANT_ID unset.
  settings.MicrosoftAppType = options.tenantId ? 'SingleTenant' : 'MultiTenant';
  if (options.tenantId) settings.MicrosoftAppTenantId = options.tenantId;
  if (options.openIdMetadataUrl) settings.ToBotFromChannelOpenIdMetadataUrl = options.openIdMetadataUrl;
  if (options.tokenIssuer) settings.ToBotFromChannelTokenIssuer = options.tokenIssuer;
  const credentials = options.credentialsFactory ?? (options.staticOutboundToken ? new StaticTokenCredentials(options.appId, options.staticOutboundToken) : undefined);
  return new TeamsAdapter(settings, credentials);
}

export interface TeamsBotOptions {
  db: AppDatabase;
  log: Logger;
  now: () => Date;
  notifyOutbox?: (ids: number[]) => void | Promise<void>;
  /** Set for the served app (proactive sends and updates use it); omitted when tests drive turns with TestAdapter. */
  adapter?: TeamsAdapter;
  botAppId?: string;
}

const WELCOME_LINKED = (client: string) =>
  `Hello! This chat is linked to ${client}. After each month's updates reach your test machines, I'll ask here whether everything works, and I'll post how each night's updates went.`;
const WELCOME_USER = (client: string) =>
  `Hello! I'm the patch assistant of ${client}'s IT provider. Before updates restart your computer, I'll tell you here so you can save your work.`;
const WELCOME_UNKNOWN =
  'Hello! I don’t know which organisation this chat belongs to yet, so I won’t post anything here. If your IT provider gave you a code (it looks like PB-ABCD-EFGH), send it to me here.';
const HELP =
  'I post your monthly patch checks and results here. If your IT provider gave you a link code (PB-ABCD-EFGH), send it to me to connect this chat.';

function actorOf(activity: Activity): Actor {
  // The AAD object id is the stable id across chats; `from.id` differs per bot and conversation.
  return { platform: 'teams', id: activity.from?.aadObjectId ?? activity.from?.id ?? 'unknown' };
}

function conversationKind(activity: Activity): InstallInput['kind'] {
  const type = activity.conversation?.conversationType;
  return type === 'channel' || type === 'groupChat' ? type : 'personal';
}

function tenantOf(activity: Activity): string | undefined {
  const channelData = activity.channelData as { tenant?: { id?: string } } | undefined;
  return activity.conversation?.tenantId ?? channelData?.tenant?.id;
}

/** Who added the bot, with their email when Teams will tell us (a roster lookup; absent in a test turn). */
async function installer(context: TurnContext): Promise<InstallInput['by']> {
  const from = context.activity.from;
  const by: InstallInput['by'] = { id: from?.aadObjectId, email: undefined, upn: undefined, name: from?.name };
  try {
    const member = await TeamsInfo.getMember(context, from.id);
    by.email = member.email ?? undefined;
    by.upn = member.userPrincipalName ?? undefined;
    by.id = by.id ?? member.aadObjectId ?? undefined;
  } catch {
    // No roster access (or not a Teams turn): the Teams id alone still matches inventory champions.
  }
  return by;
}

function installInput(context: TurnContext, by: InstallInput['by']): InstallInput {
  const activity = context.activity;
  const reference = TurnContext.getConversationReference(activity) as ConversationReference;
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

export function createTeamsBot(options: TeamsBotOptions): Application<TurnState> {
  const { db, log } = options;
  const ctx: UseCaseContext = { db, now: options.now, ...(options.notifyOutbox ? { onCommitted: options.notifyOutbox } : {}) };
  const app = new Application<TurnState>({
    ...(options.adapter ? { adapter: options.adapter } : {}),
    ...(options.botAppId ? { botAppId: options.botAppId } : {}),
    removeRecipientMention: true,
    startTypingTimer: false,
    longRunningMessages: false,
  });
  onInstall(app, ctx, log);
  onSignoffCard(app, ctx);
  onUserDmCard(app, ctx);
  app.activity(ActivityTypes.Message, async (context) => {
    if (context.activity.text) await context.sendActivity(HELP);
  });
  app.error(async (_context, error) => {
    log.error({ err: error }, 'teams handler failed');
  });
  return app;
}

/** The bot added to or removed from a conversation, and link codes sent to it. */
function onInstall(app: Application<TurnState>, ctx: UseCaseContext, log: Logger): void {
  const botAdded = (context: TurnContext) => (context.activity.membersAdded ?? []).some((m) => m.id === context.activity.recipient?.id);

  app.conversationUpdate('membersAdded', async (context) => {
    if (!botAdded(context)) return;
    const result = await captureInstall(ctx, installInput(context, await installer(context)));
    log.info({ conversation: context.activity.conversation.id, outcome: result.outcome }, 'teams: bot added to a conversation');
    await context.sendActivity(linkReply(result));
  });

  app.conversationUpdate('membersRemoved', async (context) => {
    const removed = (context.activity.membersRemoved ?? []).some((m) => m.id === context.activity.recipient?.id);
    if (removed) await removeConversation(ctx, context.activity.conversation.id, actorOf(context.activity).id);
  });

  // Teams sends installationUpdate as well as (or, for some installs, instead of) conversationUpdate; capture is
  // an upsert, so both arriving stores one reference. The welcome is said once, on conversationUpdate.
  app.activity(ActivityTypes.InstallationUpdate, async (context) => {
    const action = (context.activity as { action?: string }).action ?? '';
    if (action.startsWith('remove')) {
      await removeConversation(ctx, context.activity.conversation.id, actorOf(context.activity).id);
      return;
    }
    await captureInstall(ctx, installInput(context, await installer(context)));
  });

  app.message(/\bPB-[A-Z0-9]{4}-[A-Z0-9]{4}\b/i, async (context) => {
    const code = findLinkCode(context.activity.text ?? '')!;
    const result = await redeemLinkCode(ctx, code, installInput(context, await installer(context)));
    await context.sendActivity(linkReply(result));
  });
}

interface SignoffData {
  releaseId?: string;
  clientId?: string;
  problem?: string;
}

function signoffTarget(data: SignoffData): { releaseId: string; clientId: string } | undefined {
  return typeof data.releaseId === 'string' && typeof data.clientId === 'string' ? { releaseId: data.releaseId, clientId: data.clientId } : undefined;
}

/** The activity id is unique per click; a re-sent invoke carries the same one. */
function requestIdOf(context: TurnContext): string {
  return context.activity.id ?? `${Date.now()}`;
}

async function signoffAnswer(result: PilotResult): Promise<AdaptiveCard | string> {
  if (result.outcome === 'refused' && (result.code === 'not_champion' || !result.view)) return result.message;
  if (result.outcome === 'refused' && result.code === 'text_required') return result.message;
  return renderSignoffCard(result.view!) as unknown as AdaptiveCard;
}

/** The champion's pilot sign-off card: confirm, report a problem, refresh. */
function onSignoffCard(app: Application<TurnState>, ctx: UseCaseContext): void {
  const confirm = (context: TurnContext, t: { releaseId: string; clientId: string }) => confirmPilot(ctx, { actor: actorOf(context.activity), ...t, requestId: requestIdOf(context) });
  const problem = (context: TurnContext, t: { releaseId: string; clientId: string }, data: SignoffData) =>
    reportPilotProblem(ctx, { actor: actorOf(context.activity), ...t, text: String(data.problem ?? ''), requestId: requestIdOf(context) });

  app.adaptiveCards.actionExecute<SignoffData>(VERB_CONFIRM, async (context, _state, data) => {
    const t = signoffTarget(data);
    if (!t) return 'This card is out of date.';
    return signoffAnswer(await confirm(context, t));
  });

  app.adaptiveCards.actionExecute<SignoffData>(VERB_PROBLEM, async (context, _state, data) => {
    const t = signoffTarget(data);
    if (!t) return 'This card is out of date.';
    return signoffAnswer(await problem(context, t, data));
  });

  app.adaptiveCards.actionExecute<SignoffData>(VERB_REFRESH, async (_context, _state, data) => {
    const t = signoffTarget(data);
    const view = t ? await loadSignoff(ctx.db, t.releaseId, t.clientId) : undefined;
    return view ? (renderSignoffCard(view) as unknown as AdaptiveCard) : 'This card is out of date.';
  });

  // Clients without Universal Actions send the Action.Submit fallback as a message whose value names the verb.
  app.adaptiveCards.actionSubmit<SignoffData>(VERB_CONFIRM, async (context, _state, data) => {
    const t = signoffTarget(data);
    if (!t) return;
    await context.sendActivity((await confirm(context, t)).message);
  });
  app.adaptiveCards.actionSubmit<SignoffData>(VERB_PROBLEM, async (context, _state, data) => {
    const t = signoffTarget(data);
    if (!t) return;
    await context.sendActivity((await problem(context, t, data)).message);
  });
}

interface DmData {
  dmId?: number;
}

/**
 * "Save your work tonight": only the person the card was sent to may answer (the use-case checks their AAD id);
 * the card itself is edited through the outbox, so the invoke answers with the outcome in words.
 */
function onUserDmCard(app: Application<TurnState>, ctx: UseCaseContext): void {
  const answerDm = async (context: TurnContext, data: DmData, answer: DmAnswer): Promise<string> => {
    if (typeof data.dmId !== 'number') return 'This message is out of date.';
    return (await answerUserDm(ctx, { actor: { platform: 'teams', id: actorOf(context.activity).id }, dmId: data.dmId, answer })).message;
  };
  app.adaptiveCards.actionExecute<DmData>(VERB_DM_OK, (context, _state, data) => answerDm(context, data, 'ok'));
  app.adaptiveCards.actionExecute<DmData>(VERB_DM_DEFER, (context, _state, data) => answerDm(context, data, 'defer'));
  app.adaptiveCards.actionSubmit<DmData>(VERB_DM_OK, async (context, _state, data) => void (await context.sendActivity(await answerDm(context, data, 'ok'))));
  app.adaptiveCards.actionSubmit<DmData>(VERB_DM_DEFER, async (context, _state, data) => void (await context.sendActivity(await answerDm(context, data, 'defer'))));
}

const MAX_BODY_BYTES = 1024 * 1024;

/** Node's req/res as the express-like pair CloudAdapter.process expects (a parsed body, status/send/end). */
export function teamsRequestHandler(adapter: TeamsAdapter, app: Application<TurnState>): RequestHandler {
  return async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(chunk as Buffer);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('expected a JSON activity');
      return;
    }
    // CloudAdapter answers 401 for some token failures and 500 for others (a bad signature surfaces as a plain
    // JsonWebTokenError): check first, so every refused token is a 401 and never reaches a handler.
    const authorization = String(req.headers.authorization ?? '');
    try {
      await (adapter as unknown as { botFrameworkAuthentication: { authenticateRequest(a: unknown, h: string): Promise<unknown> } }).botFrameworkAuthentication.authenticateRequest(
        body,
        authorization,
      );
    } catch {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('unauthorized');
      return;
    }
    let status = 200;
    const shim = {
      socket: req.socket,
      header(name: string, value: unknown) {
        if (!res.headersSent) res.setHeader(name, String(value));
      },
      status(code: number) {
        status = code;
      },
      send(payload: unknown) {
        if (res.headersSent) return;
        const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
        res.writeHead(status, { 'content-type': typeof payload === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8' });
        res.write(text);
      },
      end() {
        if (!res.headersSent) res.writeHead(status);
        res.end();
      },
    };
    await adapter.process({ method: req.method, headers: req.headers, body } as never, shim as never, (context) => app.run(context).then(() => undefined));
  };
}
