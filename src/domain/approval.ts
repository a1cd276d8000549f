/**
 * Engineers' decisions on one release: approve, hold, release a hold, withdraw an approval, add a note.
 * Pure: `(state, event, now) -> applied (new state + effects) | noop | refused`. The use-cases load the state
 * inside a transaction (the release row locked), call this, and persist the effects; chat and storage know
 * nothing of the rules.
 *
 * Two kinds of idempotency meet here:
 * - by identity: an event whose id is in `state.applied` is a no-op (a retry of the same request);
 * - by meaning: approving what is already approved, or holding what is already held for the same clients, is
 *   a no-op that says who did it first, so fifty clicks on one button make one decision.
 */
import { DateTime } from 'luxon';
import { zoneShort } from './zone-label.ts';
import type { Ring } from './inventory.ts';

/** `null` target = the whole release. */
export type UpdateKey = string;

export interface Approval {
  by: string;
  /** ISO-8601 instant. */
  at: string;
}

export interface ActiveHold {
  id: string;
  /** Null: the whole release. */
  updateKey: UpdateKey | null;
  /** Null: every client (and the MSP's own ring). */
  clientId: string | null;
  /** Null: every ring. A ring hold stops only that ring's runs, so it never stands in the way of an approval. */
  ring: Ring | null;
  reason: string;
  by: string;
  at: string;
}

export interface ReleaseDecisionState {
  releaseId: string;
  /** Every update of the release, by key (the KB number, or MSRC's id for a non-KB fix). */
  updates: Record<UpdateKey, { approval: Approval | null }>;
  releaseApproval: Approval | null;
  holds: ActiveHold[];
  /** Facts from the rollout side: has anything of the release / of an update been deployed anywhere? */
  deployed: { release: boolean; updates: Record<UpdateKey, boolean> };
  /** Ids of events already applied (decision idempotency keys). */
  applied: ReadonlySet<string>;
}

interface EventBase {
  /** Unique per request; a second event with the same id is a no-op. */
  id: string;
  actor: string;
}

export type HoldClients = 'all' | readonly string[];

export type ReleaseTarget =
  | { kind: 'hold'; holdId: string }
  | { kind: 'update'; updateKey: UpdateKey }
  | { kind: 'client'; clientId: string }
  | { kind: 'ring'; ring: Ring }
  | { kind: 'all' };

export type DecisionEvent =
  | (EventBase & { type: 'approve'; updateKey: UpdateKey | null })
  | (EventBase & { type: 'hold'; updateKey: UpdateKey | null; clients: HoldClients; reason: string; /** Absent or null: every ring. */ ring?: Ring | null })
  | (EventBase & { type: 'release_hold'; target: ReleaseTarget })
  | (EventBase & { type: 'withdraw'; updateKey: UpdateKey | null })
  | (EventBase & { type: 'note'; updateKey: UpdateKey; text: string; tags: readonly string[] });

export type Effect =
  | { type: 'decision'; kind: 'approve' | 'hold' | 'release_hold' | 'withdraw'; updateKey: UpdateKey | null; reason: string | null; holdIds: string[]; ring?: Ring }
  | { type: 'place_hold'; hold: ActiveHold }
  | { type: 'release_holds'; holdIds: string[] }
  | { type: 'note'; updateKey: UpdateKey; text: string; tags: string[] }
  /** The chat messages showing these updates (null = the release summary) need redrawing. */
  | { type: 'rerender'; updateKeys: Array<UpdateKey | null> }
  /**
   * An approval starts the rollout: ring msp is scheduled, or reopened for a late update (the rollout machine's
   * `approved` event, src/domain/rollout.ts), in the decision's own transaction.
   */
  | { type: 'start_rollout'; releaseId: string };

export type RefusalCode =
  | 'unknown_update'
  | 'reason_required'
  | 'too_long'
  | 'no_clients'
  | 'msp_ring_clients'
  | 'held'
  | 'deployed'
  | 'covered_by_release'
  | 'text_required';

export type Transition =
  | { outcome: 'applied'; state: ReleaseDecisionState; effects: Effect[]; message: string }
  | { outcome: 'noop'; state: ReleaseDecisionState; message: string; by?: string; at?: string }
  | { outcome: 'refused'; code: RefusalCode; message: string };

/** Long enough for a paragraph of why; short enough to show whole in a message section. */
export const MAX_REASON_CHARS = 500;
/** As the notes store allows; the digest splits a long note over sections. */
export const MAX_NOTE_CHARS = 3000;
export const MAX_TAGS = 10;

