/**
 * A static stand-in for the sandbox server, for working on the sandbox page (src/sandbox/page/) without Slack,
 * Teams, a database or Redis: it serves the page, the adaptivecards bundle and a fixed SandboxState, and answers
 * every POST with `{ok: true, detail: "preview"}`. Nothing the bot does is emulated here.
 *
 *   npx tsx test/support/sandbox-page-preview.ts [--port 4477] [--state test/fixtures/sandbox/state.json]
 *
 * Two small liberties make the modal flow checkable by hand: Close or Submit drops the modal from the state (and
 * announces the change on the event stream, as the real server would), and submitting a hold reason of "error"
 * answers with a per-block error, so the page's handling of `response_action: errors` can be seen.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SandboxAnswer, SandboxState } from '../../src/sandbox/api-types.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'src/sandbox/page/index.html', type: 'text/html; charset=utf-8' },
  '/sandbox/assets/app.js': { file: 'src/sandbox/page/app.js', type: 'text/javascript; charset=utf-8' },
  '/sandbox/assets/style.css': { file: 'src/sandbox/page/style.css', type: 'text/css; charset=utf-8' },
  '/sandbox/assets/adaptivecards.js': { file: 'node_modules/adaptivecards/dist/adaptivecards.min.js', type: 'text/javascript; charset=utf-8' },
};

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] ? process.argv[at + 1]! : fallback;
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  if (chunks.length === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  // no-store: the point of the preview is editing the page and reloading.
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export async function startPreview(options: { port: number; statePath: string }) {
  const state = JSON.parse(await readFile(options.statePath, 'utf8')) as SandboxState;
  const listeners = new Set<ServerResponse>();
  const changed = () => {
    state.seq += 1;
    for (const res of listeners) res.write(`event: change\ndata: ${JSON.stringify({ seq: state.seq })}\n\n`);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://preview');
    const asset = req.method === 'GET' ? ASSETS[url.pathname] : undefined;
    if (asset) {
      readFile(resolve(root, asset.file)).then(
        (body) => send(res, 200, asset.type, body),
        (error: Error) => send(res, 500, 'text/plain', `${asset.file}: ${error.message}`),
      );
      return;
    }
    if (req.method === 'GET' && url.pathname === '/sandbox/api/state') {
      send(res, 200, 'application/json', JSON.stringify(state));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/sandbox/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(': preview\n\n');
      listeners.add(res);
      req.on('close', () => listeners.delete(res));
      return;
    }
    if (req.method === 'POST' && url.pathname.startsWith('/sandbox/api/')) {
      void readBody(req).then((body) => {
        const answer: SandboxAnswer = { ok: true, detail: 'preview' };
        const kind = url.pathname.slice('/sandbox/api/'.length);
        const values = body.values as Record<string, unknown> | undefined;
        if (kind === 'slack/view-submit' && values?.reason === 'error') {
          answer.errors = { reason: 'Preview: this is how a per-block error from the bot looks.' };
        } else if (kind === 'slack/view-submit' || kind === 'slack/view-close') {
          const before = state.slack.modals.length;
          state.slack.modals = state.slack.modals.filter((m) => m.id !== body.viewId);
          if (state.slack.modals.length !== before) changed();
        }
        process.stdout.write(`POST ${url.pathname} ${JSON.stringify(body)}\n`);
        send(res, 200, 'application/json', JSON.stringify(answer));
      });
      return;
    }
    send(res, 404, 'text/plain', 'not found');
  });
  await new Promise<void>((ok) => server.listen(options.port, '127.0.0.1', ok));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://127.0.0.1:${port}/`,
    /** The served state: a test may change it and then call `changed()` to announce it, as the server would. */
    state,
    changed,
    close: () =>
      new Promise<void>((ok) => {
        for (const res of listeners) res.end();
        server.close(() => ok());
      }),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const preview = await startPreview({
    port: Number(option('port', '4477')),
    statePath: resolve(option('state', resolve(root, 'test/fixtures/sandbox/state.json'))),
  });
  process.stdout.write(`sandbox page preview on ${preview.url}\n`);
}
