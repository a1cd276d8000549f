/**
 * One sweep, in named steps: read the gates → settle what needs no window → then, a page of devices at a time,
 * open windows, plan runs (pure, src/domain/plan.ts), insert and enqueue → enqueue what earlier sweeps left →
 * advance gates → report. What the steps plan over (holds, each release's catalog, approvals, gates and run facts)
 * is read once, at the start, into a `SweepStep`; devices are read in pages with a keyset cursor (`devicePages`),
 * so what a sweep holds does not grow with the fleet. A sweep that dies between pages leaves runs in Postgres
 * that the next one finds planned (the unique key) and enqueues (job ids are the runs').
 */
import type { AppDatabase } from '../../db/client.ts';
import { anyRunInWindow, insertRuns, lastRunId, openGateDevices, plannedDevices, reopenedScheduledGates, sweepGates, unopenedScheduledGates, type OpenGateDevice, type SweepGateCount } from '../../db/rollout-repo.ts';
import { gatePlanInput } from '../../domain/eligibility.ts';
import { planOpenWindows, type OpenWindow } from '../../domain/plan.ts';
import { isHeld, type Hold } from '../../domain/rollout.ts';
import { finishRings, finishUnopened, settleReopened, tickReleases } from './advance-gates.ts';
import type { GateEvents } from './gate-events.ts';
import { RunWriter } from './insert-runs.ts';
import { findOpenWindows, openGates } from './open-windows.ts';
import { reportWindows } from './report-windows.ts';
import { SweepReads, type Catalog } from './sweep-reads.ts';
import { devicePages, gateChunks, type SweepStep } from './sweep-step.ts';

/** Devices per page: big enough that a page's queries cost little next to its inserts, small enough to hold. */
export const SWEEP_BATCH = 5000;

export interface SweepReport {
  windowsOpened: number;
  held: number;
  runsPlanned: number;
  jobsAdded: number;
  gatesFinished: number;
  /** Window progress and summary messages queued in the outbox. */
  messages: number;
  /** Where the sweep's time went, for the benchmark and the logs. */
  ms: { open: number; enqueue: number; advance: number };
}

/** What the engine lends a sweep. */
export interface SweepDeps {
  db: AppDatabase;
  now: Date;
  gates: GateEvents;
  holds(fresh: boolean): Promise<readonly Hold[]>;
  catalog(releaseId: string): Promise<Catalog | undefined>;
  reopenResting(now: Date): Promise<void>;
  clientLimits(): Promise<Map<string | null, number>>;
  addRunJobs(runIds: readonly number[]): Promise<void>;
  /** Adds jobs for the unfinished runs the limits admit; with `upTo`, only for runs with ids up to it. */
  enqueueUnfinished(upTo: number | undefined, limits: Map<string | null, number>): Promise<number>;
  installBudgetMinutes: number;
  /** Devices per page (SWEEP_BATCH); tests make it small to sweep many pages. */
  batch?: number;
}

export async function sweep(deps: SweepDeps): Promise<SweepReport> {
  const t0 = performance.now();
  await deps.reopenResting(deps.now);
  const batch = deps.batch ?? SWEEP_BATCH;
  const { step, gates, limits } = await readAndSettle(deps, batch);
  // The runs this sweep inserts get higher ids: it enqueues those itself, as they land (when no limit applies).
  const upTo = limits.size === 0 ? await lastRunId(deps.db) : undefined;
  const written = await openAndWrite(step, gates, { ...deps, batch }, limits.size === 0 ? deps.addRunJobs : undefined);
  const t1 = performance.now();
  const jobsAdded = written.enqueued + (await deps.enqueueUnfinished(upTo, limits));
  const t2 = performance.now();
  const gatesFinished = await finishRings(step);
  await tickReleases(step);
  const messages = await reportWindows(step.db, step.now);
  const ms = { open: t1 - t0, enqueue: t2 - t1, advance: performance.now() - t2 };
  return { windowsOpened: written.windowsOpened, held: written.held, runsPlanned: written.inserted, jobsAdded, gatesFinished, messages, ms };
}

/**
 * Reads the gates and what the sweep plans over, once. Reopened gates with nothing eligible go back to rest first,
 * and gates whose users will never be told of a window with nothing in it finish: neither must wait for a window
 * to open, and their devices are left out of the windows opened below. Answers the gates left to page over.
 */
async function readAndSettle(deps: SweepDeps, batch: number): Promise<{ step: SweepStep; gates: SweepGateCount[]; limits: Map<string | null, number> }> {
  const { db } = deps;
  const [holds, gates, limits] = await Promise.all([deps.holds(true), sweepGates(db), deps.clientLimits()]);
  const [reopened, unopened] = await Promise.all([reopenedScheduledGates(db), unopenedScheduledGates(db)]);
  const reads = new SweepReads(db, deps.catalog);
  await reads.load([...gates, ...reopened, ...unopened].map((g) => g.releaseId));
  const counts = new Map(gates.map((g) => [g.id, g.devices]));
  const inGateChunks: SweepStep['inGateChunks'] = async (some, each) => {
    for (const chunk of gateChunks(some, (id) => counts.get(id) ?? 0, batch)) await each(chunk, await openGateDevices(db, { gateIds: chunk.map((g) => g.id) }));
  };
  const step: SweepStep = { db, now: deps.now, holds, holdsNow: () => deps.holds(true), reads, gates: deps.gates, inGateChunks };
  const settled = new Set<number>();
  await inGateChunks(reopened, async (chunk, devices) => {
    for (const id of await settleReopened(step, chunk, devices)) settled.add(id);
  });
  await inGateChunks(unopened, async (chunk, devices) => {
    for (const id of await finishUnopened(step, chunk, devices)) settled.add(id);
  });
  return { step, gates: gates.filter((g) => !settled.has(g.id)), limits };
}

