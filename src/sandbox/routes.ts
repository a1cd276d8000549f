/**
 * The sandbox page and its API (contract: ./api-types.ts). Reading assembles what the emulators hold; writing
 * sends what Slack or Teams would send to this process's own /slack/events and /api/messages (signed, or with a
 * Bot Framework token), so every click goes through Bolt's signature check or the Teams adapter's token check
 * and the same listeners and use-cases as in production.
 *
 * The routes come in families (./routes/<family>.ts), each `register(router, deps)`: a new family is one more
 * entry in ROUTE_FAMILIES.
 */
import { liveConversationIds } from '../db/teams-conversations-repo.ts';
import type { RequestHandler } from '../runtime/http.ts';
import { createPageGuard, guardHandlers } from './page-guard.ts';
import { startChangeFeed } from './routes/changes.ts';
import type { LocalEphemeral, RegisterRoutes, RouteDeps, RoutesOptions } from './routes/deps.ts';
import { postRoute } from './routes/http.ts';
import * as clockRoutes from './routes/clock.ts';
import * as pageRoutes from './routes/page.ts';
import * as slackRoutes from './routes/slack.ts';
import * as teamsRoutes from './routes/teams.ts';
import { addNinjaOneRoutes } from './ninjaone-routes.ts';
import { addTacticalRoutes } from './tactical-routes.ts';

export type { RoutesOptions } from './routes/deps.ts';

const ROUTE_FAMILIES: RegisterRoutes[] = [
  pageRoutes.register,
  slackRoutes.register,
  teamsRoutes.register,
  clockRoutes.register,
  (router, deps) => addTacticalRoutes(router, deps.sandbox.tactical),
  (router, deps) => addNinjaOneRoutes(router, deps.sandbox.ninjaone),
];

export interface SandboxRoutes {
  handlers: Map<string, RequestHandler>;
  /** Installs the bot in each client's Teams conversations, as a champion or user adding the app would. */
  installTeams(): Promise<void>;
  close(): Promise<void>;
}

export function sandboxRoutes(options: RoutesOptions): SandboxRoutes {
  const { sandbox, log } = options;
  const closedViews = new Set<string>();
  const localEphemerals: LocalEphemeral[] = [];
  const deps: RouteDeps = {
    options,
    sandbox,
    log,
    directory: sandbox.directory,
    installs: sandbox.directory.teamsInstalls(),
    closedViews,
    localEphemerals,
    changes: startChangeFeed(sandbox, () => `${localEphemerals.length}:${closedViews.size}`),
    post: (schema, act) => postRoute(log, schema, act),
  };
  const handlers = new Map<string, RequestHandler>();
  for (const register of ROUTE_FAMILIES) register(handlers, deps);

  return {
    handlers: guardHandlers(handlers, createPageGuard({ listenHost: options.listenHost, token: options.pageToken }), pageRoutes.PAGE_ASSET_ROUTES),
    async installTeams() {
      // Once per conversation, as a real install happens once: a restarted sandbox already has its references.
      await teamsRoutes.installTeamsBot(deps, new Set(await liveConversationIds(options.database.db)));
    },
    async close() {
      deps.changes.close();
    },
  };
}
