/**
 * The sweep's gate steps: reopened gates with nothing eligible settle back to rest, never-opened gates whose users
 * will never be told of an empty window finish, running gates with nothing left finish their ring, and soak and
 * auto-confirm deadlines tick. Each plans over the release inputs the sweep read once (`SweepStep.reads`).
 */
import { notify } from '../../chat/notify.ts';
import { loadMspPicture } from '../../db/eligibility-repo.ts';
import { userDevices } from '../../db/notice-repo.ts';
import { gateSettingsFor, idleRunningGates, tickableGates, type GateRow, type OpenGateDevice } from '../../db/rollout-repo.ts';
import { gatePlanInput, gatesWithWork, nextSoakEnd, pilotAsk, readyToPromote, untestedForDevices, type MspStanding } from '../../domain/eligibility.ts';
import { planWindow } from '../../domain/plan.ts';
import { gateKey, isHeld, type Book, type Hold, type RolloutEvent } from '../../domain/rollout.ts';
import type { ReleaseInputs } from './sweep-reads.ts';
import { unflaggedByGate, type SweepStep } from './sweep-step.ts';
import { untestedNotices } from './untested.ts';

const heldAsAWhole = (holds: readonly Hold[], g: GateRow) => isHeld(holds, { releaseId: g.releaseId, ring: g.ring, clientId: g.clientId });

/** Ring msp's standings per release, read at most once per step (a release's gates share them). */
class MspStandings {
  private readonly byRelease = new Map<string, MspStanding[]>();
  constructor(private readonly step: SweepStep, private readonly holds: readonly Hold[]) {}
  async of(releaseId: string): Promise<MspStanding[]> {
    let standings = this.byRelease.get(releaseId);
    if (!standings) {
      standings = (await loadMspPicture(this.step.db, releaseId, this.step.now, this.holds, 'msp'))?.standings ?? [];
      this.byRelease.set(releaseId, standings);
    }
    return standings;
  }
}

/**
 * A gate a later promotion, confirmation or approval moved back to scheduled may find nothing eligible for any of
 * its devices (the new update is for other machines, or not for this client's pilots yet). Such a gate would sit
 * in "scheduled" forever (its users are never warned of a window with nothing to install, so it never opens), or
 * open and finish only to post a second "client waits" note. It settles back to its rest instead: a pilot to
 * confirmed (or waiting), broad to finished, ring msp to soaking. A gate held as a whole stays as it is.
 * Returns the ids of the gates settled.
 */
export async function settleReopened(step: SweepStep, reopened: readonly GateRow[], devices: readonly OpenGateDevice[]): Promise<Set<number>> {
  const settled = new Set<number>();
  const gates = reopened.filter((g) => !heldAsAWhole(step.holds, g));
  if (gates.length === 0) return settled;
  const byGate = unflaggedByGate(devices);
  for (const releaseId of new Set(gates.map((g) => g.releaseId))) {
    const inputs = step.reads.get(releaseId);
    if (!inputs) continue;
    const mine = gates.filter((g) => g.releaseId === releaseId && inputs.book.gates[gateKey(g.ring, g.clientId)]);
    const book: Book = { releaseId, gates: Object.fromEntries(mine.map((g) => [gateKey(g.ring, g.clientId), inputs.book.gates[gateKey(g.ring, g.clientId)]!])) };
    const devicesByKey = new Map(mine.map((g) => [gateKey(g.ring, g.clientId), byGate.get(g.id) ?? []]));
    const withWork = new Set(gatesWithWork(book, devicesByKey, inputs.catalog, inputs.approved, step.holds, inputs.facts));
    const idle = mine.filter((g) => !withWork.has(gateKey(g.ring, g.clientId)));
    for (const id of await settle(step, releaseId, idle, inputs)) settled.add(id);
  }
  return settled;
}

