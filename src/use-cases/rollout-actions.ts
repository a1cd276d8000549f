/**
 * What engineers do to a rollout from chat: promote a release to pilot, hold a client from its window summary,
 * retry a window's failed runs. Each is one transaction: who is asking (engineers only), the rule (the rollout
 * gate machine for promotion, src/domain/retry.ts for retries), the decision and audit rows, and the outbox rows
 * that edit the message the engineers clicked. Nothing here knows which chat asked.
 *
 * Exactly once: promotion is one per release (the gate machine's event id, and the decisions table's unique key);
 * a hold is one per request (the existing hold use-case); a retry takes a lock on its window and only ever moves
 * runs still marked failed, so a double click finds nothing left to retry and says who did it.
 */
import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { DateTime } from 'luxon';
import { zoneShort } from '../domain/zone-label.ts';
import { clientNames } from '../db/names-repo.ts';
import { loadMspPicture } from '../db/eligibility-repo.ts';
import { readyToPromote, type MspStanding } from '../domain/eligibility.ts';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import { enqueueOutbox, type OutboxItem, type OutboxPayload } from '../db/outbox-repo.ts';
import { insertRuns, loadBook } from '../db/rollout-repo.ts';
import { lockRelease } from '../db/decisions-repo.ts';
import { auditLog, decisions } from '../db/schema.ts';
import { formatDecisionTime } from '../domain/approval.ts';
import { retryTarget } from '../domain/retry.ts';
import { gatesTouched } from '../domain/rollout.ts';
import { DEFAULT_RUN_POLICY } from '../domain/run.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { escapeMrkdwn } from '../bot/slack/block-kit.ts';
import { HOLD_CLIENT_ACTION, PROMOTE_ACTION, RETRY_FAILED_ACTION } from '../bot/slack/window-blocks.ts';
import { mspZone } from './digest-refresh.ts';
import { findEngineer, hold, type Actor, type DecisionResult } from './decisions.ts';
import { applyGateEvents } from './gates.ts';
import { isUniqueViolation, withTransaction, type UseCaseContext } from './transaction.ts';
import { subjects } from '../chat/subjects.ts';

const NOT_ENGINEER = 'Only the MSP\u2019s engineers can promote, hold or retry a rollout. Nothing was changed.';

/** The promotion offer's subject in the engineers' thread (posted by the rollout engine). */
export const promoteSubject = subjects.promote;
/** A window's end-of-window summary (the engine posts it under this subject). */
export const summarySubject = (who: string, windowStart: string) => subjects.windowSummary(subjects.window(who, windowStart));

