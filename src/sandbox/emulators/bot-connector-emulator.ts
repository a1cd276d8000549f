/**
 * A local Bot Connector for proactive sends, used as the conversation reference's serviceUrl. It answers the
 * calls the bot makes the way the service does (POST /v3/conversations/{id}/activities -> {id}, PUT
 * .../activities/{activityId}, POST .../activities/{replyToId}), and enforces what Teams enforces so a test can fail: the per-conversation
 * limits (7 in 1 s, 8 in 2 s, 60 in 30 s -> 429 with Retry-After), cards over 28 KB or failing Adaptive Card 1.5
 * validation (400), an unknown conversation (404), and a missing bearer token (401).
 *
 * It is also the Bot Framework's token issuer for inbound tests: it publishes an OpenID configuration and a JWKS
 * (with the `msteams` endorsement), and mints RS256 tokens with node:crypto, valid, expired, or signed by a key
 * it does not publish.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createSign, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
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
  mintToken(claims: { appId: string; serviceUrl: string; expiresInSeconds?: number; forged?: boolean; issuer?: string }): string;
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

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

function sign(key: KeyObject, kid: string, payload: Record<string, unknown>): string {
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }));
  const body = b64url(JSON.stringify(payload));
  const signer = createSign('RSA-SHA256');
  signer.update(`${header}.${body}`);
  return `${header}.${body}.${b64url(signer.sign(key))}`;
}

export async function startBotConnectorEmulator(
  options: {
    requireToken?: boolean;
    /** Rate windows and call times. */
    clock?: () => number;
    /** The time stamped on activities, when it differs (the sandbox's clock runs faster than Teams' limits). */
    stampClock?: () => number;
    restore?: StoredActivity[];
  } = {},
): Promise<BotConnectorEmulator> {
  const clock = options.clock ?? Date.now;
  const stampClock = options.stampClock ?? clock;
  const published = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const unpublished = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'emulator-key-1';
  const activities = new Map<string, StoredActivity>();
  for (const a of options.restore ?? []) activities.set(a.id, a);
  const calls: ConnectorCall[] = [];
  const sent = new Map<string, number[]>();
  const faults: Array<{ status: number; retryAfter?: number }> = [];
  const members = new Map<string, Record<string, unknown>>();
  let origin = '';

  const answer = (res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(text);
  };

  const cardProblems = (activity: Record<string, unknown>): string[] => {
    const attachments = (activity.attachments as Array<{ contentType?: string; content?: unknown }> | undefined) ?? [];
    return attachments.filter((a) => a.contentType === 'application/vnd.microsoft.card.adaptive').flatMap((a) => adaptiveCardProblems(a.content));
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const path = url.pathname;
      if (path === '/.well-known/openid-configuration') return answer(res, 200, { issuer: `${origin}/`, jwks_uri: `${origin}/keys`, id_token_signing_alg_values_supported: ['RS256'] });
      if (path === '/keys') {
        const jwk = published.publicKey.export({ format: 'jwk' });
        return answer(res, 200, { keys: [{ ...jwk, kid, use: 'sig', alg: 'RS256', endorsements: ['msteams'] }] });
      }
      const m = /^\/v3\/conversations\/([^/]+)(?:\/(activities|members)(?:\/([^/]+))?)?$/.exec(path);
      const conversationId = m ? decodeURIComponent(m[1]!) : '';
      const record = (status: number) => calls.push({ method: req.method ?? '', path, conversationId, status, at: clock(), authorization: req.headers.authorization });
      if (!m) {
        record(404);
        return answer(res, 404, { error: { code: 'NotFound', message: path } });
      }
      if (options.requireToken !== false && !/^Bearer \S+/.test(req.headers.authorization ?? '')) {
        record(401);
        return answer(res, 401, { message: 'Authorization has been denied for this request.' });
      }
      if (m[2] === 'members' && req.method === 'GET') {
        const member = members.get(decodeURIComponent(m[3] ?? ''));
        record(member ? 200 : 404);
        return member ? answer(res, 200, member) : answer(res, 404, { error: { code: 'MemberNotFoundInConversation', message: 'not found' } });
      }
      const fault = faults.shift();
      if (fault) {
        record(fault.status);
        return answer(res, fault.status, { error: { code: 'Injected', message: `injected ${fault.status}` } }, fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {});
      }
      // Teams' per-bot, per-conversation limits: past any window the call is refused with a Retry-After.
      const now = clock();
      const times = (sent.get(conversationId) ?? []).filter((t) => t > now - 30_000);
      if (CONVERSATION_LIMITS.some(({ max, ms }) => times.filter((t) => t > now - ms).length >= max)) {
        record(429);
        return answer(res, 429, { error: { code: 'Throttled', message: 'Too many requests' } }, { 'retry-after': '1' });
      }
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        record(400);
        return answer(res, 400, { error: { code: 'BadSyntax', message: 'invalid JSON' } });
      }
      const problems = cardProblems(body);
      if (problems.length > 0) {
        record(400);
        return answer(res, 400, { error: { code: 'BadArgument', message: problems.join('; ') } });
      }
      times.push(now);
      sent.set(conversationId, times);
      // POST .../activities/{id} is "reply to activity": a new message in the same conversation.
      if (req.method === 'POST' && m[2] === 'activities') {
        const id = `1:${randomUUID()}`;
        activities.set(id, { id, conversationId, activity: { ...body, id }, versions: [], at: stampClock() });
        record(201);
        return answer(res, 201, { id });
      }
      if (req.method === 'PUT' && m[2] === 'activities' && m[3]) {
        const id = decodeURIComponent(m[3]);
        const existing = activities.get(id);
        if (!existing || existing.conversationId !== conversationId) {
          record(404);
          return answer(res, 404, { error: { code: 'ActivityNotFoundInConversation', message: id } });
        }
        existing.versions.push(existing.activity);
        existing.activity = { ...body, id };
        record(200);
        return answer(res, 200, { id });
      }
      record(405);
      return answer(res, 405, { error: { code: 'MethodNotAllowed', message: req.method } });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: `${origin}/`,
    openIdMetadataUrl: `${origin}/.well-known/openid-configuration`,
    issuer: 'https://api.botframework.com',
    activities: (conversationId) => [...activities.values()].filter((a) => conversationId === undefined || a.conversationId === conversationId).sort((a, b) => a.at - b.at),
    calls: () => [...calls],
    failNext(status, retryAfterSeconds) {
      faults.push({ status, ...(retryAfterSeconds !== undefined ? { retryAfter: retryAfterSeconds } : {}) });
    },
    addMember(member) {
      members.set(member.id, { ...member, userRole: 'user' });
    },
    mintToken({ appId, serviceUrl, expiresInSeconds = 3600, forged = false, issuer = 'https://api.botframework.com' }) {
      const iat = Math.floor(Date.now() / 1000);
      return sign(forged ? unpublished.privateKey : published.privateKey, kid, {
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
      activities.set(id, { id, conversationId, activity: { ...activity, id }, versions: [], at: stampClock() });
      return id;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
