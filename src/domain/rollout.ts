/**
 * The gates a release passes through, per ring and client: `(book, event, now) -> applied | noop | refused`.
 *
 *   approved ─► msp: scheduled ─► running ─► soaking (soak, default 24 h) ─► ready (Promote offered) ─► promoted
 *   promoted ─► pilot(c): scheduled ─► running ─► awaiting confirmation ─► confirmed ─► broad(c): scheduled ─► …
 *                                                         └─► problem (client held, engineers alerted)
 *
 * A "book" is every gate of one release (one `rollouts` row each). Gates are only ever created by the effects
 * of a transition here, and the only transition that creates a client's `broad` gate is that client's pilot
 * being confirmed, by one of its own champions, an engineer on its behalf, or auto-confirm when the client opted
 * in. That is the rule the property test attacks.
 *
 * Exactly once: each gate carries a version bumped by every change it undergoes (the repository compares and
 * sets on it), and the ids of the people-driven events it has applied, so a retried click is a no-op. Window
 * and tick events are idempotent by meaning: a window that does not come after the last one seen, or a tick
 * that finds nothing due, changes nothing.
 *
 * Holds are not gate states: they are facts passed in with a window event. A held gate refuses to open the
 * window and stays where it was, so releasing the hold resumes it at its next window with nothing to undo.
 */
import type { Ring } from './inventory.ts';

export type GateState =
  | 'scheduled'
  | 'running'
  | 'soaking'
  | 'ready'
  | 'promoted'
  | 'awaiting_confirmation'
  | 'confirmed'
  | 'problem'
  | 'finished';

export const DEFAULT_SOAK_HOURS = 24;

export interface Confirmation {
  by: string;
  /** champion: one of the client's own; engineer: on the client's behalf (audited); auto: the client opted in. */
  as: 'champion' | 'engineer' | 'auto';
  at: string;
}

export interface Gate {
  ring: Ring;
  /** Null for ring `msp`. */
  clientId: string | null;
  state: GateState;
  version: number;
  /** Start of the latest window this gate opened runs in (ISO), so a repeated window event is a no-op. */
  lastWindowStart: string | null;
  finishedAt: string | null;
  soakUntil: string | null;
  promotedAt: string | null;
  promotedBy: string | null;
  /** When a finished pilot is confirmed automatically; null when the client did not opt in. */
  autoConfirmAt: string | null;
  confirmation: Confirmation | null;
  problem: { by: string; at: string; text: string } | null;
  /** Ids of the people-driven events applied to this gate. */
  applied: string[];
}

export interface Book {
  releaseId: string;
  /** By gateKey. */
  gates: Record<string, Gate>;
}

export function gateKey(ring: Ring, clientId: string | null): string {
  return ring === 'msp' ? 'msp' : `${ring}/${clientId}`;
}

/** Who acts: engineers may do anything here (audited); a champion only for their own client. */
export type Actor = { kind: 'engineer'; id: string } | { kind: 'champion'; id: string; clientId: string } | { kind: 'system' };

export interface Hold {
  scope: 'update' | 'client' | 'ring' | 'all';
  /** Null: whatever the release. */
  releaseId: string | null;
  updateKey: string | null;
  clientId: string | null;
  ring: Ring | null;
}

export interface ClientPolicy {
  clientId: string;
  /** Set when the client opted in to auto-confirm after this many hours. */
  autoConfirmHours?: number | undefined;
}

export type RolloutEvent =
  | { type: 'approved'; id: string }
  | { type: 'window_opened'; ring: Ring; clientId: string | null; windowStart: string; holds: readonly Hold[] }
  | { type: 'ring_finished'; ring: Ring; clientId: string | null; soakHours?: number; autoConfirmHours?: number | undefined }
  | { type: 'tick' }
  | { type: 'promote'; id: string; actor: Actor; clients: readonly string[] }
  | { type: 'confirm_pilot'; id: string; actor: Actor; clientId: string }
  | { type: 'report_problem'; id: string; actor: Actor; clientId: string; text: string };

