/**
 * What an engineer can do to a release from any chat: approve, hold, release a hold, withdraw an approval, add
 * a note. Each is ONE transaction: check who is asking, lock the release row, let the domain decide, then write
 * the decision, the holds, the audit row, and the mark that has the digest redrawn after the commit
 * (digest-refresh.ts). Nothing here knows which chat asked; the Slack listeners and the Teams card actions both
 * call these and render the result.
 */
import {
  decide,
  formatDecisionTime,
  type DecisionEvent,
  type Effect,
  type HoldClients,
  type ReleaseDecisionState,
  type ReleaseTarget,
  type Transition,
} from '../domain/approval.ts';
import type { Ring } from '../domain/inventory.ts';
import type { RolloutEvent } from '../domain/rollout.ts';
import type { AppDatabase } from '../db/client.ts';
import { appendAudits, type AuditEntry } from '../db/audit-repo.ts';
import { liveClientIdsAmong } from '../db/clients-repo.ts';
import {
  claimNoteRequest,
  decisionRecorded,
  engineerByChatIdentity,
  insertDecisions,
  insertHold,
  loadDecisionState,
  releaseHoldRows,
  type LoadedRelease,
  type NewReleaseDecision,
} from '../db/decisions-repo.ts';
import { addNote, NoteError } from '../db/notes-repo.ts';
import { latestReleaseIds } from '../db/release-repo.ts';
import { mspZone, refreshDigests, requestDigestRefresh, requestDigestRefreshes } from './digest-refresh.ts';
import { applyGateEvents, applyGateEventsPerRelease } from './gates.ts';
import { batcherFor, type BatchShared } from './decision-batch.ts';
import { withTransaction, type AfterCommit, type UseCaseContext } from './transaction.ts';
import { reopenGatesWithWork } from './reopen.ts';

export type { UseCaseContext };

export interface Actor {
  platform: 'slack' | 'teams' | 'cli';
  /** Slack user id, Teams AAD object id, or the CLI user. */
  id: string;
}

export type RefusalCode =
  | 'not_engineer'
  | 'unknown_release'
  | 'unknown_client'
  | 'invalid_note'
  | Extract<Transition, { outcome: 'refused' }>['code'];

export interface DecisionResult {
  outcome: 'applied' | 'noop' | 'refused';
  code?: RefusalCode;
  message: string;
  /** For a no-op: who did it first, and when (ISO). */
  by?: string;
  at?: string;
  /** The asking engineer's zone (else the MSP's), for rendering times to them. */
  zone: string;
  /** The update key the request was resolved to (KB prefix removed), when it named one. */
  updateKey?: string | null;
}

export interface Engineer {
  personId: number;
  zone: string;
}

/** The inventory's engineers (person_roles `engineer`), recognised by their chat identity. */
export async function findEngineer(db: AppDatabase, actor: Actor): Promise<Engineer | undefined> {
  if (actor.platform === 'cli') {
    return { personId: 0, zone: await mspZone(db) };
  }
  const engineer = await engineerByChatIdentity(db, actor.platform, actor.id);
  if (!engineer) return undefined;
  return { personId: engineer.personId, zone: engineer.timezone };
}

const NOT_ENGINEER = 'Only the MSP\u2019s engineers can approve, hold or annotate updates. Nothing was changed.';

/** For a listener that opens a form first (the Hold and Note modals): refuse before showing it. */
export async function checkEngineer(ctx: UseCaseContext, actor: Actor): Promise<DecisionResult | undefined> {
  const engineer = await findEngineer(ctx.db, actor);
  if (engineer) return undefined;
  return { outcome: 'refused', code: 'not_engineer', message: NOT_ENGINEER, zone: await mspZone(ctx.db) };
}

/** The most recent release (by Microsoft's release date): what `/patch` and App Home mean by "current". */
export async function currentReleaseId(db: AppDatabase): Promise<string | undefined> {
  const [id] = await latestReleaseIds(db, 1);
  return id;
}

