/**
 * The page's Teams clicks and messages, sent as Teams sends them: an activity with a Bot Framework token, posted
 * to this process's own /api/messages, so the Teams adapter checks the token and the production handlers answer.
 */
import { z } from 'zod';
import type { SandboxAnswer } from '../api-types.ts';
import type { TeamsInstall } from '../directory.ts';
import type { RouteDeps, Router } from './deps.ts';
import { BadRequest } from './http.ts';

const teamsAction = z.object({ user: z.string().min(1), conversationId: z.string().min(1), activityId: z.string().min(1), verb: z.string().min(1), data: z.record(z.string(), z.unknown()) });
const teamsMessage = z.object({ user: z.string().min(1), conversationId: z.string().min(1), text: z.string().min(1).max(4000) });

const ADAPTIVE_CARD = 'application/vnd.microsoft.card.adaptive';

export function register(router: Router, deps: RouteDeps): void {
  router.set('/sandbox/api/teams/action', deps.post(teamsAction, (input) => pressCardButton(deps, input)));
  router.set(
    '/sandbox/api/teams/message',
    deps.post(teamsMessage, async (input) => {
      const install = installFor(deps, input.conversationId);
      const activity = teamsActivity(deps, install, input.user, { type: 'message', text: input.text });
      deps.sandbox.connector.recordIncoming(input.conversationId, activity);
      const { status, body } = await toTeams(deps, activity);
      return status === 200 || status === 201 ? { ok: true } : { ok: false, error: `the bot answered ${status}: ${JSON.stringify(body).slice(0, 300)}` };
    }),
  );
}

/** Installs the bot in each client's Teams conversations, as a champion or user adding the app would. */
export async function installTeamsBot(deps: RouteDeps, known: Set<string>): Promise<void> {
  for (const install of deps.installs.filter((i) => !known.has(i.conversationId))) {
    const bot = { id: `28:${deps.options.appId}`, name: 'patchbay' };
    const { status } = await toTeams(deps, teamsActivity(deps, install, install.by, { type: 'conversationUpdate', membersAdded: [bot] }));
    if (status !== 200 && status !== 201) deps.log.warn({ conversation: install.conversationId, status }, 'sandbox: installing the bot in a Teams conversation failed');
  }
}

async function pressCardButton(deps: RouteDeps, input: z.infer<typeof teamsAction>): Promise<SandboxAnswer> {
  const { connector } = deps.sandbox;
  const install = installFor(deps, input.conversationId);
  const activity = teamsActivity(deps, install, input.user, {
    type: 'invoke',
    name: 'adaptiveCard/action',
    replyToId: input.activityId,
    value: { action: { type: 'Action.Execute', verb: input.verb, data: input.data }, trigger: 'manual' },
  });
  const { status, body } = await toTeams(deps, activity);
  if (status !== 200) return { ok: false, error: `the bot answered ${status}${typeof body === 'string' ? `: ${body.slice(0, 300)}` : ''}` };
  // Teams shows the card an Action.Execute answered with in place of the one pressed, for whoever pressed it.
  const answer = body as { statusCode?: number; type?: string; value?: unknown } | undefined;
  if (answer?.type === ADAPTIVE_CARD && answer.value && typeof answer.value === 'object') {
    const current = connector.activities(input.conversationId).find((a) => a.id === input.activityId);
    if (current) connector.replaceActivity(input.activityId, { ...current.activity, attachments: [{ contentType: ADAPTIVE_CARD, content: answer.value }] });
  } else if (answer?.type === 'application/vnd.microsoft.activity.message' && typeof answer.value === 'string') {
    return { ok: true, detail: answer.value };
  } else if (answer?.statusCode !== undefined && answer.statusCode >= 400) {
    return { ok: false, error: typeof answer.value === 'object' ? JSON.stringify(answer.value) : String(answer.value) };
  }
  return { ok: true };
}

function installFor(deps: RouteDeps, conversationId: string): TeamsInstall {
  const install = deps.installs.find((i) => i.conversationId === conversationId);
  if (!install) throw new BadRequest(`no Teams conversation ${conversationId} in the sandbox`);
  return install;
}

function teamsActivity(deps: RouteDeps, install: { conversationId: string; kind: string; tenantId: string }, user: string, extra: Record<string, unknown>) {
  const member = deps.directory.people.find((p) => p.aadId === user);
  const { appId } = deps.options;
  return {
    channelId: 'msteams',
    serviceUrl: deps.sandbox.connector.url,
    id: `sandbox-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
    timestamp: new Date().toISOString(),
    from: { id: `29:${user}`, aadObjectId: user, name: member?.name ?? user },
    recipient: { id: `28:${appId}`, name: 'patchbay' },
    conversation: { id: install.conversationId, conversationType: install.kind, tenantId: install.tenantId, isGroup: install.kind !== 'personal' },
    channelData: { tenant: { id: install.tenantId } },
    ...extra,
  };
}

async function toTeams(deps: RouteDeps, activity: Record<string, unknown>): Promise<{ status: number; body: unknown }> {
  const { connector } = deps.sandbox;
  const { appId, appUrl } = deps.options;
  const token = connector.mintToken({ appId, serviceUrl: connector.url });
  const res = await fetch(`${appUrl}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(activity) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // Not JSON: keep the text for the error message.
  }
  return { status: res.status, body };
}
