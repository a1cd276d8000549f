/** GET /sandbox/api/state: what the page draws, assembled from what the emulators hold. */
import { DateTime } from 'luxon';
import { JUMPS } from '../../domain/sandbox-jumps.ts';
import type { SandboxSlackFile, SandboxSlackMessage, SandboxState, SandboxTeamsConversation } from '../api-types.ts';
import type { StoredMessage } from '../emulators/slack-emulator.ts';
import type { Sandbox } from '../sandbox-types.ts';
import type { RouteDeps } from './deps.ts';

export function sandboxState(deps: RouteDeps): SandboxState {
  const { sandbox, directory } = deps;
  const { clock } = sandbox;
  const mspZone = directory.msp.timezone;
  return {
    seq: deps.changes.seq(),
    clock: { now: DateTime.fromJSDate(clock.now()).setZone(mspZone).toISO()!, zone: mspZone, rate: clock.rate, jumps: JUMPS.map((j) => ({ ...j })) },
    msp: { name: directory.msp.name, channel: directory.msp.channel },
    slack: slackState(deps),
    teams: {
      conversations: teamsConversations(deps),
      people: directory.people.filter((p) => p.aadId).map((p) => ({ id: p.aadId!, name: p.name, role: p.role, ...(p.client ? { client: p.client } : {}), ...(p.email ? { email: p.email } : {}) })),
    },
    ...(sandbox.tactical ? { tactical: tacticalState(sandbox.tactical) } : {}),
    ...(sandbox.ninjaone ? { ninjaone: { devices: sandbox.ninjaone.emulator.deviceList().length } } : {}),
  };
}

function slackState(deps: RouteDeps): SandboxState['slack'] {
  const { directory } = deps;
  const { slack } = deps.sandbox;
  const channels = directory.slackChannels().map((c) => ({ id: c.id, name: c.name, messages: channelMessages(deps, c.id) }));
  const known = new Set(channels.map((c) => c.id));
  const dmChannels = new Map<string, string>();
  for (const p of directory.people) if (p.slackId) dmChannels.set(slack.dmChannelFor(p.slackId), p.slackId);
  const dms = [...new Set(slack.messages().map((m) => m.channel))]
    .filter((ch) => !known.has(ch) && dmChannels.has(ch))
    .map((ch) => ({ user: dmChannels.get(ch)!, userName: nameOf(deps, dmChannels.get(ch)!), channel: ch, messages: channelMessages(deps, ch) }));
  const ephemerals = [
    // The emulator keeps response_url ephemerals with chat.postEphemeral's; slash-command HTTP answers are kept here.
    ...slack.ephemerals().map((e) => ({ channel: e.channel, user: e.user, text: e.text ?? '', blocks: e.blocks ?? [], at: e.at })),
    ...deps.localEphemerals,
  ].sort((a, b) => a.at - b.at);
  const modals = slack
    .views({ type: 'modal' })
    .filter((v) => !deps.closedViews.has(v.id))
    .map((v) => ({ id: v.id, user: v.user, view: v.view }));
  return {
    channels,
    dms,
    ephemerals,
    modals,
    home: homeViews(deps),
    people: directory.people.filter((p) => p.slackId).map((p) => ({ id: p.slackId!, name: p.name, role: p.role, ...(p.client ? { client: p.client } : {}), ...(p.email ? { email: p.email } : {}) })),
  };
}

function nameOf(deps: RouteDeps, user: string): string {
  const { slack } = deps.sandbox;
  return user === slack.bot.userId ? 'patchbay' : (deps.directory.nameOfSlack(user) ?? slack.user(user)?.real_name ?? user);
}

function toMessage(deps: RouteDeps, m: StoredMessage, replies: StoredMessage[]): SandboxSlackMessage {
  const files = filesOf(deps, m);
  return {
    channel: m.channel,
    ts: m.ts,
    ...(m.thread_ts && m.thread_ts !== m.ts ? { threadTs: m.thread_ts } : {}),
    user: m.user,
    userName: nameOf(deps, m.user),
    text: m.text ?? '',
    blocks: m.blocks ?? [],
    edits: m.edits,
    updatedAt: m.versions.at(-1)?.at ?? m.postedAt,
    replies: replies.map((r) => toMessage(deps, r, [])),
    ...(files.length > 0 ? { files } : {}),
  };
}

/** The message's files this start's emulator holds: their bytes are not kept across a restart, so those drop out. */
function filesOf(deps: RouteDeps, m: StoredMessage): SandboxSlackFile[] {
  if (!m.files?.length) return [];
  const held = new Map(deps.sandbox.slack.files({ channel: m.channel }).map((f) => [f.id, f]));
  return m.files.flatMap((id) => {
    const f = held.get(id);
    return f ? [{ id: f.id, name: f.name, title: f.title, size: f.size, mimetype: f.mimetype }] : [];
  });
}

function channelMessages(deps: RouteDeps, channel: string): SandboxSlackMessage[] {
  const { slack } = deps.sandbox;
  return slack
    .messages(channel)
    .filter((m) => !m.thread_ts || m.thread_ts === m.ts)
    .map((m) => toMessage(deps, m, slack.replies(channel, m.ts)));
}

function homeViews(deps: RouteDeps): Record<string, Record<string, unknown>> {
  const { slack } = deps.sandbox;
  const home: Record<string, Record<string, unknown>> = {};
  for (const p of deps.directory.people) {
    const view = p.slackId ? slack.homeView(p.slackId) : undefined;
    // The view's id rides along, as in Slack's payloads, so a button on the Home tab can name its view.
    if (view) home[p.slackId!] = { ...view.view, id: view.id };
  }
  return home;
}

function teamsConversations(deps: RouteDeps): SandboxTeamsConversation[] {
  const { connector } = deps.sandbox;
  return deps.installs.map((install) => ({
    id: install.conversationId,
    title: install.title,
    clientId: install.clientId,
    kind: install.kind,
    defaultActor: install.by,
    activities: connector.activities(install.conversationId).map((a) => {
      const attachments = (a.activity.attachments as Array<{ contentType?: string; content?: Record<string, unknown> }> | undefined) ?? [];
      const card = attachments.find((x) => x.contentType === 'application/vnd.microsoft.card.adaptive')?.content;
      const from = a.activity.from as { name?: string; aadObjectId?: string } | undefined;
      const incoming = a.id.startsWith('in:');
      return {
        id: a.id,
        text: String(a.activity.text ?? ''),
        ...(card ? { card } : {}),
        updatedAt: a.at,
        ...(incoming ? { from: from?.name ?? from?.aadObjectId ?? 'someone' } : {}),
      };
    }),
  }));
}

/** The Tactical RMM emulator's agents and the newest requests it answered (PATCHBAY_SANDBOX_DEPLOYER=tactical). */
function tacticalState(tactical: NonNullable<Sandbox['tactical']>): NonNullable<SandboxState['tactical']> {
  return {
    agents: tactical.emulator.agentList().map((a) => ({ hostname: a.hostname, status: a.status, needsReboot: a.needsReboot, bootTime: new Date(a.bootTime * 1000).toISOString() })),
    requests: tactical.emulator.requests.slice(-50).map((r) => ({ at: r.at, method: r.method, path: r.path, status: r.status })),
  };
}
