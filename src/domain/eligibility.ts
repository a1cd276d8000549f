/**
 * Each update through every ring, on its own. Pure: the repository loads the facts (the release's gates and what
 * each run installed), this says which updates may go where.
 *
 * - Ring msp: every approved, not-held update (an update approved late starts here, whatever the rest reached).
 * - A client's pilot: an update a promotion covered, and that installed on an MSP device (the planner sends an
 *   update only to devices whose OS matches one of its products, so "installed on ring msp" is "installed on an
 *   MSP device that runs that product"), or that an engineer let past ring msp (audited skip).
 * - A client's broad ring: an update that passed to its pilot, installed on one of its pilot devices, and that a
 *   confirmation of this client covered (the confirmation covers exactly what its card asked), or that an
 *   engineer let past this client's pilot.
 *
 * "Installed" means a run that carried the update ended succeeded: the run machine verifies every update it
 * carried and fails a run with any missing, so a success is an install of each. Nothing installed is never a pass.
 */
import type { Ring } from './inventory.ts';
import { matchOsToProducts } from './product-match.ts';
import { planWindow, type Plan, type PlanDevice, type PlanInput, type PlanUpdate } from './plan.ts';
import type { Product } from './release.ts';
import { isHeld, promotedUpdates, type Book, type Gate, type Hold } from './rollout.ts';

/** What one device's runs did with one update of a release (the latest that settled it). */
export interface UpdateOutcome {
  deviceId: number;
  /** The ring and client of the gate the run belonged to. */
  ring: Ring;
  clientId: string | null;
  updateKey: string;
  outcome: 'installed' | 'failed';
  at: string;
  /** The device's OS: which products it runs, so "installed on ring msp" is known per product. */
  os?: string | null;
}

export interface ReleaseFacts {
  releaseId: string;
  promoted: ReadonlySet<string>;
  skippedMsp: ReadonlySet<string>;
  /** By client. */
  skippedPilot: ReadonlyMap<string, ReadonlySet<string>>;
  /** By client: every update a confirmation covered. */
  confirmed: ReadonlyMap<string, ReadonlySet<string>>;
  /** By update: MSP devices it installed on. */
  installedMsp: ReadonlyMap<string, ReadonlySet<number>>;
  /** By update: the OS names of the MSP devices it installed on (for the products it was tested on). */
  installedMspOs: ReadonlyMap<string, ReadonlySet<string>>;
  /** By client, then update: that client's pilot devices it installed on. */
  installedPilot: ReadonlyMap<string, ReadonlyMap<string, ReadonlySet<number>>>;
  /** By device: the updates it is done with (installed, or failed for good; a retry clears the failure). */
  done: ReadonlyMap<number, ReadonlySet<string>>;
  outcomes: readonly UpdateOutcome[];
}

function add<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (set) set.add(value);
  else map.set(key, new Set([value]));
}

/** Folds a release's gates and run outcomes into the facts the rules read. */
export function releaseFacts(book: Book, outcomes: readonly UpdateOutcome[]): ReleaseFacts {
  const msp = book.gates.msp;
  const skippedPilot = new Map<string, Set<string>>();
  const confirmed = new Map<string, Set<string>>();
  for (const gate of Object.values(book.gates)) {
    if (gate.ring !== 'pilot' || gate.clientId === null) continue;
    for (const skip of gate.skips ?? []) add(skippedPilot, gate.clientId, skip.updateKey);
    for (const key of gate.confirmed ?? []) add(confirmed, gate.clientId, key);
  }
  const installedMsp = new Map<string, Set<number>>();
  const installedMspOs = new Map<string, Set<string>>();
  const installedPilot = new Map<string, Map<string, Set<number>>>();
  const done = new Map<number, Set<string>>();
  for (const o of outcomes) {
    add(done, o.deviceId, o.updateKey);
    if (o.outcome !== 'installed') continue;
    if (o.ring === 'msp') {
      add(installedMsp, o.updateKey, o.deviceId);
      if (o.os) add(installedMspOs, o.updateKey, o.os);
    }
    else if (o.ring === 'pilot' && o.clientId !== null) {
      let byUpdate = installedPilot.get(o.clientId);
      if (!byUpdate) installedPilot.set(o.clientId, (byUpdate = new Map()));
      add(byUpdate, o.updateKey, o.deviceId);
    }
  }
  return {
    releaseId: book.releaseId,
    promoted: promotedUpdates(msp),
    skippedMsp: new Set((msp?.skips ?? []).map((s) => s.updateKey)),
    skippedPilot,
    confirmed,
    installedMsp,
    installedMspOs,
    installedPilot,
    done,
    outcomes,
  };
}

