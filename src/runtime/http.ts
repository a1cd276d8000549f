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

export interface HttpServer {
  /** Adds a handler for an exact path (chat receivers mount here: /slack/events, /api/messages). */
  mount(pathname: string, handler: RequestHandler): void;
  readonly metrics: Registry;
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

export function createHttpServer(options: { log: Logger; readiness: ReadinessCheck[]; metrics?: Registry }): HttpServer {
  const { log } = options;
  const metrics = options.metrics ?? new Registry();
  collectDefaultMetrics({ register: metrics, prefix: 'patchbay_' });
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
  routes.set('/metrics', async (_req, res) => {
    const body = await metrics.metrics();
    res.writeHead(200, { 'content-type': metrics.contentType });
    res.end(body);
  });

  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    const handler = routes.get(pathname);
    if (!handler) {
      sendJson(res, 404, { error: 'not found', path: pathname });
      return;
    }
    Promise.resolve(handler(req, res)).catch((error: unknown) => {
      log.error({ err: error, path: pathname }, 'request handler failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.end();
    });
  });
  // Slack and Teams keep connections alive; a restart must not wait on idle sockets forever.
  server.keepAliveTimeout = 5_000;

  return {
    mount(pathname, handler) {
      routes.set(pathname, handler);
    },
    metrics,
    async listen(port, host = '0.0.0.0') {
      server.listen(port, host);
      await once(server, 'listening');
      return (server.address() as AddressInfo).port;
    },
    async close() {
      if (!server.listening) return;
      const closed = once(server, 'close');
      server.close();
      server.closeIdleConnections();
      await closed;
    },
  };
}