export type RolloutEffect =
  /** Runs for this gate's devices start in their next windows. */
  | { type: 'schedule'; ring: Ring; clientId: string | null }
  | { type: 'start_runs'; ring: Ring; clientId: string | null; windowStart: string }
  | { type: 'offer_promotion'; releaseId: string }
  | { type: 'ask_confirmation'; clientId: string; autoConfirmAt: string | null }
  | { type: 'audit'; action: string; actor: string; subject: string; detail: Record<string, unknown> }
  | { type: 'hold_client'; clientId: string; reason: string; by: string }
  | { type: 'alert_engineers'; clientId: string; text: string };

export type RefusalCode = 'not_approved' | 'held' | 'not_ready' | 'soak_not_elapsed' | 'pilot_not_finished' | 'not_allowed' | 'no_such_gate' | 'text_required';

export type RolloutTransition =
  | { outcome: 'applied'; book: Book; effects: RolloutEffect[]; changed: string[] }
  | { outcome: 'noop'; book: Book; reason: string }
  | { outcome: 'refused'; code: RefusalCode; message: string };

/** The gates an event can read or change; undefined: all of them. Lets storage load only what matters. */
export function gatesTouched(event: RolloutEvent): string[] | undefined {
  switch (event.type) {
    case 'window_opened':
    case 'ring_finished':
      return [gateKey(event.ring, event.clientId)];
    case 'confirm_pilot':
      return [gateKey('pilot', event.clientId), gateKey('broad', event.clientId)];
    case 'report_problem':
      return [gateKey('pilot', event.clientId)];
    case 'approved':
      return ['msp'];
    default:
      return undefined;
  }
}

export function emptyBook(releaseId: string): Book {
  return { releaseId, gates: {} };
}

function newGate(ring: Ring, clientId: string | null): Gate {
  return {
    ring,
    clientId,
    state: 'scheduled',
    version: 0,
    lastWindowStart: null,
    finishedAt: null,
    soakUntil: null,
    promotedAt: null,
    promotedBy: null,
    autoConfirmAt: null,
    confirmation: null,
    problem: null,
    applied: [],
  };
}

/** Does any active hold stop this gate (or, with `updateKey`, this update within it)? */
export function isHeld(holds: readonly Hold[], target: { releaseId: string; ring: Ring; clientId: string | null; updateKey?: string }): boolean {
  return holds.some((hold) => {
    if (hold.releaseId !== null && hold.releaseId !== target.releaseId) return false;
    switch (hold.scope) {
      case 'all':
        return true;
      case 'ring':
        if (hold.ring !== target.ring || (hold.clientId !== null && hold.clientId !== target.clientId)) return false;
        // A ring hold on one update drops that update from the ring's runs, as an update hold does everywhere.
        return hold.updateKey === null || target.updateKey === hold.updateKey;
      case 'client':
        return target.clientId !== null && hold.clientId === target.clientId;
      case 'update':
        // An update hold stops the whole gate only when asked about that update; the planner drops the update.
        return target.updateKey !== undefined && hold.updateKey === target.updateKey && (hold.clientId === null || hold.clientId === target.clientId);
    }
  });
}

const addHours = (now: Date, hours: number) => new Date(now.getTime() + hours * 3_600_000).toISOString();

function actorId(actor: Actor): string {
  return actor.kind === 'system' ? 'system' : actor.id;
}