/** Did this update get past ring msp: installed on an MSP device running its product, or skipped (audited)? */
export function passedMsp(facts: ReleaseFacts, updateKey: string): boolean {
  return (facts.installedMsp.get(updateKey)?.size ?? 0) > 0 || facts.skippedMsp.has(updateKey);
}

/**
 * "Installed on an MSP device that runs that product", per product: for each update that passed ring msp by an
 * install (not by a skip, which lets it past for every product), the products of its own that the MSP devices it
 * installed on run. An update key is a KB, and one KB can fix several products (a servicing stack, .NET, Office),
 * so a KB tested on the MSP's Windows 11 machine has not been tested on Windows 10. For the planner's
 * `passedProducts`; an update left out of the map passed for all its products.
 */
export function mspProducts(facts: ReleaseFacts, products: readonly Product[], updates: readonly MspUpdate[]): Map<string, Set<string>> {
  const byOs = new Map<string, Set<string>>();
  const productsOf = (os: string) => {
    let ids = byOs.get(os);
    if (!ids) byOs.set(os, (ids = new Set(matchOsToProducts(os, products).productIds)));
    return ids;
  };
  const out = new Map<string, Set<string>>();
  for (const u of updates) {
    if (facts.skippedMsp.has(u.key)) continue;
    const tested = new Set<string>();
    for (const os of facts.installedMspOs.get(u.key) ?? []) for (const id of productsOf(os)) if (u.productIds.includes(id)) tested.add(id);
    out.set(u.key, tested);
  }
  return out;
}

/**
 * The updates (of those that passed ring msp by an install) that these devices run but were tested on no MSP
 * machine running their OS: for them the update waits at ring msp, not at their own ring.
 */
export function untestedForDevices(facts: ReleaseFacts, catalog: { products: readonly Product[]; updates: readonly MspUpdate[] }, devices: readonly { os: string | null }[]): Set<string> {
  const tested = mspProducts(facts, catalog.products, catalog.updates);
  const out = new Set<string>();
  const productsOf = new Map<string, Set<string>>();
  for (const u of catalog.updates) {
    const on = tested.get(u.key);
    if (on === undefined) continue;
    let runs = false;
    let passed = false;
    for (const d of devices) {
      if (!d.os) continue;
      let ids = productsOf.get(d.os);
      if (!ids) productsOf.set(d.os, (ids = new Set(matchOsToProducts(d.os, catalog.products).productIds)));
      const mine = u.productIds.filter((id) => ids!.has(id));
      if (mine.length > 0) runs = true;
      if (mine.some((id) => on.has(id))) passed = true;
    }
    if (runs && !passed) out.add(u.key);
  }
  return out;
}

/** Did this update get past this client's pilot: installed there and confirmed, or skipped (audited)? */
export function passedPilot(facts: ReleaseFacts, clientId: string, updateKey: string): boolean {
  if (facts.skippedPilot.get(clientId)?.has(updateKey)) return true;
  const installed = (facts.installedPilot.get(clientId)?.get(updateKey)?.size ?? 0) > 0;
  return installed && (facts.confirmed.get(clientId)?.has(updateKey) ?? false);
}

/** The updates (of `keys`) that have passed the rings before this one, for this client. */
export function passedUpdates(facts: ReleaseFacts, ring: Ring, clientId: string | null, keys: Iterable<string>): Set<string> {
  const passed = new Set<string>();
  for (const key of keys) {
    if (ring === 'msp') passed.add(key);
    else if (clientId === null) continue;
    else if (!facts.promoted.has(key) || !passedMsp(facts, key)) continue;
    else if (ring === 'pilot' || passedPilot(facts, clientId, key)) passed.add(key);
  }
  return passed;
}

/**
 * What a client's sign-off asks about: the updates that installed on its pilot devices, passed to its pilot,
 * are not held for it, and no confirmation covered yet. Empty: nothing to ask, and the client waits.
 */
export function pilotAsk(facts: ReleaseFacts, clientId: string, holds: readonly Hold[]): string[] {
  const installed = facts.installedPilot.get(clientId);
  if (!installed) return [];
  const confirmed = facts.confirmed.get(clientId);
  const target = { releaseId: facts.releaseId, ring: 'pilot' as const, clientId };
  return [...installed.keys()]
    .filter((key) => facts.promoted.has(key) && passedMsp(facts, key) && !confirmed?.has(key) && !isHeld(holds, { ...target, updateKey: key }))
    .sort();
}

export interface MspDevice {
  id: number;
  os: string | null;
  /** Missed too many windows: flagged for the engineers, no longer holds a ring up. */
  flagged: boolean;
}

