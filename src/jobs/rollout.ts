/**
 * The rollout engine on BullMQ. Two queues:
 *
 * - `rollout-sweep`: a job scheduler ticks it every few seconds. A sweep reads Postgres only: it opens windows for
 *   gates whose devices' windows are open (gate event + planned runs, ON CONFLICT DO NOTHING), moves gates on
 *   (finished rings, soak and auto-confirm deadlines), and re-adds a job for every unfinished run Postgres knows,
 *   admitted by the concurrency limits. The job id is the run's (`run-<id>`), so re-adding is a no-op while the
 *   job exists, and if Redis lost everything the next sweep puts it all back.
 * - `rollout-run`: one job per run. It loads the run, asks the step machine what to do, stores the decision, calls
 *   the Deployer, stores the answer, and so on to the end. Every store is compare-and-set on the run's seq, so
 *   two processors of one run cannot both act; every device call carries the step's idempotency key.
 *
 * Processors are thin: the rules live in src/domain (rollout.ts, run.ts, plan.ts).
 */
import { createHash } from 'node:crypto';
import { DelayedError, type Job, type Queue } from 'bullmq';
import { DateTime } from 'luxon';
import type { Deployer, DeviceRef, UpdateRef } from '../adapters/deployers/port.ts';
import { SimulatedFleet } from '../adapters/deployers/simulated.ts';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import { activeHolds, effectiveApprovals } from '../db/decisions-repo.ts';
import { enqueueOutbox, type OutboxItem } from '../db/outbox-repo.ts';
import { loadRelease } from '../db/release-repo.ts';
import {
  idleRunningGates,
  insertRuns,
  loadReleaseFacts,
  loadRunContext,
  lastWindowMessages,
  openGateDevices,
  plannedDevices,
  reopenedScheduledGates,
  unopenedScheduledGates,
  deviceRetired,
  loadBook,
  reopenStamp,
  restingReleaseIds,
  type GateRow,
  saveRun,
  unfinishedRuns,
  unfinishedRunIds,
  updateDeviceMisses,
  windowTallies,
  type NewRun,
  type OpenGateDevice,
  type RunContext,
  RUNS_PER_STATEMENT,
} from '../db/rollout-repo.ts';
import { noticeEvidence, noticeKey, userDevices } from '../db/notice-repo.ts';
import { clientNames } from '../db/names-repo.ts';
import { sql } from 'drizzle-orm';
import { admitWarned, noticeHoursOf, type NoticeEvidence } from '../domain/notice.ts';
import { admit, planWindow, type PlanUpdate } from '../domain/plan.ts';

// The planner's input for a gate moved to the domain (the hold-release use-case plans with it too).
export { gatePlanInput } from '../domain/eligibility.ts';
import { gatePlanInput, gatesWithWork, nextSoakEnd, untestedForDevices, passedMsp, pilotAsk, readyToPromote, type MspStanding, type ReleaseFacts } from '../domain/eligibility.ts';
import { loadMspPicture } from '../db/eligibility-repo.ts';
import { isHeld, type Book, type Hold, type RolloutEvent, type RolloutTransition } from '../domain/rollout.ts';
import { afterRun, decide, DEFAULT_RUN_POLICY, observe, TERMINAL, type Run, type RunEnv, type RunPolicy } from '../domain/run.ts';
import { parseWindowSpec, type WindowRule } from '../domain/window-spec.ts';
import { canStartStep, nextWindow, windowContaining, type MaintenanceWindow } from '../domain/windows.ts';
import type { Product } from '../domain/release.ts';
import type { Ring } from '../domain/inventory.ts';
import { escapeMrkdwn } from '../bot/slack/block-kit.ts';
import { progressMessage, summaryMessage } from '../bot/slack/window-blocks.ts';
import { applyGateEvents } from '../use-cases/gates.ts';
import { withTransaction } from '../use-cases/transaction.ts';
import { reopenGatesWithWork } from '../use-cases/reopen.ts';
import { reportFor, unfinished, updateIntervalMs } from '../domain/window-report.ts';
import type { JobContext, JobModule } from './context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';
import { subjects } from '../chat/subjects.ts';
import { DeployerCalls, withSupersedence } from './deployer-calls.ts';

export const SWEEP_QUEUE = 'rollout-sweep';
export const RUN_QUEUE = 'rollout-run';
const SWEEP_SCHEDULER_ID = 'rollout-sweep-tick';
const FIRST_BATCH = 250;
const ADD_BULK_MAX = 5000;

export interface RolloutOptions {
  /** Default: a simulated fleet on the context's clock (the local demo; real deployers come with their issue). */
  deployer?: Deployer;
  policy?: Partial<RunPolicy>;
  sweepEveryMs?: number;
  /** Run jobs in flight per worker process (the overall limit per process). */
  workerConcurrency?: number;
  /** Real milliseconds between polls of an operation in progress. */
  pollMs?: number;
  /** Real milliseconds to wait for a clock instant; tests with a fast clock shrink it. */
  realDelayMs?: (until: Date, now: Date) => number;
  /** How long a worker trusts its copy of the holds: a hold stops new work within this. */
  holdsCacheMs?: number;
  /** BullMQ's lock on an active job, and how often stalled jobs (a worker died holding them) are taken back. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

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

interface Catalog {
  products: Product[];
  updates: PlanUpdate[];
  byKey: Map<string, UpdateRef>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The limits map's key for the MSP's overall limit: no client id can be `*`, and null is the MSP's own machines. */
const OVERALL_LIMIT = '*';

function parseRule(spec: string | null | undefined): WindowRule | undefined {
  if (!spec) return undefined;
  const parsed = parseWindowSpec(spec);
  return parsed.ok ? parsed.value : undefined;
}

export class RolloutEngine {
  readonly queue: Queue;
  readonly policy: RunPolicy;
  readonly deployer: Deployer;
  private readonly calls: DeployerCalls;
  private holdsCache: { at: number; holds: Hold[] } | undefined;
  private readonly catalogs = new Map<string, Promise<Catalog | undefined>>();
  private readonly nextWindows = new Map<string, string>();
  private lastReopenStamp: string | undefined;

