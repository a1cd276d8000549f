/**
 * The gates a release passes through, per ring and client: `(book, event, now) -> applied | noop | refused`.
 *
 *   approved ─► msp: scheduled ─► running ─► soaking (soak, default 24 h) ─► ready (Promote offered) ─► promoted
 *   promoted ─► pilot(c): scheduled ─► running ─► awaiting confirmation ─► confirmed ─► broad(c): scheduled ─► …
 *                                                         └─► problem (client held, engineers alerted)
 *
 * A "book" is every gate of one release (one `rollouts` row each). Gates are only ever created by the effects
 * of a transition here, and the only transitions that create a client's `broad` gate are that client's pilot
 * being confirmed (by one of its own champions, an engineer on its behalf, or auto-confirm when the client opted
 * in) and an engineer's audited skip of the pilot for one update.
 *
 * Gates carry the human steps; each update moves through the rings on its own (src/domain/eligibility.ts): a
 * promotion covers the updates ready at that moment (`promotions`), a confirmation exactly the updates its card
 * asked about (`asked` → `confirmed`), and a gate that rested reopens when a late update needs its ring again
 * (a late approval reopens ring msp, a later promotion the pilots, a later confirmation or skip the broad ring).
 *
 * Exactly once: each gate carries a version bumped by every change it undergoes (the repository compares and
 * sets on it), and the ids of the people-driven events it has applied, so a retried click is a no-op. Window
 * and tick events are idempotent by meaning: a window that does not come after the last one seen, or a tick
 * that finds nothing due, changes nothing.
 *
 * Holds are not gate states: they are facts passed in with a window event. A held gate refuses to open the
 * window and stays where it was, so releasing the hold resumes it at its next window with nothing to undo. A hold
 * on one update only drops it from the ring's runs, and the ring may finish without it: once released (or once a
 * machine that needs an update joins a finished ring), `reopen` sends the gates the planner finds work for back to
 * scheduled; `settle` returns a reopened gate that turned out to have nothing eligible to the rest it left.
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
  /** A pilot finished with nothing installed: nothing to ask, so the client waits (never a pass). */
  | 'waiting'
  | 'finished';

export const DEFAULT_SOAK_HOURS = 24;

export interface Confirmation {
  by: string;
  /** champion: one of the client's own; engineer: on the client's behalf (audited); auto: the client opted in. */
  as: 'champion' | 'engineer' | 'auto';
  at: string;
  /** Exactly the updates the sign-off asked about: what this confirmation lets into the broad ring. */
  updates?: string[];
}

/** One Promote: the updates ready (installed on ring msp and soaked, or skipped) when it was clicked. */
export interface Promotion {
  id: string;
  by: string;
  at: string;
  updates: string[];
}

