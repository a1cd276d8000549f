/**
 * The sandbox page and its API (contract: ./api-types.ts). Reading assembles what the emulators hold; writing
 * sends what Slack or Teams would send to this process's own /slack/events and /api/messages (signed, or with a
 * Bot Framework token), so every click goes through Bolt's signature check or the Teams adapter's token check
 * and the same listeners and use-cases as in production.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type http from 'node:http';
import { DateTime } from 'luxon';
import { z } from 'zod';
import type { Database } from '../db/client.ts';
import { ownersWithActiveRollouts } from '../db/page-repo.ts';
import { liveConversationIds } from '../db/teams-conversations-repo.ts';
import type { Logger } from '../log.ts';
import type { RequestHandler } from '../runtime/http.ts';
import { JUMPS, jumpTarget, type Jump } from '../domain/sandbox-jumps.ts';
import { loadDirectory } from './directory.ts';
import type { Sandbox } from './sandbox-types.ts';
import type { SandboxAnswer, SandboxSlackMessage, SandboxState, SandboxTeamsConversation } from './api-types.ts';
import type { StoredMessage } from './emulators/slack-emulator.ts';
import { createPageGuard, guardHandlers, PAGE_HEADERS, pageWithToken } from './page-guard.ts';
import { addTacticalRoutes } from './tactical-routes.ts';
import { buildAppHomeOpened, buildBlockActions, buildSlashCommand, buildViewBlockActions, buildViewSubmission, postSigned } from './emulators/slack-signing.ts';

const require = createRequire(import.meta.url);
const PAGE_DIR = new URL('./page/', import.meta.url);
const ASSETS: Record<string, { file: URL | string; type: string }> = {
  '/': { file: new URL('index.html', PAGE_DIR), type: 'text/html; charset=utf-8' },
  '/sandbox/assets/app.js': { file: new URL('app.js', PAGE_DIR), type: 'text/javascript; charset=utf-8' },
  '/sandbox/assets/style.css': { file: new URL('style.css', PAGE_DIR), type: 'text/css; charset=utf-8' },
  '/sandbox/assets/adaptivecards.js': { file: require.resolve('adaptivecards/dist/adaptivecards.min.js'), type: 'text/javascript; charset=utf-8' },
};

const MAX_BODY = 256 * 1024;

const slackAction = z.object({ user: z.string().min(1), channel: z.string().min(1), ts: z.string().min(1), actionId: z.string().min(1), blockId: z.string().optional(), selectedValue: z.string().optional() });
const slackViewAction = z.object({ user: z.string().min(1), viewId: z.string().min(1), actionId: z.string().min(1), blockId: z.string().optional(), selectedValue: z.string().optional() });
const slackViewSubmit = z.object({ user: z.string().min(1), viewId: z.string().min(1), values: z.record(z.string(), z.union([z.string(), z.array(z.string()), z.null()])) });
const slackViewClose = z.object({ user: z.string().min(1), viewId: z.string().min(1) });
const slackHomeOpened = z.object({ user: z.string().min(1) });
const slackCommand = z.object({ user: z.string().min(1), channel: z.string().min(1), text: z.string().min(1).max(4000) });
const teamsAction = z.object({ user: z.string().min(1), conversationId: z.string().min(1), activityId: z.string().min(1), verb: z.string().min(1), data: z.record(z.string(), z.unknown()) });
const teamsMessage = z.object({ user: z.string().min(1), conversationId: z.string().min(1), text: z.string().min(1).max(4000) });
const clockRequest = z.object({ jump: z.enum(JUMPS.map((j) => j.jump) as [Jump, ...Jump[]]).optional(), rate: z.number().positive().optional() });

export interface RoutesOptions {
  sandbox: Sandbox;
  database: Database;
  log: Logger;
  /** This process's HTTP origin, where /slack/events and /api/messages are served. */
  appUrl: string;
  signingSecret: string;
  appId: string;
  /** The token the served page carries and every page-API call must send (src/sandbox/page-guard.ts). */
  pageToken: string;
  /** The HOST the server was told to listen on, if any: a Host header naming it is this machine too. */
  listenHost?: string | undefined;
}

export interface SandboxRoutes {
  handlers: Map<string, RequestHandler>;
  /** Installs the bot in each client's Teams conversations, as a champion or user adding the app would. */
  installTeams(): Promise<void>;
  close(): Promise<void>;
}

class BadRequest extends Error {}

