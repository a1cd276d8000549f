/**
 * Where a release stands, in words people read: what `/patch status` and App Home say. Pure: the facts come from
 * the same tables the gates read (decisions, holds, rollouts), names from the inventory; renderers only escape
 * and lay out what this returns.
 *
 * The rules that made status lie before (issue 13):
 * - an update is *held* only when a hold stops it for every client; a hold on one client is that client's, shown
 *   once under the client's name with its reason once, and the update still counts as approved;
 * - the release line counts its updates; it says "waiting for a decision" only when nothing was decided;
 * - update keys and gate states are never shown: an update is its KB (or its title), a gate state is words;
 * - a release a newer one replaced is superseded, not pending.
 * Per-update ring lines (once the gates track each update through each ring) belong in `rings` and `updates`.
 */
import type { ActiveHold, Approval, UpdateStanding } from './approval.ts';
import type { GateWait, ReleaseFacts } from './eligibility.ts';

export interface StatusFacts {
  releaseId: string;
  title: string | null;
  /** The newer release that replaced this one, when there is one. */
  supersededBy: string | null;
  release: UpdateStanding;
  updates: Array<{ key: string; kb: string | null; title: string | null; family?: string | null; standing: UpdateStanding }>;
  /** `waitingFor`: a scheduled gate whose next window carries nothing yet (eligibility.ts `gatesWaiting`). */
  rings: Array<{ ring: string; clientId: string | null; state: string; waitingFor?: GateWait }>;
  /** Holds on a client (no update named) in this release. */
  clientHolds: ActiveHold[];
  /** Rings an engineer let an update past untested (no test machine): never silent. */
  skips?: Array<{ ring: string; clientId: string | null; updateKey: string; by: string; at: string; reason: string }>;
  /** What each update installed where, promotions and confirmations: the facts the gates decide on. */
  progress?: ReleaseFacts;
}

export interface StatusNames {
  /** Client names by id. */
  clients: ReadonlyMap<string, string>;
  /** Display names by chat id (Slack user id, Teams AAD id). */
  people: ReadonlyMap<string, string>;
}

/** Who did something: the chat id (a renderer may mention it) and the person's display name when known. */
export interface Who {
  id: string;
  name?: string;
}

export interface StatusUpdateLine {
  label: string;
  approval: { by: Who; at: string; viaRelease: boolean } | null;
  holds: Array<{ scope: string; by: Who; reason: string }>;
  /** Where the update stands in the rings ("installed on 2 MSP machines · promoted · pilot: Acme Dental confirmed"). */
  rings?: string;
}

export interface StatusView {
  releaseId: string;
  title: string | null;
  supersededBy: string | null;
  /** One line on the release as a whole ("3 of 9 approved, 1 held, 5 waiting for a decision"). */
  summary: string;
  counts: { approved: number; held: number; waiting: number; total: number };
  approved: string[];
  held: string[];
  waiting: string[];
  /** The release-wide decision: who approved the whole release, and holds on it for every client. */
  release: StatusUpdateLine;
  /** Updates someone decided on (approved or held somewhere), in key order. */
  decided: StatusUpdateLine[];
  /** "Harbour Accounting: held by Ana Silva: printers stopped". One per client, whatever the update count. */
  clientHolds: Array<{ client: string; ring: string | null; by: Who; reason: string }>;
  rings: Array<{ ring: string; client: string | null; state: string }>;
}

const GATE_WORDS: Record<string, string> = {
  scheduled: 'scheduled for its next window',
  running: 'installing',
  soaking: 'soaking (watching for problems)',
  ready: 'ready to promote',
  promoted: 'promoted',
  awaiting_confirmation: 'waiting for the champion',
  confirmed: 'confirmed by the client',
  problem: 'problem reported: on hold',
  waiting: 'waiting: nothing installed on its pilot machines yet',
  finished: 'finished',
};

/** A gate state in words; an unknown state reads as itself with underscores as spaces, never as a key. */
export function gateWords(state: string): string {
  return GATE_WORDS[state] ?? state.replace(/_/g, ' ');
}

/**
 * A gate in words. A scheduled gate whose machines need only what has not passed the earlier rings (or is held)
 * is not "scheduled for its next window": that window carries nothing for it yet.
 */
export function ringWords(r: { ring: string; state: string; waitingFor?: GateWait }): string {
  if (r.state !== 'scheduled' || r.waitingFor === undefined) return gateWords(r.state);
  if (r.waitingFor === 'held') return 'waiting: what its machines need is held';
  return r.ring === 'broad' ? "waiting for the client's pilot to pass what its machines need" : 'waiting for ring msp to pass what its machines need';
}

/**
 * "KB5034765", else the update's title with its family as the digest shows it ("Release Notes (Developer Tools)":
 * two fixes may share a title), else its key with dots and dashes as spaces.
 */
export function updateLabel(u: { key: string; kb: string | null; title: string | null; family?: string | null | undefined }): string {
  if (u.kb) return /^\d+$/.test(u.kb) ? `KB${u.kb}` : u.kb;
  if (u.title) return u.family ? `${u.title} (${u.family})` : u.title;
  return /^\d+$/.test(u.key) ? `KB${u.key}` : u.key.replace(/[._-]+/g, ' ');
}

export function whoIs(actor: string, names: StatusNames): Who {
  const name = names.people.get(actor) ?? (actor === 'system' ? 'patchbay' : undefined);
  return name === undefined ? { id: actor } : { id: actor, name };
}