  constructor(
    private readonly context: JobContext,
    private readonly options: RolloutOptions = {},
  ) {
    this.queue = createQueue(context, RUN_QUEUE, { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: 'exponential', delay: 1000 } });
    this.policy = { ...DEFAULT_RUN_POLICY, ...options.policy };
    this.deployer = options.deployer ?? context.deployer ?? new SimulatedFleet({ clock: context.now });
    this.calls = new DeployerCalls(this.deployer, context.database.db, context.now);
  }

  private get db(): AppDatabase {
    return this.context.database.db;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }

  async holds(fresh = false): Promise<Hold[]> {
    const ttl = this.options.holdsCacheMs ?? 1000;
    if (!fresh && this.holdsCache && Date.now() - this.holdsCache.at < ttl) return this.holdsCache.holds;
    const holds = (await activeHolds(this.db)).map((h) => ({ scope: h.scope, releaseId: h.releaseId, updateKey: h.updateKey, clientId: h.clientId, ring: h.ring }));
    this.holdsCache = { at: Date.now(), holds };
    return holds;
  }

  private catalog(releaseId: string): Promise<Catalog | undefined> {
    let cached = this.catalogs.get(releaseId);
    if (!cached) {
      cached = loadRelease(this.db, releaseId).then(async (release) => {
        if (!release) return undefined;
        const updates = release.updates.map((u) => ({ key: u.id, productIds: u.productIds, restartRequired: u.restartRequired }));
        return {
          products: release.products,
          updates,
          byKey: await withSupersedence(this.db, new Map(release.updates.map((u) => [u.id, { key: u.id, kb: u.kb, restartRequired: u.restartRequired }]))),
        };
      });
      this.catalogs.set(releaseId, cached);
      // A revision may add or drop updates: do not keep the model for long.
      setTimeout(() => this.catalogs.delete(releaseId), 60_000).unref();
    }
    return cached;
  }

  /** Applies one gate event in one transaction (compare-and-set on each gate's version), with its row effects. */
  async applyEvent(releaseId: string, event: RolloutEvent): Promise<RolloutTransition> {
    return (await this.applyEvents(releaseId, [event]))[0]!;
  }

  /** Applies events to one release's gates in order, in one transaction: a window opening for 400 clients at once. */
  async applyEvents(releaseId: string, events: readonly RolloutEvent[]): Promise<RolloutTransition[]> {
    const now = this.context.now();
    // Another worker moving a gate between our read and write makes withTransaction read again and decide afresh.
    return withTransaction({ db: this.db }, async (tx) => (await applyGateEvents(tx, releaseId, events, now)).results);
  }

  /**
   * No unwarned reboot: each window's group keeps its devices without a user and those whose user was sent the
   * "save your work" DM for that window in time, or answered it, or whom an engineer's waiver in force at `now`
   * covers (src/domain/notice.ts). A group left with no device opens nothing: its gate waits for a window its
   * users can be told about.
   */
  private async warnedOnly<G extends { windowStart: string; devices: OpenGateDevice[] }>(groups: G[], now: Date): Promise<G[]> {
    const users = await userDevices(this.db, [...new Set(groups.flatMap((g) => g.devices.map((d) => d.id)))]);
    if (users.size === 0) return groups;
    const pairs = groups.flatMap((g) => g.devices.filter((d) => users.has(d.id)).map((d) => ({ deviceId: d.id, windowStart: g.windowStart })));
    const evidence = await noticeEvidence(this.db, pairs, now);
    const kept: G[] = [];
    for (const g of groups) {
      const told = new Map<number, NoticeEvidence>();
      for (const d of g.devices) {
        const e = evidence.get(noticeKey(d.id, g.windowStart));
        if (e) told.set(d.id, e);
      }
      const subjects = g.devices.map((d) => ({ id: d.id, userEmail: users.get(d.id)?.userEmail ?? null, device: d }));
      const admitted = admitWarned(subjects, new Date(g.windowStart), (d) => noticeHoursOf({ noticeHours: users.get(d.id)?.noticeHours }), told);
      if (admitted.length > 0) kept.push({ ...g, devices: admitted.map((a) => a.device) });
    }
    return kept;
  }

