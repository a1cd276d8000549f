/**
 * Who may use the sandbox page and its API. The API acts as anyone in the directory (an engineer holding a
 * release, a champion confirming a pilot) and its state lists every person's name and email, so being reachable
 * is not enough:
 *
 * - Host must name this machine (loopback, or the HOST it was told to listen on). A DNS-rebinding page reaches
 *   us under its own domain name; refusing that name keeps it from reading the page, its token or the state.
 * - Origin, when a browser sends one, must be the page's own: another site's fetch or form is refused.
 * - A POST must be `application/json`: what a form or a "simple" cross-site request can send is refused.
 * - Every API call carries the token minted at this start, which only the served page holds (in a meta tag;
 *   EventSource cannot send headers, so the event stream takes it as `?token=`).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type http from 'node:http';
import type { RequestHandler } from '../runtime/http.ts';

export const PAGE_TOKEN_HEADER = 'x-patchbay-sandbox-token';
/** What index.html's `patchbay-sandbox-token` meta tag holds until the page is served with this start's token. */
export const PAGE_TOKEN_PLACEHOLDER = '__PATCHBAY_SANDBOX_TOKEN__';

export interface PageRefusal {
  status: 403 | 415;
  error: string;
}

export interface PageGuard {
  readonly token: string;
  /** The page and its assets: the Host check only (the page is what hands out the token). */
  checkPage(req: http.IncomingMessage): PageRefusal | undefined;
  /** The API and the event stream: Host, Origin, content type (POST) and token. */
  checkApi(req: http.IncomingMessage): PageRefusal | undefined;
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1']);
const WILDCARDS = new Set(['0.0.0.0', '::']);

/** The host name of a Host header or URL host, lower-cased, without port or IPv6 brackets. */
function hostnameOf(host: string): string | undefined {
  try {
    const name = new URL(`http://${host}`).hostname.toLowerCase();
    return name.startsWith('[') ? name.slice(1, -1) : name;
  } catch {
    return undefined;
  }
}

/**
 * `listenHost` is the configured HOST, if any. Bound to every interface (0.0.0.0), the page may be opened by any
 * address of this machine, so any IP literal is accepted: a rebinding attack always arrives under a domain name.
 */
export function createPageGuard(options: { listenHost?: string | undefined; token?: string }): PageGuard {
  const token = options.token ?? randomBytes(32).toString('base64url');
  const expected = Buffer.from(token);
  const configured = options.listenHost ? hostnameOf(options.listenHost) : undefined;
  const anyAddress = configured !== undefined && WILDCARDS.has(configured);

  const hostAllowed = (name: string | undefined): boolean => {
    if (name === undefined) return false;
    if (LOOPBACK_NAMES.has(name) || (isIP(name) === 4 && name.startsWith('127.'))) return true;
    if (name === configured) return true;
    return anyAddress && isIP(name) !== 0;
  };

  const checkHost = (req: http.IncomingMessage): PageRefusal | undefined =>
    hostAllowed(hostnameOf(req.headers.host ?? '')) ? undefined : { status: 403, error: 'this page answers only to its own address (Host refused)' };

  const checkOrigin = (req: http.IncomingMessage): PageRefusal | undefined => {
    const origin = req.headers.origin;
    if (origin === undefined) return undefined;
    let sameHost = false;
    try {
      sameHost = new URL(origin).host.toLowerCase() === (req.headers.host ?? '').toLowerCase();
    } catch {
      // "null" (a sandboxed frame, a file) and anything unparsable is foreign.
    }
    return sameHost ? undefined : { status: 403, error: 'requests from other pages are refused (Origin)' };
  };

  const checkType = (req: http.IncomingMessage): PageRefusal | undefined => {
    if (req.method !== 'POST') return undefined;
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    return type === 'application/json' ? undefined : { status: 415, error: 'the page API takes application/json only' };
  };

  const checkToken = (req: http.IncomingMessage): PageRefusal | undefined => {
    const header = req.headers[PAGE_TOKEN_HEADER];
    const given = typeof header === 'string' ? header : (new URL(req.url ?? '/', 'http://localhost').searchParams.get('token') ?? '');
    const candidate = Buffer.from(given);
    const ok = candidate.length === expected.length && timingSafeEqual(candidate, expected);
    return ok ? undefined : { status: 403, error: 'missing or wrong page token: reload the sandbox page' };
  };

  return {
    token,
    checkPage: checkHost,
    checkApi: (req) => checkHost(req) ?? checkOrigin(req) ?? checkType(req) ?? checkToken(req),
  };
}

/** The page with this start's token in it (base64url: nothing to escape). */
export function pageWithToken(html: Buffer, token: string): Buffer {
  return Buffer.from(html.toString('utf8').replace(PAGE_TOKEN_PLACEHOLDER, token));
}

/** The served page: never cached (a new start mints a new token), never framed by another page. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'content-security-policy': "frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** Wraps each handler in its check: the page and assets need only the Host, everything else is API. */
export function guardHandlers(handlers: Map<string, RequestHandler>, guard: PageGuard, pageRoutes: readonly string[]): Map<string, RequestHandler> {
  const guarded = new Map<string, RequestHandler>();
  for (const [route, handler] of handlers) {
    const check = pageRoutes.includes(route) ? guard.checkPage : guard.checkApi;
    guarded.set(route, (req, res) => {
      const refusal = check(req);
      if (!refusal) return handler(req, res);
      const text = JSON.stringify({ ok: false, error: refusal.error });
      res.writeHead(refusal.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
    });
  }
  return guarded;
}
