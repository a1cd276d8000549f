/**
 * `POST /response_url/<id>`: what an app posts to an interaction's response_url. Each url takes a few posts
 * (Slack: 5); a post deletes or replaces the original message, posts in the channel, or answers ephemerally.
 */
import { bool, SlackError, str, type Answer, type Args } from './protocol.ts';
import type { ResponseUrlContext, ResponseUrlPost } from './types.ts';
import type { Workspace } from './workspace.ts';

export interface ResponseUrls {
  urls: Map<string, { context: ResponseUrlContext; uses: number }>;
  posts: ResponseUrlPost[];
  usesPerUrl: number;
}

/** Applies one post's body; returns the HTTP status and body Slack would answer with. */
function applyResponse(ws: Workspace, ctx: ResponseUrlContext, b: Args, at: number): [number, unknown] {
  if (bool(b.delete_original) || bool(b.replace_original)) {
    const m = ctx.channel !== undefined ? ws.findMessage(ctx.channel, ctx.message_ts) : undefined;
    if (!m) return [404, { ok: false, error: 'message_not_found' }];
    if (bool(b.delete_original)) m.deleted = true;
    else ws.applyEdit(m, str(b.text), ws.validateMessage(b, true).blocks ?? [], at);
    return [200, { ok: true }];
  }
  if (ctx.channel === undefined) return [404, { ok: false, error: 'channel_not_found' }];
  if (b.response_type === 'in_channel') {
    ws.postMessage(ctx.channel, { ...b, thread_ts: b.thread_ts }, at);
    return [200, { ok: true }];
  }
  const { blocks } = ws.validateMessage(b, true);
  const text = str(b.text);
  ws.postEphemeral({
    channel: ctx.channel,
    user: ctx.user ?? '',
    ...(text !== undefined ? { text } : {}),
    ...(blocks !== undefined ? { blocks } : {}),
    at,
    via: 'response_url',
  });
  return [200, { ok: true }];
}

export function responseUrlHandler(ws: Workspace, state: ResponseUrls) {
  return function handleResponseUrl(id: string, raw: string): Answer {
    const entry = state.urls.get(id);
    const at = ws.stampClock();
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = raw;
    }
    const answer = (status: number, b: unknown): Answer => {
      if (entry) state.posts.push({ id, body, at, status, context: entry.context });
      return { status, body: b };
    };
    if (!entry) return { status: 404, body: { ok: false, error: 'no_such_response_url' } };
    if (entry.uses >= state.usesPerUrl) return answer(404, { ok: false, error: 'used_url' });
    entry.uses += 1;
    if (typeof body !== 'object' || body === null) return answer(400, { ok: false, error: 'invalid_payload' });
    try {
      return answer(...applyResponse(ws, entry.context, body as Args, at));
    } catch (e) {
      if (e instanceof SlackError) return answer(400, { ok: false, error: e.error, ...e.extra });
      throw e;
    }
  };
}
