/**
 * Issue 13's invariants, each worked out from the database's rows and the simulated fleet's ledger alone: what
 * the devices were actually asked to do (ledger), against who decided what and when (decisions, holds,
 * audit_log), who was told what and when (user_dms and their outbox rows, sign-off cards in chat_outbox), and
 * the inventory (devices and their owners' windows). No rule of the code under test is called to find the
 * truth: windows come from ./windows.ts, holds are read by their columns' meaning, and "installed" means a
 * ledger install that did not fail.
 *
 * Each check returns the violations it found, as sentences that name the device, the update and the instants.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from '../../../src/db/client.ts';
import type { LedgerEntry } from '../../../src/adapters/deployers/simulated.ts';
import { RELEASE_ID, UPDATE_KEYS, UPDATES } from './world.ts';
import { windowAt, windowsAfter } from './windows.ts';

/** I7 (liveness) is judged once, at the end of a sequence, after the clock has run on (ModelHarness.eventually). */
export const INVARIANTS = ['I1', 'I2', 'I3', 'I4', 'I5', 'I6', 'I7'] as const;
export type InvariantId = (typeof INVARIANTS)[number];

export interface Violation {
  invariant: InvariantId;
  text: string;
}

/** What the checks read, loaded once per check round. */
export interface Facts {
  ledger: readonly LedgerEntry[];
  devices: Map<string, DeviceRow>;
  holds: HoldRow[];
  confirmations: Array<{ clientId: string; at: number }>;
  skips: Array<{ at: number; text: string }>;
  dms: DmRow[];
  cards: CardRow[];
  /** `/patch status` as an engineer reads it. */
  statusText: string;
  approvals: Array<{ updateKey: string | null; at: number }>;
  /** The engineers' promotions (every update any Promote covered), as ring msp's gate records them. */
  promoted?: Set<string>;
  /** By client: the updates its confirmations covered, as its pilot gate records them. */
  pilotConfirmed?: Map<string, Set<string>>;
  /** Clients whose pilot waits for its champion's answer (or a reported problem): a human step, not the system's. */
  pilotAwaiting?: Set<string>;
}

interface DeviceRow {
  id: number;
  name: string;
  clientId: string | null;
  ring: 'msp' | 'pilot' | 'broad';
  os: string | null;
  userEmail: string | null;
  spec: string | null;
  zone: string;
  noticeHours: number;
  retiredAt: number | null;
  /** Missed too many windows: flagged for the engineers, no longer expected to install. */
  flagged?: boolean;
}

interface HoldRow {
  scope: string;
  releaseId: string | null;
  updateKey: string | null;
  clientId: string | null;
  ring: string | null;
  placedAt: number;
  releasedAt: number | null;
}

interface DmRow {
  email: string | null;
  devices: Array<{ deviceId: number; windowStart: string }>;
  sentAt: number | null;
  answer: string | null;
  answeredAt: number | null;
}

interface CardRow {
  clientId: string;
  at: number;
  action: string;
  card: unknown;
}

const ms = (v: unknown): number => (v instanceof Date ? v.getTime() : Date.parse(String(v)));
const msOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : ms(v));
const iso = (t: number) => new Date(t).toISOString();
const DEFAULT_NOTICE_HOURS = 4;

