/**
 * The engineers' Slack front: a Bolt app whose listeners ack at once, turn the payload into a use-case call and
 * render the answer. HTTP mode mounts Bolt's receiver on our own server at /slack/events (Bolt verifies the
 * signature and the timestamp with SLACK_SIGNING_SECRET); with SLACK_APP_TOKEN it runs over Socket Mode.
 * Messages that report a change leave through the outbox; replies to the person who clicked (ephemeral) and
 * modals go straight out, since they are answers, not news.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { App, HTTPReceiver, LogLevel, verifySlackRequest, type Logger as BoltLogger } from '@slack/bolt';
import type { Database } from '../../db/client.ts';
import type { Logger } from '../../log.ts';
import type { RequestHandler } from '../../runtime/http.ts';
import type { UseCaseContext } from '../../use-cases/decisions.ts';
import * as actions from './listeners/actions.ts';
import * as commands from './listeners/commands.ts';
import * as events from './listeners/events.ts';
import * as views from './listeners/views.ts';
import type { ListenerDeps } from './listeners/deps.ts';

export interface SlackAppOptions {
  botToken: string;
  signingSecret: string;
  /** Socket Mode when set. */
  appToken?: string | undefined;
  apiUrl: string;
  database: Database;
  log: Logger;
  now: () => Date;
  /** Told about outbox rows right after a use-case commits. */
  notifyOutbox?: (ids: number[]) => Promise<void>;
  /** Signs report files' download links for Teams champions (src/runtime/report-links.ts). */
  reportLinks?: (archiveId: number, expiresAt: Date) => string;
}

export interface SlackApp {
  app: App;
  /** The HTTP handler for /slack/events (undefined in Socket Mode). */
  handler: RequestHandler | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function boltLogger(log: Logger): BoltLogger {
  let level = LogLevel.INFO;
  const child = log.child({ component: 'slack' });
  const text = (msgs: unknown[]) => msgs.map((m) => (typeof m === 'string' ? m : m instanceof Error ? m.message : JSON.stringify(m))).join(' ');
  return {
    // Bolt and its Web API client call debug on every request: the text is built only when someone reads it.
    debug: (...m: unknown[]) => void (child.isLevelEnabled('debug') && child.debug(text(m))),
    info: (...m: unknown[]) => child.info(text(m)),
    warn: (...m: unknown[]) => child.warn(text(m)),
    error: (...m: unknown[]) => child.error(text(m)),
    setLevel: (l: LogLevel) => void (level = l),
    getLevel: () => level,
    setName: () => {},
  };
}

/** Slack's tolerance; Bolt refuses only stale timestamps, not ones ahead of the clock (a replay kept for later). */
const MAX_REQUEST_SKEW_S = 5 * 60;

/**
 * What reaches Bolt's receiver: only POSTs (it throws on anything else, and a browser's GET or CORS preflight
 * must not cost more than a 405) with a timestamp within five minutes either way of real time. Real time, not the
 * sandbox's clock: Slack (and the sandbox page) sign with the wall clock.
 */
function receiverGate(receiver: HTTPReceiver, app: App, log: Logger, signingSecret: string): RequestHandler {
  return (req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST', 'content-type': 'text/plain; charset=utf-8' });
      res.end('POST only');
      return;
    }
    const stamp = Number(req.headers['x-slack-request-timestamp']);
    if (Number.isFinite(stamp) && Math.abs(Date.now() / 1000 - stamp) > MAX_REQUEST_SKEW_S) {
      log.warn({ timestamp: stamp }, 'slack request refused: its timestamp is more than 5 minutes from now');
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8' });
      res.end();
      return;
    }
    if (req.headers['content-type'] === 'application/x-www-form-urlencoded') return ackClicksFirst({ receiver, app, log, signingSecret }, req, res);
    receiver.requestListener(req, res);
  };
}

/** Bolt's own body limit (HTTPModuleFunctions.defaultBodyLimit). */
const BODY_LIMIT = 10 * 1024 * 1024;

interface ClickRoute {
  receiver: HTTPReceiver;
  app: App;
  log: Logger;
  signingSecret: string;
}

/**
 * A button click (block_actions) is acked here, as soon as its signature checks out, before Bolt runs its middleware
 * and matches listeners: every block_actions listener acks with nothing first anyway, and under a burst of clicks
 * Bolt's work ahead of the ack was most of what each click waited for. The click then goes to the app as the payload
 * already parsed and verified (Bolt's receiver would read, verify and parse the body again), and only on the next
 * turn of the event loop: the acks and other requests that arrived meanwhile are answered before any click's
 * decision runs. Anything else (modals, commands, an unsigned request) goes to Bolt whole, which answers it as before.
 */
