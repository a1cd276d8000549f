/**
 * The running system a model sequence drives: one database and one redis-server for the whole file, and per
 * sequence an emptied database seeded with the world, a fresh simulated fleet (its ledger is the sequence's
 * record of what devices did), a RolloutEngine and a real BullMQ run worker under a key prefix of its own.
 *
 * Time is a clock the model moves. Between commands the system is "settled" the way the scheduler would leave it:
 * sweeps until the gates and runs stop changing (each sweep enqueues run jobs the worker drains), then the DM
 * planner's tick, the Teams client tick and the outbox's delivery of what is due (see deliver). A clock jump stops, and settles, wherever work could fall due on the
 * way (see stopsBetween): production sweeps every few seconds and ticks DMs every minute, and a jump must not skip
 * what the system would have done meanwhile, or a DM would look late only because the model did not wait for it.
 */
import { Redis } from 'ioredis';
import { DateTime } from 'luxon';
import pino from 'pino';
import { sql } from 'drizzle-orm';
import type { Worker } from 'bullmq';
import { SimulatedFleet, type SimulatedFleetOptions } from '../../../src/adapters/deployers/simulated.ts';
import type { Config } from '../../../src/config.ts';
import { rowsOf, type AppDatabase, type Database } from '../../../src/db/client.ts';
import { RolloutEngine, startRunWorker, type RolloutOptions } from '../../../src/jobs/rollout/index.ts';
import { queueUserDms } from '../../../src/jobs/user-dm.ts';
import { queueClientMessages } from '../../../src/jobs/teams.ts';
import { dueOutboxIds, loadOutboxRow, markSending, markSent } from '../../../src/db/outbox-repo.ts';
import type { JobContext } from '../../../src/jobs/context.ts';
import { recentReleaseIds, releaseStatus } from '../../../src/use-cases/status.ts';
import { statusText } from '../../../src/chat/slack/views.ts';
import type { UseCaseContext } from '../../../src/use-cases/decisions.ts';
import { checkAll, checkI7, loadFacts, type InvariantId, type Violation } from './invariants.ts';
import { CLIENTS, END, EXTRA_DEVICES, INITIAL_DEVICES, MSP, resetDatabase, seedWorld, START, type WorldDevice } from './world.ts';
import { windowsAfter } from './windows.ts';

/** The notice hours every client has in the model's world (the default; none sets its own). */
const NOTICE_HOURS = 4;
export const OWNERS = [
  { id: 'msp', zone: MSP.timezone, specs: [MSP.desktop, MSP.server] },
  ...CLIENTS.map((c) => ({ id: c.id, zone: c.timezone, specs: [c.desktop, 'sun 01:00-05:00'] })),
];

const log = pino({ level: 'silent' });
/** Every device's ring by name (names are unique across the world), so a device retired mid-sequence still counts. */
const WORLD_RING = new Map([...INITIAL_DEVICES, ...EXTRA_DEVICES].map((d) => [d.name, d.ring]));
const HOUR = 3_600_000;

export interface Shared {
  database: Database;
  redisUrl: string;
  prefix: string;
}

export class ModelHarness {
  readonly clock = { now: new Date(START) };
  fleet!: SimulatedFleet;
  /** The inventory as last imported. */
  live: WorldDevice[] = [...INITIAL_DEVICES];
  /** Devices retired by a re-import (a later one may not add them back: the model keeps names unique). */
  retired: string[] = [];
  private engine!: RolloutEngine;
  private worker!: Worker;
  private redis!: Redis;
  private readonly jobErrors: string[] = [];
  private prefix = '';
  private sequence = 0;
  /** What the model did, for the failure report. */
  readonly journal: string[] = [];
  /** How far the sequences got, so a run that never reaches the broad ring is visible. */
  readonly stats = {
    sequences: 0,
    commands: 0,
    settles: 0,
    installs: { msp: 0, pilot: 0, broad: 0 },
    gates: { msp: 0, pilot: 0, broad: 0 },
    cards: 0,
    dms: 0,
    /** Sequences that got an install onto ring pilot / broad, or wrote a sign-off card: how much I2, I3 and I5 saw. */
    reached: { pilot: 0, broad: 0, cards: 0 },
    /** (device, update) deliveries I7 judged at the ends of sequences: how much the liveness check saw. */
    owed: 0,
    /** Real milliseconds spent per part, to see where a slow run went. */
    ms: {} as Record<string, number>,
  };