/** The message's latest content per channel (the post, or its latest edit), for an edit that adds a line. */
async function latestPayloads(tx: AppDatabase, subject: string): Promise<Array<{ channel: string; payload: OutboxPayload }>> {
  // One editor at a time per message: a hold and a retry clicked together must not each drop the other's line.
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`edit:${subject}`}))`);
  return rowsOf<{ channel: string; payload: OutboxPayload }>(
    await tx.execute(sql`select distinct on (channel) channel, payload from chat_outbox
      where platform = 'slack' and subject = ${subject} and action in ('post', 'update') order by channel, id desc`),
  );
}

/** Adds a context line to a message and drops the buttons that were answered; one outbox edit per channel. */
async function annotate(tx: AppDatabase, subject: string, line: string, drop: readonly string[], key: string, now: Date): Promise<number[]> {
  const items: OutboxItem[] = [];
  for (const { channel, payload } of await latestPayloads(tx, subject)) {
    const blocks = ((payload.blocks ?? []) as Array<{ type: string; elements?: Array<{ action_id?: string }> }>)
      .map((b) => (b.type === 'actions' ? { ...b, elements: (b.elements ?? []).filter((e) => !drop.includes(e.action_id ?? '')) } : b))
      .filter((b) => b.type !== 'actions' || (b.elements ?? []).length > 0);
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: line } as never] });
    const { threadSubject: _thread, ...rest } = payload;
    items.push({ key: `${subject}:${channel}:${key}`, channel, action: 'update', subject, payload: { ...rest, blocks } });
  }
  return items.length === 0 ? [] : enqueueOutbox(tx, items, now);
}

export interface PromoteInput {
  actor: Actor;
  releaseId: string;
}

export interface RolloutActionResult extends DecisionResult {
  /** Promotion: clients whose pilot was scheduled. Retry: runs started again now, and runs moved to a later window. */
  clients?: number;
  again?: number;
  later?: number;
}

/** Promote to pilot: the gate machine's `promote` event, for every client with live devices. */
export async function promoteRelease(ctx: UseCaseContext, input: PromoteInput): Promise<RolloutActionResult> {
  return withTransaction(
    ctx,
    async (tx, after): Promise<RolloutActionResult> => {
      const now = ctx.now();
      const engineer = await findEngineer(tx, input.actor);
      if (!engineer) return { outcome: 'refused', code: 'not_engineer', message: NOT_ENGINEER, zone: await mspZone(tx) };
      const zone = engineer.zone;
      // The release row first, as every other decision on the release takes it: one order, no deadlock.
      if (!(await lockRelease(tx, input.releaseId))) return { outcome: 'refused', code: 'unknown_release', message: `No release ${input.releaseId} is stored.`, zone };
      const clients = rowsOf<{ id: string }>(
        await tx.execute(sql`select c.id from clients c where c.retired_at is null
          and exists (select 1 from devices d where d.client_id = c.id and d.retired_at is null) order by c.id`),
      ).map((r) => r.id);
      const before = await loadBook(tx, input.releaseId, true);
      // A promotion covers the updates ready now (installed on ring msp and soaked, or skipped), and no others.
      const picture = await loadMspPicture(tx, input.releaseId, now);
      const ready = readyToPromote(picture?.standings ?? []);
      const msp = before.gates.msp;
      const already = { ...(msp?.promotedBy ? { by: msp.promotedBy } : {}), ...(msp?.promotedAt ? { at: msp.promotedAt } : {}) };
      if (ready.length === 0) {
        const waiting = (picture?.standings ?? []).filter((st) => st.state !== 'promoted');
        if (!msp) return { outcome: 'refused', message: `${input.releaseId} has not been approved.`, zone };
        if ((msp.promotions ?? []).length > 0) {
          const rest = waiting.length === 0 ? '' : ` ${notReadyMessage(waiting, picture!.names, zone)}`;
          return { outcome: 'noop', message: `Already promoted to pilot.${rest}`, zone, ...already };
        }
        return { outcome: 'refused', message: notReadyMessage(waiting, picture!.names, zone), zone };
      }
      const event = { type: 'promote' as const, id: promoteId(input.releaseId, ready), actor: { kind: 'engineer' as const, id: input.actor.id }, clients, updates: ready };
      const gates = await applyGateEvents(tx, input.releaseId, [event], now, { book: before });
      const t = gates.results[0]!;
      if (t.outcome === 'refused') return { outcome: 'refused', message: t.message, zone };
      if (t.outcome === 'noop') return { outcome: 'noop', message: 'Already promoted to pilot.', zone, ...already };
      after.outbox(gates.outboxIds);
      const scheduled = t.effects.filter((e) => e.type === 'schedule').length;
      await tx.insert(decisions).values({
        kind: 'promote',
        releaseId: input.releaseId,
        ring: 'pilot',
        actor: input.actor.id,
        actorPersonId: engineer.personId > 0 ? engineer.personId : null,
        source: input.actor.platform,
        detail: { clients: scheduled, updates: ready },
        idempotencyKey: event.id,
        createdAt: now,
      });
      await tx.insert(auditLog).values({
        at: now,
        actor: input.actor.id,
        action: 'decision.promote',
        subject: `release:${input.releaseId}`,
        source: input.actor.platform,
        detail: { clients: scheduled, via: input.actor.platform, updates: ready },
      });
      const who = input.actor.platform === 'slack' ? `<@${input.actor.id}>` : escapeMrkdwn(input.actor.id);
      const kbs = ready.map((k) => kbLabel(k, picture!.names)).join(', ');
      const line = `:rocket: *Promoted to pilot* by ${who} at ${formatDecisionTime(now.toISOString(), await mspZone(tx))}: ${escapeMrkdwn(kbs)}; ${scheduled} client pilot${scheduled === 1 ? '' : 's'} scheduled for their next windows.`;
      after.outbox(await annotate(tx, promoteSubject(input.releaseId), line, [PROMOTE_ACTION], event.id, now));
      return { outcome: 'applied', message: `${input.releaseId} promoted to pilot: ${scheduled} client pilots scheduled.`, zone, by: input.actor.id, at: now.toISOString(), clients: scheduled };
    },
    { alsoRetry: isUniqueViolation },
  );
}

/** One promotion per set of ready updates: a double click is one decision, a late update's promotion another. */
function promoteId(releaseId: string, updates: readonly string[]): string {
  return `promote:${releaseId}:${createHash('sha1').update(updates.join(' ')).digest('hex').slice(0, 12)}`;
}

const kbLabel = (key: string, names: ReadonlyMap<string, { kb: string | null }>) => {
  const kb = names.get(key)?.kb ?? key;
  return /^\d+$/.test(kb) ? `KB${kb}` : kb;
};

/** A time people read: the MSP's zone, weekday and abbreviation ("Mon 14 Dec 01:01 CST"), never raw UTC. */
export function mspTime(at: string, zone: string): string {
  const t = DateTime.fromISO(at).setZone(zone);
  return `${t.toFormat('ccc d LLL HH:mm')} ${zoneShort(t)}`;
}

/** Why Promote has nothing to cover yet, update by update. */
function notReadyMessage(waiting: readonly MspStanding[], names: ReadonlyMap<string, { kb: string | null }>, zone: string): string {
  if (waiting.length === 0) return 'No update is approved for ring msp yet.';
  const lines = waiting.map((st) => {
    const kb = kbLabel(st.key, names);
    switch (st.state) {
      case 'soaking':
        return `${kb}: soaking until ${mspTime(st.soakUntil!, zone)}`;
      case 'testing':
        return `${kb}: still installing on our own machines`;
      default:
        return st.needing.length === 0
          ? `${kb}: none of our machines runs it; \`/patch skip msp ${kb}\` lets it go on untested`
          : `${kb}: it did not install on any of our machines (failed); retry it, or \`/patch skip msp ${kb}\``;
    }
  });
  return `Nothing is ready to promote yet:\n${lines.join('\n')}`;
}

