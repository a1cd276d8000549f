/**
 * Which devices get a run in a window, carrying which updates. Pure: the job loads the gate's devices, the
 * release's products and updates, approvals and holds, and stores what this returns.
 *
 * A device gets the approved, not-held updates whose products match its OS (matchOsToProducts, the same
 * matching the digest uses, so "touches your fleet" and "gets installed" agree), that have passed the earlier
 * rings for this ring and client (`passed`, from src/domain/eligibility.ts), for a product the device runs
 * (`passedProducts`), and that the device is not done with. "Done" is per device per update: an update approved
 * after a device's earlier run succeeded still reaches it. A device with nothing that applies, or done with
 * everything that does, gets no run; one whose updates are held or still in the earlier rings gets none yet, and
 * is told apart (it is not "nothing to install"). Concurrency is not decided here but by `admit`: the first
 * `limit` unfinished runs of a client, in plan order, are the ones allowed to be in flight.
 */
import type { DateTime } from 'luxon';
import { matchOsToProducts } from './product-match.ts';
import type { Product, RestartRequired } from './release.ts';
import type { Ring } from './inventory.ts';
import { isHeld, type Hold } from './rollout.ts';
import { parseWindowSpec, type WindowRule } from './window-spec.ts';
import { canStartStep, windowContaining } from './windows.ts';

export interface PlanDevice {
  id: number;
  name: string;
  clientId: string | null;
  os: string | null;
}

export interface PlanUpdate {
  key: string;
  productIds: readonly string[];
  restartRequired: RestartRequired;
}

export interface PlanInput {
  releaseId: string;
  ring: Ring;
  clientId: string | null;
  devices: readonly PlanDevice[];
  products: readonly Product[];
  updates: readonly PlanUpdate[];
  /** Approved update keys; `all` when the whole release is approved. */
  approved: ReadonlySet<string> | 'all';
  holds: readonly Hold[];
  /**
   * The updates that passed the earlier rings for this ring and client (eligibility.ts `passedUpdates`); absent:
   * no ring gate applies (ring msp, or a caller that checked already).
   */
  passed?: ReadonlySet<string>;
  /**
   * Per update that passed, the products it passed ring msp on (eligibility.ts `mspProducts`): an update reaches a
   * device only for a product it installed on at ring msp, so a Windows 10 pilot does not get a KB tested only on
   * the MSP's Windows 11 machine. An update not in the map (skipped, or no ring gate applies) passed for all.
   */
  passedProducts?: ReadonlyMap<string, ReadonlySet<string>>;
  /** Per device, the updates of this release it is done with (installed, or failed for good). */
  done: ReadonlyMap<number, ReadonlySet<string>>;
}

export interface PlannedRun {
  deviceId: number;
  updates: string[];
}

export interface Plan {
  runs: PlannedRun[];
  /**
   * `nothing_applies`/`no_os`: nothing of the approved release is for this device (it is settled for the ring).
   * `waiting_for_ring`: updates apply but have not passed the earlier rings yet; `held`: what applies is held.
   * Neither of the last two is "nothing to install": the device gets a run once the update passes or is released.
   */
  skipped: Array<{ deviceId: number; reason: SkipReason }>;
}

export type SkipReason = 'done' | 'no_os' | 'nothing_applies' | 'held' | 'waiting_for_ring';