  /** Everything Postgres says should be happening now; safe to run any number of times, from any process. */
  async sweep(): Promise<SweepReport> {
    const nowDate = this.context.now();
    const now = DateTime.fromJSDate(nowDate, { zone: 'utc' });
    const t0 = performance.now();
    const report: SweepReport = { windowsOpened: 0, held: 0, runsPlanned: 0, jobsAdded: 0, gatesFinished: 0, messages: 0, ms: { open: 0, enqueue: 0, advance: 0 } };
    await this.reopenResting(nowDate);
    const [holds, allDevices, limits] = await Promise.all([this.holds(true), openGateDevices(this.db), this.clientLimits()]);
    // Reopened gates with nothing eligible go back to rest first, and gates whose users will never be told of a
    // window with nothing in it finish: neither must wait for a window to open.
    const settled = await this.settleReopened(allDevices, holds, nowDate);
    for (const id of await this.finishUnopened(allDevices, holds, nowDate)) settled.add(id);
    const devices = settled.size === 0 ? allDevices : allDevices.filter((d) => !settled.has(d.gateId));

    // Which windows are open now, and whether they still have room for an install, worked out once per
    // (zone, spec) rather than per device: 20,000 devices share a few hundred owners' windows.
    interface Slot {
      windowStart: string;
      windowEnd: string;
    }
    const slots = new Map<string, Slot | null>();
    const slotFor = (timezone: string, spec: string | null): Slot | null => {
      const key = `${timezone} ${spec}`;
      let slot = slots.get(key);
      if (slot === undefined) {
        const rule = parseRule(spec);
        const window = rule ? windowContaining(rule, timezone, now) : undefined;
        // A window with no room left for an install plans nothing: its runs would only roll, and count as missed.
        slot =
          window && canStartStep(window, now, this.policy.installBudgetMinutes)
            ? { windowStart: window.start.toUTC().toISO()!, windowEnd: window.end.toUTC().toISO()! }
            : null;
        slots.set(key, slot);
      }
      return slot;
    };
    interface Group {
      gate: { id: number; releaseId: string; ring: Ring; clientId: string | null; state: string };
      windowStart: string;
      windowEnd: string;
      devices: OpenGateDevice[];
    }
    const groups = new Map<string, Group>();
    for (const device of devices) {
      const slot = slotFor(device.timezone, device.spec);
      if (!slot) continue;
      const key = `${device.gateId} ${slot.windowStart}`;
      let group = groups.get(key);
      if (!group) {
        const gate = { id: device.gateId, releaseId: device.releaseId, ring: device.ring, clientId: device.clientId, state: device.gateState };
        group = { gate, windowStart: slot.windowStart, windowEnd: slot.windowEnd, devices: [] };
        groups.set(key, group);
      }
      group.devices.push(device);
    }
    const unheld: Group[] = [];
    for (const group of groups.values()) {
      const { gate } = group;
      if (isHeld(holds, { releaseId: gate.releaseId, ring: gate.ring, clientId: gate.clientId })) report.held++;
      else unheld.push(group);
    }
    const open = await this.warnedOnly(unheld, nowDate);

    // Gates opening their first window move to running, a release's gates in one transaction.
    const opening = new Map<string, Group[]>();
    for (const group of open) {
      if (group.gate.state !== 'scheduled') continue;
      const list = opening.get(group.gate.releaseId) ?? [];
      if (!list.some((g) => g.gate.id === group.gate.id)) list.push(group);
      opening.set(group.gate.releaseId, list);
    }
    // The gate events and the runs are written side by side: the events can only refuse a held gate, and those
    // were left out above against the same holds, so nothing planned below depends on their answer.
    const gateEvents = (async () => {
      for (const [releaseId, list] of opening) {
        const results = await this.applyEvents(
          releaseId,
          list.map((g) => ({ type: 'window_opened' as const, ring: g.gate.ring, clientId: g.gate.clientId, windowStart: g.windowStart, holds })),
        );
        for (const result of results) if (result.outcome === 'applied') report.windowsOpened++;
      }
    })();

    const releaseIds = [...new Set(open.map((g) => g.gate.releaseId))];
    const [planned, approvals, facts] = await Promise.all([
      plannedDevices(this.db, [...new Set(open.map((g) => g.windowStart))]),
      this.approvals(releaseIds),
      loadReleaseFacts(this.db, releaseIds),
    ]);
    const rows: NewRun[] = [];
    const passedOver: NewRun[] = [];
    for (const group of open) {
      const { gate } = group;
      const catalog = await this.catalog(gate.releaseId);
      if (!catalog) continue;
      const devices = planned.size === 0 ? group.devices : group.devices.filter((d) => !planned.has(`${d.id}/${group.windowStart}`));
      const plan = planWindow(gatePlanInput(gate, devices, catalog, approvals.get(gate.releaseId)!, holds, facts.get(gate.releaseId)!));
      const { windowEnd } = group;
      for (const r of plan.runs) {
        rows.push({ deviceId: r.deviceId, releaseId: gate.releaseId, rolloutId: gate.id, windowStart: group.windowStart, windowEnd, updates: r.updates });
      }
      for (const r of plan.skipped) {
        if (r.reason !== 'nothing_applies' && r.reason !== 'no_os') continue;
        passedOver.push({ deviceId: r.deviceId, releaseId: gate.releaseId, rolloutId: gate.id, windowStart: group.windowStart, windowEnd, updates: [], skipped: r.reason });
      }
    }
    // Devices with nothing to install get a finished, skipped run: the ring then knows they are settled. No job
    // waits on them, so they are written alongside the runs below. A device waiting for an update to pass the
    // earlier rings, or for a hold, gets no row: it is not "nothing to install", and a row would keep it out of
    // this window's plan once the update passes or the hold is released.
    const passingOver = insertRuns(this.db, passedOver, nowDate);
    // Insert batches on two connections at once (the unique key keeps them from colliding) and enqueue each batch
    // as it lands, so Postgres and Redis work side by side. With per-client limits the new runs wait for
    // admission below instead.
    const enqueued = new Set<number>();
    // Batches that land while Redis is busy are added together: fewer, larger addBulk calls, as the baseline makes.
    const pending: number[] = [];
    let adding: Promise<void> | undefined;
    let addError: unknown;
    const drain = async () => {
      try {
        while (pending.length > 0) await this.addRunJobs(pending.splice(0, ADD_BULK_MAX));
      } catch (error) {
        // Thrown below once the inserts are done; the runs are in Postgres and the next sweep adds their jobs.
        addError ??= error;
        pending.length = 0;
      } finally {
        adding = undefined;
      }
    };
    let next = 0;
    const inserter = async () => {
      while (next < rows.length) {
        // A small first batch gets Redis busy sooner: its adding is the longest part of the sweep.
        const size = next === 0 ? FIRST_BATCH : RUNS_PER_STATEMENT;
        const batch = rows.slice(next, next + size);
        next += size;
        const ids = await insertRuns(this.db, batch, nowDate);
        report.runsPlanned += ids.length;
        if (limits.size === 0) {
          for (const id of ids) enqueued.add(id);
          if (addError === undefined) {
            for (const id of ids) pending.push(id);
            adding ??= drain();
          }
        }
      }
    };
    await Promise.all([inserter(), inserter(), gateEvents, passingOver]);
    await adding;
    if (addError !== undefined) throw addError;

    const t1 = performance.now();
    report.jobsAdded = enqueued.size + (await this.enqueueUnfinished(enqueued, limits));
    const t2 = performance.now();

    report.gatesFinished = await this.finishRings(devices, nowDate);
    await this.tickReleases(nowDate);
    report.messages = await this.reportWindows(nowDate);
    report.ms = { open: t1 - t0, enqueue: t2 - t1, advance: performance.now() - t2 };
    return report;
  }

