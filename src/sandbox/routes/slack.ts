/**
 * The page's Slack clicks, sent as Slack sends them: signed with the signing secret and posted to this process's
 * own /slack/events, so Bolt checks the signature and the production listeners answer.
 */
import type http from 'node:http';
import { z } from 'zod';
import type { SandboxAnswer } from '../api-types.ts';
import { buildAppHomeOpened, buildBlockActions, buildSlashCommand, buildViewBlockActions, buildViewSubmission, postSigned } from '../emulators/slack-signing.ts';
import type { RouteDeps, Router } from './deps.ts';
import { sendJson } from './http.ts';

const slackAction = z.object({ user: z.string().min(1), channel: z.string().min(1), ts: z.string().min(1), actionId: z.string().min(1), blockId: z.string().optional(), selectedValue: z.string().optional() });
const slackViewAction = z.object({ user: z.string().min(1), viewId: z.string().min(1), actionId: z.string().min(1), blockId: z.string().optional(), selectedValue: z.string().optional() });
const slackViewSubmit = z.object({ user: z.string().min(1), viewId: z.string().min(1), values: z.record(z.string(), z.union([z.string(), z.array(z.string()), z.null()])) });
const slackViewClose = z.object({ user: z.string().min(1), viewId: z.string().min(1) });
const slackHomeOpened = z.object({ user: z.string().min(1) });
const slackCommand = z.object({ user: z.string().min(1), channel: z.string().min(1), text: z.string().min(1).max(4000) });

export function register(router: Router, deps: RouteDeps): void {
  const { slack } = deps.sandbox;
  const click = (body: string) => clickToSlack(deps, body);
  router.set(
    '/sandbox/api/slack/action',
    deps.post(slackAction, async (input) => click(buildBlockActions(slack, { user: input.user, channel: input.channel, messageTs: input.ts, ...element(input) }).body)),
  );
  router.set(
    '/sandbox/api/slack/view-action',
    deps.post(slackViewAction, async (input) => click(buildViewBlockActions(slack, { user: input.user, viewId: input.viewId, ...element(input) }).body)),
  );
  router.set('/sandbox/api/slack/view-submit', deps.post(slackViewSubmit, (input) => submitView(deps, input)));
  router.set(
    '/sandbox/api/slack/view-close',
    deps.post(slackViewClose, async (input) => {
      deps.closedViews.add(input.viewId);
      return { ok: true };
    }),
  );
  // The Home tab was opened on the page: the event Slack sends then, signed like the others, so the bot publishes it.
  router.set('/sandbox/api/slack/home-opened', deps.post(slackHomeOpened, async (input) => click(buildAppHomeOpened(slack, input.user).body)));
  router.set('/sandbox/api/slack/command', deps.post(slackCommand, (input) => slashCommand(deps, input)));
  router.set('/sandbox/api/slack/file', (req, res) => sendFile(deps, req, res));
}

/**
 * `GET /sandbox/api/slack/file?id=F…`: a file the bot uploaded, its bytes exactly as the emulator received them,
 * as a download (Slack's url_private_download). A link cannot send the page token's header, so it rides in the
 * query (`&token=`), as for the event stream.
 */
function sendFile(deps: RouteDeps, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { ok: false, error: 'GET only' });
  const id = new URL(req.url ?? '/', 'http://local').searchParams.get('id') ?? '';
  const file = deps.sandbox.slack.files().find((f) => f.id === id);
  if (!file) return sendJson(res, 404, { ok: false, error: `no file ${id.slice(0, 40)} in this start's Slack emulator (files are not kept across a restart)` });
  const ascii = file.name.replace(/[^A-Za-z0-9._ -]/g, '_');
  res.writeHead(200, {
    'content-type': file.mimetype,
    'content-length': String(file.bytes.length),
    'content-disposition': `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(file.name)}`,
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : file.bytes);
}

async function toSlack(deps: RouteDeps, body: string): Promise<{ status: number; text: string }> {
  const res = await postSigned(`${deps.options.appUrl}/slack/events`, body, { secret: deps.options.signingSecret });
  return { status: res.status, text: await res.text() };
}

function slackAnswer(status: number, text: string): SandboxAnswer {
  return status === 200 ? { ok: true } : { ok: false, error: `the bot answered ${status}${text ? `: ${text.slice(0, 300)}` : ''}` };
}

async function clickToSlack(deps: RouteDeps, body: string): Promise<SandboxAnswer> {
  const { status, text } = await toSlack(deps, body);
  return slackAnswer(status, text);
}

/** What identifies the element clicked, as the signing helpers take it. */
function element(input: { actionId: string; blockId?: string | undefined; selectedValue?: string | undefined }) {
  return {
    actionId: input.actionId,
    ...(input.blockId ? { blockId: input.blockId } : {}),
    ...(input.selectedValue ? { selectedValue: input.selectedValue } : {}),
  };
}

async function submitView(deps: RouteDeps, input: z.infer<typeof slackViewSubmit>): Promise<SandboxAnswer> {
  const built = buildViewSubmission(deps.sandbox.slack, { user: input.user, viewId: input.viewId, values: input.values });
  const { status, text } = await toSlack(deps, built.body);
  if (status !== 200) return slackAnswer(status, text);
  const answer = text ? (JSON.parse(text) as { response_action?: string; errors?: Record<string, string> }) : {};
  if (answer.response_action === 'errors') return { ok: false, error: 'the form has problems', errors: answer.errors ?? {} };
  // Slack closes the modal on an empty answer (or `clear`); `update` and `push` keep a modal open.
  if (answer.response_action === undefined || answer.response_action === 'clear') deps.closedViews.add(input.viewId);
  return { ok: true };
}

async function slashCommand(deps: RouteDeps, input: z.infer<typeof slackCommand>): Promise<SandboxAnswer> {
  const match = /^(\/\S+)\s*(.*)$/s.exec(input.text.trim());
  if (!match) return { ok: false, error: 'a slash command starts with /, e.g. /patch status' };
  const built = buildSlashCommand(deps.sandbox.slack, { user: input.user, channel: input.channel, command: match[1]!, text: match[2]! });
  const { status, text } = await toSlack(deps, built.body);
  if (status !== 200) return slackAnswer(status, text);
  // An immediate answer in the HTTP response is shown to the one who typed it, as Slack does.
  if (text) {
    let reply: { text?: string; blocks?: unknown[] } = { text };
    try {
      reply = JSON.parse(text) as typeof reply;
    } catch {
      // Plain text answer.
    }
    if (reply.text || reply.blocks) deps.localEphemerals.push({ channel: input.channel, user: input.user, text: reply.text ?? '', blocks: reply.blocks ?? [], at: deps.sandbox.clock.nowMs() });
  }
  return { ok: true };
}