async function settle(step: SweepStep, releaseId: string, idle: readonly GateRow[], inputs: ReleaseInputs): Promise<number[]> {
  if (idle.length === 0) return [];
  const standings = idle.some((g) => g.ring === 'msp') ? await new MspStandings(step, step.holds).of(releaseId) : undefined;
  const result = await step.gates.apply(releaseId, { type: 'settle', gates: idle.map((g) => gateKey(g.ring, g.clientId)), ...(standings ? { soakUntil: nextSoakEnd(standings) } : {}) });
  if (result.outcome !== 'applied') return [];
  const settled = idle.filter((g) => result.changed.includes(gateKey(g.ring, g.clientId)));
  // Never silent: what ring msp could not test is told, once per set of updates (the key makes it once).
  const notices = settled.filter((g) => g.ring === 'msp').flatMap((g) => untestedNotices(g, inputs.catalog, inputs.facts, standings, step.holds));
  await notify(step.db, notices, step.now);
  return settled.map((g) => g.id);
}

/**
 * A gate that never opened a window, whose devices all have users and have nothing to install, finishes as one
 * whose first window opened on nothing does (a pilot waits, with its note; broad finishes; ring msp soaks): its
 * users are never told of a window with nothing to install, so the notice filter would keep it scheduled forever.
 * A device with an update still to come from an earlier ring, or held, keeps the gate scheduled: it has work
 * coming. An update no MSP machine running the device's OS installed is not "to come" (it waits for a skip, and
 * the thread says so). Gates with a device without a user are left to their first window: it tells the story.
 * Returns the ids of the gates finished.
 */
export async function finishUnopened(step: SweepStep, unopened: ReadonlyArray<GateRow & { liveDevices: number }>, devices: readonly OpenGateDevice[]): Promise<Set<number>> {
  const finished = new Set<number>();
  const byGate = unflaggedByGate(devices);
  // A gate with no live machines at all (a client without pilot machines) is one too: no window of its ever opens,
  // so without this it sat "scheduled" in silence; finishing it tells the thread the client waits and how to skip.
  const gates = unopened.filter((g) => (byGate.has(g.id) || g.liveDevices === 0) && !heldAsAWhole(step.holds, g));
  if (gates.length === 0) return finished;
  const users = await userDevices(step.db, gates.flatMap((g) => (byGate.get(g.id) ?? []).map((d) => d.id)));
  const told = gates.filter((g) => (byGate.get(g.id) ?? []).every((d) => users.has(d.id)));
  const finishing: Finishing[] = [];
  for (const gate of told) {
    const inputs = step.reads.get(gate.releaseId);
    if (!inputs) continue;
    const mine = byGate.get(gate.id) ?? [];
    const { catalog, facts, approved } = inputs;
    // Promoted, so ring msp is done with it, yet installed on no MSP machine running these devices' OS.
    const untested = gate.ring === 'msp' ? new Set<string>() : new Set([...untestedForDevices(facts, catalog, mine)].filter((k) => facts.promoted.has(k)));
    const coming = new Set(catalog.updates.map((u) => u.key).filter((k) => (approved === 'all' || approved.has(k)) && !untested.has(k)));
    const plan = planWindow(gatePlanInput(gate, mine, catalog, coming, step.holds, facts));
    if (plan.runs.length > 0 || plan.skipped.some((s) => s.reason === 'waiting_for_ring' || s.reason === 'held')) continue;
    finishing.push({ gate, devices: mine, inputs });
  }
  for (const id of await finishGates(step, finishing, new MspStandings(step, step.holds), step.holds, true)) finished.add(id);
  return finished;
}

/**
 * A running gate is finished when no run of it is in flight and the planner finds nothing left for its devices:
 * every device that needs an update that passed the earlier rings is done with it (installed, failed for good)
 * or flagged. Devices with nothing to install never hold a ring up, so ring msp does not wait for Sunday's
 * server window when the servers need nothing. A gate held as a whole keeps running until the hold is released.
 * Returns how many finished.
 */
export async function finishRings(step: SweepStep): Promise<number> {
  const candidates = await idleRunningGates(step.db);
  if (candidates.length === 0) return 0;
  const holds = await step.holdsNow();
  const standings = new MspStandings(step, holds);
  let finished = 0;
  // The candidates' devices a chunk of gates at a time: after a night, every gate of the fleet may be one.
  await step.inGateChunks(candidates, async (chunk, devices) => {
    const byGate = unflaggedByGate(devices);
    const finishing: Finishing[] = [];
    for (const gate of chunk) {
      if (heldAsAWhole(holds, gate)) continue;
      const inputs = await step.reads.release(gate.releaseId);
      if (!inputs) continue;
      const mine = byGate.get(gate.id) ?? [];
      if (planWindow(gatePlanInput(gate, mine, inputs.catalog, inputs.approved, holds, inputs.facts)).runs.length > 0) continue;
      finishing.push({ gate, devices: mine, inputs });
    }
    finished += (await finishGates(step, finishing, standings, holds)).length;
  });
  return finished;
}

