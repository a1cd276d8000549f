/**
 * One sweep, in named steps: read once → settle what needs no window → open windows → plan runs (pure,
 * src/domain/plan.ts) → insert and enqueue → advance gates → report. What the steps plan over (holds, devices,
 * each release's catalog, approvals, gates and run facts) is read once, at the start, into a `SweepStep`.
 */
import type { AppDatabase } from '../../db/client.ts';
import { insertRuns, openGateDevices, plannedDevices, reopenedScheduledGates, unopenedScheduledGates, type OpenGateDevice } from '../../db/rollout-repo.ts';
import { gatePlanInput } from '../../domain/eligibility.ts';
import { planOpenWindows, type OpenWindow } from '../../domain/plan.ts';
import type { Hold } from '../../domain/rollout.ts';
import { finishRings, finishUnopened, settleReopened, tickReleases } from './advance-gates.ts';
import type { GateEvents } from './gate-events.ts';
import { RunWriter } from './insert-runs.ts';
import { findOpenWindows, openGates } from './open-windows.ts';
import { reportWindows } from './report-windows.ts';
import { SweepReads, type Catalog } from './sweep-reads.ts';
import type { SweepStep } from './sweep-step.ts';

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
  enqueueUnfinished(skip: ReadonlySet<number>, limits: Map<string | null, number>): Promise<number>;
  installBudgetMinutes: number;
}

export async function sweep(deps: SweepDeps): Promise<SweepReport> {
  const t0 = performance.now();
  await deps.reopenResting(deps.now);
  const { step, devices, limits } = await readAndSettle(deps);
  const { open, held } = await findOpenWindows(step, devices, deps.installBudgetMinutes);
  const written = await planAndWrite(step, open, limits.size === 0 ? deps.addRunJobs : undefined);
  const t1 = performance.now();
  const jobsAdded = written.enqueued.size + (await deps.enqueueUnfinished(written.enqueued, limits));
  const t2 = performance.now();
  const gatesFinished = await finishRings(step, devices);
  await tickReleases(step);
  const messages = await reportWindows(step.db, step.now);
  const ms = { open: t1 - t0, enqueue: t2 - t1, advance: performance.now() - t2 };
  return { windowsOpened: written.windowsOpened, held, runsPlanned: written.runsPlanned, jobsAdded, gatesFinished, messages, ms };
}

/**
 * Reads what the sweep plans over, once. Reopened gates with nothing eligible go back to rest first, and gates whose
 * users will never be told of a window with nothing in it finish: neither must wait for a window to open, and
 * their devices are left out of the windows opened below.
 */
async function readAndSettle(deps: SweepDeps): Promise<{ step: SweepStep; devices: OpenGateDevice[]; limits: Map<string | null, number> }> {
  const { db } = deps;
  const [holds, allDevices, limits] = await Promise.all([deps.holds(true), openGateDevices(db), deps.clientLimits()]);
  // Gates read after their devices: a gate created meanwhile is not taken for one without live devices.
  const [reopened, unopened] = await Promise.all([reopenedScheduledGates(db), unopenedScheduledGates(db)]);
  const reads = new SweepReads(db, deps.catalog);
  await reads.load([...new Set([...allDevices, ...reopened, ...unopened].map((g) => g.releaseId))]);
  const step: SweepStep = { db, now: deps.now, holds, holdsNow: () => deps.holds(true), reads, gates: deps.gates };
  const settled = await settleReopened(step, reopened, allDevices);
  for (const id of await finishUnopened(step, unopened, allDevices)) settled.add(id);
  const devices = settled.size === 0 ? allDevices : allDevices.filter((d) => !settled.has(d.gateId));
  return { step, devices, limits };
}

/**
 * Plans the open windows' runs and writes them, with the gates opening their first window moved to running side by
 * side: the gate events can only refuse a held gate, and those were left out against the same holds, so nothing
 * planned depends on their answer. `addRunJobs` (absent when per-client limits admit runs later) enqueues each
 * batch of runs as it lands.
 */
async function planAndWrite(step: SweepStep, open: readonly OpenWindow<OpenGateDevice>[], addRunJobs: ((ids: readonly number[]) => Promise<void>) | undefined) {
  const { db, now } = step;
  const opening = openGates(step, open);
  const planned = await plannedDevices(db, [...new Set(open.map((w) => w.windowStart))]);
  const { runs, passedOver } = planOpenWindows(open, planned, (gate, devices) => {
    const inputs = step.reads.get(gate.releaseId);
    return inputs && gatePlanInput(gate, devices, inputs.catalog, inputs.approved, step.holds, inputs.facts);
  });
  // Devices with nothing to install get a finished, skipped run (no job waits on them), written alongside the runs.
  const [windowsOpened, , written] = await Promise.all([opening, insertRuns(db, passedOver, now), new RunWriter(db, runs, now, addRunJobs).write()]);
  return { windowsOpened, runsPlanned: written.inserted, enqueued: written.enqueued };
}