  /**
   * Progress messages for every window with runs, edited in place (paced so all windows together stay inside
   * chat.update's tier), then a final edit and a summary once a window has closed and its runs have settled.
   * Keys make each message once: a second sweep, or two schedulers, queue nothing new.
   */
  async reportWindows(now: Date): Promise<number> {
    const tallies = await windowTallies(this.db, now);
    if (tallies.length === 0) return 0;
    const owners = rowsOf<{ id: string; name: string; timezone: string; channel: string | null }>(
      await this.db.execute(sql`select 'msp' as id, name, timezone, channel from msp where id = 1
        union all select id, name, timezone, settings ->> 'slackChannel' from clients where retired_at is null`),
    );
    const owner = new Map(owners.map((o) => [o.id, o]));
    const engineers = owner.get('msp')?.channel ?? null;
    const last = await lastWindowMessages(this.db, now);
    const active = tallies.filter((t) => unfinished(t) > 0 || Date.parse(t.windowEnd) > now.getTime()).length;
    const interval = updateIntervalMs(active);
    const items: OutboxItem[] = [];
    for (const counted of tallies) {
      const who = owner.get(counted.who);
      const tally = who && counted.who !== 'msp' ? { ...counted, name: who.name } : counted;
      const zone = who?.timezone ?? 'UTC';
      const channels = [...new Set([engineers, tally.who === 'msp' ? null : (who?.channel ?? null)].filter((c): c is string => !!c))];
      for (const report of reportFor(tally, now)) {
        for (const channel of channels) {
          const base = `${report.subject}:${channel}`;
          if (report.type === 'summary') {
            const payload = { ...summaryMessage(tally, zone), threadSubject: report.subject };
            items.push({ key: `${base}:summary`, channel, action: 'post', subject: subjects.windowSummary(report.subject), payload });
            continue;
          }
          const message = progressMessage(tally, now, zone, report.closing);
          const previous = last.get(`${channel} ${report.subject}`);
          if (!previous) {
            items.push({ key: `${base}:post`, channel, action: 'post', subject: report.subject, payload: { ...message } });
            continue;
          }
          const key = report.closing ? `${base}:final` : `${base}:${createHash('sha1').update(JSON.stringify(tally.counts)).digest('hex').slice(0, 12)}`;
          if (previous.key === key || (!report.closing && now.getTime() - previous.at < interval)) continue;
          items.push({ key, channel, action: 'update', subject: report.subject, payload: { ...message } });
        }
      }
    }
    if (items.length === 0) return 0;
    return (await enqueueOutbox(this.db, items, now)).length;
  }

  private async approvals(releaseIds: readonly string[]): Promise<Map<string, ReadonlySet<string> | 'all'>> {
    const lists = await Promise.all(releaseIds.map((releaseId) => effectiveApprovals(this.db, releaseId)));
    return new Map(releaseIds.map((releaseId, i) => [releaseId, lists[i]!.some((a) => a.updateKey === null) ? 'all' : new Set(lists[i]!.map((a) => a.updateKey!))]));
  }

  /**
   * A running gate is finished when no run of it is in flight and the planner finds nothing left for its devices:
   * every device that needs an update that passed the earlier rings is done with it (installed, failed for good)
   * or flagged. Devices with nothing to install never hold a ring up, so ring msp does not wait for Sunday's
   * server window when the servers need nothing. A gate held as a whole keeps running until the hold is released.
   */
  private async finishRings(devices: readonly OpenGateDevice[], now: Date): Promise<number> {
    const candidates = await idleRunningGates(this.db);
    if (candidates.length === 0) return 0;
    const holds = await this.holds(true);
    const releaseIds = [...new Set(candidates.map((g) => g.releaseId))];
    const [approvals, facts] = await Promise.all([this.approvals(releaseIds), loadReleaseFacts(this.db, releaseIds)]);
    const byGate = new Map<number, OpenGateDevice[]>();
    for (const d of devices) if (!d.flagged) byGate.set(d.gateId, [...(byGate.get(d.gateId) ?? []), d]);
    const standings = new Map<string, MspStanding[]>();
    let finished = 0;
    for (const gate of candidates) {
      if (isHeld(holds, { releaseId: gate.releaseId, ring: gate.ring, clientId: gate.clientId })) continue;
      const catalog = await this.catalog(gate.releaseId);
      const releaseFacts = facts.get(gate.releaseId)!;
      if (!catalog) continue;
      const plan = planWindow(gatePlanInput(gate, byGate.get(gate.id) ?? [], catalog, approvals.get(gate.releaseId)!, holds, releaseFacts));
      if (plan.runs.length > 0) continue;
      if (await this.finishGate(gate, byGate.get(gate.id) ?? [], releaseFacts, standings, holds, now)) finished++;
    }
    return finished;
  }

  /** A gate's `ring_finished` with what its ring decides on (soak, sign-off, auto-confirm), then what it could not test. */
  private async finishGate(
    gate: GateRow,
    devices: readonly OpenGateDevice[],
    releaseFacts: ReleaseFacts,
    standings: Map<string, MspStanding[]>,
    holds: readonly Hold[],
    now: Date,
    unopened = false,
  ): Promise<boolean> {
    const settings = await this.settingsFor(gate.clientId);
    let soakUntil: string | null | undefined;
    if (gate.ring === 'msp') {
      if (!standings.has(gate.releaseId)) standings.set(gate.releaseId, (await loadMspPicture(this.db, gate.releaseId, now, holds))?.standings ?? []);
      soakUntil = nextSoakEnd(standings.get(gate.releaseId)!);
    }
    const result = await this.applyEvent(gate.releaseId, {
      type: 'ring_finished',
      ring: gate.ring,
      clientId: gate.clientId,
      soakHours: settings.soakHours,
      autoConfirmHours: settings.autoConfirmHours,
      ...(gate.ring === 'pilot' ? { asked: pilotAsk(releaseFacts, gate.clientId!, holds) } : {}),
      ...(soakUntil !== undefined ? { soakUntil } : {}),
      ...(unopened ? { unopened } : {}),
    });
    if (result.outcome !== 'applied') return false;
    await this.tellUntested(gate, releaseFacts, standings.get(gate.releaseId), holds, now, devices);
    return true;
  }