export interface MspUpdate {
  key: string;
  productIds: readonly string[];
}

export type MspState =
  /** No MSP device runs one of its products, or none installed it: waits for an engineer's skip. */
  | 'untested'
  /** Some MSP device that needs it has not settled it yet. */
  | 'testing'
  | 'soaking'
  | 'ready'
  | 'promoted';

export interface MspStanding {
  key: string;
  state: MspState;
  /** MSP devices whose OS runs one of the update's products. */
  needing: number[];
  installedOn: number[];
  failedOn: number[];
  /** When the last needing device settled it; null while testing or untested. */
  finishedAt: string | null;
  soakUntil: string | null;
  skipped: boolean;
}

export interface MspInput {
  facts: ReleaseFacts;
  devices: readonly MspDevice[];
  products: readonly Product[];
  /** The approved, not-held (for ring msp) updates, with their products. */
  updates: readonly MspUpdate[];
  soakHours: number;
}

/**
 * Where each approved update stands in ring msp. Finished when every MSP device that runs one of its products
 * installed it or failed it for good (devices with nothing to install do not hold it up; flagged devices neither);
 * its soak counts from then; ready once soaked, if it installed somewhere. A skipped update is ready at once.
 */
export function mspStandings(input: MspInput, now: Date): MspStanding[] {
  const { facts } = input;
  const productsOf = new Map<string, Set<string>>();
  const runsProduct = (os: string) => {
    let ids = productsOf.get(os);
    if (!ids) productsOf.set(os, (ids = new Set(matchOsToProducts(os, input.products).productIds)));
    return ids;
  };
  const outcome = new Map(facts.outcomes.filter((o) => o.ring === 'msp').map((o) => [`${o.deviceId} ${o.updateKey}`, o]));
  return input.updates.map((u): MspStanding => {
    const needing = input.devices.filter((d) => d.os !== null && !d.flagged && u.productIds.some((id) => runsProduct(d.os!).has(id))).map((d) => d.id);
    const settled = needing.map((id) => outcome.get(`${id} ${u.key}`));
    const installedOn = [...(facts.installedMsp.get(u.key) ?? [])].sort((a, b) => a - b);
    const failedOn = settled.filter((o) => o?.outcome === 'failed').map((o) => o!.deviceId);
    const skipped = facts.skippedMsp.has(u.key);
    const base = { key: u.key, needing, installedOn, failedOn, skipped, finishedAt: null, soakUntil: null };
    if (facts.promoted.has(u.key)) return { ...base, state: 'promoted' };
    if (skipped) return { ...base, state: 'ready' };
    if (settled.some((o) => o === undefined)) return { ...base, state: 'testing' };
    if (installedOn.length === 0) return { ...base, state: 'untested' };
    // A device that installed it and has since retired still counts as where it was tested.
    const ends = [...settled, ...installedOn.map((id) => outcome.get(`${id} ${u.key}`))].filter((o) => o !== undefined).map((o) => Date.parse(o.at));
    const finishedAt = new Date(Math.max(...ends)).toISOString();
    const soakUntil = new Date(Date.parse(finishedAt) + input.soakHours * 3_600_000).toISOString();
    return { ...base, finishedAt, soakUntil, state: Date.parse(soakUntil) <= now.getTime() ? 'ready' : 'soaking' };
  });
}

/** The updates a Promote clicked now covers. */
export function readyToPromote(standings: readonly MspStanding[]): string[] {
  return standings.filter((s) => s.state === 'ready').map((s) => s.key).sort();
}

/** When the next update's soak ends (for the gate and the sandbox's clock); null when none is soaking. */
export function nextSoakEnd(standings: readonly MspStanding[]): string | null {
  const ends = standings.filter((s) => s.state === 'soaking').map((s) => s.soakUntil!);
  return ends.length === 0 ? null : ends.sort()[0]!;
}

/** The planner's input for a gate's devices: the updates that passed the earlier rings, per device per update done. */
export function gatePlanInput(
  gate: { releaseId: string; ring: Ring; clientId: string | null },
  devices: readonly PlanDevice[],
  catalog: { products: Product[]; updates: PlanUpdate[] },
  approved: ReadonlySet<string> | 'all',
  holds: readonly Hold[],
  facts: ReleaseFacts,
): PlanInput {
  return {
    releaseId: gate.releaseId,
    ring: gate.ring,
    clientId: gate.clientId,
    devices,
    products: catalog.products,
    updates: catalog.updates,
    approved,
    holds,
    passed: passedUpdates(facts, gate.ring, gate.clientId, catalog.updates.map((u) => u.key)),
    // Past ring msp only for the products it installed on there (or every product, when skipped).
    ...(gate.ring === 'msp' ? {} : { passedProducts: mspProducts(facts, catalog.products, catalog.updates) }),
    done: facts.done,
  };
}

