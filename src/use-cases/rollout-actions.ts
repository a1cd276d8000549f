/**
 * What engineers do to a rollout from chat: promote a release to pilot, hold a client from its window summary,
 * retry a window's failed runs. Each is one transaction: who is asking (engineers only), the rule (the rollout
 * gate machine for promotion, src/domain/retry.ts for retries), the decision and audit rows, and a notice that
 * draws the message the engineers clicked again as it now stands. Nothing here knows which chat asked.
 *
 * Exactly once: promotion is one per release (the gate machine's event id, and the decisions table's unique key);
 * a hold is one per request (the existing hold use-case); a retry takes a lock on its window and only ever moves
 * runs still marked failed, so a double click finds nothing left to retry and says who did it.
 */
import { createHash } from 'node:crypto';
import { DateTime } from 'luxon';
import { zoneShort } from '../domain/zone-label.ts';
import { updateLabel } from '../domain/status.ts';
import { kbLabel as kbOrKey } from '../domain/window-report.ts';
import { loadMspPicture, type MspPicture } from '../db/eligibility-repo.ts';
import { readyToPromote, type MspStanding } from '../domain/eligibility.ts';
import type { AppDatabase } from '../db/client.ts';
import { appendAudit } from '../db/audit-repo.ts';
import { insertRuns, loadBook } from '../db/rollout-repo.ts';
import {
  clientHoldsInForce,
  clientsWithLiveDevices,
  failedRunsToRetry,
  findReleaseUpdate,
  insertDecision,
  isLiveClient,
  lockMessageEdit,
  lockRetryWindow,
  markRetriedTo,
  postedChannels,
  releaseOfWindow,
  restartRuns,
  retryableRunCount,
  retryDecisions,
  windowAsNow,
  type FailedRun,
} from '../db/rollout-actions-repo.ts';
import { lockRelease } from '../db/decisions-repo.ts';
import { retryTarget } from '../domain/retry.ts';
import { gatesTouched, type Gate } from '../domain/rollout.ts';
import { DEFAULT_RUN_POLICY } from '../domain/run.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { mspZone } from './digest-refresh.ts';
import { findEngineer, hold, type Actor, type DecisionResult, type Engineer } from './decisions.ts';
import { applyGateEvents } from './gates.ts';
import { isUniqueViolation, withTransaction, type AfterCommit, type UseCaseContext } from './transaction.ts';
import { subjects } from '../chat/subjects.ts';
import { notify } from '../chat/notify.ts';
import { retryWords } from '../chat/notices/rollout-actions.ts';

const NOT_ENGINEER = 'Only the MSP\u2019s engineers can promote, hold or retry a rollout. Nothing was changed.';

/** The promotion offer's subject in the engineers' thread (posted by the rollout engine). */
export const promoteSubject = subjects.promote;
/** A window's end-of-window summary (the engine posts it under this subject). */
export const summarySubject = (who: string, windowStart: string) => subjects.windowSummary(subjects.window(who, windowStart));

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

/** An engineer's action in its transaction: who is asking and what time it is. */
interface EngineerAction {
  tx: AppDatabase;
  after: AfterCommit;
  now: Date;
  actor: Actor;
  engineer: Engineer;
  /** The engineer's zone, for times in the reply. */
  zone: string;
}

/**
 * What every engineer's rollout action starts with: one transaction, refused (changing nothing) unless the actor
 * is one of the MSP's engineers. A click racing another for the same decision key loses on the unique index and
 * runs again, and then finds the decision made (that is how a double click is answered once).
 */
function asEngineer(ctx: UseCaseContext, actor: Actor, work: (action: EngineerAction) => Promise<RolloutActionResult>): Promise<RolloutActionResult> {
  return withTransaction(
    ctx,
    async (tx, after): Promise<RolloutActionResult> => {
      const engineer = await findEngineer(tx, actor);
      if (!engineer) return { outcome: 'refused', code: 'not_engineer', message: NOT_ENGINEER, zone: await mspZone(tx) };
      return work({ tx, after, now: ctx.now(), actor, engineer, zone: engineer.zone });
    },
    { alsoRetry: isUniqueViolation },
  );
}

