import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../log.ts';

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

/** A dependency /readyz checks; `check` rejects (or times out) when it is not usable. */
export interface ReadinessCheck {
  name: string;
  check: () => Promise<unknown>;
}

/** How long a client may take, and how long a stop waits for answers still being written. */
export interface HttpLimits {
  /** Whole request (headers and body) must arrive within this; Node's default is 300 s, a slow-body DoS. */
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  /** After close() began: answers still open this long (a stream nobody ended) are cut. */
  closeGraceMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { requestTimeoutMs: 30_000, headersTimeoutMs: 15_000, closeGraceMs: 5_000 };

export interface HttpServer {
  /** Adds a handler for an exact path (chat receivers mount here: /slack/events, /api/messages). */
  mount(pathname: string, handler: RequestHandler): void;
  /** Runs first when close() is called: for answers that never end by themselves (event streams). */
  beforeClose(hook: () => void | Promise<void>): void;
  readonly metrics: Registry;
  readonly server: http.Server;
  listen(port: number, host?: string): Promise<number>;
  close(): Promise<void>;
}

const READINESS_TIMEOUT_MS = 2_000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A registry with the process's default metrics, shared by the public server and a separate metrics port. */
export function createMetricsRegistry(): Registry {
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics, prefix: 'patchbay_' });
  return metrics;
}

function metricsHandler(metrics: Registry): RequestHandler {
  return async (_req, res) => {
    const body = await metrics.metrics();
    res.writeHead(200, { 'content-type': metrics.contentType });
    res.end(body);
  };
}

/**
 * A plain router on node:http. A handler that throws, at once or later, costs its own request a 500, never the
 * process: one malformed request must not take the bot down.
 */
function routedServer(log: Logger, routes: Map<string, RequestHandler>, limits: HttpLimits) {
  let closing = false;
  const hooks: Array<() => void | Promise<void>> = [];
  const server = http.createServer(
    {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      // Node checks both timeouts only this often (default 30 s), which would stretch them.
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 2))),
    },
    (req, res) => {
      // During a stop, answers still given close their connection, so nothing idles past the stop.
      if (closing) res.setHeader('connection', 'close');
      const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
      const handler = routes.get(pathname);
      if (!handler) return sendJson(res, 404, { error: 'not found', path: pathname });
      const failed = (error: unknown) => {
        log.error({ err: error, path: pathname, method: req.method }, 'request handler failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
        else res.end();
      };
      try {
        Promise.resolve(handler(req, res)).catch(failed);
      } catch (error) {
        failed(error);
      }
    },
  );
  // Slack and Teams keep connections alive; a restart must not wait on idle sockets forever.
  server.keepAliveTimeout = 5_000;

  return {
    server,
    beforeClose(hook: () => void | Promise<void>) {
      hooks.push(hook);
    },
    async listen(port: number, host = '0.0.0.0') {
      server.listen(port, host);
      await once(server, 'listening');
      return (server.address() as AddressInfo).port;
    },
    async close() {
      if (!server.listening) return;
      closing = true;
      for (const hook of hooks.splice(0)) {
        try {
          await hook();
        } catch (error) {
          log.warn({ err: error }, 'http: ending open answers before the stop failed');
        }
      }
      const closed = once(server, 'close');
      server.close();
      // Answers that just ended leave their keep-alive sockets idle a moment later; anything still open after the
      // grace is cut, so a stop never waits on a client.
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      const cut = setTimeout(() => {
        log.warn('http: answers still open at shutdown were cut');
        server.closeAllConnections();
      }, limits.closeGraceMs);
      try {
        server.closeIdleConnections();
        await closed;
      } finally {
        clearInterval(sweep);
        clearTimeout(cut);
      }
    },
  };
}

export function createHttpServer(options: {
  log: Logger;
  readiness: ReadinessCheck[];
  metrics?: Registry;
  /** false when /metrics has a port of its own (METRICS_PORT), so it is not also public. */
  serveMetrics?: boolean;
  limits?: Partial<HttpLimits>;
}): HttpServer {
  const metrics = options.metrics ?? createMetricsRegistry();
  const routes = new Map<string, RequestHandler>();

  routes.set('/healthz', (_req, res) => sendJson(res, 200, { status: 'ok' }));
  routes.set('/readyz', async (_req, res) => {
    const results = await Promise.all(
      options.readiness.map(async ({ name, check }) => {
        try {
          await withTimeout(check(), READINESS_TIMEOUT_MS);
          return { name, ok: true as const };
        } catch (error) {
          return { name, ok: false as const, error: error instanceof Error ? error.message : String(error) };
        }
      }),
    );
    const ready = results.every((r) => r.ok);
    sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', checks: results });
  });
  if (options.serveMetrics !== false) routes.set('/metrics', metricsHandler(metrics));

  const routed = routedServer(options.log, routes, { ...DEFAULT_HTTP_LIMITS, ...options.limits });
  return {
    ...routed,
    mount(pathname, handler) {
      routes.set(pathname, handler);
    },
    metrics,
  };
}

/** /metrics alone, for a port that only Prometheus reaches (METRICS_PORT). */
export function createMetricsServer(options: { log: Logger; metrics: Registry; limits?: Partial<HttpLimits> }): Pick<HttpServer, 'server' | 'listen' | 'close'> {
  const routes = new Map([['/metrics', metricsHandler(options.metrics)]]);
  const { server, listen, close } = routedServer(options.log, routes, { ...DEFAULT_HTTP_LIMITS, ...options.limits });
  return { server, listen, close };
}