export function emptyState(releaseId: string, updateKeys: readonly string[]): ReleaseDecisionState {
  return {
    releaseId,
    updates: Object.fromEntries(updateKeys.map((k) => [k, { approval: null }])),
    releaseApproval: null,
    holds: [],
    deployed: { release: false, updates: {} },
    applied: new Set(),
  };
}

function label(updateKey: UpdateKey | null, releaseId: string): string {
  if (updateKey === null) return `release ${releaseId}`;
  return /^\d+$/.test(updateKey) ? `KB${updateKey}` : updateKey;
}

/** Holds that stop `updateKey` everywhere: a hold on the update or on the release, naming no client and no ring. */
function blockingHolds(state: ReleaseDecisionState, updateKey: UpdateKey | null): ActiveHold[] {
  return state.holds.filter((h) => h.clientId === null && h.ring === null && (h.updateKey === null || h.updateKey === updateKey));
}

/** "for all clients", "for acme", "in ring pilot for all clients": what a hold stops, in words. */
export function holdScopeText(ring: Ring | null, clients: ReadonlyArray<string | null>): string {
  const who = clients[0] === null || clients.length === 0 ? 'all clients' : clients.join(', ');
  if (ring === null) return `for ${who}`;
  // Ring msp is the MSP's own machines: no client to name.
  return ring === 'msp' ? 'in ring msp' : `in ring ${ring} for ${who}`;
}

function withApplied(state: ReleaseDecisionState, id: string): ReleaseDecisionState {
  return { ...state, applied: new Set([...state.applied, id]) };
}

/** Hold and note text is checked before anything else, so a modal can show the problem next to the field. */
export function validateReason(reason: string): { code: RefusalCode; message: string } | undefined {
  if (reason.trim() === '') return { code: 'reason_required', message: 'A hold needs a reason: say what is wrong, so whoever releases it knows what to check.' };
  if (reason.length > MAX_REASON_CHARS) return { code: 'too_long', message: `The reason is ${reason.length} characters; keep it to ${MAX_REASON_CHARS} (put the detail in a note).` };
  return undefined;
}

export function validateNote(text: string, tags: readonly string[] = []): { code: RefusalCode; message: string } | undefined {
  if (text.trim() === '') return { code: 'text_required', message: 'The note is empty.' };
  if (text.length > MAX_NOTE_CHARS) return { code: 'too_long', message: `The note is ${text.length} characters; keep it to ${MAX_NOTE_CHARS} (split it into two notes).` };
  if (tags.length > MAX_TAGS) return { code: 'too_long', message: `At most ${MAX_TAGS} tags.` };
  return undefined;
}

/** What every decision reads: the state it starts from, when, and how updates are named in messages. */
interface DecisionContext {
  state: ReleaseDecisionState;
  at: string;
  /** The update is part of the release (null: the release as a whole). */
  known(key: UpdateKey | null): boolean;
  what(key: UpdateKey | null): string;
}

export function decide(state: ReleaseDecisionState, event: DecisionEvent, now: Date): Transition {
  if (state.applied.has(event.id)) return { outcome: 'noop', state, message: 'Already done (this request was handled before).' };
  const ctx: DecisionContext = {
    state,
    at: now.toISOString(),
    known: (key) => key === null || Object.hasOwn(state.updates, key),
    what: (key) => label(key, state.releaseId),
  };
  switch (event.type) {
    case 'approve':
      return approve(ctx, event);
    case 'hold':
      return hold(ctx, event);
    case 'release_hold':
      return releaseHold(ctx, event);
    case 'withdraw':
      return withdraw(ctx, event);
    case 'note':
      return addNote(ctx, event);
  }
}

function approve(ctx: DecisionContext, event: Extract<DecisionEvent, { type: 'approve' }>): Transition {
  const { state, at, known, what } = ctx;
  const key = event.updateKey;
  if (!known(key)) return { outcome: 'refused', code: 'unknown_update', message: `${what(key)} is not part of ${state.releaseId}.` };
  const existing = key === null ? state.releaseApproval : (state.updates[key]?.approval ?? null);
  if (existing) return { outcome: 'noop', state, message: `${what(key)} is already approved.`, by: existing.by, at: existing.at };
  if (key !== null && state.releaseApproval) {
    return { outcome: 'noop', state, message: `${what(key)} is already approved with the whole release.`, by: state.releaseApproval.by, at: state.releaseApproval.at };
  }
  const blocking = blockingHolds(state, key);
  if (blocking.length > 0) {
    const h = blocking[0]!;
    return { outcome: 'refused', code: 'held', message: `${what(key)} is held (${h.reason}); release the hold before approving.` };
  }
  const approval = { by: event.actor, at };
  const next: ReleaseDecisionState =
    key === null
      ? { ...state, releaseApproval: approval }
      : { ...state, updates: { ...state.updates, [key]: { approval } } };
  return {
    outcome: 'applied',
    state: withApplied(next, event.id),
    effects: [
      { type: 'decision', kind: 'approve', updateKey: key, reason: null, holdIds: [] },
      { type: 'start_rollout', releaseId: state.releaseId },
      { type: 'rerender', updateKeys: [key] },
    ],
    message: `${what(key)} approved.`,
  };
}