/** An engineer let one update past a ring untested, because no device in the ring runs it. Audited. */
export interface RingSkip {
  updateKey: string;
  by: string;
  at: string;
  reason: string;
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
  /** msp: every promotion, with the updates it covered. */
  promotions?: Promotion[];
  /** msp: updates already offered for promotion (each offer is made once). */
  offered?: string[];
  /** msp: updates let past ring msp untested; pilot: updates let past this client's pilot untested. */
  skips?: RingSkip[];
  /** pilot: the updates the open sign-off asks about (installed on this client's pilots, not yet confirmed). */
  asked?: string[];
  /** pilot: every update a confirmation of this client covered. */
  confirmed?: string[];
  /** pilot: a promotion came while the gate waited for an answer; it runs again once answered. */
  reopen?: boolean;
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
  | {
      type: 'ring_finished';
      ring: Ring;
      clientId: string | null;
      soakHours?: number;
      autoConfirmHours?: number | undefined;
      /** pilot: the updates installed on the client's pilots and not yet confirmed (eligibility.ts `pilotAsk`). */
      asked?: readonly string[];
      /** msp: when the earliest unpromoted update's soak ends (eligibility.ts `mspStandings`). */
      soakUntil?: string | null;
      /**
       * The gate never opened a window and none of its devices has anything to install: it finishes from
       * `scheduled`. Only for gates whose every device has a user: those are never told of a window with nothing
       * to install, so no window of theirs opens, and without this the ring never ends.
       */
      unopened?: boolean;
    }
  /** `mspReady`: updates ready to promote now (eligibility.ts); absent: the gate's own soak deadline decides. */
  | { type: 'tick'; mspReady?: readonly string[] }
  /** `updates`: the updates ready when Promote was clicked; the promotion covers those and no others. */
  | { type: 'promote'; id: string; actor: Actor; clients: readonly string[]; updates?: readonly string[] }
  | { type: 'skip_ring'; id: string; actor: Actor; ring: 'msp' | 'pilot'; clientId: string | null; updateKey: string; reason: string }
  | { type: 'confirm_pilot'; id: string; actor: Actor; clientId: string }
  /**
   * These gates have eligible work for their devices (the caller planned them: src/domain/plan.ts), e.g. a hold
   * released after the ring had finished without the held update. A resting gate runs again; one waiting for its
   * champion's answer runs again once answered. Idempotent by meaning: a gate already at work is left alone.
   */
  | { type: 'reopen'; gates: readonly string[] }
  /**
   * These gates were reopened (a later promotion, confirmation or approval) but the caller's plan finds nothing
   * eligible for any of their devices: each goes back to the rest it left, without a run, a card or a note.
   * `soakUntil`: ring msp's next soak end (eligibility.ts `nextSoakEnd`).
   */
  | { type: 'settle'; gates: readonly string[]; soakUntil?: string | null }
  | { type: 'report_problem'; id: string; actor: Actor; clientId: string; text: string };

export type RolloutEffect =
  /** Runs for this gate's devices start in their next windows. */
  | { type: 'schedule'; ring: Ring; clientId: string | null }
  | { type: 'start_runs'; ring: Ring; clientId: string | null; windowStart: string }
  /**
   * `round`: promotions made before this offer (absent for none); `amends`: an offer of this round is on record and
   * unanswered, so this one replaces its text rather than posting a second Promote button.
   */
  | { type: 'offer_promotion'; releaseId: string; updates?: string[]; round?: number; amends?: true }
  | { type: 'ask_confirmation'; clientId: string; autoConfirmAt: string | null; updates?: string[] }
  /** A pilot finished with nothing installed: the engineers' thread says why the client waits. */
  | { type: 'pilot_waiting'; clientId: string; at: string }
  | { type: 'ring_skipped'; ring: 'msp' | 'pilot'; clientId: string | null; updateKey: string; by: string; reason: string }
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
    case 'reopen':
    case 'settle':
      return [...event.gates];
    case 'skip_ring':
      return event.ring === 'msp' ? ['msp'] : [gateKey('pilot', event.clientId), gateKey('broad', event.clientId)];
    default:
      return undefined;
  }
}

export function emptyBook(releaseId: string): Book {
  return { releaseId, gates: {} };
}

export function newGate(ring: Ring, clientId: string | null): Gate {
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
    ...(ring === 'msp' ? { promotions: [], offered: [], skips: [] } : ring === 'pilot' ? { skips: [], asked: [], confirmed: [] } : {}),
  };
}

/** The updates every promotion of ring msp covered. */
export function promotedUpdates(msp: Gate | undefined): Set<string> {
  return new Set((msp?.promotions ?? []).flatMap((p) => p.updates));
}

/** States a gate rests in; a late update that needs the ring again moves it back to scheduled. */
const RESTING: ReadonlySet<GateState> = new Set(['soaking', 'ready', 'promoted', 'confirmed', 'waiting', 'finished']);

const union = (a: readonly string[] | undefined, b: readonly string[]) => [...new Set([...(a ?? []), ...b])].sort();

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

/** One transition's context: the book it starts from, the clock, and how changed gates are written back. */
interface Step {
  book: Book;
  now: Date;
  at: string;
  put: Put;
}

