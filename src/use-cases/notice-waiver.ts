/**
 * An engineer waives, or restores, the "save your work" notice for a device, a user or a client: the way out for
 * a user no chat directory matches (or a client with no chat), whose devices the notice rule would otherwise keep
 * out of every window. One transaction: who is asking (engineers only), the waiver row, the audit row, and a note
 * in the current release's thread, so the override is never silent. The device still waits for its window; a
 * matched user still gets their DM (the waiver only stops the rule waiting for it).
 */
import { sql } from 'drizzle-orm';
import { rowsOf } from '../db/client.ts';
import { insertWaiver, resolveWaiverTarget, revokeWaiver, standingWaiver } from '../db/notice-repo.ts';
import { enqueueOutbox } from '../db/outbox-repo.ts';
import { auditLog } from '../db/schema.ts';
import { escapeMrkdwn } from '../bot/slack/block-kit.ts';
import { mspZone } from './digest-refresh.ts';
import { currentReleaseId, findEngineer, type Actor, type DecisionResult, type UseCaseContext } from './decisions.ts';

const NOT_ENGINEER = 'Only the MSP\u2019s engineers can waive the notice to users. Nothing was changed.';
export const DEFAULT_WAIVER_REASON = 'cannot be reached in chat';

export interface WaiveInput {
  actor: Actor;
  /** A user's email, a client id (`msp` for the MSP's own machines) or a device name. */
  target: string;
  reason: string;
}

const scopeWord = { device: 'device', user: 'user', client: 'client' } as const;

export async function waiveNotice(ctx: UseCaseContext, input: WaiveInput): Promise<DecisionResult> {
  return changeWaiver(ctx, input, 'waive');
}

export async function revokeNoticeWaiver(ctx: UseCaseContext, input: Omit<WaiveInput, 'reason'>): Promise<DecisionResult> {
  return changeWaiver(ctx, { ...input, reason: '' }, 'revoke');
}

async function changeWaiver(ctx: UseCaseContext, input: WaiveInput, what: 'waive' | 'revoke'): Promise<DecisionResult> {
  let outboxIds: number[] = [];
  const result = await ctx.db.transaction(async (tx): Promise<DecisionResult> => {
    const now = ctx.now();
    const engineer = await findEngineer(tx, input.actor);
    if (!engineer) return { outcome: 'refused', code: 'not_engineer', message: NOT_ENGINEER, zone: await mspZone(tx) };
    const zone = engineer.zone;
    const target = await resolveWaiverTarget(tx, input.target);
    if (!target.ok) return { outcome: 'refused', message: target.message, zone };
    const name = `${scopeWord[target.scope]} ${target.label}`;
    let text: string;
    let message: string;
    if (what === 'waive') {
      const reason = input.reason.trim() === '' ? DEFAULT_WAIVER_REASON : input.reason.trim();
      const waiver = await insertWaiver(tx, { scope: target.scope, target: target.target, reason, actor: input.actor.id, source: input.actor.platform }, now);
      if (!waiver) {
        const standing = await standingWaiver(tx, target.scope, target.target);
        return { outcome: 'noop', message: `The notice is already waived for ${name}.`, zone, ...(standing ? { by: standing.by, at: standing.at.toISOString() } : {}) };
      }
      await tx.insert(auditLog).values({
        at: now,
        actor: input.actor.id,
        action: 'notice.waive',
        subject: `notice:${target.scope}:${target.target}`,
        source: input.actor.platform,
        detail: { waiverId: waiver.id, scope: target.scope, target: target.target, reason, devices: target.devices },
      });
      const count = `${target.devices} machine${target.devices === 1 ? '' : 's'} with a user`;
      message = `Notice waived for ${name} (${count}): patched in their windows without waiting for the \u201csave your work\u201d message (audited). Undo with /patch notice revoke ${target.target}.`;
      text = `:warning: ${who(input.actor)} waived the \u201csave your work\u201d notice for ${escapeMrkdwn(name)} (${count}): ${escapeMrkdwn(reason)}. Those machines may install and restart in their windows unwarned.`;
    } else {
      const revoked = await revokeWaiver(tx, target.scope, target.target, input.actor.id, now);
      if (!revoked) return { outcome: 'noop', message: `The notice is not waived for ${name}.`, zone };
      await tx.insert(auditLog).values({
        at: now,
        actor: input.actor.id,
        action: 'notice.revoke_waiver',
        subject: `notice:${target.scope}:${target.target}`,
        source: input.actor.platform,
        detail: { waiverId: revoked.id, scope: target.scope, target: target.target },
      });
      message = `Notice required again for ${name}: its users\u2019 machines wait for their \u201csave your work\u201d message (audited).`;
      text = `${who(input.actor)} revoked the notice waiver for ${escapeMrkdwn(name)}: its users\u2019 machines wait for their \u201csave your work\u201d message again.`;
    }
    const channel = rowsOf<{ channel: string }>(await tx.execute(sql`select channel from msp where id = 1`))[0]?.channel;
    const release = await currentReleaseId(tx);
    if (channel) {
      const key = `notice-${what}:${target.scope}:${target.target}:${now.toISOString()}`;
      outboxIds = await enqueueOutbox(tx, [{ key, channel, action: 'post', subject: key, payload: { text, ...(release ? { threadSubject: `digest:${release}` } : {}) } }], now);
    }
    return { outcome: 'applied', message, zone, by: input.actor.id, at: now.toISOString() };
  });
  if (outboxIds.length > 0 && ctx.onCommitted) {
    try {
      await ctx.onCommitted(outboxIds);
    } catch {
      /* the deliverer's sweep finds the rows */
    }
  }
  return result;
}

function who(actor: Actor): string {
  return actor.platform === 'slack' ? `<@${actor.id}>` : escapeMrkdwn(actor.id);
}
