/** What each family of page routes is handed (`register(router, deps)`), and what the page routes are built from. */
import type { z } from 'zod';
import type { Database } from '../../db/client.ts';
import type { Logger } from '../../log.ts';
import type { RequestHandler } from '../../runtime/http.ts';
import type { SandboxAnswer } from '../api-types.ts';
import type { SandboxDirectory, TeamsInstall } from '../directory.ts';
import type { Sandbox } from '../sandbox-types.ts';
import type { ChangeFeed } from './changes.ts';

export interface RoutesOptions {
  sandbox: Sandbox;
  database: Database;
  log: Logger;
  /** This process's HTTP origin, where /slack/events and /api/messages are served. */
  appUrl: string;
  signingSecret: string;
  appId: string;
  /** The token the served page carries and every page-API call must send (src/sandbox/page-guard.ts). */
  pageToken: string;
  /** The HOST the server was told to listen on, if any: a Host header naming it is this machine too. */
  listenHost?: string | undefined;
}

/** An answer Slack gave in a slash command's HTTP response: Slack shows it only to whoever typed the command. */
export interface LocalEphemeral {
  channel: string;
  user: string;
  text: string;
  blocks: unknown[];
  at: number;
}

export interface RouteDeps {
  options: RoutesOptions;
  sandbox: Sandbox;
  log: Logger;
  /** As last loaded: the clock route reloads it before a jump, and every later read sees the new one. */
  directory: SandboxDirectory;
  installs: TeamsInstall[];
  /** Modals the page closed: the emulator keeps every view it was sent, Slack forgets a closed one. */
  closedViews: Set<string>;
  localEphemerals: LocalEphemeral[];
  changes: ChangeFeed;
  /** A POST route checked against `schema`, answering with what `act` returns. */
  post<T>(schema: z.ZodType<T>, act: (input: T) => Promise<SandboxAnswer>): RequestHandler;
}

/** Route path to handler; a family adds its routes to it. */
export type Router = Map<string, RequestHandler>;

export type RegisterRoutes = (router: Router, deps: RouteDeps) => void;
