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
 *
 * Laid out as a router (this file: the HTTP server and the test-facing handle) over ./slack/: the workspace's
 * state and shared rules (workspace.ts), the rate limits (rate-limits.ts), one module per Web API family
 * (chat.ts, views.ts, users.ts, conversations.ts, files.ts), the /api/ pipeline (api.ts), response_url
 * (response-url.ts) and the upload URLs of the external file upload flow (files.ts, `/upload/v1/<token>`).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { apiHandler, type ApiControls } from './slack/api.ts';
import { chatMethods } from './slack/chat.ts';
import { conversationsMethods } from './slack/conversations.ts';
import { FileStore, filesMethods, receiveUpload } from './slack/files.ts';
import type { Answer } from './slack/protocol.ts';
import { RateLimiter } from './slack/rate-limits.ts';
import { responseUrlHandler, type ResponseUrls } from './slack/response-url.ts';
import type { Fault, RecordedCall, ResponseUrlContext, SeedChannel, SeedUser, SlackEmulatorHistory, SlackEmulatorOptions, StoredEphemeral, StoredFile, StoredMessage, StoredView, ResponseUrlPost } from './slack/types.ts';
import { usersMethods } from './slack/users.ts';
import { viewsMethods } from './slack/views.ts';
import { Workspace } from './slack/workspace.ts';

export * from './slack/types.ts';
export { METHOD_TIERS, TIER_LIMITS } from './slack/rate-limits.ts';

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
  /** Files completed through files.completeUploadExternal (shared or private), with their bytes, in order. */
  files(filter?: { channel?: string }): StoredFile[];

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

export async function startSlackEmulator(options: SlackEmulatorOptions = {}): Promise<SlackEmulator> {
  const ws = new Workspace(options);
  const limits = new RateLimiter(options.rateLimits === false ? undefined : (options.rateLimits ?? {}), ws.clock);
  const store = new FileStore({ uploadTtlMs: options.uploadTtlMs ?? 10 * 60_000, maxFilesPerComplete: options.maxFilesPerComplete ?? 10 });
  let origin = '';
  const methods = {
    ...usersMethods(ws), ...chatMethods(ws, limits), ...conversationsMethods(ws), ...viewsMethods(ws), ...filesMethods(ws, store, () => origin),
  };
  const controls: ApiControls = { calls: [], faults: new Map(), latency: new Map() };
  const responses: ResponseUrls = { urls: new Map(), posts: [], usesPerUrl: options.responseUrlUses ?? 5 };
  const handleApi = apiHandler(ws, limits, methods, controls);
  const handleResponseUrl = responseUrlHandler(ws, responses);

  async function route(req: IncomingMessage, body: Buffer): Promise<Answer> {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const upload = /^\/upload\/v1\/([A-Za-z0-9_-]+)$/.exec(u.pathname);
    if (upload?.[1] !== undefined && req.method === 'POST') return receiveUpload(store, upload[1], body, req.headers['content-type'], ws.clock());
    const raw = body.toString('utf8');
    const api = /^\/api\/([A-Za-z0-9_.]+)$/.exec(u.pathname);
    if (api?.[1] !== undefined) return handleApi(api[1], req, raw, u.searchParams);
    const resp = /^\/response_url\/([A-Za-z0-9_-]+)$/.exec(u.pathname);
    if (resp?.[1] !== undefined && req.method === 'POST') return handleResponseUrl(resp[1], raw);
    return { status: 404, body: { ok: false, error: 'not_found' } };
  }

  const server = await listen(route);
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/api/`,
    origin,
    botToken: ws.botToken,
    team: ws.team,
    bot: ws.bot,
    verificationToken: options.verificationToken ?? 'verification-token-unused',
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
    ...reading(ws, limits, controls, responses),
    files: (filter) => store.files.filter((f) => filter?.channel === undefined || f.channel === filter.channel),
    ...seeding(ws),
    ...controlling(limits, controls),
    ...interactions(ws, origin, responses),
  };
}

/** An HTTP server on a free loopback port answering every request through `route`. */
async function listen(route: (req: IncomingMessage, body: Buffer) => Promise<Answer>): Promise<ReturnType<typeof createServer>> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      route(req, Buffer.concat(chunks))
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
  return server;
}

type Reading = Pick<SlackEmulator, 'calls' | 'messages' | 'message' | 'replies' | 'ephemerals' | 'views' | 'view' | 'homeView' | 'history' | 'responses' | 'rateLimitedCount' | 'messagePayload' | 'viewPayload'>;

/** What tests read back: the call log, the history, views, response_url posts, 429s given. */
function reading(ws: Workspace, limits: RateLimiter, controls: ApiControls, responses: ResponseUrls): Reading {
  const { messages, ephemerals, views } = ws;
  const calls = controls.calls;
  return {
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
    history: () => ws.history(),
    responses: () => [...responses.posts],
    rateLimitedCount: (method) =>
      method === undefined ? [...limits.rateLimited.values()].reduce((a, b) => a + b, 0) : (limits.rateLimited.get(method) ?? 0),
    messagePayload: ws.messageJson,
    viewPayload: ws.viewJson,
  };
}

/** Members and channels added after start, and how Slack names them. */
function seeding(ws: Workspace): Pick<SlackEmulator, 'user' | 'channelName' | 'addUser' | 'addChannel' | 'dmChannelFor'> {
  return {
    user: (id) => ws.users.get(id),
    channelName: (id) => ws.channels.get(id)?.name ?? (ws.dmUser(id) !== undefined ? 'directmessage' : undefined),
    addUser: (u) => void ws.users.set(u.id, { ...u }),
    addChannel: (c) => void ws.channels.set(c.id, { ...c }),
    dmChannelFor: ws.dmChannelFor,
  };
}

/** Faults, latency and rate-limit resets that tests inject. */
function controlling(limits: RateLimiter, controls: ApiControls): Pick<SlackEmulator, 'failNext' | 'setLatency' | 'resetRateLimits'> {
  return {
    failNext: (method, fault) => {
      const q = controls.faults.get(method) ?? [];
      q.push({ ...fault });
      controls.faults.set(method, q);
    },
    setLatency: (method, ms) => void (ms > 0 ? controls.latency.set(method, ms) : controls.latency.delete(method)),
    resetRateLimits: () => limits.reset(),
  };
}

/** The trigger_ids and response_urls Slack would put in interaction payloads. */
function interactions(ws: Workspace, origin: string, responses: ResponseUrls): Pick<SlackEmulator, 'issueTriggerId' | 'issueResponseUrl'> {
  return {
    issueTriggerId: (user) => {
      const id = `${Math.floor(ws.clock() / 1000)}.${randomBytes(5).readUIntBE(0, 5)}.${randomBytes(16).toString('hex')}`;
      ws.triggers.set(id, { user, issuedAt: ws.clock(), used: false });
      return id;
    },
    issueResponseUrl: (context) => {
      const id = `${ws.team.id}-${randomBytes(12).toString('hex')}`;
      responses.urls.set(id, { context, uses: 0 });
      return `${origin}/response_url/${id}`;
    },
  };
}
