/**
 * A local Bot Connector for proactive sends, used as the conversation reference's serviceUrl. It answers the
 * calls the bot makes the way the service does (POST /v3/conversations/{id}/activities -> {id}, PUT
 * .../activities/{activityId}, POST .../activities/{replyToId}), and enforces what Teams enforces so a test can fail: the per-conversation
 * limits (7 in 1 s, 8 in 2 s, 60 in 30 s -> 429 with Retry-After), cards over 28 KB or failing Adaptive Card 1.5
 * validation (400), an unknown conversation (404), and a missing bearer token (401).
 *
 * It is also the Bot Framework's token issuer for inbound tests: it publishes an OpenID configuration and a JWKS
 * (a key endorsed for `msteams`, and one endorsed only for `webchat`, as the Bot Framework's JWKS endorses each key
 * for a list of channels), and mints RS256 tokens with node:crypto, valid, expired, signed by a key it does not
 * publish, or by the Web Chat key.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createSign, generateKeyPairSync, randomUUID, type KeyObject, type KeyPairKeyObjectResult } from 'node:crypto';
import { adaptiveCardProblems } from './adaptive-card.ts';

export interface StoredActivity {
  id: string;
  conversationId: string;
  activity: Record<string, unknown>;
  versions: Array<Record<string, unknown>>;
  at: number;
}

export interface ConnectorCall {
  method: string;
  path: string;
  conversationId: string;
  status: number;
  at: number;
  authorization: string | undefined;
}

export interface BotConnectorEmulator {
  /** The serviceUrl to put in conversation references (ends with `/`). */
  url: string;
  openIdMetadataUrl: string;
  issuer: string;
  activities(conversationId?: string): StoredActivity[];
  calls(): ConnectorCall[];
  /** Answer the next matching call with this status (and Retry-After seconds, when given). */
  failNext(status: number, retryAfterSeconds?: number): void;
  /** Adds a roster member answered by GET .../members/{id}. */
  addMember(member: { id: string; aadObjectId: string; email?: string; userPrincipalName?: string; name?: string }): void;
  mintToken(claims: { appId: string; serviceUrl: string; expiresInSeconds?: number; forged?: boolean; issuer?: string; webchatKey?: boolean }): string;
  /**
   * What a Teams client does itself, outside the Bot Connector API: show the card an invoke answered with in
   * place of the one clicked, and keep what a person typed. Neither counts as a call or against the limits.
   */
  replaceActivity(id: string, activity: Record<string, unknown>): boolean;
  recordIncoming(conversationId: string, activity: Record<string, unknown>): string;
  close(): Promise<void>;
}

const CONVERSATION_LIMITS = [
  { max: 7, ms: 1_000 },
  { max: 8, ms: 2_000 },
  { max: 60, ms: 30_000 },
];

const OPENID_PATH = '/v1/.well-known/openidconfiguration';
const KEYS_PATH = '/v1/.well-known/keys';
const WEBCHAT_KID = 'emulator-webchat-key';

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

function sign(key: KeyObject, kid: string, payload: Record<string, unknown>): string {
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }));
  const body = b64url(JSON.stringify(payload));
  const signer = createSign('RSA-SHA256');
  signer.update(`${header}.${body}`);
  return `${header}.${body}.${b64url(signer.sign(key))}`;
}

export interface BotConnectorOptions {
  requireToken?: boolean;
  /** Rate windows and call times. */
  clock?: () => number;
  /** The time stamped on activities, when it differs (the sandbox's clock runs faster than Teams' limits). */
  stampClock?: () => number;
  restore?: StoredActivity[];
}

/** What the emulator holds between calls. */
interface ConnectorState {
  options: BotConnectorOptions;
  clock: () => number;
  stampClock: () => number;
  published: KeyPairKeyObjectResult;
  /** Published, endorsed for `webchat` only. */
  webchat: KeyPairKeyObjectResult;
  unpublished: KeyPairKeyObjectResult;
  kid: string;
  activities: Map<string, StoredActivity>;
  calls: ConnectorCall[];
  /** Per conversation: when each accepted call came, for the rate limits. */
  sent: Map<string, number[]>;
  faults: Array<{ status: number; retryAfter?: number }>;
  members: Map<string, Record<string, unknown>>;
  origin: string;
}