/** `KB5034763`, `kb5034763` and `5034763` name the same update. */
export function resolveUpdateKey(state: ReleaseDecisionState, key: string | null): string | null {
  if (key === null) return null;
  const trimmed = key.trim();
  if (Object.hasOwn(state.updates, trimmed)) return trimmed;
  const bare = trimmed.replace(/^KB/i, '');
  return Object.hasOwn(state.updates, bare) ? bare : trimmed;
}

interface Plan {
  /** Builds the event from the locked state; may refuse (e.g. an unknown client). */
  event: (state: ReleaseDecisionState, tx: AppDatabase, loaded: LoadedRelease) => Promise<DecisionEvent | DecisionResult>;
  /** The event's id is new by construction (it counts the target's decisions so far): no need to look it up. */
  freshId?: boolean;
  /** More rows in the same transaction once the decision applied (e.g. a window summary edited to show a hold). */
  after?: (tx: AppDatabase, now: Date) => Promise<number[]>;
  /**
   * May share a transaction with other decisions (decision-batch.ts): it writes only the release's rows and
   * leaves its audit rows to the end. Not a note (its repository writes the audit row itself) nor a plan with
   * `after` (those take locks of their own, in an order a batch does not keep).
   */
  batch?: boolean;
}

/**
 * One decision: check who is asking, lock the release row, let the domain decide, write (withTransaction: lock
 * order, retries, the deliverer told after commit). A batchable one may share its transaction with the other
 * decisions waiting at that moment (decision-batch.ts); on its own or in a batch its result is the same.
 *
 * An approval's ring msp write used to swallow the repository's ConflictError ("another approval created it"). That
 * was a bug: a ConflictError also means a resting ring msp changed between our read and our write, and swallowing it
 * committed the approval while its gate write was lost, so a late update was approved and never reached a device.
 * The locks (the release row, then the gate row) keep that race out today; should it happen, the whole decision is
 * read again and applied (test/integration/decisions-concurrency.test.ts).
 */
function run(ctx: UseCaseContext, actor: Actor, releaseId: string, plan: Plan): Promise<DecisionResult> {
  const asked: Asked = { ctx, actor, releaseId, plan, now: ctx.now() };
  const alone = () =>
    withTransaction(ctx, async (tx, after) => {
      const { result, audits } = await decideIn(tx, after, asked, { load: () => loadDecisionState(tx, releaseId, { lock: true }), engineer: () => findEngineer(tx, actor) });
      // Last, after the gate and message locks: the first audit insert takes the audit chain's head lock to commit,
      // the last level of the lock order (transaction.ts). Written before an approval's gate event, it made the
      // decision wait on the head while holding nothing the sweep wanted, then take a gate a sweep held while that
      // sweep waited on the head: a deadlock, retried, but a second lost on a click.
      await appendAudits(tx, await audits);
      return result;
    });
  if (!plan.batch) return alone();
  // Who asks is read once per batch (a burst's clicks come from a handful of engineers).
  const inBatch = (tx: AppDatabase, after: AfterCommit, shared: BatchShared) =>
    decideIn(tx, after, asked, { load: () => shared.state(releaseId), engineer: () => shared.once(`engineer:${actor.platform}:${actor.id}`, () => findEngineer(tx, actor)), batch: shared });
  return batcherFor(ctx).submit({ releaseId, alone, inBatch });
}

interface Asked {
  ctx: UseCaseContext;
  actor: Actor;
  releaseId: string;
  plan: Plan;
  now: Date;
}

interface DecideOptions {
  /** The release's state, its row locked (alone: by this read; in a batch: by the batch, read with its round). */
  load: () => Promise<LoadedRelease | undefined>;
  engineer: () => Promise<Engineer | undefined>;
  /**
   * In a batch: the decision row is queued for its round's insert, and the digest marks and ring msp approvals are
   * gathered and written once for the whole batch, after its decisions.
   */
  batch?: BatchShared;
}