export async function loadFacts(db: AppDatabase, ledger: readonly LedgerEntry[], statusText: string): Promise<Facts> {
  const devices = rowsOf<Record<string, unknown>>(
    await db.execute(sql`select d.id, d.name, d.client_id, d.ring, d.os, d.user_email, d.retired_at, d.flagged_at is not null as flagged,
        coalesce(c.windows, m.windows) ->> d.class as spec, coalesce(c.timezone, m.timezone) as zone,
        coalesce(c.settings ->> 'noticeHours', c.settings ->> 'notice_hours') as notice
      from devices d left join clients c on c.id = d.client_id join msp m on m.id = 1`),
  ).map(
    (r): DeviceRow => ({
      id: Number(r.id),
      name: String(r.name),
      clientId: (r.client_id as string | null) ?? null,
      ring: r.ring as DeviceRow['ring'],
      os: (r.os as string | null) ?? null,
      userEmail: r.user_email ? String(r.user_email).toLowerCase() : null,
      spec: (r.spec as string | null) ?? null,
      zone: String(r.zone),
      noticeHours: r.notice === null || r.notice === undefined ? DEFAULT_NOTICE_HOURS : Number(r.notice),
      retiredAt: msOrNull(r.retired_at),
      flagged: Boolean(r.flagged),
    }),
  );
  const holds = rowsOf<Record<string, unknown>>(
    await db.execute(sql`select h.scope, h.release_id, u.update_key, h.client_id, h.ring, h.placed_at, h.released_at
      from holds h left join updates u on u.id = h.update_id`),
  ).map(
    (r): HoldRow => ({
      scope: String(r.scope),
      releaseId: (r.release_id as string | null) ?? null,
      updateKey: (r.update_key as string | null) ?? null,
      clientId: (r.client_id as string | null) ?? null,
      ring: (r.ring as string | null) ?? null,
      placedAt: ms(r.placed_at),
      releasedAt: msOrNull(r.released_at),
    }),
  );
  // A confirmation is a decision row (champion or engineer) or an audited automatic one.
  const confirmations = rowsOf<{ client_id: string; at: unknown }>(
    await db.execute(sql`select client_id, created_at as at from decisions where kind = 'confirm_pilot' and release_id = ${RELEASE_ID}
      union all select regexp_replace(subject, '^.*[/:]', ''), at from audit_log where action ilike '%confirm_pilot%' and subject like ${`%${RELEASE_ID}%`}`),
  ).map((r) => ({ clientId: r.client_id, at: ms(r.at) }));
  const skips = rowsOf<{ at: unknown; text: string }>(
    await db.execute(sql`select at, action || ' ' || subject || ' ' || detail::text as text from audit_log where action ilike '%skip%'`),
  ).map((r) => ({ at: ms(r.at), text: r.text }));
  const dms = rowsOf<Record<string, unknown>>(
    await db.execute(sql`select p.email, d.devices, d.answer, d.answered_at, greatest(o.created_at, o.next_attempt_at) as sent_at
      from user_dms d join people p on p.id = d.person_id left join chat_outbox o on o.idempotency_key = 'userdm:' || d.key
      where d.kind = 'tonight'`),
  ).map(
    (r): DmRow => ({
      email: r.email ? String(r.email).toLowerCase() : null,
      devices: (typeof r.devices === 'string' ? JSON.parse(r.devices) : r.devices) as DmRow['devices'],
      sentAt: msOrNull(r.sent_at),
      answer: (r.answer as string | null) ?? null,
      answeredAt: msOrNull(r.answered_at),
    }),
  );
  const cards = rowsOf<Record<string, unknown>>(
    await db.execute(sql`select subject, created_at, action, payload from chat_outbox where subject like ${`signoff:${RELEASE_ID}:%`} order by id`),
  ).map((r) => ({
    clientId: String(r.subject).slice(`signoff:${RELEASE_ID}:`.length),
    at: ms(r.created_at),
    action: String(r.action),
    card: ((typeof r.payload === 'string' ? JSON.parse(r.payload) : r.payload) as { card?: unknown }).card,
  }));
  const approvals = rowsOf<{ update_key: string | null; at: unknown }>(
    await db.execute(sql`select u.update_key, d.created_at as at from decisions d left join updates u on u.id = d.update_id
      where d.kind = 'approve' and d.release_id = ${RELEASE_ID}`),
  ).map((r) => ({ updateKey: r.update_key, at: ms(r.at) }));
  const gates = rowsOf<{ ring: string; client_id: string | null; state: string; detail: { promotions?: Array<{ updates: string[] }>; confirmed?: string[] } }>(
    await db.execute(sql`select ring, client_id, state, state_detail as detail from rollouts where release_id = ${RELEASE_ID}`),
  );
  const promoted = new Set(gates.filter((g) => g.ring === 'msp').flatMap((g) => (g.detail.promotions ?? []).flatMap((p) => p.updates)));
  const pilots = gates.filter((g) => g.ring === 'pilot' && g.client_id !== null);
  const pilotConfirmed = new Map(pilots.map((g) => [g.client_id!, new Set(g.detail.confirmed ?? [])]));
  const pilotAwaiting = new Set(pilots.filter((g) => g.state === 'awaiting_confirmation' || g.state === 'problem').map((g) => g.client_id!));
  return { ledger, devices: new Map(devices.map((d) => [d.name, d])), holds, confirmations, skips, dms, cards, statusText, approvals, promoted, pilotConfirmed, pilotAwaiting };
}