export function transition(book: Book, event: RolloutEvent, now: Date): RolloutTransition {
  const at = now.toISOString();
  const put = (gates: Gate[], effects: RolloutEffect[]): RolloutTransition => {
    const next = { ...book.gates };
    const changed: string[] = [];
    for (const gate of gates) {
      const key = gateKey(gate.ring, gate.clientId);
      const before = book.gates[key];
      next[key] = { ...gate, version: (before?.version ?? -1) + 1 };
      changed.push(key);
    }
    return { outcome: 'applied', book: { ...book, gates: next }, effects, changed };
  };
  const seen = (gate: Gate | undefined, id: string) => gate !== undefined && gate.applied.includes(id);

  switch (event.type) {
    case 'approved': {
      if (book.gates.msp) return { outcome: 'noop', book, reason: 'ring msp is already under way for this release' };
      const gate = { ...newGate('msp', null), applied: [event.id] };
      return put([gate], [{ type: 'schedule', ring: 'msp', clientId: null }]);
    }

    case 'window_opened': {
      const key = gateKey(event.ring, event.clientId);
      const gate = book.gates[key];
      if (!gate) return { outcome: 'refused', code: 'no_such_gate', message: `${key} has not been scheduled for ${book.releaseId}` };
      if (gate.state !== 'scheduled' && gate.state !== 'running') return { outcome: 'noop', book, reason: `${key} is ${gate.state}` };
      if (gate.lastWindowStart !== null && Date.parse(gate.lastWindowStart) >= Date.parse(event.windowStart)) {
        return { outcome: 'noop', book, reason: 'this window was already opened' };
      }
      if (isHeld(event.holds, { releaseId: book.releaseId, ring: event.ring, clientId: event.clientId })) {
        return { outcome: 'refused', code: 'held', message: `${key} is held: nothing new starts until the hold is released` };
      }
      return put(
        [{ ...gate, state: 'running', lastWindowStart: event.windowStart }],
        [{ type: 'start_runs', ring: event.ring, clientId: event.clientId, windowStart: event.windowStart }],
      );
    }

    case 'ring_finished': {
      const key = gateKey(event.ring, event.clientId);
      const gate = book.gates[key];
      if (!gate) return { outcome: 'refused', code: 'no_such_gate', message: `${key} has not been scheduled for ${book.releaseId}` };
      if (gate.state !== 'running') return { outcome: 'noop', book, reason: `${key} is ${gate.state}` };
      if (gate.ring === 'msp') {
        return put([{ ...gate, state: 'soaking', finishedAt: at, soakUntil: addHours(now, event.soakHours ?? DEFAULT_SOAK_HOURS) }], []);
      }
      if (gate.ring === 'pilot') {
        const autoConfirmAt = event.autoConfirmHours !== undefined ? addHours(now, event.autoConfirmHours) : null;
        return put(
          [{ ...gate, state: 'awaiting_confirmation', finishedAt: at, autoConfirmAt }],
          [{ type: 'ask_confirmation', clientId: gate.clientId!, autoConfirmAt }],
        );
      }
      return put([{ ...gate, state: 'finished', finishedAt: at }], []);
    }

    case 'tick': {
      const gates: Gate[] = [];
      const effects: RolloutEffect[] = [];
      for (const gate of Object.values(book.gates)) {
        if (gate.state === 'soaking' && gate.soakUntil !== null && Date.parse(gate.soakUntil) <= now.getTime()) {
          gates.push({ ...gate, state: 'ready' });
          effects.push({ type: 'offer_promotion', releaseId: book.releaseId });
        }
        if (gate.state === 'awaiting_confirmation' && gate.autoConfirmAt !== null && Date.parse(gate.autoConfirmAt) <= now.getTime()) {
          const clientId = gate.clientId!;
          gates.push({ ...gate, state: 'confirmed', confirmation: { by: 'system', as: 'auto', at } });
          const broadKey = gateKey('broad', clientId);
          if (!book.gates[broadKey]) gates.push(newGate('broad', clientId));
          effects.push(
            { type: 'audit', action: 'confirm_pilot', actor: 'system', subject: `${book.releaseId}/${clientId}`, detail: { as: 'auto' } },
            { type: 'schedule', ring: 'broad', clientId },
          );
        }
      }
      if (gates.length === 0) return { outcome: 'noop', book, reason: 'nothing due' };
      return put(gates, effects);
    }

    case 'promote': {
      const gate = book.gates.msp;
      if (!gate) return { outcome: 'refused', code: 'not_approved', message: `${book.releaseId} has not been approved` };
      if (seen(gate, event.id) || gate.state === 'promoted') return { outcome: 'noop', book, reason: `already promoted by ${gate.promotedBy ?? 'someone'}` };
      if (event.actor.kind !== 'engineer') return { outcome: 'refused', code: 'not_allowed', message: 'Only engineers promote a release to pilot.' };
      if (gate.state === 'soaking') {
        return { outcome: 'refused', code: 'soak_not_elapsed', message: `Ring msp is soaking until ${gate.soakUntil}; promote after that.` };
      }
      if (gate.state !== 'ready') return { outcome: 'refused', code: 'not_ready', message: `Ring msp has not finished (${gate.state}).` };
      const gates: Gate[] = [{ ...gate, state: 'promoted', promotedAt: at, promotedBy: event.actor.id, applied: [...gate.applied, event.id] }];
      const effects: RolloutEffect[] = [{ type: 'audit', action: 'promote', actor: event.actor.id, subject: book.releaseId, detail: { clients: event.clients.length } }];
      for (const clientId of [...new Set(event.clients)].sort()) {
        if (book.gates[gateKey('pilot', clientId)]) continue;
        gates.push(newGate('pilot', clientId));
        effects.push({ type: 'schedule', ring: 'pilot', clientId });
      }
      return put(gates, effects);
    }

    case 'confirm_pilot': {
      const gate = book.gates[gateKey('pilot', event.clientId)];
      if (!gate) return { outcome: 'refused', code: 'no_such_gate', message: `${event.clientId} has no pilot for ${book.releaseId}` };
      if (seen(gate, event.id) || gate.state === 'confirmed') {
        return { outcome: 'noop', book, reason: `already confirmed by ${gate.confirmation?.by ?? 'someone'}` };
      }
      const actor = event.actor;
      const mayConfirm = actor.kind === 'engineer' || (actor.kind === 'champion' && actor.clientId === event.clientId);
      if (!mayConfirm) return { outcome: 'refused', code: 'not_allowed', message: "Only the client's own champions, or an engineer on their behalf, confirm a pilot." };
      // After a reported problem only an engineer may overrule it, having looked.
      const confirmable = gate.state === 'awaiting_confirmation' || (gate.state === 'problem' && actor.kind === 'engineer');
      if (!confirmable) return { outcome: 'refused', code: 'pilot_not_finished', message: `The pilot for ${event.clientId} is ${gate.state}.` };
      const as = actor.kind === 'engineer' ? 'engineer' : 'champion';
      const gates: Gate[] = [{ ...gate, state: 'confirmed', confirmation: { by: actorId(actor), as, at }, applied: [...gate.applied, event.id] }];
      const broadKey = gateKey('broad', event.clientId);
      if (!book.gates[broadKey]) gates.push(newGate('broad', event.clientId));
      return put(gates, [
        { type: 'audit', action: 'confirm_pilot', actor: actorId(actor), subject: `${book.releaseId}/${event.clientId}`, detail: { as } },
        { type: 'schedule', ring: 'broad', clientId: event.clientId },
      ]);
    }

    case 'report_problem': {
      const gate = book.gates[gateKey('pilot', event.clientId)];
      if (!gate) return { outcome: 'refused', code: 'no_such_gate', message: `${event.clientId} has no pilot for ${book.releaseId}` };
      if (seen(gate, event.id) || gate.state === 'problem') return { outcome: 'noop', book, reason: 'a problem is already reported' };
      const actor = event.actor;
      const may = actor.kind === 'engineer' || (actor.kind === 'champion' && actor.clientId === event.clientId);
      if (!may) return { outcome: 'refused', code: 'not_allowed', message: "Only the client's own champions or an engineer report a pilot problem." };
      if (event.text.trim() === '') return { outcome: 'refused', code: 'text_required', message: 'Say what went wrong.' };
      if (gate.state !== 'awaiting_confirmation') return { outcome: 'refused', code: 'pilot_not_finished', message: `The pilot for ${event.clientId} is ${gate.state}.` };
      const by = actorId(actor);
      return put(
        [{ ...gate, state: 'problem', problem: { by, at, text: event.text }, applied: [...gate.applied, event.id] }],
        [
          { type: 'hold_client', clientId: event.clientId, reason: `Pilot problem: ${event.text}`, by },
          { type: 'alert_engineers', clientId: event.clientId, text: event.text },
          { type: 'audit', action: 'report_problem', actor: by, subject: `${book.releaseId}/${event.clientId}`, detail: {} },
        ],
      );
    }
  }
}
