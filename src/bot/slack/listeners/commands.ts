/**
 * The `/patch` slash command: parsed by the pure parser (../../patch-command.ts), refused to anyone but the MSP's
 * engineers, then one handler per command kind, each calling a use-case or a read and returning the reply text.
 * A new subcommand is a parser entry there and a handler here.
 */
import type { App } from '@slack/bolt';
import { formatDecisionTime } from '../../../domain/approval.ts';
import type { Ring } from '../../../domain/inventory.ts';
import { unmatchedUsers } from '../../../db/directory-repo.ts';
import { noticeWaivers } from '../../../db/notice-repo.ts';
import { noticeStatusText } from '../../../chat/notice-status.ts';
import { revokeNoticeWaiver, waiveNotice } from '../../../use-cases/notice-waiver.ts';
import { parsePatchCommand, PATCH_USAGE, type PatchCommand } from '../../patch-command.ts';
import { currentReleaseId, findEngineer, hold, releaseHold, withdraw, type Actor, type DecisionResult } from '../../../use-cases/decisions.ts';
import { confirmPilot } from '../../../use-cases/pilot.ts';
import { promoteRelease, skipRing } from '../../../use-cases/rollout-actions.ts';
import { clientIds, clientWindows, notesOn, recentReleaseIds, releaseStatus, statusNames } from '../../../use-cases/status.ts';
import { createLinkCode } from '../../../use-cases/teams-link.ts';
import { requestDeviceSync } from '../../../use-cases/device-sync.ts';
import { sendComplianceReport } from '../../../use-cases/report-delivery.ts';
import { currentMonth, monthPeriod } from '../../../domain/report-period.ts';
import { escapeMrkdwn, escapeMrkdwnControls } from '../../../chat/slack/block-kit.ts';
import { notesText, resultText, statusText, windowsText } from '../../../chat/slack/views.ts';
import { slackActor, type ListenerDeps } from './deps.ts';

/** One engineer's `/patch`, past the parser and the engineer check. */
interface Call {
  deps: ListenerDeps;
  actor: Actor;
  zone: string;
  now: Date;
  /** The slash command's trigger id: the request id that makes a retried command a no-op. */
  requestId: string;
}

type Runnable = Exclude<PatchCommand, { kind: 'help' } | { kind: 'unknown' }>;
type Handler<K extends Runnable['kind']> = (command: Extract<Runnable, { kind: K }>, call: Call) => Promise<string>;

const NO_RELEASE = 'No release is stored yet.';

export function register(app: App, deps: ListenerDeps): void {
  app.command('/patch', async ({ ack, command, respond }) => {
    await ack();
    const say = async (text: string) => void (await respond({ response_type: 'ephemeral', text }));
    const parsed = parsePatchCommand(command.text ?? '');
    if (parsed.kind === 'help') return say(PATCH_USAGE);
    // The problem is patchbay's words with `code` around what was typed, where formatting shows as typed anyway.
    if (parsed.kind === 'unknown') return say(`${escapeMrkdwnControls(parsed.problem)}.\n\n${PATCH_USAGE}`);
    const actor = slackActor(command.user_id);
    const engineer = await findEngineer(deps.db, actor);
    if (!engineer) return say(':no_entry_sign: /patch is for the MSP\u2019s engineers.');
    const call: Call = { deps, actor, zone: engineer.zone, now: deps.now(), requestId: command.trigger_id };
    return say(await run(parsed, call));
  });
}

function run(command: Runnable, call: Call): Promise<string> {
  const handler = HANDLERS[command.kind] as Handler<Runnable['kind']>;
  return handler(command, call);
}

/** Runs `work` on the current release, or says there is none. */
async function onCurrentRelease(call: Call, work: (releaseId: string) => Promise<string>): Promise<string> {
  const release = await currentReleaseId(call.deps.db);
  return release ? work(release) : NO_RELEASE;
}