/** The decision in `tx`; its audit rows are returned for the caller to write last (in a batch, once its round is written). */
async function decideIn(tx: AppDatabase, after: AfterCommit, asked: Asked, options: DecideOptions): Promise<{ result: DecisionResult; audits: Promise<AuditEntry[]> }> {
  const { ctx, actor, releaseId, plan, now } = asked;
  const none = (result: DecisionResult) => ({ result, audits: Promise.resolve([]) });
  // Sent together (postgres.js pipelines a transaction's statements): who asks, then the lock and the state. For
  // someone who is no engineer the lock was taken for nothing, and is let go when the transaction ends.
  const [engineer, loaded] = await Promise.all([options.engineer(), options.load()]);
  if (!engineer) return none({ outcome: 'refused', code: 'not_engineer', message: NOT_ENGINEER, zone: await mspZone(tx) });
  if (!loaded) return none({ outcome: 'refused', code: 'unknown_release', message: `No release ${releaseId} is stored.`, zone: engineer.zone });
  const built = await plan.event(loaded.state, tx, loaded);
  if ('outcome' in built) return none({ ...built, zone: engineer.zone });
  const event = built;
  if (!plan.freshId && (await decisionRecorded(tx, event.id))) {
    return none({ outcome: 'noop', message: 'Already done (this request was handled before).', zone: engineer.zone });
  }
  const t = decide(loaded.state, event, now);
  const updateKey = 'updateKey' in event ? event.updateKey : undefined;
  const target = updateKey !== undefined ? { updateKey } : {};
  if (t.outcome === 'refused') return none({ outcome: 'refused', code: t.code, message: t.message, zone: engineer.zone, ...target });
  if (t.outcome === 'noop') {
    return none({ outcome: 'noop', message: t.message, zone: engineer.zone, ...(t.by ? { by: t.by } : {}), ...(t.at ? { at: t.at } : {}), ...target });
  }
  const written = await persist(tx, { actor, engineer, releaseId, updateIds: loaded.updateIds, event, now, after, batch: options.batch }, t.effects);
  after.outbox(written.outboxIds);
  if (plan.after) after.outbox(await plan.after(tx, now));
  // The digest is redrawn after the commit, outside the release lock, together with whatever else was decided
  // meanwhile (digest-refresh.ts); the caller hears back once it is queued, the click was acked long before.
  if (t.effects.some((e) => e.type === 'rerender')) after.onCommitted(() => refreshDigests(ctx));
  return { result: { outcome: 'applied', message: t.message, zone: engineer.zone, by: actor.id, at: now.toISOString(), ...target }, audits: written.audits };
}

/** Who decided what, on which release: what every write of one decision needs. */
interface Decided {
  actor: Actor;
  engineer: Engineer;
  releaseId: string;
  updateIds: Map<string, number>;
  event: DecisionEvent;
  now: Date;
  /** Where the outbox rows of writes gathered for the batch are told. */
  after: AfterCommit;
  batch: BatchShared | undefined;
}

/** Writes the decision's effects in order; returns the outbox rows written and the audit rows to write last. */
async function persist(tx: AppDatabase, d: Decided, effects: Effect[]): Promise<{ outboxIds: number[]; audits: Promise<AuditEntry[]> }> {
  // Only a mark (one row per release): the redraw itself reads the fleet and renders, which no lock should wait on.
  // It depends on no other write, so it goes out with the first of them (one round trip fewer); in a batch, once for
  // all of its releases, in one statement.
  const refresh = effects.flatMap((e) => (e.type === 'rerender' ? e.updateKeys : []));
  if (refresh.length > 0 && d.batch) {
    d.batch.gather<DigestMark>('digest', { releaseId: d.releaseId, keys: refresh }, (marks) => markGatheredDigests(tx, marks, d.now));
    return writeEffects(tx, d, effects);
  }
  const [, written] = await Promise.all([refresh.length > 0 ? requestDigestRefresh(tx, d.releaseId, refresh, d.now) : undefined, writeEffects(tx, d, effects)]);
  return written;
}