/**
 * Opens the windows of each page of devices and writes its runs: Postgres inserting one page's runs and Redis adding
 * their jobs while the next page is read and planned.
 */
async function openAndWrite(
  step: SweepStep,
  gates: readonly SweepGateCount[],
  deps: SweepDeps & { batch: number },
  addRunJobs: ((ids: readonly number[]) => Promise<void>) | undefined,
) {
  const writer = new RunWriter(step.db, step.now, addRunJobs);
  const planned = new PlannedRuns(step.db);
  const held = new Set<string>();
  let windowsOpened = 0;
  try {
    for await (const page of devicePages(step.db, gates, deps.batch, alreadyPlanned(step, gates))) {
      const found = await findOpenWindows(step, page, deps.installBudgetMinutes);
      for (const key of found.held) held.add(key);
      windowsOpened += await planAndWrite(step, found.open, writer, planned);
    }
  } catch (error) {
    // Nothing of a failed sweep goes on writing after it has answered.
    await writer.finish().catch(() => undefined);
    throw error;
  }
  return { ...(await writer.finish()), windowsOpened, held: held.size };
}

/**
 * The gates whose devices with a run in a window open now need not be read again: running ones (a scheduled gate's
 * first window opens whatever its devices were given) not held as a whole (whose open windows the report counts).
 * Mid-window every sweep re-read and re-planned every device of the fleet to plan nothing: ~1.2 s at 100,000.
 */
function alreadyPlanned(step: SweepStep, gates: readonly SweepGateCount[]): { gateIds: number[]; at: Date } {
  const gateIds = gates.filter((g) => g.state === 'running' && !isHeld(step.holds, { releaseId: g.releaseId, ring: g.ring, clientId: g.clientId })).map((g) => g.id);
  return { gateIds, at: step.now };
}

/**
 * Plans one page's open windows and writes their runs, with the gates opening their first window moved to running
 * side by side: the gate events can only refuse a held gate, and those were left out against the same holds, so
 * nothing planned depends on their answer. Answers how many gates opened.
 */
async function planAndWrite(step: SweepStep, open: readonly OpenWindow<OpenGateDevice>[], writer: RunWriter, plannedRuns: PlannedRuns): Promise<number> {
  const { db, now } = step;
  const opening = openGates(step, open);
  await writer.landed(new Set(open.map((w) => w.gate.releaseId)));
  const planned = await plannedRuns.in(open);
  const { runs, passedOver } = planOpenWindows(open, planned, (gate, devices) => {
    const inputs = step.reads.get(gate.releaseId);
    return inputs && gatePlanInput(gate, devices, inputs.catalog, inputs.approved, step.holds, inputs.facts);
  });
  // Devices with nothing to install get a finished, skipped run (no job waits on them), written alongside the runs.
  const [windowsOpened] = await Promise.all([opening, insertRuns(db, passedOver, now), writer.write(runs)]);
  return windowsOpened;
}

/**
 * Which devices of a page already have a run in its windows (as `deviceId/windowStart`), read only when there can be
 * some: a window that had no run when this sweep first met it holds only runs this sweep wrote, and a release's pages
 * never share a device (a device is in one gate per release), so while a window has runs of one release only, a page
 * of that release finds none there. A sweep opening a window, the longest, reads nothing per page; one re-sweeping an
 * open window reads as before. Read or not, the insert's unique key keeps one run per device and window.
 */
class PlannedRuns {
  /** Per window start: whether it had a run when first met, and the releases this sweep has planned in it. */
  private readonly windows = new Map<string, { hadRuns: boolean; releases: Set<string> }>();

  constructor(private readonly db: AppDatabase) {}

  async in(open: readonly OpenWindow<OpenGateDevice>[]): Promise<Set<string>> {
    let read = false;
    for (const { windowStart, gate } of open) {
      let seen = this.windows.get(windowStart);
      if (!seen) {
        seen = { hadRuns: await anyRunInWindow(this.db, windowStart), releases: new Set() };
        this.windows.set(windowStart, seen);
      }
      if (seen.hadRuns || [...seen.releases].some((releaseId) => releaseId !== gate.releaseId)) read = true;
    }
    for (const { windowStart, gate } of open) this.windows.get(windowStart)!.releases.add(gate.releaseId);
    if (!read) return new Set();
    return plannedDevices(this.db, [...new Set(open.map((w) => w.windowStart))], open.flatMap((w) => w.devices.map((d) => d.id)));
  }
}