function hold(ctx: DecisionContext, event: Extract<DecisionEvent, { type: 'hold' }>): Transition {
  const { state, at, known, what } = ctx;
  const key = event.updateKey;
  const problem = validateReason(event.reason);
  if (problem) return { outcome: 'refused', ...problem };
  if (!known(key)) return { outcome: 'refused', code: 'unknown_update', message: `${what(key)} is not part of ${state.releaseId}.` };
  if (event.clients !== 'all' && event.clients.length === 0) {
    return { outcome: 'refused', code: 'no_clients', message: 'Choose the clients to hold, or hold for all clients.' };
  }
  const ring = event.ring ?? null;
  if (ring === 'msp' && event.clients !== 'all') {
    return { outcome: 'refused', code: 'msp_ring_clients', message: 'Ring msp is the MSP\u2019s own machines, not a client\u2019s: hold it for all clients.' };
  }
  const wanted: Array<string | null> = event.clients === 'all' ? [null] : [...new Set(event.clients)].sort();
  // A client already covered by a hold on this target (an all-clients hold, or one on every ring) needs no second hold.
  const sameTarget = state.holds.filter((h) => h.updateKey === key && (h.ring === null || h.ring === ring));
  const covered = (clientId: string | null) => sameTarget.some((h) => h.clientId === null || h.clientId === clientId);
  const fresh = wanted.filter((c) => !covered(c));
  if (fresh.length === 0) {
    const h = sameTarget.find((x) => x.clientId === null) ?? sameTarget[0]!;
    return { outcome: 'noop', state, message: `${what(key)} is already held ${holdScopeText(h.ring, [h.clientId])}: ${h.reason}`, by: h.by, at: h.at };
  }
  const placed: ActiveHold[] = fresh.map((clientId, i) => ({ id: `new:${event.id}:${i}`, updateKey: key, clientId, ring, reason: event.reason, by: event.actor, at }));
  const next = { ...state, holds: [...state.holds, ...placed] };
  return {
    outcome: 'applied',
    state: withApplied(next, event.id),
    effects: [
      { type: 'decision', kind: 'hold', updateKey: key, reason: event.reason, holdIds: placed.map((h) => h.id), ...(ring !== null ? { ring } : {}) },
      ...placed.map((hold): Effect => ({ type: 'place_hold', hold })),
      { type: 'rerender', updateKeys: [key] },
    ],
    message: `${what(key)} held ${holdScopeText(ring, fresh)}.`,
  };
}

function releaseHold(ctx: DecisionContext, event: Extract<DecisionEvent, { type: 'release_hold' }>): Transition {
  const { state } = ctx;
  const t = event.target;
  const matching = state.holds.filter((h) => {
    switch (t.kind) {
      case 'hold':
        return h.id === t.holdId;
      case 'update':
        return h.updateKey === t.updateKey;
      case 'client':
        return h.clientId === t.clientId;
      case 'ring':
        return h.ring === t.ring;
      case 'all':
        return true;
    }
  });
  if (matching.length === 0) return { outcome: 'noop', state, message: 'Nothing to release: no matching hold is active.' };
  const ids = matching.map((h) => h.id);
  const next = { ...state, holds: state.holds.filter((h) => !ids.includes(h.id)) };
  const keys = [...new Set(matching.map((h) => h.updateKey))];
  return {
    outcome: 'applied',
    state: withApplied(next, event.id),
    effects: [
      { type: 'decision', kind: 'release_hold', updateKey: keys.length === 1 ? keys[0]! : null, reason: null, holdIds: ids, ...(t.kind === 'ring' ? { ring: t.ring } : {}) },
      { type: 'release_holds', holdIds: ids },
      { type: 'rerender', updateKeys: keys },
    ],
    message: `Released ${ids.length} hold${ids.length === 1 ? '' : 's'}.`,
  };
}

