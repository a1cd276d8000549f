/** The page itself (its files), what it draws (state) and its change stream. */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { PAGE_HEADERS, pageWithToken } from '../page-guard.ts';
import type { RouteDeps, Router } from './deps.ts';
import { sendJson } from './http.ts';
import { sandboxState } from './state.ts';

const require = createRequire(import.meta.url);
const PAGE_DIR = new URL('../page/', import.meta.url);
const ASSETS: Record<string, { file: URL | string; type: string }> = {
  '/': { file: new URL('index.html', PAGE_DIR), type: 'text/html; charset=utf-8' },
  '/sandbox/assets/app.js': { file: new URL('app.js', PAGE_DIR), type: 'text/javascript; charset=utf-8' },
  '/sandbox/assets/style.css': { file: new URL('style.css', PAGE_DIR), type: 'text/css; charset=utf-8' },
  '/sandbox/assets/adaptivecards.js': { file: require.resolve('adaptivecards/dist/adaptivecards.min.js'), type: 'text/javascript; charset=utf-8' },
};

/** The page's files: served without the page token (the page is what brings it). */
export const PAGE_ASSET_ROUTES = Object.keys(ASSETS);

export function register(router: Router, deps: RouteDeps): void {
  for (const [route, asset] of Object.entries(ASSETS)) {
    router.set(route, async (_req, res) => {
      const file = await readFile(asset.file);
      const body = route === '/' ? pageWithToken(file, deps.options.pageToken) : file;
      res.writeHead(200, { 'content-type': asset.type, 'content-length': body.length, 'cache-control': 'no-cache', ...(route === '/' ? PAGE_HEADERS : {}) });
      res.end(body);
    });
  }
  router.set('/sandbox/api/state', (_req, res) => sendJson(res, 200, sandboxState(deps)));
  router.set('/sandbox/events', (req, res) => deps.changes.subscribe(req, res));
}