interface DigestMark {
  releaseId: string;
  keys: Array<string | null>;
}

/** A batch's digest marks: each release once, with every key its decisions named, all in one statement. */
async function markGatheredDigests(tx: AppDatabase, marks: DigestMark[], now: Date): Promise<void> {
  const byRelease = new Map<string, Set<string | null>>();
  for (const m of marks) byRelease.set(m.releaseId, new Set([...(byRelease.get(m.releaseId) ?? []), ...m.keys]));
  await requestDigestRefreshes(tx, [...byRelease].map(([releaseId, keys]) => ({ releaseId, keys: [...keys] })), now);
}

interface GatheredApproval {
  releaseId: string;
  event: RolloutEvent;
  now: Date;
  after: AfterCommit;
}

/**
 * A batch's approvals, applied to each release's gates in one go, in the order they were decided: the same
 * transitions as one call each (nothing a later decision of the batch reads depends on the gates), the gates of every
 * release read in one statement, and written once per release instead of once per approval.
 */
async function applyGatheredApprovals(tx: AppDatabase, approvals: GatheredApproval[]): Promise<void> {
  const byRelease = new Map<string, GatheredApproval[]>();
  for (const a of approvals) byRelease.set(a.releaseId, [...(byRelease.get(a.releaseId) ?? []), a]);
  const applied = await applyGateEventsPerRelease(tx, new Map([...byRelease].map(([id, list]) => [id, list.map((a) => a.event)])), approvals.at(-1)!.now);
  [...byRelease.values()].forEach((list, i) => list[0]!.after.outbox(applied[i]!.outboxIds));
}

/** The decision's rows in the order its effects name them; the audit rows are returned for the caller to write last. */
async function writeEffects(tx: AppDatabase, d: Decided, effects: Effect[]): Promise<{ outboxIds: number[]; audits: Promise<AuditEntry[]> }> {
  const placedIds = await placeHolds(tx, d, effects);
  const outboxIds: number[] = [];
  const audits: Array<Promise<AuditEntry>> = [];
  for (const effect of effects) {
    switch (effect.type) {
      case 'release_holds':
        await releaseHoldRows(tx, effect.holdIds.map(Number), d.actor.id, d.now);
        break;
      case 'decision':
        audits.push(recordDecision(tx, d, effect, placedIds));
        // Alone, the row is written before the next effect's, as the effects name them; in a batch, with its round.
        if (!d.batch) await audits.at(-1);
        break;
      case 'start_rollout': {
        // Ring msp is scheduled (or reopened for a late update) here, so the sweep plans its runs in the MSP's next
        // window; once ring msp is at work this changes nothing.
        const approved: RolloutEvent = { type: 'approved', id: d.event.id };
        if (d.batch) {
          d.batch.gather<GatheredApproval>('gates', { releaseId: effect.releaseId, event: approved, now: d.now, after: d.after }, (all) => applyGatheredApprovals(tx, all));
          break;
        }
        const gates = await applyGateEvents(tx, effect.releaseId, [approved], d.now);
        outboxIds.push(...gates.outboxIds);
        break;
      }
      case 'note':
        // The notes repository keeps the revision history and writes the note's own audit row.
        await addNote(tx, { releaseId: d.releaseId, updateKey: effect.updateKey, body: effect.text, tags: effect.tags, author: d.actor.id, source: d.actor.platform, now: d.now });
        break;
      case 'rerender':
      case 'place_hold':
        break;
    }
  }
  return { outboxIds, audits: Promise.all(audits) };
}

const idOf = (d: Decided, key: string | null) => (key === null ? null : (d.updateIds.get(key) ?? null));