/** Installs that went in: the device now has these updates. */
function installed(facts: Facts) {
  return facts.ledger.filter((e) => e.kind === 'install' && !e.fails).map((e) => ({ ...e, t: Date.parse(e.at), updates: e.updates ?? [] }));
}

function skipped(facts: Facts, updateKey: string, ring: 'msp' | 'pilot', clientId: string | null, before: number): boolean {
  return facts.skips.some(
    (s) => s.at <= before && s.text.includes(updateKey) && s.text.includes(ring) && (clientId === null || ring === 'msp' || !/"client/.test(s.text) || s.text.includes(clientId)),
  );
}

/** I1: an update reaches a client device only after it installed on an MSP machine running that product (same OS), or an audited skip of ring msp. */
export function checkI1(facts: Facts): Violation[] {
  const out: Violation[] = [];
  const all = installed(facts);
  for (const e of facts.ledger.filter((x) => x.kind === 'install')) {
    const device = facts.devices.get(e.device);
    if (!device || device.ring === 'msp') continue;
    const t = Date.parse(e.at);
    for (const u of e.updates ?? []) {
      const onMsp = all.some((m) => m.t <= t && m.updates.includes(u) && facts.devices.get(m.device)?.ring === 'msp');
      const onSameOs = all.some((m) => m.t <= t && m.updates.includes(u) && facts.devices.get(m.device)?.ring === 'msp' && facts.devices.get(m.device)?.os === device.os);
      if (onSameOs || skipped(facts, u, 'msp', null, t)) continue;
      out.push({
        invariant: 'I1',
        text: onMsp
          ? `${e.device} (${device.ring}, ${device.os}) installed KB${u} at ${e.at}; it had installed on ring msp, but on no MSP machine running ${device.os}, and ring msp was not skipped`
          : `${e.device} (${device.ring}) installed KB${u} at ${e.at} before KB${u} installed on any ring-msp machine, with no audited skip`,
      });
    }
  }
  return out;
}

/** I2: a broad device installs an update only after it installed on its client's pilot, and the client confirmed after that. */
export function checkI2(facts: Facts): Violation[] {
  const out: Violation[] = [];
  const all = installed(facts);
  for (const e of facts.ledger.filter((x) => x.kind === 'install')) {
    const device = facts.devices.get(e.device);
    if (!device || device.ring !== 'broad') continue;
    const t = Date.parse(e.at);
    for (const u of e.updates ?? []) {
      if (skipped(facts, u, 'pilot', device.clientId, t)) continue;
      const pilotAt = all
        .filter((p) => p.t <= t && p.updates.includes(u) && facts.devices.get(p.device)?.ring === 'pilot' && facts.devices.get(p.device)?.clientId === device.clientId)
        .map((p) => p.t);
      if (pilotAt.length === 0) {
        out.push({ invariant: 'I2', text: `${e.device} (broad, ${device.clientId}) installed KB${u} at ${e.at} before KB${u} installed on any ${device.clientId} pilot machine` });
        continue;
      }
      const firstPilot = Math.min(...pilotAt);
      const confirmed = facts.confirmations.some((c) => c.clientId === device.clientId && c.at >= firstPilot && c.at <= t);
      if (!confirmed) {
        out.push({
          invariant: 'I2',
          text: `${e.device} (broad, ${device.clientId}) installed KB${u} at ${e.at}; its pilot installed it at ${iso(firstPilot)} but ${device.clientId} confirmed nothing between then and the install`,
        });
      }
    }
  }
  return out;
}

/** I3: an install or reboot on a user's device needs that user's DM for that window sent ≥ notice hours before it opened, or answered (OK); never in a window they deferred. */
export function checkI3(facts: Facts): Violation[] {
  const out: Violation[] = [];
  for (const e of facts.ledger) {
    const device = facts.devices.get(e.device);
    if (!device?.userEmail || !device.spec) continue;
    const t = Date.parse(e.at);
    const window = windowAt(device.spec, device.zone, new Date(t));
    if (!window) continue; // outside any window: I4's finding
    const ws = window.start.getTime();
    const mine = facts.dms.filter((dm) => dm.email === device.userEmail && dm.devices.some((d) => d.deviceId === device.id && Date.parse(d.windowStart) === ws));
    if (mine.some((dm) => dm.answer === 'defer' && dm.answeredAt !== null && dm.answeredAt <= t)) {
      out.push({ invariant: 'I3', text: `${e.device}: ${e.kind} at ${e.at} in the window of ${iso(ws)}, which its user ${device.userEmail} had deferred` });
      continue;
    }
    const warned = mine.some((dm) => dm.sentAt !== null && dm.sentAt + device.noticeHours * 3_600_000 <= ws);
    const answered = mine.some((dm) => dm.answer !== null && dm.answer !== 'defer' && dm.answeredAt !== null && dm.answeredAt <= t);
    if (warned || answered) continue;
    const sent = mine.map((dm) => (dm.sentAt === null ? 'never sent' : iso(dm.sentAt))).join(', ');
    out.push({
      invariant: 'I3',
      text: `${e.device}: ${e.kind} at ${e.at} in the window opening ${iso(ws)}, but ${device.userEmail} was not told ${device.noticeHours} h before it opened nor answered (${mine.length === 0 ? 'no DM for this device and window' : `DM sent ${sent}`})`,
    });
  }
  return out;
}

function holdCovers(h: HoldRow, device: DeviceRow, updateKey: string): boolean {
  if (h.releaseId !== null && h.releaseId !== RELEASE_ID) return false;
  if (h.updateKey !== null && h.updateKey !== updateKey) return false;
  if (h.clientId !== null && h.clientId !== device.clientId) return false;
  if (h.ring !== null && h.ring !== device.ring) return false;
  // A client-scoped hold never covers the MSP's own machines.
  if (h.scope === 'client' && device.clientId === null) return false;
  return true;
}

/** I4: nothing held installs after the hold committed; no install or reboot outside the device's window; nothing on a retired device. */
export function checkI4(facts: Facts): Violation[] {
  const out: Violation[] = [];
  for (const e of facts.ledger) {
    const device = facts.devices.get(e.device);
    if (!device) {
      out.push({ invariant: 'I4', text: `${e.kind} at ${e.at} on ${e.device}, a device the inventory never had` });
      continue;
    }
    const t = Date.parse(e.at);
    if (device.retiredAt !== null && device.retiredAt <= t) out.push({ invariant: 'I4', text: `${e.device}: ${e.kind} at ${e.at}, after it was retired at ${iso(device.retiredAt)}` });
    if (!device.spec || !windowAt(device.spec, device.zone, new Date(t))) {
      out.push({ invariant: 'I4', text: `${e.device}: ${e.kind} at ${e.at}, outside its window (${device.spec ?? 'none'} ${device.zone})` });
    }
    if (e.kind !== 'install') continue;
    for (const u of e.updates ?? []) {
      const hold = facts.holds.find((h) => h.placedAt <= t && (h.releasedAt === null || h.releasedAt > t) && holdCovers(h, device, u));
      if (hold) {
        out.push({
          invariant: 'I4',
          text: `${e.device} installed KB${u} at ${e.at} under a ${hold.scope} hold placed ${iso(hold.placedAt)} (update ${hold.updateKey ?? 'any'}, client ${hold.clientId ?? 'any'}, ring ${hold.ring ?? 'any'})`,
        });
      }
    }
  }
  return out;
}

/** The update keys a sign-off card names under its "what was installed" heading (the whole card if it has none). */
export function cardUpdates(card: unknown): Set<string> {
  const blocks: Array<{ text: string; heading: boolean }> = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== 'object') return;
    const n = node as Record<string, unknown>;
    if (n.type === 'Action.ShowCard' || n.type === 'Action.Execute') return;
    if (n.type === 'TextBlock' && typeof n.text === 'string') blocks.push({ text: n.text, heading: n.weight === 'Bolder' });
    if (n.type === 'FactSet' && Array.isArray(n.facts)) for (const f of n.facts as Array<{ title: string; value: string }>) blocks.push({ text: `${f.title} ${f.value}`, heading: false });
    for (const key of ['body', 'items', 'columns']) if (key in n) walk(n[key]);
  };
  walk((card as { body?: unknown })?.body ?? []);
  const start = blocks.findIndex((b) => b.heading && /install/i.test(b.text));
  let end = blocks.findIndex((b, i) => i > start && b.heading);
  if (end < 0) end = blocks.length;
  const section = start < 0 ? blocks : blocks.slice(start + 1, end);
  const keys = new Set<string>();
  for (const b of section) for (const m of b.text.matchAll(/KB\s?(\d{6,8})/gi)) keys.add(m[1]!);
  return keys;
}