export function planWindow(input: PlanInput): Plan {
  const target = { releaseId: input.releaseId, ring: input.ring, clientId: input.clientId };
  const plan: Plan = { runs: [], skipped: [] };
  if (isHeld(input.holds, target)) {
    for (const device of input.devices) plan.skipped.push({ deviceId: device.id, reason: 'held' });
    return plan;
  }
  const approved = input.updates.filter((u) => input.approved === 'all' || input.approved.has(u.key));
  const held = new Set(approved.filter((u) => isHeld(input.holds, { ...target, updateKey: u.key })).map((u) => u.key));
  // A fleet has a handful of OS names and thousands of devices: match each name once.
  const byOs = new Map<string, { applies: string[]; passed: Set<string>; fresh: { unheld: string[]; updates: string[] } }>();
  const updatesFor = (os: string) => {
    let found = byOs.get(os);
    if (!found) {
      const productIds = new Set(matchOsToProducts(os, input.products).productIds);
      const applies = approved.filter((u) => u.productIds.some((id) => productIds.has(id)));
      const passed = applies.filter((u) => {
        if (input.passed !== undefined && !input.passed.has(u.key)) return false;
        const on = input.passedProducts?.get(u.key);
        return on === undefined || u.productIds.some((id) => productIds.has(id) && on.has(id));
      });
      const keys = applies.map((u) => u.key);
      const passedKeys = new Set(passed.map((u) => u.key));
      found = { applies: keys, passed: passedKeys, fresh: narrow(keys, held, passedKeys) };
      byOs.set(os, found);
    }
    return found;
  };
  for (const device of input.devices) {
    if (!device.os) {
      plan.skipped.push({ deviceId: device.id, reason: 'no_os' });
      continue;
    }
    const { applies, passed, fresh } = updatesFor(device.os);
    const done = input.done.get(device.id);
    const left = done === undefined ? applies : applies.filter((key) => !done.has(key));
    // A device done with none of the release (most of a window's) shares its OS's lists: one pair per OS, not per device.
    const { unheld, updates } = done === undefined ? fresh : narrow(left, held, passed);
    if (applies.length === 0) plan.skipped.push({ deviceId: device.id, reason: 'nothing_applies' });
    else if (left.length === 0) plan.skipped.push({ deviceId: device.id, reason: 'done' });
    else if (unheld.length === 0) plan.skipped.push({ deviceId: device.id, reason: 'held' });
    else if (updates.length === 0) plan.skipped.push({ deviceId: device.id, reason: 'waiting_for_ring' });
    else plan.runs.push({ deviceId: device.id, updates });
  }
  return plan;
}

/** Of the updates a device is not done with, those not held, and of those the ones that passed the earlier rings. */
function narrow(left: readonly string[], held: ReadonlySet<string>, passed: ReadonlySet<string>): { unheld: string[]; updates: string[] } {
  const unheld = left.filter((key) => !held.has(key));
  return { unheld, updates: unheld.filter((key) => passed.has(key)) };
}

export interface AdmitRun {
  id: number;
  clientId: string | null;
}

/**
 * The runs allowed in flight: per client, its first `perClient` unfinished runs (in the order given); overall at
 * most `overall`, taken round-robin across clients so one big client does not starve the small ones. Finished
 * runs are left out by the caller, so as each finishes the next one of its client is admitted, and recomputing
 * after a crash admits exactly the same runs again.
 */
export function admit(unfinished: readonly AdmitRun[], perClient: (clientId: string | null) => number, overall = Infinity): AdmitRun[] {
  const queues = new Map<string | null, AdmitRun[]>();
  for (const run of unfinished) {
    const queue = queues.get(run.clientId);
    if (queue) queue.push(run);
    else queues.set(run.clientId, [run]);
  }
  const lanes = [...queues.entries()].map(([clientId, runs]) => runs.slice(0, Math.max(0, perClient(clientId))));
  const admitted: AdmitRun[] = [];
  for (let i = 0; admitted.length < overall; i++) {
    let any = false;
    for (const lane of lanes) {
      const run = lane[i];
      if (!run) continue;
      any = true;
      admitted.push(run);
      if (admitted.length >= overall) break;
    }
    if (!any) break;
  }
  return admitted;
}

/** A device of a gate that may get runs now (scheduled or running), with its owner's window spec and zone. */
export interface SweepDevice extends PlanDevice {
  gateId: number;
  releaseId: string;
  ring: Ring;
  gateState: string;
  spec: string | null;
  timezone: string;
}

export interface SweepGate {
  id: number;
  releaseId: string;
  ring: Ring;
  clientId: string | null;
  state: string;
}

/** A gate's devices whose window is open now, with room for an install: what one sweep plans over. */
export interface OpenWindow<D extends SweepDevice = SweepDevice> {
  gate: SweepGate;
  windowStart: string;
  windowEnd: string;
  devices: D[];
}

/** A window spec as a rule; an unreadable one (the inventory import checks them) opens no window. */
export function windowRuleOf(spec: string | null | undefined): WindowRule | undefined {
  if (!spec) return undefined;
  const parsed = parseWindowSpec(spec);
  return parsed.ok ? parsed.value : undefined;
}