/** The release row first, as every other decision on the release takes it: one order, no deadlock. */
async function refusedUnlessRelease(action: EngineerAction, releaseId: string): Promise<RolloutActionResult | undefined> {
  if (await lockRelease(action.tx, releaseId)) return undefined;
  return { outcome: 'refused', code: 'unknown_release', message: `No release ${releaseId} is stored.`, zone: action.zone };
}

const personId = (engineer: Engineer): number | null => (engineer.personId > 0 ? engineer.personId : null);

/** Promote to pilot: the gate machine's `promote` event, for every client with live devices. */
export function promoteRelease(ctx: UseCaseContext, input: PromoteInput): Promise<RolloutActionResult> {
  return asEngineer(ctx, input.actor, async (action) => {
    const { tx, now, zone } = action;
    const unknown = await refusedUnlessRelease(action, input.releaseId);
    if (unknown) return unknown;
    const clients = await clientsWithLiveDevices(tx);
    const before = await loadBook(tx, input.releaseId, true);
    // A promotion covers the updates ready now (installed on ring msp and soaked, or skipped), and no others.
    const picture = await loadMspPicture(tx, input.releaseId, now);
    const ready = readyToPromote(picture?.standings ?? []);
    const msp = before.gates.msp;
    if (ready.length === 0) return nothingToPromote(input.releaseId, msp, picture, zone);
    const event = { type: 'promote' as const, id: promoteId(input.releaseId, ready), actor: { kind: 'engineer' as const, id: input.actor.id }, clients, updates: ready };
    const gates = await applyGateEvents(tx, input.releaseId, [event], now, { book: before });
    const t = gates.results[0]!;
    if (t.outcome === 'refused') return { outcome: 'refused', message: t.message, zone };
    if (t.outcome === 'noop') return { outcome: 'noop', message: 'Already promoted to pilot.', zone, ...promotedBy(msp) };
    action.after.outbox(gates.outboxIds);
    const scheduled = t.effects.filter((e) => e.type === 'schedule').length;
    const detail = { clients: scheduled, updates: ready };
    await insertDecision(tx, { kind: 'promote', releaseId: input.releaseId, ring: 'pilot', actor: input.actor.id, actorPersonId: personId(action.engineer), source: input.actor.platform, detail, idempotencyKey: event.id, createdAt: now });
    const round = (msp?.promotions ?? []).length;
    action.after.outbox(await offerPromoted(action, { releaseId: input.releaseId, round }, event.id, ready, scheduled, picture!.names));
    // After the message lock offerPromoted takes: the audit chain's head is the last lock (transaction.ts).
    await appendAudit(tx, { at: now, actor: input.actor.id, action: 'decision.promote', subject: `release:${input.releaseId}`, source: input.actor.platform, detail: { ...detail, via: input.actor.platform } });
    return { outcome: 'applied', message: `${input.releaseId} promoted to pilot: ${scheduled} client pilots scheduled.`, zone, by: input.actor.id, at: now.toISOString(), clients: scheduled };
  });
}

const promotedBy = (msp: Gate | undefined) => ({ ...(msp?.promotedBy ? { by: msp.promotedBy } : {}), ...(msp?.promotedAt ? { at: msp.promotedAt } : {}) });

/** Nothing ready: promoted already (and what still waits), not approved, or why each update is not ready yet. */
function nothingToPromote(releaseId: string, msp: Gate | undefined, picture: MspPicture | undefined, zone: string): RolloutActionResult {
  const waiting = (picture?.standings ?? []).filter((st) => st.state !== 'promoted');
  if (!msp) return { outcome: 'refused', message: `${releaseId} has not been approved.`, zone };
  if ((msp.promotions ?? []).length > 0) {
    // "Already promoted. Nothing is ready to promote yet" read as a contradiction: what waits is what came after.
    const rest = waiting.length === 0 ? '' : ` ${notReadyMessage(waiting, picture!.names, zone, 'Not promoted yet, still waiting:')}`;
    return { outcome: 'noop', message: `Already promoted to pilot.${rest}`, zone, ...promotedBy(msp) };
  }
  return { outcome: 'refused', message: notReadyMessage(waiting, picture!.names, zone), zone };
}