/**
 * I5: every sign-off card names exactly the updates installed on that client's pilot machines when it was posted,
 * less those an earlier card asked about and the client then confirmed (a late update gets a card of its own);
 * nothing installed, no card.
 */
export function checkI5(facts: Facts): Violation[] {
  const out: Violation[] = [];
  const all = installed(facts);
  for (const card of facts.cards) {
    // A confirmation covers what the card it answered listed; a later card asks only about what came since (a late
    // update gets its own sign-off), so what earlier answered cards listed is not asked again.
    // An edit (the card refreshed with its answer) still lists what its post asked: judge it as of that post.
    const posts = facts.cards.filter((c) => c.clientId === card.clientId && c.action === 'post');
    const asOf = card.action === 'post' ? card.at : Math.max(...posts.filter((c) => c.at <= card.at).map((c) => c.at), -Infinity);
    const confirmedBefore = facts.confirmations.filter((c) => c.clientId === card.clientId && c.at < asOf).map((c) => c.at);
    const covered = new Set(posts.filter((c) => c.at < asOf && confirmedBefore.some((at) => at >= c.at)).flatMap((c) => [...cardUpdates(c.card)]));
    const truth = new Set(
      all
        .filter((e) => e.t <= asOf && facts.devices.get(e.device)?.ring === 'pilot' && facts.devices.get(e.device)?.clientId === card.clientId)
        .flatMap((e) => e.updates)
        .filter((k) => !covered.has(k)),
    );
    const listed = cardUpdates(card.card);
    const fmt = (s: Set<string>) => (s.size === 0 ? 'nothing' : [...s].sort().map((k) => `KB${k}`).join(', '));
    if (truth.size === 0) {
      out.push({ invariant: 'I5', text: `sign-off card (${card.action}) for ${card.clientId} at ${iso(card.at)} though nothing installed on its pilot machines; it lists ${fmt(listed)}` });
      continue;
    }
    const same = truth.size === listed.size && [...truth].every((k) => listed.has(k));
    if (!same) out.push({ invariant: 'I5', text: `sign-off card (${card.action}) for ${card.clientId} at ${iso(card.at)} lists ${fmt(listed)}; its pilot machines had installed ${fmt(truth)}` });
  }
  return out;
}

