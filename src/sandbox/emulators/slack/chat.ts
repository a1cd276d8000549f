/** chat.*: post (rate-limited per channel and workspace), update, delete, postEphemeral. */
import { missingTextWarning, SlackError, str, type Methods } from './protocol.ts';
import type { RateLimiter } from './rate-limits.ts';
import type { Workspace } from './workspace.ts';

export function chatMethods(ws: Workspace, limits: RateLimiter): Methods {
  return {
    'chat.postMessage': (args, at) => {
      const channel = ws.resolveChannel(args.channel);
      const workspaceWait = limits.takeWorkspacePost();
      if (workspaceWait !== undefined) return limits.ratelimitedAnswer('chat.postMessage', workspaceWait);
      const wait = limits.takeChannel(channel);
      if (wait !== undefined) return limits.ratelimitedAnswer('chat.postMessage', wait);
      const { message, missingText } = ws.postMessage(channel, args, at);
      return { channel, ts: message.ts, message: ws.messageJson(message), ...missingTextWarning(missingText) };
    },

    'chat.update': (args, at) => {
      const channel = ws.resolveChannel(args.channel);
      const m = ws.findMessage(channel, str(args.ts));
      if (m === undefined) throw new SlackError('message_not_found');
      if (m.user !== ws.bot.userId) throw new SlackError('cant_update_message');
      const text = str(args.text);
      const { blocks } = ws.validateMessage(args, false);
      if (text === undefined && blocks === undefined && args.attachments === undefined) throw new SlackError('no_text');
      ws.applyEdit(m, text, blocks, at);
      return { channel, ts: m.ts, text: m.text ?? '', message: ws.messageJson(m) };
    },

    'chat.delete': (args) => {
      const channel = ws.resolveChannel(args.channel);
      const m = ws.findMessage(channel, str(args.ts));
      if (m === undefined) throw new SlackError('message_not_found');
      m.deleted = true;
      return { channel, ts: m.ts };
    },

    'chat.postEphemeral': (args, at) => {
      const channel = ws.resolveChannel(args.channel);
      const user = str(args.user);
      if (user === undefined || !ws.users.has(user)) throw new SlackError('user_not_found');
      const { blocks, missingText } = ws.validateMessage(args, true);
      const text = str(args.text);
      const threadTs = str(args.thread_ts);
      const e = ws.postEphemeral({
        channel,
        user,
        ...(text !== undefined ? { text } : {}),
        ...(blocks !== undefined ? { blocks } : {}),
        ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
        at,
        via: 'api',
      });
      return { message_ts: e.message_ts, ...missingTextWarning(missingText) };
    },
  };
}