  /**
   * A gate that never opened a window, whose devices all have users and have nothing to install, finishes as one
   * whose first window opened on nothing does (a pilot waits, with its note; broad finishes; ring msp soaks): its
   * users are never told of a window with nothing to install, so the notice filter would keep it scheduled forever.
   * A device with an update still to come from an earlier ring, or held, keeps the gate scheduled: it has work
   * coming. An update no MSP machine running the device's OS installed is not "to come" (it waits for a skip, and
   * the thread says so). Gates with a device without a user are left to their first window: it tells the story.
   */
  private async finishUnopened(devices: readonly OpenGateDevice[], holds: readonly Hold[], now: Date): Promise<Set<number>> {
    const finished = new Set<number>();
    const byGate = new Map<number, OpenGateDevice[]>();
    for (const d of devices) if (!d.flagged) byGate.set(d.gateId, [...(byGate.get(d.gateId) ?? []), d]);
    // A gate with no live machines at all (a client without pilot machines) is one too: no window of its ever opens,
    // so without this it sat "scheduled" in silence; finishing it tells the thread the client waits and how to skip.
    const gates = (await unopenedScheduledGates(this.db)).filter(
      (g) => (byGate.has(g.id) || g.liveDevices === 0) && !isHeld(holds, { releaseId: g.releaseId, ring: g.ring, clientId: g.clientId }),
    );
    if (gates.length === 0) return finished;
    for (const g of gates) if (!byGate.has(g.id)) byGate.set(g.id, []);
    const users = await userDevices(this.db, gates.flatMap((g) => byGate.get(g.id)!.map((d) => d.id)));
    const told = gates.filter((g) => byGate.get(g.id)!.every((d) => users.has(d.id)));
    if (told.length === 0) return finished;
    const releaseIds = [...new Set(told.map((g) => g.releaseId))];
    const [approvals, facts] = await Promise.all([this.approvals(releaseIds), loadReleaseFacts(this.db, releaseIds)]);
    const standings = new Map<string, MspStanding[]>();
    for (const gate of told) {
      const catalog = await this.catalog(gate.releaseId);
      if (!catalog) continue;
      const mine = byGate.get(gate.id)!;
      const releaseFacts = facts.get(gate.releaseId)!;
      // Promoted, so ring msp is done with it, yet installed on no MSP machine running these devices' OS.
      const untested = gate.ring === 'msp' ? new Set<string>() : new Set([...untestedForDevices(releaseFacts, catalog, mine)].filter((k) => releaseFacts.promoted.has(k)));
      const approved = approvals.get(gate.releaseId)!;
      const coming = new Set(catalog.updates.map((u) => u.key).filter((k) => (approved === 'all' || approved.has(k)) && !untested.has(k)));
      const plan = planWindow(gatePlanInput(gate, mine, catalog, coming, holds, releaseFacts));
      if (plan.runs.length > 0 || plan.skipped.some((s) => s.reason === 'waiting_for_ring' || s.reason === 'held')) continue;
      if (await this.finishGate(gate, mine, releaseFacts, standings, holds, now, true)) finished.add(gate.id);
    }
    return finished;
  }

  /**
   * A gate at rest reopens when it has eligible work again: a device added by a re-import to a ring that had
   * finished, a hold released (the use-case reopens at once; this catches any other path), a ring skipped for an
   * update after its promotion. Checked only when what that depends on changed (reopenStamp), so flagged devices
   * and devices with nothing to install never make a gate reopen and re-finish on every sweep.
   */
  private async reopenResting(now: Date): Promise<void> {
    // Nothing at rest (a month's first nights, the benchmark): no stamp to read over every device.
    const releaseIds = await restingReleaseIds(this.db, now);
    if (releaseIds.length === 0) return;
    const stamp = await reopenStamp(this.db);
    if (stamp === this.lastReopenStamp) return;
    for (const releaseId of releaseIds) {
      // A gate moved by another writer meanwhile is read again (withTransaction retries a lost compare-and-set).
      await withTransaction({ db: this.db }, (tx) => reopenGatesWithWork(tx, releaseId, now));
    }
    this.lastReopenStamp = stamp;
  }

  /**
   * A gate a later promotion, confirmation or approval moved back to scheduled may find nothing eligible for any of
   * its devices (the new update is for other machines, or not for this client's pilots yet). Such a gate would sit
   * in "scheduled" forever (its users are never warned of a window with nothing to install, so it never opens), or
   * open and finish only to post a second "client waits" note. It settles back to its rest instead: a pilot to
   * confirmed (or waiting), broad to finished, ring msp to soaking. A gate held as a whole stays as it is.
   */
  private async settleReopened(devices: readonly OpenGateDevice[], holds: readonly Hold[], now: Date): Promise<Set<number>> {
    const settled = new Set<number>();
    const reopened = (await reopenedScheduledGates(this.db)).filter((g) => !isHeld(holds, { releaseId: g.releaseId, ring: g.ring, clientId: g.clientId }));
    if (reopened.length === 0) return settled;
    const releaseIds = [...new Set(reopened.map((g) => g.releaseId))];
    const [approvals, facts] = await Promise.all([this.approvals(releaseIds), loadReleaseFacts(this.db, releaseIds)]);
    const byGate = new Map<number, OpenGateDevice[]>();
    for (const d of devices) if (!d.flagged) byGate.set(d.gateId, [...(byGate.get(d.gateId) ?? []), d]);
    for (const releaseId of releaseIds) {
      const catalog = await this.catalog(releaseId);
      const releaseFacts = facts.get(releaseId)!;
      if (!catalog) continue;
      const mine = reopened.filter((g) => g.releaseId === releaseId);
      const stored = await loadBook(this.db, releaseId);
      const keyOf = (g: GateRow) => (g.ring === 'msp' ? 'msp' : `${g.ring}/${g.clientId}`);
      const book: Book = { releaseId, gates: Object.fromEntries(mine.filter((g) => stored.gates[keyOf(g)]).map((g) => [keyOf(g), stored.gates[keyOf(g)]!])) };
      const withWork = new Set(gatesWithWork(book, new Map(mine.map((g) => [keyOf(g), byGate.get(g.id) ?? []])), catalog, approvals.get(releaseId)!, holds, releaseFacts));
      const idle = mine.filter((g) => book.gates[keyOf(g)] && !withWork.has(keyOf(g)));
      if (idle.length === 0) continue;
      let standings: MspStanding[] | undefined;
      if (idle.some((g) => g.ring === 'msp')) standings = (await loadMspPicture(this.db, releaseId, now, holds))?.standings ?? [];
      const result = await this.applyEvent(releaseId, { type: 'settle', gates: idle.map(keyOf), ...(standings ? { soakUntil: nextSoakEnd(standings) } : {}) });
      if (result.outcome !== 'applied') continue;
      for (const g of idle) {
        if (!result.changed.includes(keyOf(g))) continue;
        settled.add(g.id);
        // Never silent: what ring msp could not test is told, once per set of updates (the key makes it once).
        if (g.ring === 'msp') await this.tellUntested(g, releaseFacts, standings, holds, now);
      }
    }
    return settled;
  }