const HANDLERS: { [K in Runnable['kind']]: Handler<K> } = {
  status: async (_command, { deps: { db }, zone, now }) => {
    const ids = await recentReleaseIds(db, 3);
    const statuses = (await Promise.all(ids.map((id) => releaseStatus(db, id)))).filter((s) => s !== undefined);
    const notice = noticeStatusText(await unmatchedUsers(db), await noticeWaivers(db, now), zone, now);
    return `${statusText(statuses, zone, now, await statusNames(db))}${notice ? `\n\n${notice}` : ''}`;
  },
  windows: async ({ client }, { deps: { db }, zone, now }) => {
    const w = await clientWindows(db, client, now);
    return w ? windowsText(w, zone) : `No client ${escapeMrkdwn(client)} in the inventory.`;
  },
  notes: (command, call) => onCurrentRelease(call, async (release) => notesText(release, command.update, await notesOn(call.deps.db, release, command.update), call.zone)),
  link: async ({ client }, { deps: { ctx }, actor, zone }) => {
    const code = await createLinkCode(ctx, { actor, clientId: client });
    if (code.outcome === 'refused') return escapeMrkdwn(code.message);
    return `Ask ${escapeMrkdwn(code.clientName)}\u2019s champion to send \`${code.code}\` to the patchbay bot in Teams (in the chat or team to link). It works once, until ${formatDecisionTime(code.expiresAt, zone)}.`;
  },
  promote: async ({ release }, { deps: { ctx }, actor }) => resultText(await promoteRelease(ctx, { actor, releaseId: release })),
  // The Teams side's use-case: an engineer confirming is the same event as a champion's, marked as theirs.
  confirm: ({ client }, call) =>
    onCurrentRelease(call, async (release) => {
      const result = await confirmPilot(call.deps.ctx, { actor: call.actor, releaseId: release, clientId: client, requestId: call.requestId });
      const text = result.outcome === 'applied' ? `Pilot for ${client} confirmed on the champion\u2019s behalf; its broad ring is scheduled.` : result.message;
      return `${result.outcome === 'refused' ? ':no_entry_sign: ' : ''}${escapeMrkdwn(text)}`;
    }),
  skip: (command, call) =>
    onCurrentRelease(call, async (release) =>
      resultText(await skipRing(call.deps.ctx, { actor: call.actor, releaseId: release, ring: command.ring, update: command.update, clientId: command.client, reason: command.reason })),
    ),
  notice_waive: async ({ target, reason }, { deps: { ctx }, actor }) => resultText(await waiveNotice(ctx, { actor, target, reason })),
  notice_revoke: async ({ target }, { deps: { ctx }, actor }) => resultText(await revokeNoticeWaiver(ctx, { actor, target })),
  sync: async (_command, { deps: { ctx }, actor }) => resultText(await requestDeviceSync(ctx, { actor })),
  report: async ({ client, period }, { deps: { ctx, reportLinks }, now, requestId }) => {
    const month = period === null ? { ok: true as const, period: currentMonth(now) } : monthPeriod(period);
    if (!month.ok) return escapeMrkdwn(month.error);
    if (Date.parse(month.period.from) > now.getTime()) return `${escapeMrkdwn(month.period.id)} has not started yet.`;
    const result = await sendComplianceReport(ctx, { clientId: client, period: month.period, kind: 'on_demand', request: requestId, ...(reportLinks ? { links: reportLinks } : {}) });
    if (result.outcome === 'refused') return escapeMrkdwn(result.message);
    if (result.outcome === 'already_sent') return 'That report was already sent.';
    return `The ${escapeMrkdwn(month.period.id)} report for ${escapeMrkdwn(client)} is on its way to the engineers\u2019 channel (and the client\u2019s champions in Teams).`;
  },
  withdraw: ({ target }, call) =>
    onCurrentRelease(call, async (release) =>
      resultText(await withdraw(call.deps.ctx, { actor: call.actor, releaseId: release, updateKey: target.toLowerCase() === 'all' ? null : target })),
    ),
  hold_ring: ({ ring, reason }, call) => onCurrentRelease(call, async (release) => resultText(await holdRing(call, release, ring, reason))),
  release_ring: ({ ring }, call) =>
    onCurrentRelease(call, async (release) =>
      resultText(await releaseHold(call.deps.ctx, { actor: call.actor, releaseId: release, target: { kind: 'ring', ring }, requestId: call.requestId })),
    ),
  hold: ({ target, reason, asClient }, call) => onCurrentRelease(call, async (release) => resultText(await holdTarget(call, release, target, reason, asClient))),
  release: ({ target, asClient }, call) => onCurrentRelease(call, async (release) => resultText(await releaseTarget(call, release, target, asClient))),
};

function holdRing(call: Call, releaseId: string, ring: Ring, reason: string): Promise<DecisionResult> {
  return hold(call.deps.ctx, { actor: call.actor, releaseId, updateKey: null, clients: 'all', ring, reason, requestId: call.requestId });
}

/**
 * `hold X`: X is a client id when the inventory has one by that name (or it was typed `client:X`: an unknown one is
 * then refused by the hold as no such client), `all` for the release, else an update.
 */
async function holdTarget(call: Call, releaseId: string, target: string, reason: string, asClient = false): Promise<DecisionResult> {
  const isClient = asClient || (await clientIds(call.deps.db)).some((c) => c.id === target);
  return hold(call.deps.ctx, {
    actor: call.actor,
    releaseId,
    updateKey: target.toLowerCase() === 'all' || isClient ? null : target,
    clients: isClient ? [target] : 'all',
    reason,
    requestId: call.requestId,
  });
}

async function releaseTarget(call: Call, releaseId: string, target: string, asClient = false): Promise<DecisionResult> {
  const isClient = asClient || (await clientIds(call.deps.db)).some((c) => c.id === target);
  return releaseHold(call.deps.ctx, {
    actor: call.actor,
    releaseId,
    target: asClient || (isClient && target.toLowerCase() !== 'all') ? { kind: 'client', clientId: target } : target.toLowerCase() === 'all' ? { kind: 'all' } : { kind: 'update', updateKey: target },
    requestId: call.requestId,
  });
}