/** The offer, drawn again as promoted: who, when, what, and how many pilots, with its button gone. */
async function offerPromoted(
  action: EngineerAction,
  offer: { releaseId: string; round: number },
  promotionId: string,
  updates: readonly string[],
  pilotsScheduled: number,
  names: MspPicture['names'],
): Promise<number[]> {
  const { releaseId, round } = offer;
  // The offer this promotion answers is the one of its round (earlier rounds' offers were answered by theirs).
  const subject = promoteSubject(releaseId, round);
  await lockMessageEdit(action.tx, subject);
  const channels = await postedChannels(action.tx, subject);
  if (channels.length === 0) return [];
  const by = { platform: action.actor.platform, id: action.actor.id };
  const labels = updates.map((k) => kbLabel(k, names));
  return notify(action.tx, [{ kind: 'promotion_made', releaseId, ...(round > 0 ? { round } : {}), channels, promotionId, by, at: action.now.toISOString(), updates, labels, pilotsScheduled }], action.now);
}

/** One promotion per set of ready updates: a double click is one decision, a late update's promotion another. */
function promoteId(releaseId: string, updates: readonly string[]): string {
  return `promote:${releaseId}:${createHash('sha1').update(updates.join(' ')).digest('hex').slice(0, 12)}`;
}

/** The update as the /patch commands take it: its KB when it has one, else its key. */
const kbLabel = (key: string, names: MspPicture['names']) => kbOrKey(names.get(key)?.kb ?? key);

/** A time people read: the MSP's zone, weekday and abbreviation ("Mon 14 Dec 01:01 CST"), never raw UTC. */
export function mspTime(at: string, zone: string): string {
  const t = DateTime.fromISO(at).setZone(zone);
  return `${t.toFormat('ccc d LLL HH:mm')} ${zoneShort(t)}`;
}

/** Why Promote has nothing to cover yet, update by update. */
function notReadyMessage(waiting: readonly MspStanding[], names: MspPicture['names'], zone: string, lead = 'Nothing is ready to promote yet:'): string {
  if (waiting.length === 0) return 'No update is approved for ring msp yet.';
  const lines = waiting.map((st) => {
    // People read the update's name ("Click to Run (Microsoft Office)"); the skip command takes its key.
    const name = names.get(st.key);
    const label = updateLabel({ key: st.key, kb: name?.kb ?? null, title: name?.title ?? null, family: name?.family ?? null });
    const kb = kbLabel(st.key, names);
    switch (st.state) {
      case 'soaking':
        return `${label}: soaking until ${mspTime(st.soakUntil!, zone)}`;
      case 'testing': {
        // Not "installing": the update may be waiting for our machines' next window, which this does not know.
        const finished = st.needing.filter((id) => st.installedOn.includes(id) || st.failedOn.includes(id)).length;
        return `${label}: not finished on our own machines yet (${finished} of ${st.needing.length} done)`;
      }
      default:
        return st.needing.length === 0
          ? `${label}: none of our machines runs it; \`/patch skip msp ${kb}\` lets it go on untested`
          : `${label}: it did not install on any of our machines (failed); retry it, or \`/patch skip msp ${kb}\``;
    }
  });
  return `${lead}\n${lines.join('\n')}`;
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
  const releaseId = await releaseOfWindow(ctx.db, input.clientId, input.windowStart);
  if (!releaseId) return { outcome: 'refused', code: 'unknown_release', message: 'No release is stored.', zone: await mspZone(ctx.db) };
  return hold(ctx, {
    actor: input.actor,
    releaseId,
    updateKey: null,
    clients: [input.clientId],
    reason: input.reason,
    requestId: input.requestId,
    andThen: (tx, now) => summaryAsNow(tx, input.clientId, input.windowStart, `hold:${input.requestId}`, now),
  });
}

/** `acme:2024-02-14T07:00:00.000Z`: one window's retries are counted and locked under it. */
const retryScope = (who: string, windowStart: DateTime): string => `${who}:${windowStart.toISO()}`;

/**
 * The window's summary drawn again as things are now (its runs, the client's holds, the retries asked), wherever
 * it was posted; `cause` makes one edit per click. Nothing when the summary was never posted.
 */