export interface HoldClientInput {
  actor: Actor;
  clientId: string;
  /** The window whose summary the engineer clicked; its message is edited to show the hold. */
  windowStart: string;
  reason: string;
  requestId: string;
}

/**
 * "Hold this client" from a window summary: the engineers' own hold use-case (same rules, audit and digest edit),
 * scoped to that client, for the release the window was patching; the summary is edited in the same transaction.
 */
export async function holdClientFromWindow(ctx: UseCaseContext, input: HoldClientInput): Promise<DecisionResult> {
  const [row] = rowsOf<{ release_id: string }>(
    await ctx.db.execute(sql`select r.release_id from runs r join devices d on d.id = r.device_id join releases rel on rel.id = r.release_id
      where d.client_id = ${input.clientId} and r.window_start = ${input.windowStart}::timestamptz
      order by rel.initial_release_date desc limit 1`),
  );
  const releaseId =
    row?.release_id ?? rowsOf<{ id: string }>(await ctx.db.execute(sql`select id from releases order by initial_release_date desc, id desc limit 1`))[0]?.id;
  if (!releaseId) return { outcome: 'refused', code: 'unknown_release', message: 'No release is stored.', zone: await mspZone(ctx.db) };
  return hold(ctx, {
    actor: input.actor,
    releaseId,
    updateKey: null,
    clients: [input.clientId],
    reason: input.reason,
    requestId: input.requestId,
    andThen: async (tx, now) => {
      const who = input.actor.platform === 'slack' ? `<@${input.actor.id}>` : escapeMrkdwn(input.actor.id);
      const name = (await clientNames(tx)).get(input.clientId) ?? input.clientId;
      const line = `:octagonal_sign: *${escapeMrkdwn(name)} held* by ${who} at ${formatDecisionTime(now.toISOString(), await mspZone(tx))}: ${escapeMrkdwn(input.reason)}`;
      return annotate(tx, summarySubject(input.clientId, input.windowStart), line, [HOLD_CLIENT_ACTION], `hold:${input.requestId}`, now);
    },
  });
}

