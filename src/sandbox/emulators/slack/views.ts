/** views.*: open a modal (once per trigger_id, within its TTL), update one (hash-checked), publish a home tab. */
import { jsonArg, SlackError, str, type Methods } from './protocol.ts';
import type { StoredView } from './types.ts';
import type { Workspace } from './workspace.ts';

export function viewsMethods(ws: Workspace): Methods {
  return {
    'views.open': (args) => {
      const triggerId = str(args.trigger_id);
      const trig = triggerId !== undefined ? ws.triggers.get(triggerId) : undefined;
      if (triggerId === undefined || trig === undefined) throw new SlackError('invalid_trigger_id');
      if (trig.used) throw new SlackError('exchanged_trigger_id');
      if (ws.clock() - trig.issuedAt > ws.triggerTtlMs) throw new SlackError('expired_trigger_id');
      const view = ws.validateView(jsonArg(args, 'view', 'invalid_arguments'), 'modal');
      trig.used = true;
      const id = ws.nextViewId();
      const stored: StoredView = {
        id, type: 'modal', user: trig.user, view, hash: ws.newHash(), updates: 0, trigger_id: triggerId,
        ...(typeof view.external_id === 'string' ? { external_id: view.external_id } : {}),
      };
      ws.views.set(id, stored);
      return { view: ws.viewJson(stored) };
    },

    'views.update': (args) => {
      const viewId = str(args.view_id);
      const externalId = str(args.external_id);
      const stored = viewId !== undefined
        ? ws.views.get(viewId)
        : [...ws.views.values()].find((v) => externalId !== undefined && v.external_id === externalId);
      if (!stored) throw new SlackError('not_found');
      const hash = str(args.hash);
      if (hash !== undefined && hash !== '' && hash !== stored.hash) throw new SlackError('hash_conflict');
      stored.view = ws.validateView(jsonArg(args, 'view', 'invalid_arguments'), stored.type);
      stored.hash = ws.newHash();
      stored.updates += 1;
      return { view: ws.viewJson(stored) };
    },

    'views.publish': (args) => {
      const user = str(args.user_id);
      if (user === undefined || !ws.users.has(user)) throw new SlackError('user_not_found');
      const view = ws.validateView(jsonArg(args, 'view', 'invalid_arguments'), 'home');
      const existing = [...ws.views.values()].find((v) => v.type === 'home' && v.user === user);
      const hash = str(args.hash);
      if (existing && hash !== undefined && hash !== '' && hash !== existing.hash) throw new SlackError('hash_conflict');
      const stored: StoredView = existing ?? { id: ws.nextViewId(), type: 'home', user, view, hash: '', updates: -1 };
      stored.view = view;
      stored.hash = ws.newHash();
      stored.updates += 1;
      ws.views.set(stored.id, stored);
      return { view: ws.viewJson(stored) };
    },
  };
}