/**
 * Groups the devices by gate and the window open for them at `now`. A window with no room left for an install
 * (`installBudgetMinutes`) opens nothing: its runs would only roll, and count as missed.
 */
export function openWindows<D extends SweepDevice>(devices: readonly D[], now: DateTime, installBudgetMinutes: number): OpenWindow<D>[] {
  // Worked out once per (zone, spec) rather than per device: 20,000 devices share a few hundred owners' windows.
  const slots = new Map<string, { windowStart: string; windowEnd: string } | null>();
  const slotFor = (timezone: string, spec: string | null) => {
    const key = `${timezone} ${spec}`;
    let slot = slots.get(key);
    if (slot === undefined) {
      const rule = windowRuleOf(spec);
      const window = rule ? windowContaining(rule, timezone, now) : undefined;
      slot = window && canStartStep(window, now, installBudgetMinutes) ? { windowStart: window.start.toUTC().toISO()!, windowEnd: window.end.toUTC().toISO()! } : null;
      slots.set(key, slot);
    }
    return slot;
  };
  const groups = new Map<string, OpenWindow<D>>();
  // Devices come a gate at a time, mostly of one owner: a device like the one before needs no key built (100,000
  // devices made 200,000 strings here).
  let before: D | undefined;
  let slot: ReturnType<typeof slotFor> = null;
  let group: OpenWindow<D> | undefined;
  for (const device of devices) {
    const sameOwner = before !== undefined && before.timezone === device.timezone && before.spec === device.spec;
    if (!sameOwner) slot = slotFor(device.timezone, device.spec);
    if (!sameOwner || before!.gateId !== device.gateId) group = undefined;
    before = device;
    if (!slot) continue;
    if (!group) {
      const key = `${device.gateId} ${slot.windowStart}`;
      group = groups.get(key);
      if (!group) {
        const gate = { id: device.gateId, releaseId: device.releaseId, ring: device.ring, clientId: device.clientId, state: device.gateState };
        group = { gate, ...slot, devices: [] };
        groups.set(key, group);
      }
    }
    group.devices.push(device);
  }
  return [...groups.values()];
}

/** A run row a sweep writes: a device's run in a window, or (`skipped`) the record that it had nothing to install. */
export interface WindowRun {
  deviceId: number;
  releaseId: string;
  rolloutId: number;
  windowStart: string;
  windowEnd: string;
  updates: string[];
  skipped?: SkipReason;
}

/**
 * The runs of the open windows. `planned` holds `deviceId/windowStart` for devices that have a run in that window
 * already; `inputFor` is a gate's planner input for some of its devices (undefined: its release is unknown, skip).
 * Devices with nothing to install (`passedOver`) get a finished, skipped run so the ring knows they are settled. A
 * device waiting for an update to pass the earlier rings, or for a hold, gets none: it is not "nothing to install",
 * and a row would keep it out of this window's plan once the update passes or the hold is released.
 */
export function planOpenWindows<D extends SweepDevice>(
  windows: readonly OpenWindow<D>[],
  planned: ReadonlySet<string>,
  inputFor: (gate: SweepGate, devices: readonly D[]) => PlanInput | undefined,
): { runs: WindowRun[]; passedOver: WindowRun[] } {
  const runs: WindowRun[] = [];
  const passedOver: WindowRun[] = [];
  for (const { gate, windowStart, windowEnd, devices } of windows) {
    const unplanned = planned.size === 0 ? devices : devices.filter((d) => !planned.has(`${d.id}/${windowStart}`));
    const input = inputFor(gate, unplanned);
    if (!input) continue;
    const { releaseId, id: rolloutId } = gate;
    const plan = planWindow(input);
    for (const r of plan.runs) runs.push({ deviceId: r.deviceId, releaseId, rolloutId, windowStart, windowEnd, updates: r.updates });
    for (const r of plan.skipped) {
      if (r.reason === 'nothing_applies' || r.reason === 'no_os') passedOver.push({ deviceId: r.deviceId, releaseId, rolloutId, windowStart, windowEnd, updates: [], skipped: r.reason });
    }
  }
  return { runs, passedOver };
}