  private async timed<T>(part: string, work: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await work();
    } finally {
      this.stats.ms[part] = Math.round((this.stats.ms[part] ?? 0) + performance.now() - t0);
    }
  }

  constructor(
    private readonly shared: Shared,
    private readonly which: ReadonlySet<InvariantId>,
    /** Per-device behaviour on top of the model's fleet, for a scripted case (a device whose installs fail). */
    private readonly devices: SimulatedFleetOptions['devices'] = {},
  ) {}

  get db(): AppDatabase {
    return this.shared.database.db;
  }

  get ctx(): UseCaseContext {
    return { db: this.db, now: () => this.clock.now };
  }

  private context(): JobContext {
    return { config: {} as Config, database: this.shared.database, redis: this.redis, prefix: this.prefix, log, roles: new Set(['worker']), now: () => this.clock.now };
  }

  /** The options production would use, but for a clock that does not move with real time: a wait returns at once (the next sweep resumes the run). */
  private options(): RolloutOptions {
    return { deployer: this.fleet, workerConcurrency: 3, pollMs: 5, realDelayMs: () => 0 };
  }

  async begin(): Promise<void> {
    this.sequence++;
    this.clock.now = new Date(START);
    this.live = [...INITIAL_DEVICES];
    this.retired = [];
    this.jobErrors.length = 0;
    this.journal.length = 0;
    await this.timed('reset', () => resetDatabase(this.db));
    await this.timed('seed', () => seedWorld(this.db, this.clock.now));
    this.fleet = new SimulatedFleet({
      seed: 7,
      clock: () => this.clock.now,
      fleet: { installFailureRate: 0.1, offlineRate: 0.1, rebootTwiceRate: 0.3 },
      devices: this.devices,
    });
    this.redis = new Redis(this.shared.redisUrl, { maxRetriesPerRequest: null });
    this.prefix = `${this.shared.prefix}s${this.sequence}`;
    this.startWorker();
  }

  private startWorker(): void {
    this.engine = new RolloutEngine(this.context(), this.options());
    this.worker = startRunWorker(this.context(), this.engine, this.options());
    this.worker.on('failed', (job, error) => this.jobErrors.push(`run job ${job?.id}: ${error.message}`));
  }

  async end(): Promise<void> {
    await this.tally().catch(() => {});
    await this.worker.close();
    await this.engine.close();
    await this.redis.flushdb();
    this.redis.disconnect();
  }

  /**
   * "Worker restart": a sweep hands the worker its jobs, and the worker and engine are closed while they run
   * (a graceful close: the job in hand finishes, the rest stay in Redis) and replaced by new ones.
   */
  async restartWorker(): Promise<void> {
    await this.engine.sweep();
    await this.worker.close();
    await this.engine.close();
    this.startWorker();
    await this.settle();
  }

  private async tally(): Promise<void> {
    const s = this.stats;
    s.sequences++;
    s.commands += this.journal.length;
    const rings = new Set<string>();
    for (const e of this.fleet.ledger) {
      const r = WORLD_RING.get(e.device);
      if (e.kind !== 'install' || !r) continue;
      s.installs[r]++;
      if (!e.fails) rings.add(r);
    }
    if (rings.has('pilot')) s.reached.pilot++;
    if (rings.has('broad')) s.reached.broad++;
    for (const r of rowsOf<{ ring: 'msp' | 'pilot' | 'broad'; n: number }>(await this.db.execute(sql`select ring, count(*)::int as n from rollouts group by ring`))) s.gates[r.ring] += Number(r.n);
    const [c] = rowsOf<{ cards: number; dms: number }>(
      await this.db.execute(sql`select (select count(*)::int from chat_outbox where subject like 'signoff:%') as cards, (select count(*)::int from user_dms) as dms`),
    );
    s.cards += Number(c?.cards ?? 0);
    if (Number(c?.cards ?? 0) > 0) s.reached.cards++;
    s.dms += Number(c?.dms ?? 0);
  }

  private async drain(): Promise<void> {
    const until = Date.now() + 60_000;
    for (;;) {
      const counts = await this.engine.queue.getJobCounts('wait', 'active', 'prioritized', 'delayed');
      if (Object.values(counts).every((n) => n === 0)) return;
      if (this.jobErrors.length > 0) throw new Error(`a run job failed: ${this.jobErrors.join('; ')}`);
      if (Date.now() > until) throw new Error(`run jobs did not drain: ${JSON.stringify(counts)}`);
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
  }

  /** Gates and runs as they stand, to tell when sweeping changes nothing more. */
  private async fingerprint(): Promise<string> {
    const [row] = rowsOf<{ f: string }>(
      await this.db.execute(sql`select coalesce((select string_agg(ring || coalesce(client_id, '') || state || version, ',' order by id) from rollouts), '')
        || '|' || coalesce((select string_agg(id || state || step || attempts, ',' order by id) from runs), '') as f`),
    );
    return row?.f ?? '';
  }

  /** What the scheduler would have done by now: sweeps until nothing moves, the DM tick, the Teams tick, delivery. */
  async settle(): Promise<void> {
    this.stats.settles++;
    const time = <T>(part: string, work: () => Promise<T>) => this.timed(part, work);
    let before = await time('fp', () => this.fingerprint());
    for (let i = 0; i < 8; i++) {
      await time('sweep', () => this.engine.sweep());
      await time('drain', () => this.drain());
      const after = await time('fp', () => this.fingerprint());
      if (after === before) break;
      before = after;
    }
    if (this.jobErrors.length > 0) throw new Error(`a run job failed: ${this.jobErrors.join('; ')}`);
    await time('dm', () => queueUserDms(this.db, this.clock.now));
    await time('teams', () => queueClientMessages(this.db, this.clock.now));
    await time('outbox', () => this.deliver());
  }

  /**
   * The outbox deliverer with a chat platform that accepts every call at once, at the model's clock: rows due
   * now are marked sending then sent, through the product's own outbox repository. A user's run waits for its
   * "save your work" DM to be *sent* (src/db/notice-repo.ts); without delivery no device with a user ever
   * installed, and every rollout stalled in ring msp on MSP-PC-001.
   */
  private async deliver(): Promise<void> {
    const now = this.clock.now;
    for (const id of await dueOutboxIds(this.db, now, ['slack', 'teams'])) {
      const row = await loadOutboxRow(this.db, id);
      if (!row) continue;
      await markSending(this.db, id, now);
      await markSent(this.db, row, { messageId: `model-${id}`, threadId: undefined }, now);
    }
  }

  /**
   * Where a clock jump stops, by owner ('msp' or a client id): around each window (just after it opens, twice
   * more while runs retry, the last moment an install may start, just after it closes) and when a DM may fall
   * due (15:00 local, the planner's default, and the window's start less the notice hours). Production sweeps
   * every few seconds and ticks DMs every minute; these are the instants at which that work can differ.
   */
  private stopsBetween(from: number, to: number): Map<number, Set<string>> {
    const stops = new Map<number, Set<string>>();
    const add = (t: number, owner: string) => {
      if (t <= from || t >= to) return;
      const set = stops.get(t) ?? new Set<string>();
      set.add(owner);
      stops.set(t, set);
    };
    for (const o of OWNERS) {
      for (const spec of o.specs) {
        for (const w of windowsAfter(spec, o.zone, new Date(from - 5 * HOUR - 1), 40)) {
          const ws = w.start.getTime();
          const we = w.end.getTime();
          if (ws - NOTICE_HOURS * HOUR > to) break;
          for (const t of [ws - NOTICE_HOURS * HOUR, ws + 60_000, ws + 20 * 60_000, ws + 45 * 60_000, we - 61 * 60_000, we + 60_000]) add(t, o.id);
        }
      }
      for (let day = DateTime.fromMillis(from, { zone: o.zone }).startOf('day'); day.toMillis() < to; day = day.plus({ days: 1 })) {
        add(day.set({ hour: 15 }).toMillis(), o.id);
      }
    }
    return stops;
  }

  /** Moves the clock to `target` (never past the model's month), settling on the way wherever work could be due. */
  async advanceTo(target: Date): Promise<void> {
    const to = Math.min(target.getTime(), END.getTime());
    const from = this.clock.now.getTime();
    if (to <= from) return;
    const stops = this.stopsBetween(from, to);
    for (const t of [...stops.keys()].sort((a, b) => a - b)) {
      // An owner with no open gate and no unfinished run has nothing due at its stops (a soak or auto-confirm
      // deadline in between is picked up at the next stop that settles).
      const busy = await this.busyOwners();
      if (![...stops.get(t)!].some((o) => busy.has(o))) continue;
      this.clock.now = new Date(t);
      await this.settle();
    }
    this.clock.now = new Date(to);
    await this.settle();
  }

  /** Owners ('msp' or a client id) with an open gate or an unfinished run. */
  async busyOwners(): Promise<Set<string>> {
    return new Set(
      rowsOf<{ owner: string }>(
        await this.db.execute(sql`select coalesce(client_id, 'msp') as owner from rollouts where state in ('scheduled', 'running')
          union select coalesce(d.client_id, 'msp') from runs r join devices d on d.id = r.device_id where r.state in ('scheduled', 'running')`),
      ).map((r) => r.owner),
    );
  }

  /** A person's click comes a minute after the last thing happened: never at the instant of the previous step. */
  async click<T>(what: () => Promise<T>): Promise<T> {
    this.clock.now = new Date(this.clock.now.getTime() + 60_000);
    const result = await what();
    await this.settle();
    return result;
  }

  async statusText(): Promise<string> {
    const ids = await recentReleaseIds(this.db, 3);
    const statuses = (await Promise.all(ids.map((id) => releaseStatus(this.db, id)))).filter((s) => s !== undefined);
    return statusText(statuses, MSP.timezone, this.clock.now);
  }

  /**
   * I7 at the end of a sequence: what the system owed then (see checkI7) has happened once the clock has run on
   * four days with nobody acting (never past the model's month, so a sequence that ended late is judged on fewer
   * devices, or none).
   */
  async eventually(): Promise<Violation[]> {
    if (!this.which.has('I7')) return [];
    const from = this.clock.now.getTime();
    const before = await loadFacts(this.db, [...this.fleet.ledger], '');
    await this.advanceTo(new Date(from + 4 * 24 * HOUR));
    const after = await loadFacts(this.db, this.fleet.ledger, '');
    this.journal.push(`${this.clock.now.toISOString()} eventually (the clock ran on; nobody acted)`);
    const judged = { owed: 0 };
    const late = checkI7(before, after, from, this.clock.now.getTime(), judged);
    this.stats.owed += judged.owed;
    return late;
  }

  async violations(): Promise<Violation[]> {
    return this.timed('check', async () => {
      const facts = await loadFacts(this.db, this.fleet.ledger, await this.statusText());
      return checkAll(facts, this.clock.now.getTime(), this.which);
    });
  }
}