  /**
   * Updates a finished ring could not test (no device there runs them, or none installed them) wait for an
   * engineer's skip: the release's thread says which, once per ring, client and set of updates. Never silent.
   */
  private async tellUntested(
    gate: { releaseId: string; ring: Ring; clientId: string | null },
    facts: ReleaseFacts,
    standings: MspStanding[] | undefined,
    holds: readonly Hold[],
    now: Date,
    devices: readonly OpenGateDevice[] = [],
  ): Promise<void> {
    const catalog = await this.catalog(gate.releaseId);
    if (!catalog) return;
    let keys: string[] = [];
    let waitingMsp: string[] = [];
    if (gate.ring === 'msp') keys = (standings ?? []).filter((st) => st.state === 'untested').map((st) => st.key);
    else if (gate.ring === 'pilot') {
      const installed = facts.installedPilot.get(gate.clientId!);
      const target = { releaseId: gate.releaseId, ring: 'pilot' as const, clientId: gate.clientId };
      keys = [...facts.promoted].filter(
        (k) => passedMsp(facts, k) && !installed?.has(k) && !facts.skippedPilot.get(gate.clientId!)?.has(k) && !isHeld(holds, { ...target, updateKey: k }),
      );
      // An update that installed on ring msp, but on no MSP machine running the OS of these pilots, waits for ring
      // msp (or its skip) for them: skipping the pilot would send it to broad machines nobody tested it on.
      const untestedOs = untestedForDevices(facts, catalog, devices);
      waitingMsp = keys.filter((k) => untestedOs.has(k)).sort();
      keys = keys.filter((k) => !untestedOs.has(k));
    }
    if (keys.length === 0 && waitingMsp.length === 0) return;
    const channel = rowsOf<{ channel: string }>(await this.db.execute(sql`select channel from msp where id = 1`))[0]?.channel;
    if (!channel) return;
    const kbOf = (key: string) => catalog.byKey.get(key)?.kb;
    const kbsOf = (list: string[]) => list.sort().map((k) => (kbOf(k) ? `KB${kbOf(k)}` : k));
    const clientName = gate.clientId === null ? null : ((await clientNames(this.db)).get(gate.clientId) ?? gate.clientId);
    const where = clientName === null ? 'our own machines (ring msp)' : `${escapeMrkdwn(clientName)}'s pilot machines`;
    const items: OutboxItem[] = [];
    if (keys.length > 0) {
      const kbs = kbsOf(keys);
      const how = kbs.map((kb) => `\`/patch skip ${gate.ring} ${kb}${gate.clientId ? ` ${gate.clientId}` : ''}\``).join(', ');
      const subject = subjects.untested(gate.releaseId, gate.ring, gate.clientId, keys);
      const text = `${escapeMrkdwn(gate.releaseId)}: ${kbs.join(', ')} did not install on ${where}: none of them runs it, or it failed. It waits there until an engineer skips the ring for it (${how}) or it installs.`;
      items.push({ key: subject, channel, action: 'post', subject, payload: { text, threadSubject: subjects.digest(gate.releaseId) } });
    }
    if (waitingMsp.length > 0) {
      const kbs = kbsOf(waitingMsp);
      const how = kbs.map((kb) => `\`/patch skip msp ${kb}\``).join(', ');
      const subject = `rollout:${gate.releaseId}:untested:msp-os:${gate.clientId}:${waitingMsp.join('+')}`;
      const text = `${escapeMrkdwn(gate.releaseId)}: ${kbs.join(', ')} installed on our own machines, but on none running the OS of ${where}, so it does not go to them: it waits until it installs on an MSP machine running that OS, or an engineer skips ring msp for it (${how}).`;
      items.push({ key: subject, channel, action: 'post', subject, payload: { text, threadSubject: subjects.digest(gate.releaseId) } });
    }
    await enqueueOutbox(this.db, items, now);
  }

  /** Soak and auto-confirm deadlines; each update is offered for promotion once its own soak has elapsed. */
  private async tickReleases(now: Date): Promise<void> {
    const rows = rowsOf<{ release_id: string; ring: Ring; state: string; offered: string[] | null }>(
      await this.db.execute(sql`select release_id, ring, state, state_detail -> 'offered' as offered from rollouts
        where state in ('soaking', 'awaiting_confirmation')
          or (ring = 'msp' and state in ('running', 'ready', 'promoted', 'scheduled') and updated_at > ${now.toISOString()}::timestamptz - interval '60 days')`),
    );
    const releaseIds = [...new Set(rows.map((r) => r.release_id))];
    if (releaseIds.length === 0) return;
    const holds = await this.holds(true);
    for (const releaseId of releaseIds) {
      const gates = rows.filter((r) => r.release_id === releaseId);
      const msp = gates.find((r) => r.ring === 'msp');
      const ready = msp ? readyToPromote((await loadMspPicture(this.db, releaseId, now, holds))?.standings ?? []) : [];
      const fresh = ready.some((k) => !(msp?.offered ?? []).includes(k));
      const resting = ready.length > 0 && (msp?.state === 'soaking' || msp?.state === 'promoted');
      if (!fresh && !resting && !gates.some((r) => r.state === 'awaiting_confirmation')) continue;
      await this.applyEvent(releaseId, { type: 'tick', ...(msp ? { mspReady: ready } : {}) });
    }
  }

  private async settingsFor(clientId: string | null): Promise<{ soakHours?: number; autoConfirmHours?: number }> {
    const msp = rowsOf<{ settings: { soakHours?: number } }>(await this.db.execute(sql`select settings from msp where id = 1`))[0];
    if (clientId === null) return { soakHours: msp?.settings.soakHours };
    const client = rowsOf<{ settings: { autoConfirmHours?: number } }>(await this.db.execute(sql`select settings from clients where id = ${clientId}`))[0];
    return { soakHours: msp?.settings.soakHours, autoConfirmHours: client?.settings.autoConfirmHours };
  }