async function summaryAsNow(tx: AppDatabase, who: string, windowStart: string, cause: string, now: Date): Promise<number[]> {
  const subject = summarySubject(who, windowStart);
  await lockMessageEdit(tx, subject);
  const channels = await postedChannels(tx, subject);
  const window = channels.length === 0 ? undefined : await windowAsNow(tx, who, windowStart, now);
  if (!window) return [];
  const start = DateTime.fromISO(windowStart, { zone: 'utc' });
  const holds = who === 'msp' ? [] : await clientHoldsInForce(tx, who);
  const retries = await retryDecisions(tx, retryScope(who, start));
  const retryable = await retryableRunCount(tx, who, start.toISO()!);
  return notify(
    tx,
    [
      {
        kind: 'window_summary_changed',
        subject,
        channels,
        cause,
        ...window,
        holds: holds.map((h) => ({ clientId: who, by: { platform: h.via, id: h.by }, at: h.at, reason: h.reason })),
        retries: retries.map((r) => ({ by: { platform: r.source, id: r.actor }, at: r.at, again: r.again.length, laterStarts: r.later.map((l) => l.windowStart) })),
        retryable,
      },
    ],
    now,
  );
}

export interface RetryInput {
  actor: Actor;
  /** Client id, or `msp` for the MSP's own machines. */
  who: string;
  windowStart: string;
}

/** Where each failed run goes: again now (its window still has room), or a new run in a later window. */
interface RetryPlan {
  again: number[];
  later: Array<{ run: FailedRun; start: string; end: string }>;
}

/** "Retry failed": each failed run of the window runs again, now if there is room, else in the device's next window. */
export function retryFailed(ctx: UseCaseContext, input: RetryInput): Promise<RolloutActionResult> {
  return asEngineer(ctx, input.actor, async (action) => {
    const windowStart = DateTime.fromISO(input.windowStart, { zone: 'utc' });
    if (!windowStart.isValid) return { outcome: 'refused', message: 'That window is not one I know.', zone: action.zone };
    const scope = retryScope(input.who, windowStart);
    await lockRetryWindow(action.tx, scope);
    const failed = await failedRunsToRetry(action.tx, input.who, windowStart.toISO()!);
    if (failed.length === 0) return nothingToRetry(action, scope);
    const plan = planRetries(failed, windowStart, action.now);
    await moveRuns(action, plan);
    const key = await recordRetry(action, input.who, windowStart, failed, plan);
    action.after.outbox(await summaryAsNow(action.tx, input.who, windowStart.toISO()!, key, action.now));
    const words = retryWords(plan.again.length, plan.later.map((l) => l.start), await mspZone(action.tx));
    return { outcome: 'applied', message: `Retrying ${failed.length} failed run(s): ${words}.`, zone: action.zone, by: input.actor.id, at: action.now.toISOString(), again: plan.again.length, later: plan.later.length };
  });
}

/** Two clicks queue on the window's lock; the second finds nothing failed left and says who retried it. */
async function nothingToRetry(action: EngineerAction, scope: string): Promise<RolloutActionResult> {
  const last = (await retryDecisions(action.tx, scope)).at(-1);
  if (last) return { outcome: 'noop', message: 'The failed runs were already retried.', zone: action.zone, by: last.actor, at: last.at };
  return { outcome: 'noop', message: 'Nothing in that window failed, so there is nothing to retry.', zone: action.zone };
}

/** Pure: each run's retry target by its device class's window rule, in its own zone; a run with none stays failed. */
function planRetries(failed: readonly FailedRun[], windowStart: DateTime, now: Date): RetryPlan {
  const nowDt = DateTime.fromJSDate(now, { zone: 'utc' });
  const plan: RetryPlan = { again: [], later: [] };
  for (const run of failed) {
    const parsed = run.spec ? parseWindowSpec(run.spec) : undefined;
    const window = { start: windowStart.setZone(run.timezone), end: DateTime.fromISO(run.windowEnd, { zone: run.timezone }), day: '' };
    const target = retryTarget({ window, rule: parsed?.ok ? parsed.value : undefined, zone: run.timezone, now: nowDt, budgetMinutes: DEFAULT_RUN_POLICY.installBudgetMinutes });
    if (!target) continue;
    if (target.kind === 'again') plan.again.push(run.id);
    else plan.later.push({ run, start: target.window.start.toUTC().toISO()!, end: target.window.end.toUTC().toISO()! });
  }
  return plan;
}

