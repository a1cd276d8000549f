/**
 * An engineer waives, or restores, the "save your work" notice for a device, a user or a client: the way out for
 * a user no chat directory matches (or a client with no chat), whose devices the notice rule would otherwise keep
 * out of every window. One transaction: who is asking (engineers only), the waiver row, the audit row, and a note
 * in the current release's thread, so the override is never silent. The device still waits for its window; a
 * matched user still gets their DM (the waiver only stops the rule waiting for it).
 */
import { appendAudit } from '../db/audit-repo.ts';
import type { AppDatabase } from '../db/client.ts';
import { insertWaiver, resolveWaiverTarget, revokeWaiver, standingWaiver, type WaiverTarget } from '../db/notice-repo.ts';
import { machinesWithUser, type NoticeWaiverNotice } from '../chat/notices/notice-waivers.ts';
import { notify } from '../chat/notify.ts';
import { mspZone } from './digest-refresh.ts';
import { currentReleaseId, findEngineer, type Actor, type DecisionResult, type UseCaseContext } from './decisions.ts';
import { withTransaction } from './transaction.ts';

const NOT_ENGINEER = 'Only the MSP\u2019s engineers can waive the notice to users. Nothing was changed.';
export const DEFAULT_WAIVER_REASON = 'cannot be reached in chat';

export interface WaiveInput {
  actor: Actor;
  /** A user's email, a client id (`msp` for the MSP's own machines) or a device name. */
  target: string;
  reason: string;
}

const scopeWord = { device: 'device', user: 'user', client: 'client' } as const;

type Target = Extract<WaiverTarget, { ok: true }>;

/** What one change did, for the audit row, the thread note and the engineer's reply; or why it did nothing. */
type Change =
  | { outcome: 'applied'; action: string; detail: Record<string, unknown>; notice: Pick<NoticeWaiverNotice, 'kind' | 'devices' | 'reason'>; message: string }
  | { outcome: 'noop'; message: string; by?: string; at?: string };

export async function waiveNotice(ctx: UseCaseContext, input: WaiveInput): Promise<DecisionResult> {
  return changeWaiver(ctx, input, waive);
}

export async function revokeNoticeWaiver(ctx: UseCaseContext, input: Omit<WaiveInput, 'reason'>): Promise<DecisionResult> {
  return changeWaiver(ctx, { ...input, reason: '' }, revoke);
}

async function waive(tx: AppDatabase, input: WaiveInput, target: Target, name: string, now: Date): Promise<Change> {
  const reason = input.reason.trim() === '' ? DEFAULT_WAIVER_REASON : input.reason.trim();
  const waiver = await insertWaiver(tx, { scope: target.scope, target: target.target, reason, actor: input.actor.id, source: input.actor.platform }, now);
  if (!waiver) {
    const standing = await standingWaiver(tx, target.scope, target.target);
    return { outcome: 'noop', message: `The notice is already waived for ${name}.`, ...(standing ? { by: standing.by, at: standing.at.toISOString() } : {}) };
  }
  return {
    outcome: 'applied',
    action: 'notice.waive',
    detail: { waiverId: waiver.id, scope: target.scope, target: target.target, reason, devices: target.devices },
    notice: { kind: 'notice_waived', devices: target.devices, reason },
    message: `Notice waived for ${name} (${machinesWithUser(target.devices)}): patched in their windows without waiting for the \u201csave your work\u201d message (audited). Undo with /patch notice revoke ${target.target}.`,
  };
}

async function revoke(tx: AppDatabase, input: WaiveInput, target: Target, name: string, now: Date): Promise<Change> {
  const revoked = await revokeWaiver(tx, target.scope, target.target, input.actor.id, now);
  if (!revoked) return { outcome: 'noop', message: `The notice is not waived for ${name}.` };
  return {
    outcome: 'applied',
    action: 'notice.revoke_waiver',
    detail: { waiverId: revoked.id, scope: target.scope, target: target.target },
    notice: { kind: 'notice_waiver_revoked' },
    message: `Notice required again for ${name}: its users\u2019 machines wait for their \u201csave your work\u201d message (audited).`,
  };
}

type ChangeStep = (tx: AppDatabase, input: WaiveInput, target: Target, name: string, now: Date) => Promise<Change>;

/** Who may, which target, the change itself; then the audit row and the thread note every applied change gets. */
async function changeWaiver(ctx: UseCaseContext, input: WaiveInput, step: ChangeStep): Promise<DecisionResult> {
  return withTransaction(ctx, async (tx, after): Promise<DecisionResult> => {
    const now = ctx.now();
    const engineer = await findEngineer(tx, input.actor);
    if (!engineer) return { outcome: 'refused', code: 'not_engineer', message: NOT_ENGINEER, zone: await mspZone(tx) };
    const zone = engineer.zone;
    const target = await resolveWaiverTarget(tx, input.target);
    if (!target.ok) return { outcome: 'refused', message: target.message, zone };
    const name = `${scopeWord[target.scope]} ${target.label}`;
    const change = await step(tx, input, target, name, now);
    if (change.outcome === 'noop') return { ...change, zone };
    const { actor } = input;
    await appendAudit(tx, { at: now, actor: actor.id, action: change.action, subject: `notice:${target.scope}:${target.target}`, source: actor.platform, detail: change.detail });
    const notice: NoticeWaiverNotice = { ...change.notice, actor, scope: target.scope, target: target.target, name, releaseId: await currentReleaseId(tx), at: now.toISOString() };
    after.outbox(await notify(tx, [notice], now));
    return { outcome: 'applied', message: change.message, zone, by: actor.id, at: now.toISOString() };
  });
}
