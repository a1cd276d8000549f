/** users.* (list with cursor paging, lookupByEmail, info) and auth.test: who is in the workspace, and who the bot is. */
import { SlackError, str, type Methods } from './protocol.ts';
import type { SeedUser } from './types.ts';
import type { Workspace } from './workspace.ts';

function userJson(ws: Workspace, u: SeedUser): Record<string, unknown> {
  return {
    id: u.id,
    team_id: ws.team.id,
    name: u.name,
    deleted: u.deleted ?? false,
    real_name: u.real_name ?? u.name,
    tz: u.tz ?? 'America/Chicago',
    tz_label: u.tz ?? 'America/Chicago',
    tz_offset: u.tz_offset ?? -21600,
    is_admin: u.is_admin ?? false,
    is_bot: u.is_bot ?? false,
    is_app_user: false,
    updated: 1_700_000_000,
    profile: {
      real_name: u.real_name ?? u.name,
      display_name: u.name,
      ...(u.email !== undefined ? { email: u.email } : {}),
      ...(u.is_bot ? { bot_id: ws.bot.botId } : {}),
      team: ws.team.id,
    },
  };
}

/** The index to start a users.list page at: cursors are `user:<id>` in base64, as opaque as Slack's. */
function cursorStart(all: readonly SeedUser[], cursor: string | undefined): number {
  if (cursor === undefined || cursor === '') return 0;
  const m = /^user:(.+)$/.exec(Buffer.from(cursor, 'base64').toString('utf8'));
  const idx = m ? all.findIndex((u) => u.id === m[1]) : -1;
  if (idx < 0) throw new SlackError('invalid_cursor');
  return idx;
}

export function usersMethods(ws: Workspace): Methods {
  return {
    'auth.test': () => ({
      url: `https://${ws.team.domain}.slack.com/`,
      team: ws.team.name,
      user: ws.bot.name,
      team_id: ws.team.id,
      user_id: ws.bot.userId,
      bot_id: ws.bot.botId,
      is_enterprise_install: false,
    }),

    'users.list': (args) => {
      const all = [...ws.users.values()].sort((a, b) => a.id.localeCompare(b.id));
      const limitArg = Number(str(args.limit) ?? 0);
      // No limit: Slack tries to return everything; explicit limits are capped at 1000.
      const limit = !Number.isFinite(limitArg) || limitArg <= 0 ? all.length : Math.min(limitArg, 1000);
      const start = cursorStart(all, str(args.cursor));
      const next = all[start + limit];
      return {
        members: all.slice(start, start + limit).map((u) => userJson(ws, u)),
        cache_ts: Math.floor(ws.clock() / 1000),
        response_metadata: { next_cursor: next ? Buffer.from(`user:${next.id}`).toString('base64') : '' },
      };
    },

    'users.lookupByEmail': (args) => {
      const email = str(args.email);
      if (email === undefined || email === '') throw new SlackError('invalid_arguments');
      const u = [...ws.users.values()].find((x) => x.email?.toLowerCase() === email.toLowerCase() && !x.deleted);
      if (!u) throw new SlackError('users_not_found');
      return { user: userJson(ws, u) };
    },

    'users.info': (args) => {
      const u = ws.users.get(str(args.user) ?? '');
      if (!u) throw new SlackError('user_not_found');
      return { user: userJson(ws, u) };
    },
  };
}