/**
 * Which of these gates have eligible work: some live, unflagged device of theirs that the planner would give a
 * run now (an update that passed the earlier rings, applies to it, is not held and not done). Devices with
 * nothing to install, or flagged (the caller leaves those out), never count, so a gate reopened on this does not
 * open and finish again with nothing to do. `devices`: by gate key.
 */
export function gatesWithWork(
  book: Book,
  devices: ReadonlyMap<string, readonly PlanDevice[]>,
  catalog: { products: Product[]; updates: PlanUpdate[] },
  approved: ReadonlySet<string> | 'all',
  holds: readonly Hold[],
  facts: ReleaseFacts,
): string[] {
  return planBookGates(book, devices, catalog, approved, holds, facts)
    .filter(([, plan]) => plan.runs.length > 0)
    .map(([key]) => key)
    .sort();
}

/** The planner's answer for each gate of the book with devices here (those `only` keeps), by gate key, in book order. */
function planBookGates(
  book: Book,
  devices: ReadonlyMap<string, readonly PlanDevice[]>,
  catalog: { products: Product[]; updates: PlanUpdate[] },
  approved: ReadonlySet<string> | 'all',
  holds: readonly Hold[],
  facts: ReleaseFacts,
  only: (gate: Gate) => boolean = () => true,
): Array<[string, Plan]> {
  const plans: Array<[string, Plan]> = [];
  for (const [key, gate] of Object.entries(book.gates)) {
    const mine = devices.get(key) ?? [];
    if (mine.length === 0 || !only(gate)) continue;
    plans.push([key, planWindow(gatePlanInput({ releaseId: book.releaseId, ring: gate.ring, clientId: gate.clientId }, mine, catalog, approved, holds, facts))]);
  }
  return plans;
}

/** What a scheduled gate with nothing to install now waits for (status's words; the sweep opens no window for it). */
export type GateWait = 'earlier_ring' | 'held';

/**
 * The scheduled gates the planner gives no run now although some device of theirs needs an update: one that has
 * not passed the earlier rings yet (`earlier_ring`), or one held (`held`). Such a gate is not "scheduled for its
 * next window": its next window carries nothing until the update passes or the hold is released.
 */
export function gatesWaiting(
  book: Book,
  devices: ReadonlyMap<string, readonly PlanDevice[]>,
  catalog: { products: Product[]; updates: PlanUpdate[] },
  approved: ReadonlySet<string> | 'all',
  holds: readonly Hold[],
  facts: ReleaseFacts,
): Map<string, GateWait> {
  const out = new Map<string, GateWait>();
  for (const [key, plan] of planBookGates(book, devices, catalog, approved, holds, facts, (gate) => gate.state === 'scheduled')) {
    if (plan.runs.length > 0) continue;
    if (plan.skipped.some((s) => s.reason === 'waiting_for_ring')) out.set(key, 'earlier_ring');
    else if (plan.skipped.some((s) => s.reason === 'held')) out.set(key, 'held');
  }
  return out;
}

/** Machines of one class (and OS) of a client's broad ring, as counted for a confirmation's note. */
export interface BroadGroup {
  deviceClass: string;
  os: string | null;
  count: number;
  users: boolean;
}

/**
 * Per device class, the broad machines that run at least one of `covered` (the updates a pilot confirmation
 * covered), matched as the planner matches them; classes with none are left out. Telling engineers "the rest of its
 * machines start Monday" about machines that run none of the confirmed updates was untrue: they wait on the
 * updates the pilot did not test. An empty `covered` (not known) counts every machine.
 */
export function broadClassesRunning(groups: readonly BroadGroup[], catalog: { products: readonly Product[]; updates: readonly MspUpdate[] }, covered: readonly string[]): Array<{ deviceClass: string; count: number; users: boolean }> {
  const wanted = new Set(catalog.updates.filter((u) => covered.includes(u.key)).flatMap((u) => u.productIds));
  const byClass = new Map<string, { deviceClass: string; count: number; users: boolean }>();
  for (const g of groups) {
    const runs = covered.length === 0 || (g.os !== null && matchOsToProducts(g.os, catalog.products).productIds.some((id) => wanted.has(id)));
    if (!runs) continue;
    const seen = byClass.get(g.deviceClass) ?? { deviceClass: g.deviceClass, count: 0, users: false };
    byClass.set(g.deviceClass, { deviceClass: g.deviceClass, count: seen.count + g.count, users: seen.users || g.users });
  }
  return [...byClass.values()];
}