async function moveRuns(action: EngineerAction, plan: RetryPlan): Promise<void> {
  await restartRuns(action.tx, plan.again, action.now);
  if (plan.later.length === 0) return;
  const runs = plan.later.map(({ run, start, end }) => ({ deviceId: run.deviceId, releaseId: run.releaseId!, rolloutId: Number(run.rolloutId), windowStart: start, windowEnd: end, updates: run.updates }));
  await insertRuns(action.tx, runs, action.now);
  await markRetriedTo(action.tx, plan.later.map(({ run, start }) => ({ id: run.id, to: start })), action.actor.id, action.now);
}

/** The retry's decision (the window's nth: its key) and audit rows; returns the key. */
async function recordRetry(action: EngineerAction, who: string, windowStart: DateTime, failed: readonly FailedRun[], plan: RetryPlan): Promise<string> {
  const { tx, actor, now } = action;
  const scope = retryScope(who, windowStart);
  const key = `retry_failed:${scope}:${(await retryDecisions(tx, scope)).length}`;
  await insertDecision(tx, {
    kind: 'retry_failed',
    releaseId: failed.find((r) => r.releaseId !== null)?.releaseId ?? null,
    clientId: who === 'msp' ? null : who,
    actor: actor.id,
    actorPersonId: personId(action.engineer),
    source: actor.platform,
    detail: { windowStart: windowStart.toISO(), again: plan.again, later: plan.later.map((l) => ({ run: l.run.id, windowStart: l.start })) },
    idempotencyKey: key,
    createdAt: now,
  });
  await appendAudit(tx, { at: now, actor: actor.id, action: 'decision.retry_failed', subject: `window:${scope}`, source: actor.platform, detail: { again: plan.again.length, later: plan.later.length, via: actor.platform } });
  return key;
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
export function skipRing(ctx: UseCaseContext, input: SkipRingInput): Promise<RolloutActionResult> {
  return asEngineer(ctx, input.actor, async (action) => {
    const { tx, now, zone } = action;
    const unknown = await refusedUnlessRelease(action, input.releaseId);
    if (unknown) return unknown;
    const update = await findReleaseUpdate(tx, input.releaseId, input.update);
    if (!update) return { outcome: 'refused', message: `${input.releaseId} has no update ${input.update}.`, zone };
    if (input.ring === 'pilot' && !(await isLiveClient(tx, input.clientId))) return { outcome: 'refused', message: `No client ${input.clientId ?? ''} is known.`, zone };
    const clientId = input.ring === 'pilot' ? input.clientId : null;
    const id = `skip:${input.releaseId}:${input.ring}:${clientId ?? 'msp'}:${update.updateKey}`;
    const event = { type: 'skip_ring' as const, id, actor: { kind: 'engineer' as const, id: input.actor.id }, ring: input.ring, clientId, updateKey: update.updateKey, reason: input.reason };
    const before = await loadBook(tx, input.releaseId, true, gatesTouched(event));
    const gates = await applyGateEvents(tx, input.releaseId, [event], now, { book: before });
    const t = gates.results[0]!;
    if (t.outcome === 'refused') return { outcome: 'refused', message: t.message, zone };
    const kb = update.kb ? `KB${update.kb}` : update.updateKey;
    if (t.outcome === 'noop') {
      const skip = before.gates[input.ring === 'msp' ? 'msp' : `pilot/${clientId}`]?.skips?.find((x) => x.updateKey === update.updateKey);
      return { outcome: 'noop', message: `Ring ${input.ring} is already skipped for ${kb}.`, zone, ...(skip ? { by: skip.by, at: skip.at } : {}) };
    }
    action.after.outbox(gates.outboxIds);
    const audited = { updateKey: update.updateKey, kb, ring: input.ring, clientId, reason: input.reason };
    await appendAudit(tx, { at: now, actor: input.actor.id, action: 'decision.skip_ring', subject: `rollout:${input.releaseId}:${input.ring}:${clientId ?? 'msp'}`, source: input.actor.platform, detail: audited });
    const where = input.ring === 'msp' ? 'ring msp' : `${clientId}'s pilot`;
    const by = { platform: input.actor.platform, id: input.actor.id };
    action.after.outbox(await notify(tx, [{ kind: 'ring_skipped', eventId: id, releaseId: input.releaseId, where, kb, by, reason: input.reason }], now));
    return { outcome: 'applied', message: `Skipped ${where} for ${kb}: it goes on untested there (audited).`, zone, by: input.actor.id, at: now.toISOString() };
  });
}