export interface RetryInput {
  actor: Actor;
  /** Client id, or `msp` for the MSP's own machines. */
  who: string;
  windowStart: string;
}

/** "Retry failed": each failed run of the window runs again, now if there is room, else in the device's next window. */
export async function retryFailed(ctx: UseCaseContext, input: RetryInput): Promise<RolloutActionResult> {
  return withTransaction(
    ctx,
    async (tx, after): Promise<RolloutActionResult> => {
      const now = ctx.now();
      const engineer = await findEngineer(tx, input.actor);
      if (!engineer) return { outcome: 'refused', code: 'not_engineer', message: NOT_ENGINEER, zone: await mspZone(tx) };
      const zone = engineer.zone;
      const windowStart = DateTime.fromISO(input.windowStart, { zone: 'utc' });
      if (!windowStart.isValid) return { outcome: 'refused', message: 'That window is not one I know.', zone };
      const scope = `${input.who}:${windowStart.toISO()}`;
      // Two clicks on one window queue here; the second then finds no run still marked failed.
      await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`retry:${scope}`}))`);
      const failed = rowsOf<{
        id: number;
        device_id: number;
        release_id: string | null;
        rollout_id: number | null;
        updates: string[];
        window_end: unknown;
        spec: string | null;
        timezone: string;
      }>(
        await tx.execute(sql`select r.id, r.device_id, r.release_id, r.rollout_id, r.updates, r.window_end,
            coalesce(c.windows, m.windows) ->> d.class as spec, coalesce(c.timezone, m.timezone) as timezone
          from runs r join devices d on d.id = r.device_id left join clients c on c.id = d.client_id left join msp m on m.id = 1
          where r.window_start = ${windowStart.toISO()}::timestamptz and coalesce(d.client_id, 'msp') = ${input.who}
            and r.state = 'failed' and not (r.detail ? 'retriedTo') and d.retired_at is null
          order by r.id for update of r`),
      );
      if (failed.length === 0) {
        const [last] = rowsOf<{ actor: string; created_at: unknown }>(
          await tx.execute(sql`select actor, created_at from decisions where kind = 'retry_failed' and idempotency_key like ${`retry_failed:${scope}:%`}
            order by id desc limit 1`),
        );
        if (last) return { outcome: 'noop', message: 'The failed runs were already retried.', zone, by: last.actor, at: new Date(String(last.created_at instanceof Date ? last.created_at.toISOString() : last.created_at)).toISOString() };
        return { outcome: 'noop', message: 'Nothing in that window failed, so there is nothing to retry.', zone };
      }
      const nowDt = DateTime.fromJSDate(now, { zone: 'utc' });
      const again: number[] = [];
      const later: Array<{ run: (typeof failed)[number]; start: string; end: string }> = [];
      for (const run of failed) {
        const parsed = run.spec ? parseWindowSpec(run.spec) : undefined;
        const window = {
          start: windowStart.setZone(run.timezone),
          end: DateTime.fromJSDate(run.window_end instanceof Date ? run.window_end : new Date(String(run.window_end)), { zone: run.timezone }),
          day: '',
        };
        const target = retryTarget({ window, rule: parsed?.ok ? parsed.value : undefined, zone: run.timezone, now: nowDt, budgetMinutes: DEFAULT_RUN_POLICY.installBudgetMinutes });
        if (!target) continue;
        if (target.kind === 'again') again.push(Number(run.id));
        else later.push({ run, start: target.window.start.toUTC().toISO()!, end: target.window.end.toUTC().toISO()! });
      }
      if (again.length > 0) {
        // The same run starts over with a new identity for its device calls (`retry` goes into its operation keys),
        // so the device manager does not hand back the failed install as if it were this one.
        await tx.execute(sql`update runs set state = 'scheduled', step = 'online_check', attempts = 0, reboots = 0, error = null, result = null,
            started_at = null, finished_at = null, step_started_at = null, rolled_to = null, updated_at = ${now.toISOString()}::timestamptz,
            detail = jsonb_build_object('seq', coalesce((detail ->> 'seq')::int, 0) + 1, 'retry', coalesce((detail ->> 'retry')::int, 0) + 1,
              'previousError', error)
          where id in (select (jsonb_array_elements_text(${JSON.stringify(again)}::jsonb))::int)`);
      }
      if (later.length > 0) {
        await insertRuns(
          tx,
          later.map(({ run, start, end }) => ({
            deviceId: Number(run.device_id),
            releaseId: run.release_id!,
            rolloutId: Number(run.rollout_id),
            windowStart: start,
            windowEnd: end,
            updates: run.updates,
          })),
          now,
        );
        // The failed run stays as it was (the window's record), marked with where its retry went.
        const moves = later.map(({ run, start }) => ({ id: Number(run.id), to: start }));
        await tx.execute(sql`update runs r set detail = r.detail || jsonb_build_object('retriedTo', x.to, 'retriedBy', ${input.actor.id}::text),
            updated_at = ${now.toISOString()}::timestamptz
          from jsonb_to_recordset(${JSON.stringify(moves)}::jsonb) as x(id integer, "to" text) where r.id = x.id`);
      }
      const previous = rowsOf<{ n: number }>(
        await tx.execute(sql`select count(*)::int as n from decisions where kind = 'retry_failed' and idempotency_key like ${`retry_failed:${scope}:%`}`),
      )[0]!.n;
      const key = `retry_failed:${scope}:${previous}`;
      const releaseId = failed.find((r) => r.release_id !== null)?.release_id ?? null;
      await tx.insert(decisions).values({
        kind: 'retry_failed',
        releaseId,
        clientId: input.who === 'msp' ? null : input.who,
        actor: input.actor.id,
        actorPersonId: engineer.personId > 0 ? engineer.personId : null,
        source: input.actor.platform,
        detail: { windowStart: windowStart.toISO(), again, later: later.map((l) => ({ run: Number(l.run.id), windowStart: l.start })) },
        idempotencyKey: key,
        createdAt: now,
      });
      await tx.insert(auditLog).values({
        at: now,
        actor: input.actor.id,
        action: 'decision.retry_failed',
        subject: `window:${scope}`,
        source: input.actor.platform,
        detail: { again: again.length, later: later.length, via: input.actor.platform },
      });
      const who = input.actor.platform === 'slack' ? `<@${input.actor.id}>` : escapeMrkdwn(input.actor.id);
      const mspTz = await mspZone(tx);
      const next = later.map((l) => l.start).sort()[0];
      const parts = [
        ...(again.length > 0 ? [`${again.length} running again now`] : []),
        ...(later.length > 0 ? [`${later.length} in the next window${next ? ` (from ${formatDecisionTime(next, mspTz)})` : ''}`] : []),
      ];
      const line = `:repeat: *Retry* by ${who} at ${formatDecisionTime(now.toISOString(), mspTz)}: ${parts.join(', ')}.`;
      after.outbox(await annotate(tx, summarySubject(input.who, windowStart.toISO()!), line, [RETRY_FAILED_ACTION], key, now));
      return { outcome: 'applied', message: `Retrying ${failed.length} failed run(s): ${parts.join(', ')}.`, zone, by: input.actor.id, at: now.toISOString(), again: again.length, later: later.length };
    },
    { alsoRetry: isUniqueViolation },
  );
}

export interface SkipRingInput {
  actor: Actor;
  releaseId: string;
  ring: 'msp' | 'pilot';
  /** As typed: KB5036893, 5036893, or the update's key. */
  update: string;
  clientId: string | null;
  reason: string;
}

/**
 * "Skip ring msp/pilot for KB… (no test machine)": an engineer lets one update past a ring where no device runs
 * it, so it is not stuck waiting for an install that cannot happen. Never implied: audited with who and why, told
 * in the release's thread, and shown in status. Once per (ring, client, update): a repeat says who did it.
 */
export async function skipRing(ctx: UseCaseContext, input: SkipRingInput): Promise<RolloutActionResult> {
  return withTransaction(
    ctx,
    async (tx, after): Promise<RolloutActionResult> => {
      const now = ctx.now();
      const engineer = await findEngineer(tx, input.actor);
      if (!engineer) return { outcome: 'refused', code: 'not_engineer', message: NOT_ENGINEER, zone: await mspZone(tx) };
      const zone = engineer.zone;
      if (!(await lockRelease(tx, input.releaseId))) return { outcome: 'refused', code: 'unknown_release', message: `No release ${input.releaseId} is stored.`, zone };
      const bare = input.update.trim().replace(/^KB/i, '');
      const [update] = rowsOf<{ update_key: string; kb: string | null }>(
        await tx.execute(sql`select update_key, kb from updates where release_id = ${input.releaseId} and removed_at is null
          and (update_key = ${input.update.trim()} or update_key = ${bare} or kb = ${bare}) order by id limit 1`),
      );
      if (!update) return { outcome: 'refused', message: `${input.releaseId} has no update ${input.update}.`, zone };
      if (input.ring === 'pilot' && rowsOf(await tx.execute(sql`select 1 from clients where id = ${input.clientId} and retired_at is null`)).length === 0) {
        return { outcome: 'refused', message: `No client ${input.clientId ?? ''} is known.`, zone };
      }
      const clientId = input.ring === 'pilot' ? input.clientId : null;
      const event = {
        type: 'skip_ring' as const,
        id: `skip:${input.releaseId}:${input.ring}:${clientId ?? 'msp'}:${update.update_key}`,
        actor: { kind: 'engineer' as const, id: input.actor.id },
        ring: input.ring,
        clientId,
        updateKey: update.update_key,
        reason: input.reason,
      };
      const before = await loadBook(tx, input.releaseId, true, gatesTouched(event));
      const gates = await applyGateEvents(tx, input.releaseId, [event], now, { book: before });
      const t = gates.results[0]!;
      if (t.outcome === 'refused') return { outcome: 'refused', message: t.message, zone };
      const kb = update.kb ? `KB${update.kb}` : update.update_key;
      if (t.outcome === 'noop') {
        const gate = before.gates[input.ring === 'msp' ? 'msp' : `pilot/${clientId}`];
        const skip = gate?.skips?.find((x) => x.updateKey === update.update_key);
        return { outcome: 'noop', message: `Ring ${input.ring} is already skipped for ${kb}.`, zone, ...(skip ? { by: skip.by, at: skip.at } : {}) };
      }
      after.outbox(gates.outboxIds);
      await tx.insert(auditLog).values({
        at: now,
        actor: input.actor.id,
        action: 'decision.skip_ring',
        subject: `rollout:${input.releaseId}:${input.ring}:${clientId ?? 'msp'}`,
        source: input.actor.platform,
        detail: { updateKey: update.update_key, kb, ring: input.ring, clientId, reason: input.reason },
      });
      const where = input.ring === 'msp' ? 'ring msp' : `${clientId}'s pilot`;
      const channel = rowsOf<{ channel: string }>(await tx.execute(sql`select channel from msp where id = 1`))[0]?.channel;
      if (channel) {
        const who = input.actor.platform === 'slack' ? `<@${input.actor.id}>` : escapeMrkdwn(input.actor.id);
        const text = `:fast_forward: ${who} skipped ${escapeMrkdwn(where)} for ${escapeMrkdwn(kb)} (no test machine): ${escapeMrkdwn(input.reason)}. It goes on untested there.`;
        after.outbox(await enqueueOutbox(tx, [{ key: event.id, channel, action: 'post', subject: event.id, payload: { text, threadSubject: subjects.digest(input.releaseId) } }], now));
      }
      return { outcome: 'applied', message: `Skipped ${where} for ${kb}: it goes on untested there (audited).`, zone, by: input.actor.id, at: now.toISOString() };
    },
    { alsoRetry: isUniqueViolation },
  );
}