/** The holds the decision places, first: the decision row names them. Returns the domain's hold id -> row id. */
async function placeHolds(tx: AppDatabase, d: Decided, effects: Effect[]): Promise<Map<string, number>> {
  const placedIds = new Map<string, number>();
  for (const effect of effects) {
    if (effect.type !== 'place_hold') continue;
    const h = effect.hold;
    const rowId = await insertHold(tx, {
      // A ring hold keeps its update and client: the rollout reads them to narrow what the ring drops.
      scope: h.ring !== null ? 'ring' : h.updateKey !== null ? 'update' : h.clientId !== null ? 'client' : 'all',
      releaseId: d.releaseId,
      updateId: idOf(d, h.updateKey),
      clientId: h.clientId,
      ring: h.ring,
      reason: h.reason,
      placedBy: h.by,
      placedVia: d.actor.platform,
      placedAt: d.now,
    });
    placedIds.set(h.id, rowId);
  }
  return placedIds;
}

/** The decision row (in a batch, queued for its round's insert); returns its audit row, which the caller writes last. */
async function recordDecision(tx: AppDatabase, d: Decided, effect: Extract<Effect, { type: 'decision' }>, placedIds: Map<string, number>): Promise<AuditEntry> {
  const { actor, event, now } = d;
  const source = actor.platform;
  const holdIds = effect.holdIds.map((id) => placedIds.get(id) ?? Number(id));
  const row: NewReleaseDecision = {
    kind: effect.kind,
    releaseId: d.releaseId,
    updateId: idOf(d, effect.updateKey),
    holdId: holdIds[0] ?? null,
    actor: actor.id,
    actorPersonId: d.engineer.personId > 0 ? d.engineer.personId : null,
    source,
    reason: effect.reason,
    detail: {
      updateKey: effect.updateKey,
      holdIds,
      ...(event.type === 'hold' ? { clients: event.clients } : {}),
      ...(effect.ring ? { ring: effect.ring } : {}),
      ...(event.type === 'release_hold' ? { target: event.target } : {}),
    },
    idempotencyKey: event.id,
    createdAt: now,
  };
  const decisionId = d.batch ? await d.batch.queue('decisions', row, (rows: NewReleaseDecision[]) => insertDecisions(tx, rows)) : (await insertDecisions(tx, [row]))[0]!;
  return {
    at: now,
    actor: actor.id,
    action: `decision.${effect.kind}`,
    subject: effect.updateKey === null ? `release:${d.releaseId}` : `update:${d.releaseId}:${effect.updateKey}`,
    source,
    detail: {
      decisionId,
      reason: effect.reason,
      holdIds,
      via: actor.platform,
      ...(event.type === 'hold' ? { clients: event.clients } : {}),
      ...(effect.ring ? { ring: effect.ring } : {}),
    },
  };
}

/**
 * Approve and withdraw are idempotent by meaning; their key counts the target's earlier approve/withdraws (read with
 * the locked state), so it names a decision not taken yet: a second click on a target already approved is the
 * domain's no-op, not a key seen before.
 */
function sequencedKey(kind: string, releaseId: string, key: string | null, loaded: LoadedRelease): string {
  const n = loaded.approvalCounts.get(key === null ? null : (loaded.updateIds.get(key) ?? -1)) ?? 0;
  return `${kind}:${releaseId}:${key ?? '*'}:${n}`;
}

export interface TargetInput {
  actor: Actor;
  releaseId: string;
  /** Null: the whole release. */
  updateKey: string | null;
}

export function approve(ctx: UseCaseContext, input: TargetInput): Promise<DecisionResult> {
  return run(ctx, input.actor, input.releaseId, {
    freshId: true,
    batch: true,
    async event(state, _tx, loaded) {
      const key = resolveUpdateKey(state, input.updateKey);
      return { type: 'approve', id: sequencedKey('approve', input.releaseId, key, loaded), actor: input.actor.id, updateKey: key };
    },
  });
}