  /** Adds a job for every unfinished run the limits admit (but those in `skip`); jobs already in Redis stay as they are. */
  async enqueueUnfinished(skip: ReadonlySet<number> = new Set(), limits?: Map<string | null, number>): Promise<number> {
    const perClient = limits ?? (await this.clientLimits());
    if (perClient.size === 0) {
      // No limits: every unfinished run is admitted, so Postgres leaves out the skipped ones itself (a sweep has
      // just enqueued the 20,000 it planned; reading them all back only to drop them costs more than the rest).
      const ids = await unfinishedRunIds(this.db, [...skip]);
      await this.addRunJobs(ids);
      return ids.length;
    }
    const unfinished = await unfinishedRuns(this.db);
    if (unfinished.length === 0) return 0;
    const admitted = admit(unfinished, (clientId) => perClient.get(clientId) ?? Infinity, perClient.get(OVERALL_LIMIT) ?? Infinity).filter((r) => !skip.has(r.id));
    await this.addRunJobs(admitted.map((r) => r.id));
    return admitted.length;
  }

  private async addRunJobs(ids: readonly number[]): Promise<void> {
    for (let i = 0; i < ids.length; i += ADD_BULK_MAX) {
      await this.queue.addBulk(ids.slice(i, i + ADD_BULK_MAX).map((id) => ({ name: 'run', data: { runId: id }, opts: { jobId: `run-${id}` } })));
    }
  }

  private async clientLimits(): Promise<Map<string | null, number>> {
    const rows = rowsOf<{ id: string | null; limit: number | null }>(
      await this.db.execute(sql`select id, (settings ->> 'runConcurrency')::int as limit from clients where settings ? 'runConcurrency'
        union all select ${OVERALL_LIMIT}::text, (settings ->> 'runConcurrency')::int from msp where settings ? 'runConcurrency'`),
    );
    return new Map(rows.filter((r) => r.limit !== null).map((r) => [r.id, Number(r.limit)]));
  }

  /**
   * Drives one run as far as it can go now. Returns the run as stored last, or undefined when another processor
   * holds it. With a BullMQ job, a wait longer than a poll moves the job to delayed instead of holding a slot.
   */
  async processRun(runId: number, job?: Job, token?: string): Promise<Run | undefined> {
    const loaded = await loadRunContext(this.db, runId);
    if (!loaded || TERMINAL.has(loaded.run.status)) return loaded?.run;
    const rule = parseRule(loaded.windowSpec);
    const window: MaintenanceWindow = {
      start: DateTime.fromISO(loaded.windowStart, { zone: loaded.timezone }),
      end: DateTime.fromISO(loaded.windowEnd, { zone: loaded.timezone }),
      day: '',
    };
    const nextWindowStart = this.nextWindowStart(rule, loaded.timezone, loaded.windowStart, window);
    const device: DeviceRef = { id: loaded.device.id, name: loaded.device.name, os: loaded.device.os ?? undefined };
    const catalog = loaded.releaseId ? await this.catalog(loaded.releaseId) : undefined;
    const refsOf = (keys: readonly string[]): UpdateRef[] => keys.map((key) => catalog?.byKey.get(key) ?? { key });
    let run = loaded.run;
    let seq = loaded.seq;

    // `fresh`: read the holds from Postgres, not the worker's short-lived copy (before an install starts).
    const env = async (fresh = false): Promise<RunEnv> => {
      const holds = await this.holds(fresh);
      const target = { releaseId: loaded.releaseId ?? '', ring: loaded.ring, clientId: loaded.clientId };
      const heldUpdates = new Set(current.updates.filter((key) => isHeld(holds, { ...target, updateKey: key })));
      const held = isHeld(holds, target) || (current.updates.length > 0 && heldUpdates.size === current.updates.length);
      // Retirement is read as stored only where it matters, before something new starts on the device.
      const retired = fresh ? await deviceRetired(this.db, loaded.device.id) : false;
      return { now: DateTime.fromJSDate(this.context.now(), { zone: 'utc' }), window, nextWindowStart, held, heldUpdates, retired, policy: this.policyFor(loaded) };
    };
    const store = async (next: Run): Promise<boolean> => {
      const now = this.context.now();
      // The run's end and the device's missed-window count (and any flag for the engineers) commit together.
      const missesChange = (() => {
        if (!TERMINAL.has(next.status)) return false;
        const after = afterRun(next, loaded.device.consecutiveMissedWindows, this.policyFor(loaded));
        return after.flag || after.consecutiveMissed !== loaded.device.consecutiveMissedWindows;
      })();
      const saved = missesChange
        ? await this.db.transaction(async (tx) => {
            const stored = await saveRun(tx, runId, seq, next, now);
            if (stored !== undefined) await this.finished(tx, loaded, next, now);
            return stored;
          })
        : await saveRun(this.db, runId, seq, next, now);
      if (saved === undefined) return false;
      seq = saved;
      run = next;
      return true;
    };

    // What a step learned is stored lazily: before the next step that touches the device (with its intent), before
    // any wait, when a failure counts, and at the end. A crash in between only repeats harmless reads (an online
    // check, a poll, a verification) or asks again with the key already stored.
    let current = run;
    let dirty = false;
    const flush = async (): Promise<boolean> => {
      if (!dirty) return true;
      dirty = false;
      return store(current);
    };
    for (let guard = 0; guard < 10_000; guard++) {
      let decision = decide(current, await env());
      // Nothing held installs once the hold has committed, and nothing starts on a retired device: a new install or
      // reboot is decided again on the holds and the inventory as stored.
      const starts = decision.type === 'act' && (decision.action.type === 'install' || decision.action.type === 'reboot') && current.operation === null;
      if (starts) decision = decide(current, await env(true));
      if (decision.type === 'done') return (await flush()) ? current : undefined;
      if (decision.type === 'become') {
        current = decision.run;
        dirty = false;
        if (!(await store(current))) return undefined;
        continue;
      }
      if (decision.type === 'wait') {
        if (!(await flush())) return undefined;
        const nowDate = this.context.now();
        const realDelayMs = this.options.realDelayMs ?? this.context.pace?.realDelayMs;
        const delay = realDelayMs?.(decision.until.toJSDate(), nowDate) ?? decision.until.toMillis() - nowDate.getTime();
        if (delay <= 0) {
          if (this.context.now().getTime() >= decision.until.toMillis()) continue;
          // A clock that does not move with real time (tests, the sandbox): come back when it has.
          return current;
        }
        if (job && token && delay > (this.options.pollMs ?? 2000)) {
          await job.moveToDelayed(Date.now() + delay, token);
          throw new DelayedError();
        }
        await sleep(delay);
        continue;
      }
      current = decision.run;
      const sideEffect = decision.action.type === 'install' || decision.action.type === 'reboot';
      if (sideEffect) {
        // The intent (and the operation's key) is stored before the device hears of it.
        dirty = false;
        if (!(await store(current))) return undefined;
      } else {
        dirty = true;
      }
      const before = current;
      const outcome = await this.calls.ask(device, refsOf(decision.action.type === 'install' ? decision.action.updates : current.updates), decision.action, loaded);
      current = observe(current, decision.action, outcome, await env());
      if (current !== before) dirty = true;
      if (current.attempts !== before.attempts || TERMINAL.has(current.status)) {
        if (!(await flush())) return undefined;
      }
      if (outcome.type === 'progress') await sleep(this.options.pollMs ?? 2000);
    }
    throw new Error(`run ${runId} did not settle in 10000 steps`);
  }