/**
 * I6: the counts `/patch status` gives for the release equal the tables'. Held: an active hold that stops the
 * update for every client: one naming no client, on every ring or on ring msp (which every update passes
 * first), on the update or the whole release. A hold for one client, or on ring pilot or broad only, leaves the
 * update approved (or waiting) in the counts; status tells those apart per client and ring. Approved: not held,
 * and approved (the update or the whole release). Waiting: the rest.
 */
export function checkI6(facts: Facts, now: number): Violation[] {
  const active = facts.holds.filter((h) => h.placedAt <= now && (h.releasedAt === null || h.releasedAt > now) && (h.releaseId === null || h.releaseId === RELEASE_ID));
  const heldEverywhere = (u: string) => active.some((h) => h.clientId === null && (h.ring === null || h.ring === 'msp') && (h.updateKey === null || h.updateKey === u));
  const approved = (u: string) => facts.approvals.some((a) => a.updateKey === null || a.updateKey === u);
  const truth = { approved: 0, held: 0, waiting: 0 };
  for (const u of UPDATE_KEYS) {
    if (heldEverywhere(u)) truth.held++;
    else if (approved(u)) truth.approved++;
    else truth.waiting++;
  }
  const section = facts.statusText.split(/\n\n/).find((p) => p.includes(RELEASE_ID)) ?? facts.statusText;
  const count = (word: string) => {
    const m = new RegExp(`(\\d+) ${word}`, 'i').exec(section);
    return m ? Number(m[1]) : undefined;
  };
  const shown = { approved: count('approved'), held: count('held'), waiting: count('waiting') };
  const wrong = (Object.keys(truth) as Array<keyof typeof truth>).filter((k) => shown[k] !== truth[k]);
  if (wrong.length === 0) return [];
  const said = (Object.keys(shown) as Array<keyof typeof shown>).map((k) => `${shown[k] ?? '?'} ${k}`).join(', ');
  const is = (Object.keys(truth) as Array<keyof typeof truth>).map((k) => `${truth[k]} ${k}`).join(', ');
  return [{ invariant: 'I6', text: `/patch status says "${said}"; the tables say ${is}` }];
}