export function withdraw(ctx: UseCaseContext, input: TargetInput): Promise<DecisionResult> {
  return run(ctx, input.actor, input.releaseId, {
    freshId: true,
    batch: true,
    async event(state, _tx, loaded) {
      const key = resolveUpdateKey(state, input.updateKey);
      return { type: 'withdraw', id: sequencedKey('withdraw', input.releaseId, key, loaded), actor: input.actor.id, updateKey: key };
    },
  });
}

export interface HoldInput extends TargetInput {
  clients: HoldClients;
  /** Hold only this ring's runs (absent: every ring). */
  ring?: Ring | undefined;
  reason: string;
  /** Unique per request (the modal's view id, a command's trigger id): a resend is one hold. */
  requestId: string;
  /** Outbox rows to write with the hold, in its transaction (see Plan.after). */
  andThen?: (tx: AppDatabase, now: Date) => Promise<number[]>;
}

export function hold(ctx: UseCaseContext, input: HoldInput): Promise<DecisionResult> {
  return run(ctx, input.actor, input.releaseId, {
    ...(input.andThen ? { after: input.andThen } : { batch: true }),
    async event(state, tx) {
      if (input.clients !== 'all' && input.clients.length > 0) {
        const known = await liveClientIdsAmong(tx, input.clients);
        const unknown = input.clients.filter((c) => !known.has(c));
        if (unknown.length > 0) return { outcome: 'refused', code: 'unknown_client', message: `No client ${unknown.join(', ')} in the inventory.`, zone: '' };
      }
      const key = resolveUpdateKey(state, input.updateKey);
      return {
        type: 'hold',
        id: `hold:${input.releaseId}:${key ?? '*'}:${input.requestId}`,
        actor: input.actor.id,
        updateKey: key,
        clients: input.clients,
        reason: input.reason,
        ...(input.ring ? { ring: input.ring } : {}),
      };
    },
  });
}

export interface ReleaseHoldInput {
  actor: Actor;
  releaseId: string;
  target: ReleaseTarget;
  requestId: string;
}

export function releaseHold(ctx: UseCaseContext, input: ReleaseHoldInput): Promise<DecisionResult> {
  return run(ctx, input.actor, input.releaseId, {
    // A ring that finished without the held update runs again for it (in the release's own transaction).
    async after(tx, now) {
      await reopenGatesWithWork(tx, input.releaseId, now);
      return [];
    },
    async event(state) {
      const target: ReleaseTarget = input.target.kind === 'update' ? { kind: 'update', updateKey: resolveUpdateKey(state, input.target.updateKey)! } : input.target;
      return { type: 'release_hold', id: `release_hold:${input.releaseId}:${input.requestId}`, actor: input.actor.id, target };
    },
  });
}

export interface NoteInput {
  actor: Actor;
  releaseId: string;
  updateKey: string;
  text: string;
  tags: readonly string[];
  requestId: string;
}

export async function addResearchNote(ctx: UseCaseContext, input: NoteInput): Promise<DecisionResult> {
  try {
    return await run(ctx, input.actor, input.releaseId, {
      async event(state, tx) {
        // Notes are not decisions (no decisions row): a resubmitted modal is caught by its request id here.
        if (!(await claimNoteRequest(tx, `note:${input.requestId}`, ctx.now()))) return { outcome: 'noop', message: 'This note was already added.', zone: '' };
        return { type: 'note', id: `note:${input.requestId}`, actor: input.actor.id, updateKey: resolveUpdateKey(state, input.updateKey)!, text: input.text, tags: input.tags };
      },
    });
  } catch (error) {
    if (error instanceof NoteError) return { outcome: 'refused', code: 'invalid_note', message: `The note was not saved: ${error.message}.`, zone: 'UTC' };
    throw error;
  }
}

/** "Approved by <who> at 14:02 CST", for a reply to the engineer who asked. */
export function describeNoop(result: DecisionResult, mention: (id: string) => string): string {
  if (result.by && result.at) return `${result.message} (by ${mention(result.by)} at ${formatDecisionTime(result.at, result.zone)})`;
  return result.message;
}