/** One Bot Connector API call, once its body has arrived. */
interface ConnectorRequest {
  req: http.IncomingMessage;
  path: string;
  conversationId: string;
  /** 'activities' or 'members', when the path names one. */
  collection: string | undefined;
  /** The activity or member id after the collection, still URL-encoded. */
  itemId: string | undefined;
  body: Buffer;
  answer: (status: number, body?: unknown, headers?: Record<string, string>) => void;
}

export async function startBotConnectorEmulator(options: BotConnectorOptions = {}): Promise<BotConnectorEmulator> {
  const clock = options.clock ?? Date.now;
  const state: ConnectorState = {
    options,
    clock,
    stampClock: options.stampClock ?? clock,
    published: generateKeyPairSync('rsa', { modulusLength: 2048 }),
    webchat: generateKeyPairSync('rsa', { modulusLength: 2048 }),
    unpublished: generateKeyPairSync('rsa', { modulusLength: 2048 }),
    kid: 'emulator-key-1',
    activities: new Map((options.restore ?? []).map((a) => [a.id, a])),
    calls: [],
    sent: new Map(),
    faults: [],
    members: new Map(),
    origin: '',
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(state, req, res, Buffer.concat(chunks)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return emulatorHandle(state, server);
}

function answer(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(text);
}

function cardProblems(activity: Record<string, unknown>): string[] {
  const attachments = (activity.attachments as Array<{ contentType?: string; content?: unknown }> | undefined) ?? [];
  return attachments.filter((a) => a.contentType === 'application/vnd.microsoft.card.adaptive').flatMap((a) => adaptiveCardProblems(a.content));
}

function handle(state: ConnectorState, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  // Where the Bot Framework publishes them (login.botframework.com/v1/.well-known/…): clients may derive one from the other.
  if (path === OPENID_PATH) {
    return answer(res, 200, { issuer: `${state.origin}/`, jwks_uri: `${state.origin}${KEYS_PATH}`, id_token_signing_alg_values_supported: ['RS256'] });
  }
  if (path === KEYS_PATH) {
    const jwk = (pair: KeyPairKeyObjectResult) => pair.publicKey.export({ format: 'jwk' });
    return answer(res, 200, {
      keys: [
        { ...jwk(state.published), kid: state.kid, use: 'sig', alg: 'RS256', endorsements: ['msteams'] },
        { ...jwk(state.webchat), kid: WEBCHAT_KID, use: 'sig', alg: 'RS256', endorsements: ['webchat'] },
      ],
    });
  }
  const m = /^\/v3\/conversations\/([^/]+)(?:\/(activities|members)(?:\/([^/]+))?)?$/.exec(path);
  const conversationId = m ? decodeURIComponent(m[1]!) : '';
  // Every API call is recorded with the status it got, so a test can read what the bot sent and how it went.
  const respond = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
    state.calls.push({ method: req.method ?? '', path, conversationId, status, at: state.clock(), authorization: req.headers.authorization });
    answer(res, status, payload, headers);
  };
  if (!m) return respond(404, { error: { code: 'NotFound', message: path } });
  if (state.options.requireToken !== false && !/^Bearer \S+/.test(req.headers.authorization ?? '')) {
    return respond(401, { message: 'Authorization has been denied for this request.' });
  }
  handleApiCall(state, { req, path, conversationId, collection: m[2], itemId: m[3], body, answer: respond });
}

function handleApiCall(state: ConnectorState, call: ConnectorRequest): void {
  const { req, conversationId, answer: respond } = call;
  if (call.collection === 'members' && req.method === 'GET') {
    const member = state.members.get(decodeURIComponent(call.itemId ?? ''));
    return member ? respond(200, member) : respond(404, { error: { code: 'MemberNotFoundInConversation', message: 'not found' } });
  }
  const fault = state.faults.shift();
  if (fault) {
    return respond(fault.status, { error: { code: 'Injected', message: `injected ${fault.status}` } }, fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {});
  }
  // Teams' per-bot, per-conversation limits: past any window the call is refused with a Retry-After.
  const now = state.clock();
  const times = (state.sent.get(conversationId) ?? []).filter((t) => t > now - 30_000);
  if (CONVERSATION_LIMITS.some(({ max, ms }) => times.filter((t) => t > now - ms).length >= max)) {
    return respond(429, { error: { code: 'Throttled', message: 'Too many requests' } }, { 'retry-after': '1' });
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(call.body.toString('utf8') || '{}') as Record<string, unknown>;
  } catch {
    return respond(400, { error: { code: 'BadSyntax', message: 'invalid JSON' } });
  }
  const problems = cardProblems(body);
  if (problems.length > 0) return respond(400, { error: { code: 'BadArgument', message: problems.join('; ') } });
  times.push(now);
  state.sent.set(conversationId, times);
  writeActivity(state, call, body);
}

/** POST .../activities[/{id}] sends (a reply to an activity is a new message in the same conversation); PUT edits. */
function writeActivity(state: ConnectorState, call: ConnectorRequest, body: Record<string, unknown>): void {
  const { req, conversationId, answer: respond } = call;
  if (req.method === 'POST' && call.collection === 'activities') {
    const id = `1:${randomUUID()}`;
    state.activities.set(id, { id, conversationId, activity: { ...body, id }, versions: [], at: state.stampClock() });
    return respond(201, { id });
  }
  if (req.method === 'PUT' && call.collection === 'activities' && call.itemId) {
    const id = decodeURIComponent(call.itemId);
    const existing = state.activities.get(id);
    if (!existing || existing.conversationId !== conversationId) return respond(404, { error: { code: 'ActivityNotFoundInConversation', message: id } });
    existing.versions.push(existing.activity);
    existing.activity = { ...body, id };
    return respond(200, { id });
  }
  respond(405, { error: { code: 'MethodNotAllowed', message: req.method } });
}

function emulatorHandle(state: ConnectorState, server: http.Server): BotConnectorEmulator {
  const { origin, activities } = state;
  return {
    url: `${origin}/`,
    openIdMetadataUrl: `${origin}${OPENID_PATH}`,
    issuer: 'https://api.botframework.com',
    activities: (conversationId) => [...activities.values()].filter((a) => conversationId === undefined || a.conversationId === conversationId).sort((a, b) => a.at - b.at),
    calls: () => [...state.calls],
    failNext(status, retryAfterSeconds) {
      state.faults.push({ status, ...(retryAfterSeconds !== undefined ? { retryAfter: retryAfterSeconds } : {}) });
    },
    addMember(member) {
      state.members.set(member.id, { ...member, userRole: 'user' });
    },
    mintToken({ appId, serviceUrl, expiresInSeconds = 3600, forged = false, issuer = 'https://api.botframework.com', webchatKey = false }) {
      const iat = Math.floor(Date.now() / 1000);
      const key = forged ? state.unpublished.privateKey : webchatKey ? state.webchat.privateKey : state.published.privateKey;
      return sign(key, webchatKey ? WEBCHAT_KID : state.kid, {
        iss: issuer,
        aud: appId,
        serviceurl: serviceUrl,
        nbf: iat - 60,
        iat: iat - 60,
        exp: iat + expiresInSeconds,
      });
    },
    replaceActivity(id, activity) {
      const existing = activities.get(id);
      if (!existing) return false;
      existing.versions.push(existing.activity);
      existing.activity = { ...activity, id };
      return true;
    },
    recordIncoming(conversationId, activity) {
      const id = `in:${randomUUID()}`;
      activities.set(id, { id, conversationId, activity: { ...activity, id }, versions: [], at: state.stampClock() });
      return id;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