/**
 * I7 (liveness): what was owed at `from` has happened by `to`, the clock having run on with nobody acting. A live,
 * unflagged device owes an install attempt (the ledger shows an install carrying it, succeeded or failed) of
 * every update that applies to its OS, is approved, is not held for it, and had passed the earlier rings for it
 * at `from`: for a pilot, promoted and installed on an MSP machine running its OS (or ring msp skipped); for a
 * broad device, also installed on a pilot of its client and covered by that client's confirmation (or the pilot
 * skipped). Judged only where the device had three whole windows after `from` (time for the DM, and for an
 * offline machine to roll on or be flagged), and not on a pilot waiting for its champion (a person's step).
 */
export function checkI7(before: Facts, after: Facts, from: number, to: number, judged = { owed: 0 }): Violation[] {
  const out: Violation[] = [];
  const done = installed(before);
  const active = after.holds.filter((h) => h.placedAt <= to && (h.releasedAt === null || h.releasedAt > to));
  const onRing = (u: string, ring: 'msp' | 'pilot', ok: (d: DeviceRow) => boolean) =>
    done.some((e) => e.t <= from && e.updates.includes(u) && before.devices.get(e.device)?.ring === ring && ok(before.devices.get(e.device)!));
  for (const device of after.devices.values()) {
    if (device.retiredAt !== null || device.flagged || !device.os || !device.spec) continue;
    const windows = windowsAfter(device.spec, device.zone, new Date(from + device.noticeHours * 3_600_000), 10).filter((w) => w.end.getTime() <= to);
    if (windows.length < 3) continue;
    if (device.ring !== 'msp' && after.pilotAwaiting?.has(device.clientId!)) continue;
    for (const u of UPDATE_KEYS) {
      if (!UPDATES[u]!.includes(device.os)) continue;
      if (!before.approvals.some((a) => a.at <= from && (a.updateKey === null || a.updateKey === u))) continue;
      if (active.some((h) => holdCovers(h, device, u))) continue;
      if (device.ring !== 'msp') {
        if (!before.promoted?.has(u)) continue;
        if (!onRing(u, 'msp', (d) => d.os === device.os) && !skipped(before, u, 'msp', null, from)) continue;
      }
      if (device.ring === 'broad') {
        const piloted = onRing(u, 'pilot', (d) => d.clientId === device.clientId) && (before.pilotConfirmed?.get(device.clientId!)?.has(u) ?? false);
        if (!piloted && !skipped(before, u, 'pilot', device.clientId, from)) continue;
      }
      judged.owed++;
      const attempted = after.ledger.some((e) => e.kind === 'install' && e.device === device.name && (e.updates ?? []).includes(u));
      if (attempted) continue;
      out.push({
        invariant: 'I7',
        text: `${device.name} (${device.ring}${device.clientId ? `, ${device.clientId}` : ''}) never got KB${u}: it was approved, unheld and past the earlier rings for it at ${iso(from)}, and ${windows.length} of its windows passed by ${iso(to)}`,
      });
    }
  }
  return out;
}

export function checkAll(facts: Facts, now: number, which: ReadonlySet<InvariantId>): Violation[] {
  const checks: Record<InvariantId, () => Violation[]> = {
    I1: () => checkI1(facts),
    I2: () => checkI2(facts),
    I3: () => checkI3(facts),
    I4: () => checkI4(facts),
    I5: () => checkI5(facts),
    I6: () => checkI6(facts, now),
    // Liveness is not a property of one instant: ModelHarness.eventually judges it at the end of a sequence.
    I7: () => [],
  };
  return INVARIANTS.filter((id) => which.has(id)).flatMap((id) => checks[id]());
}
