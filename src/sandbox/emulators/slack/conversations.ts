/** conversations.*: open a DM (or a group DM) with the bot. */
import { SlackError, str, type Methods } from './protocol.ts';
import type { Workspace } from './workspace.ts';

export function conversationsMethods(ws: Workspace): Methods {
  return {
    'conversations.open': (args) => {
      const channelArg = str(args.channel);
      if (channelArg !== undefined) {
        if (ws.dmUser(channelArg) === undefined) throw new SlackError('channel_not_found');
        return { channel: { id: channelArg } };
      }
      const ids = (str(args.users) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      if (ids.length === 0) throw new SlackError('users_list_not_supplied');
      for (const id of ids) if (!ws.users.has(id)) throw new SlackError('user_not_found');
      const [first] = ids;
      if (ids.length === 1 && first !== undefined) {
        return { no_op: false, already_open: false, channel: { id: ws.dmChannelFor(first) } };
      }
      return { channel: { id: `G${ids.map((i) => i.slice(1)).sort().join('')}`.slice(0, 21) } };
    },
  };
}