async function ackClicksFirst(route: ClickRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const raw = await readBody(req);
  if (!raw) {
    res.writeHead(413);
    res.end();
    return;
  }
  (req as IncomingMessage & { rawBody?: Buffer }).rawBody = raw;
  const click = signedClick(route.signingSecret, req, raw.toString());
  if (!click) return route.receiver.requestListener(req, res);
  res.writeHead(200);
  res.end();
  const event = { body: click, ack: async () => {}, retryNum: retryNumOf(req), retryReason: headerOf(req, 'x-slack-retry-reason'), customProperties: {} };
  setImmediate(() => {
    route.app.processEvent(event).catch((error: unknown) => route.log.error({ err: error }, 'slack click failed after its ack'));
  });
}

/** The body, or undefined when it is over Bolt's limit or the request broke off. */
async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > BODY_LIMIT) return undefined;
      chunks.push(chunk);
    }
  } catch {
    return undefined;
  }
  return Buffer.concat(chunks);
}

/** The block_actions payload of a request signed with our secret, else undefined. */
function signedClick(signingSecret: string, req: IncomingMessage, body: string): Record<string, unknown> | undefined {
  try {
    const signature = req.headers['x-slack-signature'];
    const timestamp = Number(req.headers['x-slack-request-timestamp']);
    if (typeof signature !== 'string') return undefined;
    verifySlackRequest({ signingSecret, body, headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': timestamp } });
    const payload = payloadOf(body);
    const parsed = payload === null ? undefined : (JSON.parse(payload) as unknown);
    return typeof parsed === 'object' && parsed !== null && (parsed as { type?: unknown }).type === 'block_actions' ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The form's `payload` field. Slack's click is that one field, a percent-encoded JSON message with the whole message's
 * blocks (kilobytes): decoded natively in one call, it costs a tenth of what parsing it as a general form did. Any
 * other form is parsed as one.
 */
function payloadOf(body: string): string | null {
  const PREFIX = 'payload=';
  if (body.startsWith(PREFIX) && !body.includes('&')) {
    try {
      return decodeURIComponent(body.slice(PREFIX.length).replaceAll('+', ' '));
    } catch {
      // A malformed escape: URLSearchParams keeps it as it is, as Bolt's parser would.
    }
  }
  return new URLSearchParams(body).get('payload');
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
}

function retryNumOf(req: IncomingMessage): number | undefined {
  const value = Number(headerOf(req, 'x-slack-retry-num'));
  return Number.isInteger(value) ? value : undefined;
}

/**
 * The Bolt app with every listener family registered (./listeners/: actions, views, commands, events), each
 * `register(app, deps)`. The retry filter goes first: it is middleware every listener runs behind.
 */
export function createSlackApp(options: SlackAppOptions): SlackApp {
  const { database, log } = options;
  const logger = boltLogger(log);
  const ctx: UseCaseContext = { db: database.db, now: options.now, ...(options.notifyOutbox ? { onCommitted: options.notifyOutbox } : {}) };
  const clientOptions = { slackApiUrl: options.apiUrl, logger };

  // No conversation store: no listener keeps state per conversation (the database holds it all), and Bolt's
  // in-memory one made and threw away an Error for every click in a conversation it had not seen.
  let receiver: HTTPReceiver | undefined;
  let app: App;
  if (options.appToken) {
    app = new App({ token: options.botToken, appToken: options.appToken, socketMode: true, logger, clientOptions, convoStore: false });
  } else {
    receiver = new HTTPReceiver({ signingSecret: options.signingSecret, endpoints: '/slack/events', logger, unhandledRequestTimeoutMillis: 3000 });
    app = new App({ token: options.botToken, receiver, logger, clientOptions, convoStore: false });
  }

  const deps: ListenerDeps = { db: database.db, ctx, log, now: options.now, ...(options.reportLinks ? { reportLinks: options.reportLinks } : {}) };
  events.registerRetryFilter(app, deps);
  for (const family of [actions, views, commands, events]) family.register(app, deps);

  return {
    app,
    handler: receiver ? receiverGate(receiver, app, log, options.signingSecret) : undefined,
    async start() {
      if (options.appToken) await app.start();
    },
    async stop() {
      if (options.appToken) await app.stop();
    },
  };
}