function withdraw(ctx: DecisionContext, event: Extract<DecisionEvent, { type: 'withdraw' }>): Transition {
  const { state, known, what } = ctx;
  const key = event.updateKey;
  if (!known(key)) return { outcome: 'refused', code: 'unknown_update', message: `${what(key)} is not part of ${state.releaseId}.` };
  const existing = key === null ? state.releaseApproval : (state.updates[key]?.approval ?? null);
  if (!existing) {
    if (key !== null && state.releaseApproval) {
      return { outcome: 'refused', code: 'covered_by_release', message: `${what(key)} is approved as part of the whole release; withdraw the release approval instead.` };
    }
    return { outcome: 'noop', state, message: `${what(key)} is not approved.` };
  }
  const deployed = key === null ? state.deployed.release || Object.values(state.deployed.updates).some(Boolean) : state.deployed.release || state.deployed.updates[key] === true;
  if (deployed) {
    // For the release, name what went out: "release 2026-Dec has already been deployed" read as all of it when only
    // one update had (sandbox walk).
    const out = Object.entries(state.deployed.updates).filter(([, yes]) => yes).map(([k]) => what(k));
    const gone = key === null && !state.deployed.release && out.length > 0 ? `Part of ${what(key)} (${out.join(', ')}) has` : `${what(key)} has`;
    return { outcome: 'refused', code: 'deployed', message: `${gone} already been deployed; an approval cannot be withdrawn once anything went out. Place a hold to stop it going further.` };
  }
  const next: ReleaseDecisionState =
    key === null ? { ...state, releaseApproval: null } : { ...state, updates: { ...state.updates, [key]: { approval: null } } };
  return {
    outcome: 'applied',
    state: withApplied(next, event.id),
    effects: [
      { type: 'decision', kind: 'withdraw', updateKey: key, reason: null, holdIds: [] },
      { type: 'rerender', updateKeys: [key] },
    ],
    // Its own approval goes, but the whole release's still covers it (sandbox walk: "withdrawn", while the digest
    // still showed it approved and it would still have been deployed).
    message:
      key !== null && state.releaseApproval
        ? `Approval of ${what(key)} withdrawn, but it stays approved as part of the whole release; withdraw the release approval (or hold it) to stop it.`
        : `Approval of ${what(key)} withdrawn.`,
  };
}

function addNote(ctx: DecisionContext, event: Extract<DecisionEvent, { type: 'note' }>): Transition {
  const { state, known, what } = ctx;
  const problem = validateNote(event.text, event.tags);
  if (problem) return { outcome: 'refused', ...problem };
  if (!known(event.updateKey)) return { outcome: 'refused', code: 'unknown_update', message: `${what(event.updateKey)} is not part of ${state.releaseId}.` };
  return {
    outcome: 'applied',
    state: withApplied(state, event.id),
    effects: [
      { type: 'note', updateKey: event.updateKey, text: event.text, tags: [...new Set(event.tags)] },
      { type: 'rerender', updateKeys: [event.updateKey] },
    ],
    message: `Note added to ${what(event.updateKey)}.`,
  };
}

/** Where an update stands, for the status line under it in the digest and for `/patch status`. */
export interface UpdateStanding {
  approval: Approval | null;
  /** Approved through the whole release. */
  viaRelease: boolean;
  holds: ActiveHold[];
}

export function standingOf(state: ReleaseDecisionState, updateKey: UpdateKey | null): UpdateStanding {
  if (updateKey === null) return { approval: state.releaseApproval, viaRelease: false, holds: state.holds.filter((h) => h.updateKey === null) };
  const own = state.updates[updateKey]?.approval ?? null;
  return {
    approval: own ?? state.releaseApproval,
    viaRelease: own === null && state.releaseApproval !== null,
    holds: state.holds.filter((h) => h.updateKey === updateKey || h.updateKey === null),
  };
}

/** "14:02 CST": a decision's time in the zone of whoever reads it (the engineer's, else the MSP's). */
export function formatDecisionTime(at: string | Date, zone: string, now?: Date): string {
  const t = (typeof at === 'string' ? DateTime.fromISO(at) : DateTime.fromJSDate(at)).setZone(zone);
  const time = `${t.toFormat('HH:mm')} ${zoneShort(t)}`;
  if (!now) return time;
  const today = DateTime.fromJSDate(now).setZone(zone).toISODate();
  return t.toISODate() === today ? time : `${t.toFormat('MMM d')} ${time}`;
}