async function readJson<T>(req: http.IncomingMessage, schema: z.ZodType<T>): Promise<T> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new BadRequest('request too large');
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadRequest('the body is not JSON');
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new BadRequest(parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return parsed.data;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function sandboxRoutes(options: RoutesOptions): SandboxRoutes {
  const { sandbox, log, appUrl, signingSecret, appId } = options;
  const { slack, connector, clock } = sandbox;
  const closedViews = new Set<string>();
  const localEphemerals: Array<{ channel: string; user: string; text: string; blocks: unknown[]; at: number }> = [];
  const installs = sandbox.directory.teamsInstalls();
  let directory = sandbox.directory;

  // Change detection by polling the emulators' call logs: cheap, and it needs no hooks inside the emulators.
  let seq = 0;
  let signature = '';
  const streams = new Set<http.ServerResponse>();
  const bump = () => {
    seq += 1;
    for (const res of streams) res.write(`event: change\ndata: ${JSON.stringify({ seq })}\n\n`);
  };
  const poll = setInterval(() => {
    const next = `${slack.calls().length}:${slack.responses().length}:${connector.calls().length}:${connector.activities().length}:${localEphemerals.length}:${closedViews.size}`;
    if (next !== signature) {
      signature = next;
      bump();
    }
  }, 250);
  const heartbeat = setInterval(() => {
    for (const res of streams) res.write(': keep-alive\n\n');
  }, 15_000);
  const unClock = clock.onChange(bump);

  const nameOf = (user: string) => (user === slack.bot.userId ? 'patchbay' : (directory.nameOfSlack(user) ?? slack.user(user)?.real_name ?? user));

  const toMessage = (m: StoredMessage, replies: StoredMessage[]): SandboxSlackMessage => ({
    channel: m.channel,
    ts: m.ts,
    ...(m.thread_ts && m.thread_ts !== m.ts ? { threadTs: m.thread_ts } : {}),
    user: m.user,
    userName: nameOf(m.user),
    text: m.text ?? '',
    blocks: m.blocks ?? [],
    edits: m.edits,
    updatedAt: m.versions.at(-1)?.at ?? m.postedAt,
    replies: replies.map((r) => toMessage(r, [])),
  });

  const channelMessages = (channel: string): SandboxSlackMessage[] =>
    slack
      .messages(channel)
      .filter((m) => !m.thread_ts || m.thread_ts === m.ts)
      .map((m) => toMessage(m, slack.replies(channel, m.ts)));

  const state = (): SandboxState => {
    const channels = directory.slackChannels().map((c) => ({ id: c.id, name: c.name, messages: channelMessages(c.id) }));
    const known = new Set(channels.map((c) => c.id));
    const dmChannels = new Map<string, string>();
    for (const p of directory.people) if (p.slackId) dmChannels.set(slack.dmChannelFor(p.slackId), p.slackId);
    const dms = [...new Set(slack.messages().map((m) => m.channel))]
      .filter((ch) => !known.has(ch) && dmChannels.has(ch))
      .map((ch) => ({ user: dmChannels.get(ch)!, userName: nameOf(dmChannels.get(ch)!), channel: ch, messages: channelMessages(ch) }));
    const ephemerals = [
      // The emulator keeps response_url ephemerals with chat.postEphemeral's; slash-command HTTP answers are kept here.
      ...slack.ephemerals().map((e) => ({ channel: e.channel, user: e.user, text: e.text ?? '', blocks: e.blocks ?? [], at: e.at })),
      ...localEphemerals,
    ].sort((a, b) => a.at - b.at);
    const modals = slack
      .views({ type: 'modal' })
      .filter((v) => !closedViews.has(v.id))
      .map((v) => ({ id: v.id, user: v.user, view: v.view }));
    const home: Record<string, Record<string, unknown>> = {};
    for (const p of directory.people) {
      const view = p.slackId ? slack.homeView(p.slackId) : undefined;
      // The view's id rides along, as in Slack's payloads, so a button on the Home tab can name its view.
      if (view) home[p.slackId!] = { ...view.view, id: view.id };
    }
    const teamsConversations: SandboxTeamsConversation[] = installs.map((install) => ({
      id: install.conversationId,
      title: install.title,
      clientId: install.clientId,
      kind: install.kind,
      defaultActor: install.by,
      activities: connector.activities(install.conversationId).map((a) => {
        const attachments = (a.activity.attachments as Array<{ contentType?: string; content?: Record<string, unknown> }> | undefined) ?? [];
        const card = attachments.find((x) => x.contentType === 'application/vnd.microsoft.card.adaptive')?.content;
        const from = a.activity.from as { name?: string; aadObjectId?: string } | undefined;
        const incoming = a.id.startsWith('in:');
        return {
          id: a.id,
          text: String(a.activity.text ?? ''),
          ...(card ? { card } : {}),
          updatedAt: a.at,
          ...(incoming ? { from: from?.name ?? from?.aadObjectId ?? 'someone' } : {}),
        };
      }),
    }));
    const mspZone = directory.msp.timezone;
    return {
      seq,
      clock: { now: DateTime.fromJSDate(clock.now()).setZone(mspZone).toISO()!, zone: mspZone, rate: clock.rate, jumps: JUMPS.map((j) => ({ ...j })) },
      msp: { name: directory.msp.name, channel: directory.msp.channel },
      slack: {
        channels,
        dms,
        ephemerals,
        modals,
        home,
        people: directory.people.filter((p) => p.slackId).map((p) => ({ id: p.slackId!, name: p.name, role: p.role, ...(p.client ? { client: p.client } : {}), ...(p.email ? { email: p.email } : {}) })),
      },
      teams: {
        conversations: teamsConversations,
        people: directory.people.filter((p) => p.aadId).map((p) => ({ id: p.aadId!, name: p.name, role: p.role, ...(p.client ? { client: p.client } : {}), ...(p.email ? { email: p.email } : {}) })),
      },
      ...(sandbox.tactical ? { tactical: tacticalState(sandbox.tactical) } : {}),
    };
  };

  const toSlack = async (body: string): Promise<{ status: number; text: string }> => {
    const res = await postSigned(`${appUrl}/slack/events`, body, { secret: signingSecret });
    return { status: res.status, text: await res.text() };
  };

  const slackAnswer = (status: number, text: string): SandboxAnswer => (status === 200 ? { ok: true } : { ok: false, error: `the bot answered ${status}${text ? `: ${text.slice(0, 300)}` : ''}` });

  const teamsActivity = (install: { conversationId: string; kind: string; tenantId: string }, user: string, extra: Record<string, unknown>) => {
    const member = directory.people.find((p) => p.aadId === user);
    return {
      channelId: 'msteams',
      serviceUrl: connector.url,
      id: `sandbox-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
      timestamp: new Date().toISOString(),
      from: { id: `29:${user}`, aadObjectId: user, name: member?.name ?? user },
      recipient: { id: `28:${appId}`, name: 'patchbay' },
      conversation: { id: install.conversationId, conversationType: install.kind, tenantId: install.tenantId, isGroup: install.kind !== 'personal' },
      channelData: { tenant: { id: install.tenantId } },
      ...extra,
    };
  };

  const toTeams = async (activity: Record<string, unknown>): Promise<{ status: number; body: unknown }> => {
    const token = connector.mintToken({ appId, serviceUrl: connector.url });
    const res = await fetch(`${appUrl}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(activity) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON: keep the text for the error message.
    }
    return { status: res.status, body };
  };

  const installFor = (conversationId: string) => {
    const install = installs.find((i) => i.conversationId === conversationId);
    if (!install) throw new BadRequest(`no Teams conversation ${conversationId} in the sandbox`);
    return install;
  };

  /**
   * "Next window" means the next window where something will happen: the owners with a ring scheduled or running
   * (the MSP for ring msp, a client for its pilot or broad ring). With nothing under way, any owner's window.
   */
  const ownersWithWork = async (jump: Jump) => {
    const owners = directory.jumpOwners();
    if (jump !== 'next-window' && jump !== 'window-end') return owners;
    const active = await ownersWithActiveRollouts(options.database.db);
    const busy = owners.filter((o) => active.includes(o.id));
    return busy.length > 0 ? busy : owners;
  };

  const post = <T>(schema: z.ZodType<T>, act: (input: T) => Promise<SandboxAnswer>): RequestHandler => async (req, res) => {
    if (req.method !== 'POST') return sendJson(res, 405, { ok: false, error: 'POST only' });
    try {
      const answer = await act(await readJson(req, schema));
      sendJson(res, answer.ok ? 200 : 422, answer);
    } catch (error) {
      if (error instanceof BadRequest) return sendJson(res, 400, { ok: false, error: error.message });
      // The page shows this to the person who clicked; the log keeps the detail.
      log.warn({ err: error }, 'sandbox: a click could not be delivered');
      sendJson(res, 422, { ok: false, error: error instanceof Error ? error.message : String(error) });
    }
  };

  const handlers = new Map<string, RequestHandler>();
  for (const [route, asset] of Object.entries(ASSETS)) {
    handlers.set(route, async (_req, res) => {
      const file = await readFile(asset.file);
      const body = route === '/' ? pageWithToken(file, options.pageToken) : file;
      res.writeHead(200, { 'content-type': asset.type, 'content-length': body.length, 'cache-control': 'no-cache', ...(route === '/' ? PAGE_HEADERS : {}) });
      res.end(body);
    });
  }
  handlers.set('/sandbox/api/state', (_req, res) => sendJson(res, 200, state()));
  addTacticalRoutes(handlers, sandbox.tactical);
  handlers.set('/sandbox/events', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(`event: change\ndata: ${JSON.stringify({ seq })}\n\n`);
    streams.add(res);
    req.on('close', () => streams.delete(res));
  });

  /** What identifies the element clicked, as the signing helpers take it. */
  const element = (input: { actionId: string; blockId?: string | undefined; selectedValue?: string | undefined }) => ({
    actionId: input.actionId,
    ...(input.blockId ? { blockId: input.blockId } : {}),
    ...(input.selectedValue ? { selectedValue: input.selectedValue } : {}),
  });
  const clickToSlack = async (body: string): Promise<SandboxAnswer> => {
    const { status, text } = await toSlack(body);
    return slackAnswer(status, text);
  };
  handlers.set(
    '/sandbox/api/slack/action',
    post(slackAction, async (input) =>
      clickToSlack(buildBlockActions(slack, { user: input.user, channel: input.channel, messageTs: input.ts, ...element(input) }).body),
    ),
  );
  handlers.set(
    '/sandbox/api/slack/view-action',
    post(slackViewAction, async (input) => clickToSlack(buildViewBlockActions(slack, { user: input.user, viewId: input.viewId, ...element(input) }).body)),
  );
  handlers.set(
    '/sandbox/api/slack/view-submit',
    post(slackViewSubmit, async (input) => {
      const built = buildViewSubmission(slack, { user: input.user, viewId: input.viewId, values: input.values });
      const { status, text } = await toSlack(built.body);
      if (status !== 200) return slackAnswer(status, text);
      const answer = text ? (JSON.parse(text) as { response_action?: string; errors?: Record<string, string> }) : {};
      if (answer.response_action === 'errors') return { ok: false, error: 'the form has problems', errors: answer.errors ?? {} };
      // Slack closes the modal on an empty answer (or `clear`); `update` and `push` keep a modal open.
      if (answer.response_action === undefined || answer.response_action === 'clear') closedViews.add(input.viewId);
      return { ok: true };
    }),
  );
  handlers.set(
    '/sandbox/api/slack/view-close',
    post(slackViewClose, async (input) => {
      closedViews.add(input.viewId);
      return { ok: true };
    }),
  );
  // The Home tab was opened on the page: the event Slack sends then, signed like the others, so the bot publishes it.
  handlers.set(
    '/sandbox/api/slack/home-opened',
    post(slackHomeOpened, async (input) => clickToSlack(buildAppHomeOpened(slack, input.user).body)),
  );
  handlers.set(
    '/sandbox/api/slack/command',
    post(slackCommand, async (input) => {
      const match = /^(\/\S+)\s*(.*)$/s.exec(input.text.trim());
      if (!match) return { ok: false, error: 'a slash command starts with /, e.g. /patch status' };
      const built = buildSlashCommand(slack, { user: input.user, channel: input.channel, command: match[1]!, text: match[2]! });
      const { status, text } = await toSlack(built.body);
      if (status !== 200) return slackAnswer(status, text);
      // An immediate answer in the HTTP response is shown to the one who typed it, as Slack does.
      if (text) {
        let reply: { text?: string; blocks?: unknown[] } = { text };
        try {
          reply = JSON.parse(text) as typeof reply;
        } catch {
          // Plain text answer.
        }
        if (reply.text || reply.blocks) localEphemerals.push({ channel: input.channel, user: input.user, text: reply.text ?? '', blocks: reply.blocks ?? [], at: clock.nowMs() });
      }
      return { ok: true };
    }),
  );
  handlers.set(
    '/sandbox/api/teams/action',
    post(teamsAction, async (input) => {
      const install = installFor(input.conversationId);
      const activity = teamsActivity(install, input.user, {
        type: 'invoke',
        name: 'adaptiveCard/action',
        replyToId: input.activityId,
        value: { action: { type: 'Action.Execute', verb: input.verb, data: input.data }, trigger: 'manual' },
      });
      const { status, body } = await toTeams(activity);
      if (status !== 200) return { ok: false, error: `the bot answered ${status}${typeof body === 'string' ? `: ${body.slice(0, 300)}` : ''}` };
      // Teams shows the card an Action.Execute answered with in place of the one pressed, for whoever pressed it.
      const answer = body as { statusCode?: number; type?: string; value?: unknown } | undefined;
      if (answer?.type === 'application/vnd.microsoft.card.adaptive' && answer.value && typeof answer.value === 'object') {
        const current = connector.activities(input.conversationId).find((a) => a.id === input.activityId);
        if (current) connector.replaceActivity(input.activityId, { ...current.activity, attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: answer.value }] });
      } else if (answer?.type === 'application/vnd.microsoft.activity.message' && typeof answer.value === 'string') {
        return { ok: true, detail: answer.value };
      } else if (answer?.statusCode !== undefined && answer.statusCode >= 400) {
        return { ok: false, error: typeof answer.value === 'object' ? JSON.stringify(answer.value) : String(answer.value) };
      }
      return { ok: true };
    }),
  );
  handlers.set(
    '/sandbox/api/teams/message',
    post(teamsMessage, async (input) => {
      const install = installFor(input.conversationId);
      const activity = teamsActivity(install, input.user, { type: 'message', text: input.text });
      connector.recordIncoming(input.conversationId, activity);
      const { status, body } = await toTeams(activity);
      return status === 200 || status === 201 ? { ok: true } : { ok: false, error: `the bot answered ${status}: ${JSON.stringify(body).slice(0, 300)}` };
    }),
  );
  handlers.set(
    '/sandbox/api/clock',
    post(clockRequest, async (input) => {
      if (input.rate !== undefined) {
        try {
          clock.setRate(input.rate);
        } catch (error) {
          return { ok: false, error: (error as Error).message };
        }
      }
      if (input.jump === undefined) return { ok: true, detail: `the clock runs at ${clock.rate}x` };
      directory = await loadDirectory(options.database.db);
      const target = jumpTarget(input.jump, DateTime.fromJSDate(clock.now()), await ownersWithWork(input.jump), directory.msp.timezone);
      if (!target) return { ok: false, error: input.jump === 'window-end' ? 'no maintenance window is open now' : 'nothing to jump to' };
      clock.jumpTo(target.at.toJSDate());
      await sandbox.wakeDelayedRuns();
      log.info({ jump: input.jump, to: target.at.toISO() }, `sandbox clock: ${target.detail}`);
      return { ok: true, detail: target.detail };
    }),
  );

  return {
    handlers: guardHandlers(handlers, createPageGuard({ listenHost: options.listenHost, token: options.pageToken }), Object.keys(ASSETS)),
    async installTeams() {
      // Once per conversation, as a real install happens once: a restarted sandbox already has its references.
      const known = new Set(
        await liveConversationIds(options.database.db),
      );
      for (const install of installs.filter((i) => !known.has(i.conversationId))) {
        const bot = { id: `28:${appId}`, name: 'patchbay' };
        const { status } = await toTeams(teamsActivity(install, install.by, { type: 'conversationUpdate', membersAdded: [bot] }));
        if (status !== 200 && status !== 201) log.warn({ conversation: install.conversationId, status }, 'sandbox: installing the bot in a Teams conversation failed');
      }
    },
    async close() {
      clearInterval(poll);
      clearInterval(heartbeat);
      unClock();
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}

/** The Tactical RMM emulator's agents and the newest requests it answered (PATCHBAY_SANDBOX_DEPLOYER=tactical). */
function tacticalState(tactical: NonNullable<Sandbox['tactical']>): NonNullable<SandboxState['tactical']> {
  return {
    agents: tactical.emulator.agentList().map((a) => ({ hostname: a.hostname, status: a.status, needsReboot: a.needsReboot, bootTime: new Date(a.bootTime * 1000).toISOString() })),
    requests: tactical.emulator.requests.slice(-50).map((r) => ({ at: r.at, method: r.method, path: r.path, status: r.status })),
  };
}