/**
 * A hold that stops the update for every client: the only kind that makes it "held". A hold on ring msp is one,
 * since every update must install there before it goes anywhere else.
 */
const everywhere = (h: ActiveHold) => h.clientId === null && (h.ring === null || h.ring === 'msp');

function holdScope(h: ActiveHold, names: StatusNames): string {
  const client = h.clientId === null ? null : (names.clients.get(h.clientId) ?? h.clientId);
  if (h.ring !== null) return client ? `in ring ${h.ring} for ${client}` : `in ring ${h.ring}`;
  return client ? `for ${client}` : 'for all clients';
}

function approvalOf(a: Approval | null, viaRelease: boolean, names: StatusNames): StatusUpdateLine['approval'] {
  return a ? { by: whoIs(a.by, names), at: a.at, viaRelease } : null;
}

export function statusModel(facts: StatusFacts, names: StatusNames): StatusView {
  const approved: string[] = [];
  const held: string[] = [];
  const waiting: string[] = [];
  const decided: StatusUpdateLine[] = [];
  for (const u of facts.updates) {
    const label = updateLabel(u);
    // Release-wide holds are told once (on the release line, or under "clients held"), not under every update.
    const own = u.standing.holds.filter((h) => h.updateKey !== null);
    if (u.standing.holds.some(everywhere)) held.push(label);
    else if (u.standing.approval) approved.push(label);
    else waiting.push(label);
    if (u.standing.approval || own.length > 0) {
      const rings = facts.progress ? ringProgress(facts.progress, u.key, names) : null;
      decided.push({
        label,
        approval: approvalOf(u.standing.approval, u.standing.viaRelease, names),
        holds: own.map((h) => ({ scope: holdScope(h, names), by: whoIs(h.by, names), reason: h.reason })),
        ...(rings ? { rings } : {}),
      });
    }
  }
  const total = facts.updates.length;
  return {
    releaseId: facts.releaseId,
    title: facts.title,
    supersededBy: facts.supersededBy,
    summary: summaryLine(facts, { approved: approved.length, held: held.length, waiting: waiting.length, total }),
    counts: { approved: approved.length, held: held.length, waiting: waiting.length, total },
    approved,
    held,
    waiting,
    release: {
      label: facts.releaseId,
      approval: approvalOf(facts.release.approval, false, names),
      holds: facts.release.holds.filter((h) => h.clientId === null).map((h) => ({ scope: holdScope(h, names), by: whoIs(h.by, names), reason: h.reason })),
    },
    decided,
    clientHolds: facts.clientHolds.map((h) => ({ client: names.clients.get(h.clientId!) ?? h.clientId!, ring: h.ring, by: whoIs(h.by, names), reason: h.reason })),
    rings: facts.rings.map((r) => ({ ring: r.ring, client: r.clientId === null ? null : (names.clients.get(r.clientId) ?? r.clientId), state: ringWords(r) })),
  };
}

const machines = (n: number) => `${n} machine${n === 1 ? '' : 's'}`;

/**
 * One update's way through the rings, from the same facts the gates read: where it installed (ring msp, each
 * client's pilot, broad), whether it was promoted, which clients confirmed it, and every ring skipped for it.
 * Null when it has not reached any machine yet.
 */
export function ringProgress(facts: ReleaseFacts, key: string, names: StatusNames): string | null {
  const client = (id: string) => names.clients.get(id) ?? id;
  const parts: string[] = [];
  const onMsp = facts.installedMsp.get(key)?.size ?? 0;
  if (facts.skippedMsp.has(key)) parts.push('ring msp skipped (no test machine)');
  else if (onMsp > 0) parts.push(`ring msp: installed on ${machines(onMsp)}`);
  if (facts.promoted.has(key)) parts.push('promoted');
  const pilots = new Set<string>();
  for (const [id, byUpdate] of facts.installedPilot) if (byUpdate.get(key)?.size) pilots.add(id);
  for (const [id, keys] of facts.skippedPilot) if (keys.has(key)) pilots.add(id);
  const pilotWords = [...pilots].sort().map((id) => {
    if (facts.skippedPilot.get(id)?.has(key)) return `${client(id)} skipped (no test machine)`;
    return facts.confirmed.get(id)?.has(key) ? `${client(id)} confirmed` : `${client(id)} installed, waiting for the champion`;
  });
  if (pilotWords.length > 0) parts.push(`pilot: ${pilotWords.join(', ')}`);
  const broad = new Set(facts.outcomes.filter((o) => o.ring === 'broad' && o.updateKey === key && o.outcome === 'installed').map((o) => o.deviceId)).size;
  if (broad > 0) parts.push(`broad: installed on ${machines(broad)}`);
  return parts.length > 0 ? parts.join(' · ') : null;
}

function summaryLine(facts: StatusFacts, c: StatusView['counts']): string {
  if (facts.supersededBy) return `superseded by ${facts.supersededBy}: nothing here waits for a decision`;
  if (facts.release.holds.some(everywhere)) return `the whole release is held (${c.total} updates)`;
  if (facts.release.approval) return `the whole release is approved (${c.total} updates${c.held ? `, ${c.held} held` : ''})`;
  if (c.approved + c.held === 0) return `waiting for a decision on ${c.total === 1 ? 'its update' : `all ${c.total} updates`}`;
  return `${c.approved} of ${c.total} updates approved, ${c.held} held, ${c.waiting} waiting for a decision`;
}