  /** A window's successor, computed once per owner and window: thousands of runs share a handful of windows. */
  private nextWindowStart(rule: WindowRule | undefined, timezone: string, windowStart: string, window: MaintenanceWindow): string | null {
    if (!rule) return null;
    const key = `${rule.spec} ${timezone} ${windowStart}`;
    let next = this.nextWindows.get(key);
    if (next === undefined) {
      if (this.nextWindows.size > 10_000) this.nextWindows.clear();
      next = nextWindow(rule, timezone, window.start).start.toUTC().toISO()!;
      this.nextWindows.set(key, next);
    }
    return next;
  }

  /** The MSP's missed-window limit (inventory `msp.missed_window_limit`) unless the engine was given one. */
  private policyFor(loaded: RunContext): RunPolicy {
    if (loaded.missedWindowLimit === null || this.options.policy?.missedWindowLimit !== undefined) return this.policy;
    return { ...this.policy, missedWindowLimit: loaded.missedWindowLimit };
  }

  private async finished(tx: AppDatabase, loaded: RunContext, run: Run, now: Date): Promise<void> {
    const { consecutiveMissed, flag } = afterRun(run, loaded.device.consecutiveMissedWindows, this.policyFor(loaded));
    if (consecutiveMissed === loaded.device.consecutiveMissedWindows && !flag) return;
    const newlyFlagged = await updateDeviceMisses(tx, loaded.device.id, consecutiveMissed, flag, now);
    if (!newlyFlagged) return;
    const channel = rowsOf<{ channel: string }>(await tx.execute(sql`select channel from msp where id = 1`))[0]?.channel;
    if (!channel) return;
    const name = escapeMrkdwn(loaded.device.name);
    const owner = loaded.clientId === null ? 'our own machines' : escapeMrkdwn(loaded.clientId);
    await enqueueOutbox(
      tx,
      [
        {
          key: subjects.deviceFlagged(loaded.device.id, loaded.windowStart),
          channel,
          action: 'post',
          subject: subjects.deviceFlagged(loaded.device.id, loaded.windowStart),
          payload: { text: `${name} (${owner}) has missed ${consecutiveMissed} maintenance windows in a row: it needs a look.` },
        },
      ],
      now,
    );
  }
}

export function runWorkerOptions(options: RolloutOptions): { concurrency: number; lockDuration?: number; stalledInterval?: number } {
  return {
    concurrency: options.workerConcurrency ?? 50,
    ...(options.lockDurationMs !== undefined ? { lockDuration: options.lockDurationMs } : {}),
    ...(options.stalledIntervalMs !== undefined ? { stalledInterval: options.stalledIntervalMs } : {}),
  };
}

/** A worker for run jobs only, for tests and benchmarks that drive sweeps themselves. */
export function startRunWorker(context: JobContext, engine: RolloutEngine, options: RolloutOptions = {}) {
  return createWorker<{ runId: number }>(
    context,
    RUN_QUEUE,
    async (job, token) => {
      const run = await engine.processRun(job.data.runId, job, token);
      return run ? { status: run.status, reboots: run.reboots } : { status: 'elsewhere' };
    },
    runWorkerOptions(options),
  );
}

export function rolloutModule(options: RolloutOptions = {}): JobModule {
  return async (context) => {
    const hasScheduler = context.roles.has('scheduler');
    const hasWorker = context.roles.has('worker');
    if (!hasScheduler && !hasWorker) return { close: async () => {} };
    if (!options.deployer && !context.deployer && hasWorker) {
      context.log.warn('no device manager is configured: rollout runs go to a simulated fleet (the local demo), not to real machines');
    }
    const engine = new RolloutEngine(context, options);
    const sweepQueue = createQueue(context, SWEEP_QUEUE, { ...KEEP_FEW, attempts: 1 });
    if (hasScheduler) {
      await sweepQueue.upsertJobScheduler(SWEEP_SCHEDULER_ID, { every: options.sweepEveryMs ?? context.pace?.tickMs ?? 15_000 }, { name: 'sweep', opts: { ...KEEP_FEW, attempts: 1 } });
    }
    const workers = hasWorker
      ? [
          createWorker(context, SWEEP_QUEUE, async () => engine.sweep(), { concurrency: 1 }),
          createWorker<{ runId: number }>(
            context,
            RUN_QUEUE,
            async (job, token) => {
              const run = await engine.processRun(job.data.runId, job, token);
              return run ? { status: run.status, reboots: run.reboots } : { status: 'elsewhere' };
            },
            runWorkerOptions(options),
          ),
        ]
      : [];
    return {
      async close() {
        await closeAll(workers, [sweepQueue]);
        await engine.close();
      },
    };
  };
}

export const rollout: JobModule = rolloutModule();