/** A gate the planner found nothing left for, with what it was planned over. */
interface Finishing {
  gate: GateRow;
  devices: readonly OpenGateDevice[];
  inputs: ReleaseInputs;
}

/**
 * Ring finishes per transaction. The morning after a night every gate of the fleet may finish in one sweep: one
 * transaction each, 2,000 took ~13 s. Bounded, so a transaction holds a few dozen gates' locks, not a fleet's, and a
 * lost compare-and-set retries that many.
 */
const FINISHES_PER_TRANSACTION = 100;

/**
 * Each gate's `ring_finished` with what its ring decides on (soak, sign-off, auto-confirm), a release's gates
 * FINISHES_PER_TRANSACTION at a time in one transaction (each event still judged on its own: one refused does not
 * stop the others), then what each finished ring could not test. Returns the ids of the gates finished.
 */
async function finishGates(step: SweepStep, finishing: readonly Finishing[], standings: MspStandings, holds: readonly Hold[], unopened = false): Promise<number[]> {
  if (finishing.length === 0) return [];
  const settings = await gateSettingsFor(step.db, finishing.map((f) => f.gate.clientId));
  const finished: number[] = [];
  for (const releaseId of new Set(finishing.map((f) => f.gate.releaseId))) {
    const mine = finishing.filter((f) => f.gate.releaseId === releaseId);
    const msp = mine.some((f) => f.gate.ring === 'msp') ? await standings.of(releaseId) : undefined;
    for (let i = 0; i < mine.length; i += FINISHES_PER_TRANSACTION) {
      const batch = mine.slice(i, i + FINISHES_PER_TRANSACTION);
      const events = batch.map(({ gate, inputs }): RolloutEvent => ({
        type: 'ring_finished',
        ring: gate.ring,
        clientId: gate.clientId,
        soakHours: settings.get(gate.clientId)?.soakHours,
        autoConfirmHours: settings.get(gate.clientId)?.autoConfirmHours,
        ...(gate.ring === 'pilot' ? { asked: pilotAsk(inputs.facts, gate.clientId!, holds) } : {}),
        ...(gate.ring === 'msp' && msp ? { soakUntil: nextSoakEnd(msp) } : {}),
        ...(unopened ? { unopened } : {}),
      }));
      const results = await step.gates.applyAll(releaseId, events);
      const applied = batch.filter((_, n) => results[n]?.outcome === 'applied');
      const notices = applied.flatMap(({ gate, devices, inputs }) => untestedNotices(gate, inputs.catalog, inputs.facts, gate.ring === 'msp' ? msp : undefined, holds, devices));
      await notify(step.db, notices, step.now);
      finished.push(...applied.map((f) => f.gate.id));
    }
  }
  return finished;
}

/** Soak and auto-confirm deadlines; each update is offered for promotion once its own soak has elapsed. */
export async function tickReleases(step: SweepStep): Promise<void> {
  const rows = await tickableGates(step.db, step.now);
  const releaseIds = [...new Set(rows.map((r) => r.releaseId))];
  if (releaseIds.length === 0) return;
  const holds = await step.holdsNow();
  for (const releaseId of releaseIds) {
    const gates = rows.filter((r) => r.releaseId === releaseId);
    const msp = gates.find((r) => r.ring === 'msp');
    // Standings alone, read from ring msp's machines: 1,000 pilots awaiting sign-off make this every sweep.
    const ready = msp ? readyToPromote((await loadMspPicture(step.db, releaseId, step.now, holds, 'msp'))?.standings ?? []) : [];
    const fresh = ready.some((k) => !(msp?.offered ?? []).includes(k));
    const resting = ready.length > 0 && (msp?.state === 'soaking' || msp?.state === 'promoted');
    if (!fresh && !resting && !gates.some((r) => r.state === 'awaiting_confirmation')) continue;
    await step.gates.apply(releaseId, { type: 'tick', ...(msp ? { mspReady: ready } : {}) });
  }
}