export function transition(book: Book, event: RolloutEvent, now: Date): RolloutTransition {
  const put: Put = (gates, effects) => {
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
  const step: Step = { book, now, at: now.toISOString(), put };
  switch (event.type) {
    case 'approved':
      return approve(step, event);
    case 'window_opened':
      return openWindow(step, event);
    case 'ring_finished':
      return finishRing(step, event);
    case 'tick':
      return tick(step, event);
    case 'reopen':
      return reopenGates(step, event);
    case 'settle':
      return settleGates(step, event);
    case 'promote':
      return promote(book, event, now, put);
    case 'skip_ring':
      return skipRing(book, event, now, put);
    case 'confirm_pilot':
      return confirmPilot(step, event);
    case 'report_problem':
      return reportProblem(step, event);
  }
}

const seen = (gate: Gate | undefined, id: string) => gate !== undefined && gate.applied.includes(id);

function approve(step: Step, event: Extract<RolloutEvent, { type: 'approved' }>): RolloutTransition {
  const { book, put } = step;
  const msp = book.gates.msp;
  if (!msp) return put([{ ...newGate('msp', null), applied: [event.id] }], [{ type: 'schedule', ring: 'msp', clientId: null }]);
  if (seen(msp, event.id)) return { outcome: 'noop', book, reason: 'this approval was already applied' };
  // A late approval starts at ring msp whatever the rest of the release has reached: the ring runs again.
  if (!RESTING.has(msp.state)) return { outcome: 'noop', book, reason: `ring msp is ${msp.state}; its next window carries the update` };
  return put([{ ...msp, state: 'scheduled', applied: [...msp.applied, event.id] }], [{ type: 'schedule', ring: 'msp', clientId: null }]);
}

function openWindow(step: Step, event: Extract<RolloutEvent, { type: 'window_opened' }>): RolloutTransition {
  const { book, put } = step;
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

function finishRing(step: Step, event: Extract<RolloutEvent, { type: 'ring_finished' }>): RolloutTransition {
  const { book, now, at, put } = step;
  const key = gateKey(event.ring, event.clientId);
  const gate = book.gates[key];
  if (!gate) return { outcome: 'refused', code: 'no_such_gate', message: `${key} has not been scheduled for ${book.releaseId}` };
  const unopened = event.unopened === true && gate.state === 'scheduled' && gate.lastWindowStart === null && gate.finishedAt === null;
  if (gate.state !== 'running' && !unopened) return { outcome: 'noop', book, reason: `${key} is ${gate.state}` };
  if (gate.ring === 'msp') {
    const soakUntil = event.soakUntil !== undefined ? event.soakUntil : addHours(now, event.soakHours ?? DEFAULT_SOAK_HOURS);
    return put([{ ...gate, state: (gate.promotions ?? []).length > 0 && soakUntil === null ? 'promoted' : 'soaking', finishedAt: at, soakUntil }], []);
  }
  if (gate.ring === 'pilot') {
    // Tested means installed: a pilot where nothing installed asks nothing and passes nothing.
    const asked = [...new Set(event.asked ?? [])].filter((k) => !(gate.confirmed ?? []).includes(k)).sort();
    if (event.asked !== undefined && asked.length === 0) {
      // A pilot a later promotion reopened, with nothing new installed: the client's earlier confirmation still
      // stands (its broad ring goes on with what it confirmed), so the gate rests as confirmed, no "waits" note.
      if ((gate.confirmed ?? []).length > 0) return put([{ ...gate, state: 'confirmed', finishedAt: at, asked: [], autoConfirmAt: null }], []);
      return put([{ ...gate, state: 'waiting', finishedAt: at, asked: [], autoConfirmAt: null }], [{ type: 'pilot_waiting', clientId: gate.clientId!, at }]);
    }
    const autoConfirmAt = event.autoConfirmHours !== undefined ? addHours(now, event.autoConfirmHours) : null;
    return put(
      [{ ...gate, state: 'awaiting_confirmation', finishedAt: at, autoConfirmAt, asked, confirmation: null, problem: null }],
      [{ type: 'ask_confirmation', clientId: gate.clientId!, autoConfirmAt, updates: asked }],
    );
  }
  return put([{ ...gate, state: 'finished', finishedAt: at }], []);
}

/** Where an offer goes: the round of promotions it belongs to, and whether it amends an unanswered offer. */
function offerRound(msp: Gate): { round?: number; amends?: true } {
  const round = (msp.promotions ?? []).length;
  const promoted = promotedUpdates(msp);
  const unanswered = (msp.offered ?? []).some((k) => !promoted.has(k));
  return { ...(round > 0 ? { round } : {}), ...(unanswered ? { amends: true as const } : {}) };
}

function tick(step: Step, event: Extract<RolloutEvent, { type: 'tick' }>): RolloutTransition {
  const { book, now, at, put } = step;
  const gates: Gate[] = [];
  const effects: RolloutEffect[] = [];
  for (const gate of Object.values(book.gates)) {
    if (gate.ring === 'msp' && event.mspReady !== undefined) {
      // Each update is offered once, when its own soak ends; a late update gets an offer of its own.
      const fresh = event.mspReady.filter((k) => !(gate.offered ?? []).includes(k));
      // At rest with something to promote, the gate reads `ready` (offered already or not).
      const state = event.mspReady.length > 0 && (gate.state === 'soaking' || gate.state === 'promoted') ? 'ready' : gate.state;
      if (fresh.length > 0 || state !== gate.state) gates.push({ ...gate, state, offered: union(gate.offered, fresh) });
      if (fresh.length > 0) effects.push({ type: 'offer_promotion', releaseId: book.releaseId, updates: [...event.mspReady].sort(), ...offerRound(gate) });
    } else if (gate.state === 'soaking' && gate.soakUntil !== null && Date.parse(gate.soakUntil) <= now.getTime()) {
      gates.push({ ...gate, state: 'ready' });
      effects.push({ type: 'offer_promotion', releaseId: book.releaseId, ...offerRound(gate) });
    }
    if (gate.state === 'awaiting_confirmation' && gate.autoConfirmAt !== null && Date.parse(gate.autoConfirmAt) <= now.getTime()) {
      const clientId = gate.clientId!;
      const confirmed = confirmedGates(book, gate, { by: 'system', as: 'auto', at }, null);
      gates.push(...confirmed);
      effects.push(
        { type: 'audit', action: 'confirm_pilot', actor: 'system', subject: `${book.releaseId}/${clientId}`, detail: { as: 'auto', updates: gate.asked ?? [] } },
        { type: 'schedule', ring: 'broad', clientId },
      );
    }
  }
  if (gates.length === 0) return { outcome: 'noop', book, reason: 'nothing due' };
  return put(gates, effects);
}

function reopenGates(step: Step, event: Extract<RolloutEvent, { type: 'reopen' }>): RolloutTransition {
  const { book, put } = step;
  const gates: Gate[] = [];
  const effects: RolloutEffect[] = [];
  for (const key of [...new Set(event.gates)].sort()) {
    const gate = book.gates[key];
    if (!gate) continue;
    if (RESTING.has(gate.state)) {
      gates.push({ ...gate, state: 'scheduled' });
      effects.push({ type: 'schedule', ring: gate.ring, clientId: gate.clientId });
    } else if ((gate.state === 'awaiting_confirmation' || gate.state === 'problem') && !gate.reopen) {
      gates.push({ ...gate, reopen: true });
    }
  }
  if (gates.length === 0) return { outcome: 'noop', book, reason: 'every gate with work is already at work' };
  return put(gates, effects);
}

function settleGates(step: Step, event: Extract<RolloutEvent, { type: 'settle' }>): RolloutTransition {
  const { book, put } = step;
  const gates: Gate[] = [];
  for (const key of [...new Set(event.gates)].sort()) {
    const gate = book.gates[key];
    // Only a gate that rested before: a new gate's first window tells its story (a pilot's "client waits").
    if (!gate || gate.state !== 'scheduled' || gate.finishedAt === null) continue;
    const soak = gate.ring === 'msp' && event.soakUntil !== undefined ? { soakUntil: event.soakUntil } : {};
    gates.push({ ...gate, ...soak, state: restedState(gate, event.soakUntil) });
  }
  if (gates.length === 0) return { outcome: 'noop', book, reason: 'no reopened gate to settle' };
  return put(gates, []);
}

function confirmPilot(step: Step, event: Extract<RolloutEvent, { type: 'confirm_pilot' }>): RolloutTransition {
  const { book, at, put } = step;
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
  const gates = confirmedGates(book, gate, { by: actorId(actor), as, at }, event.id);
  return put(gates, [
    { type: 'audit', action: 'confirm_pilot', actor: actorId(actor), subject: `${book.releaseId}/${event.clientId}`, detail: { as, updates: gate.asked ?? [] } },
    { type: 'schedule', ring: 'broad', clientId: event.clientId },
  ]);
}

function reportProblem(step: Step, event: Extract<RolloutEvent, { type: 'report_problem' }>): RolloutTransition {
  const { book, at, put } = step;
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

type Put = (gates: Gate[], effects: RolloutEffect[]) => RolloutTransition;

/**
 * The rest a reopened gate goes back to when it has nothing to do: a pilot stays confirmed when a confirmation
 * covered something (else it waits), ring msp soaks (or stays promoted with nothing soaking), broad is finished.
 */
function restedState(gate: Gate, soakUntil: string | null | undefined): GateState {
  if (gate.ring === 'pilot') return (gate.confirmed ?? []).length > 0 ? 'confirmed' : 'waiting';
  if (gate.ring === 'broad') return 'finished';
  const soaking = soakUntil !== undefined ? soakUntil !== null : gate.soakUntil !== null;
  return (gate.promotions ?? []).length > 0 && !soaking ? 'promoted' : 'soaking';
}

/**
 * A confirmation covers exactly the updates its sign-off asked about. The client's broad ring is created, or
 * reopened when it had finished with earlier updates; a pilot a later promotion is waiting on runs again.
 */
function confirmedGates(book: Book, pilot: Gate, confirmation: Omit<Confirmation, 'updates'>, id: string | null): Gate[] {
  const clientId = pilot.clientId!;
  const asked = pilot.asked ?? [];
  const next: Gate = {
    ...pilot,
    state: pilot.reopen ? 'scheduled' : 'confirmed',
    reopen: false,
    confirmation: { ...confirmation, updates: asked },
    confirmed: union(pilot.confirmed, asked),
    asked: [],
    applied: id === null ? pilot.applied : [...pilot.applied, id],
  };
  return [next, ...broadFor(book, clientId)];
}

/** The client's broad gate, new or moved back to scheduled from rest; none when it is already at work. */
function broadFor(book: Book, clientId: string): Gate[] {
  const broad = book.gates[gateKey('broad', clientId)];
  if (!broad) return [newGate('broad', clientId)];
  return RESTING.has(broad.state) ? [{ ...broad, state: 'scheduled' }] : [];
}

function promote(book: Book, event: Extract<RolloutEvent, { type: 'promote' }>, now: Date, put: Put): RolloutTransition {
  const at = now.toISOString();
  const gate = book.gates.msp;
  if (!gate) return { outcome: 'refused', code: 'not_approved', message: `${book.releaseId} has not been approved` };
  const promoted = promotedUpdates(gate);
  if (gate.applied.includes(event.id)) return { outcome: 'noop', book, reason: `already promoted by ${gate.promotedBy ?? 'someone'}` };
  if (event.actor.kind !== 'engineer') return { outcome: 'refused', code: 'not_allowed', message: 'Only engineers promote a release to pilot.' };
  let updates: string[];
  if (event.updates === undefined) {
    // The release as a whole (no per-update facts given): the gate's own soak decides, once.
    if (gate.state === 'promoted') return { outcome: 'noop', book, reason: `already promoted by ${gate.promotedBy ?? 'someone'}` };
    if (gate.state === 'soaking') return { outcome: 'refused', code: 'soak_not_elapsed', message: `Ring msp is soaking until ${gate.soakUntil}; promote after that.` };
    if (gate.state !== 'ready') return { outcome: 'refused', code: 'not_ready', message: `Ring msp has not finished (${gate.state}).` };
    updates = [];
  } else {
    updates = [...new Set(event.updates)].filter((k) => !promoted.has(k)).sort();
    if (updates.length === 0) {
      if (event.updates.length > 0 || promoted.size > 0) return { outcome: 'noop', book, reason: `already promoted by ${gate.promotedBy ?? 'someone'}` };
      return { outcome: 'refused', code: 'not_ready', message: 'No update has finished ring msp and soaked yet.' };
    }
  }
  const by = event.actor.id;
  const promotions = [...(gate.promotions ?? []), { id: event.id, by, at, updates }];
  const state: GateState = gate.state === 'scheduled' || gate.state === 'running' ? gate.state : 'promoted';
  const gates: Gate[] = [{ ...gate, state, promotedAt: gate.promotedAt ?? at, promotedBy: gate.promotedBy ?? by, promotions, applied: [...gate.applied, event.id] }];
  const effects: RolloutEffect[] = [{ type: 'audit', action: 'promote', actor: by, subject: book.releaseId, detail: { clients: event.clients.length, updates } }];
  for (const clientId of [...new Set(event.clients)].sort()) {
    const pilot = book.gates[gateKey('pilot', clientId)];
    if (!pilot) gates.push(newGate('pilot', clientId));
    else if (RESTING.has(pilot.state)) gates.push({ ...pilot, state: 'scheduled' });
    else if (pilot.state === 'awaiting_confirmation' || pilot.state === 'problem') gates.push({ ...pilot, reopen: true });
    else continue;
    effects.push({ type: 'schedule', ring: 'pilot', clientId });
  }
  return put(gates, effects);
}

/** "Skip ring msp/pilot for KB… (no test machine)": engineers only, audited, shown; never implied. */
function skipRing(book: Book, event: Extract<RolloutEvent, { type: 'skip_ring' }>, now: Date, put: Put): RolloutTransition {
  const at = now.toISOString();
  if (event.actor.kind !== 'engineer') return { outcome: 'refused', code: 'not_allowed', message: 'Only engineers skip a ring for an update.' };
  if (event.reason.trim() === '') return { outcome: 'refused', code: 'text_required', message: 'Say why the ring is skipped.' };
  const key = event.ring === 'msp' ? 'msp' : gateKey('pilot', event.clientId);
  const gate = book.gates[key];
  if (!gate) {
    const message = event.ring === 'msp' ? `${book.releaseId} has not been approved` : `${event.clientId} has no pilot for ${book.releaseId}: promote first`;
    return { outcome: 'refused', code: event.ring === 'msp' ? 'not_approved' : 'no_such_gate', message };
  }
  if (gate.applied.includes(event.id) || (gate.skips ?? []).some((s) => s.updateKey === event.updateKey)) {
    return { outcome: 'noop', book, reason: `ring ${event.ring} is already skipped for ${event.updateKey}` };
  }
  const by = event.actor.id;
  const skip: RingSkip = { updateKey: event.updateKey, by, at, reason: event.reason };
  const gates: Gate[] = [{ ...gate, skips: [...(gate.skips ?? []), skip], applied: [...gate.applied, event.id] }];
  const effects: RolloutEffect[] = [
    { type: 'audit', action: `skip_ring_${event.ring}`, actor: by, subject: `${book.releaseId}/${event.clientId ?? 'msp'}`, detail: { updateKey: event.updateKey, reason: event.reason } },
    { type: 'ring_skipped', ring: event.ring, clientId: event.clientId, updateKey: event.updateKey, by, reason: event.reason },
  ];
  if (event.ring === 'pilot') {
    gates.push(...broadFor(book, event.clientId!));
    effects.push({ type: 'schedule', ring: 'broad', clientId: event.clientId! });
  }
  return put(gates, effects);
}
