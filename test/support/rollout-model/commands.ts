/**
 * The model's commands: what engineers, champions and users click, the clock, the inventory and the worker.
 * Each goes through the product's own use-case (or job) exactly as a chat click would, then the system is
 * settled and every invariant is checked from the tables and the ledger. A refused or no-op answer is a fine
 * outcome (a hold of an update already held, a confirmation before the pilot finished); an exception is not.
 *
 * The model state predicts nothing: the invariants are about the real system's history, so every plain command
 * may run at any point (check() is true) and shrinking can drop any of them. What the model does hold is a few
 * hints read from the fleet's ledger and the use-cases' answers (an MSP install not yet promoted, a client whose
 * pilot installed since it last confirmed), so that extra "eager" copies of promote and confirm run only where
 * they can move the rollout on. Without them a random sequence rarely walks msp -> soak -> promote -> pilot ->
 * confirm -> broad, and I2, I3 on broad devices and I5 go unexercised.
 */
import fc from 'fast-check';
import { sql } from 'drizzle-orm';
import { rowsOf } from '../../../src/db/client.ts';
import { applyInventory } from '../../../src/db/inventory-repo.ts';
import * as decisions from '../../../src/use-cases/decisions.ts';
import { promoteRelease, skipRing } from '../../../src/use-cases/rollout-actions.ts';
import { confirmPilot, reportPilotProblem } from '../../../src/use-cases/pilot.ts';
import { answerUserDm } from '../../../src/use-cases/user-dm.ts';
import type { Ring } from '../../../src/domain/inventory.ts';
import { OWNERS as HARNESS_OWNERS, type ModelHarness } from './harness.ts';
import { CLIENTS, ENGINEER, EXTRA_DEVICES, INITIAL_DEVICES, MSP, refreshDirectory, RELEASE_ID, UPDATE_KEYS, worldInventory } from './world.ts';
import { windowsAfter } from './windows.ts';

export interface Model {
  /** Successful installs seen so far, per ring-msp and per client's pilot ring. */
  mspInstalls: number;
  pilotInstalls: Record<string, number>;
  /** An MSP install or skip happened since the last promotion that applied. */
  promoteWorth: boolean;
  /** Clients whose pilot installed something since their last confirmation that applied, oldest first. */
  confirmWorth: string[];
  /** Nothing of the release was approved yet. */
  unapproved: boolean;
  /** Active holds and "tonight" DMs as the tables have them: with none, releasing or answering one is no step at all. */
  holds: number;
  dms: number;
}

export const initialModel = (): Model => ({ mspInstalls: 0, pilotInstalls: {}, promoteWorth: false, confirmWorth: [], unapproved: true, holds: 0, dms: 0 });

const RING_OF = new Map([...INITIAL_DEVICES, ...EXTRA_DEVICES].map((d) => [d.name, d]));

/** Reads the ledger after a step: new installs on ring msp or on a client's pilot make promote / confirm worth a try. */
async function observe(m: Model, h: ModelHarness): Promise<void> {
  const [row] = rowsOf<{ holds: number; dms: number }>(
    await h.db.execute(sql`select (select count(*)::int from holds where released_at is null) as holds, (select count(*)::int from user_dms where kind = 'tonight') as dms`),
  );
  m.holds = Number(row?.holds ?? 0);
  m.dms = Number(row?.dms ?? 0);
  let msp = 0;
  const pilot: Record<string, number> = {};
  for (const e of h.fleet.ledger) {
    if (e.kind !== 'install' || e.fails) continue;
    const d = RING_OF.get(e.device);
    if (d?.ring === 'msp') msp++;
    if (d?.ring === 'pilot' && d.clientId) pilot[d.clientId] = (pilot[d.clientId] ?? 0) + 1;
  }
  if (msp > m.mspInstalls) m.promoteWorth = true;
  m.mspInstalls = msp;
  for (const [c, n] of Object.entries(pilot)) {
    if (n > (m.pilotInstalls[c] ?? 0) && !m.confirmWorth.includes(c)) m.confirmWorth.push(c);
    m.pilotInstalls[c] = n;
  }
}
type Cmd = fc.AsyncCommand<Model, ModelHarness>;

const engineer = { platform: 'slack' as const, id: ENGINEER };
let requests = 0;
const requestId = () => `model-${++requests}`;

/** Runs the action as a click, settles, and fails the sequence on any broken invariant. */
abstract class Step implements Cmd {
  check(_m: Readonly<Model>): boolean {
    return true;
  }
  abstract act(h: ModelHarness, m: Readonly<Model>): Promise<string>;
  /** What the step's answer tells the model (a promotion or confirmation that applied). */
  protected learn(_m: Model, _outcome: string): void {}
  /** Clock commands move time themselves; every other command is a click a minute after the last step. */
  protected moves = false;
  async run(m: Model, h: ModelHarness): Promise<void> {
    const outcome = this.moves ? await this.act(h, m) : await h.click(() => this.act(h, m));
    h.journal.push(`${h.clock.now.toISOString()} ${this.toString()} -> ${outcome}`);
    this.learn(m, outcome);
    await observe(m, h);
    const violations = await h.violations();
    if (violations.length > 0) {
      const named = new Set(violations.flatMap((v) => h.fleet.ledger.map((e) => e.device).filter((d) => v.text.includes(d))));
      const ledger = h.fleet.ledger.filter((e) => named.has(e.device)).map((e) => `${e.at} ${e.device} ${e.kind}${e.updates ? ` ${e.updates.join('+')}` : ''}${e.fails ? ' (failed)' : ''}`);
      throw new Error(
        [
          `after ${this.toString()} at ${h.clock.now.toISOString()}:`,
          ...violations.map((v) => `  ${v.invariant}: ${v.text}`),
          'steps (clock after the step, the step, its outcome):',
          ...h.journal.map((j) => `  ${j}`),
          ...(ledger.length > 0 ? ['the ledger for the devices named:', ...ledger.map((l) => `  ${l}`)] : []),
        ].join('\n'),
      );
    }
  }
  abstract toString(): string;
}

export class Approve extends Step {
  /** An eager approval runs only while nothing is approved (plain ones run any time). */
  constructor(
    readonly update: string | null,
    readonly eager = false,
  ) {
    super();
  }
  override check(m: Readonly<Model>): boolean {
    return !this.eager || m.unapproved;
  }
  protected override learn(m: Model, outcome: string): void {
    if (outcome.startsWith('applied')) m.unapproved = false;
  }
  async act(h: ModelHarness) {
    return (await decisions.approve(h.ctx, { actor: engineer, releaseId: RELEASE_ID, updateKey: this.update })).outcome;
  }
  toString() {
    return `${this.update === null ? 'approve(release)' : `approve(KB${this.update})`}${this.eager ? ' (eager)' : ''}`;
  }
}

export class Hold extends Step {
  constructor(
    readonly update: string | null,
    readonly client: string | null,
    readonly ring: Ring | null,
  ) {
    super();
  }
  async act(h: ModelHarness) {
    const result = await decisions.hold(h.ctx, {
      actor: engineer,
      releaseId: RELEASE_ID,
      updateKey: this.update,
      clients: this.client === null ? 'all' : [this.client],
      ...(this.ring ? { ring: this.ring } : {}),
      reason: 'model: breaks the line-of-business app',
      requestId: requestId(),
    });
    return `${result.outcome}${result.code ? ` ${result.code}` : ''}`;
  }
  toString() {
    return `hold(${this.update ? `KB${this.update}` : 'release'}, client=${this.client ?? 'all'}, ring=${this.ring ?? 'all'})`;
  }
}

export class ReleaseHold extends Step {
  constructor(readonly index: number) {
    super();
  }
  override check(m: Readonly<Model>): boolean {
    return m.holds > 0;
  }
  async act(h: ModelHarness) {
    const active = rowsOf<{ id: number }>(await h.db.execute(sql`select id from holds where released_at is null order by id`));
    if (active.length === 0) return 'no hold to release';
    const holdId = String(active[this.index % active.length]!.id);
    const result = await decisions.releaseHold(h.ctx, { actor: engineer, releaseId: RELEASE_ID, target: { kind: 'hold', holdId }, requestId: requestId() });
    return `${result.outcome} (hold ${holdId})`;
  }
  toString() {
    return `releaseHold(#${this.index})`;
  }
}

export class Promote extends Step {
  /** An eager promote runs only when an MSP install or skip came since the last promotion (plain ones run any time). */
  constructor(readonly eager = false) {
    super();
  }
  override check(m: Readonly<Model>): boolean {
    return !this.eager || m.promoteWorth;
  }
  async act(h: ModelHarness) {
    const result = await promoteRelease(h.ctx, { actor: engineer, releaseId: RELEASE_ID });
    return result.outcome;
  }
  protected override learn(m: Model, outcome: string): void {
    if (outcome.startsWith('applied')) m.promoteWorth = false;
  }
  toString() {
    return this.eager ? 'promote (eager)' : 'promote';
  }
}

export class Skip extends Step {
  constructor(
    readonly update: string,
    readonly ring: 'msp' | 'pilot',
    readonly client: string | null,
  ) {
    super();
  }
  protected override learn(m: Model, outcome: string): void {
    if (outcome.startsWith('applied') && this.ring === 'msp') m.promoteWorth = true;
  }
  async act(h: ModelHarness) {
    // I1/I2 accept a skip only when an audit_log row whose action says "skip" names the update and the ring.
    const result = await skipRing(h.ctx, {
      actor: engineer,
      releaseId: RELEASE_ID,
      update: this.update,
      ring: this.ring,
      clientId: this.client,
      reason: 'model: no test machine runs it',
    });
    return result.outcome;
  }
  toString() {
    return `skipRing(KB${this.update}, ${this.ring}${this.client ? `, ${this.client}` : ''})`;
  }
}

export class Answer extends Step {
  constructor(
    readonly client: string,
    readonly kind: 'champion-ok' | 'engineer-ok' | 'problem',
  ) {
    super();
  }
  async act(h: ModelHarness) {
    const champion = CLIENTS.find((c) => c.id === this.client)!.champion;
    const actor = this.kind === 'engineer-ok' ? engineer : { platform: 'teams' as const, id: champion };
    const input = { actor, releaseId: RELEASE_ID, clientId: this.client, requestId: requestId() };
    const result = this.kind === 'problem' ? await reportPilotProblem(h.ctx, { ...input, text: 'The front-desk printer stopped printing.' }) : await confirmPilot(h.ctx, input);
    return `${result.outcome}${result.code ? ` ${result.code}` : ''}`;
  }
  protected override learn(m: Model, outcome: string): void {
    if (this.kind !== 'problem' && outcome.startsWith('applied')) m.confirmWorth = m.confirmWorth.filter((c) => c !== this.client);
  }
  toString() {
    return `${this.kind === 'problem' ? 'reportProblem' : this.kind === 'engineer-ok' ? 'engineerConfirms' : 'championConfirms'}(${this.client})`;
  }
}

/**
 * A confirmation by the champion or engineer of a client whose pilot installed since it last confirmed, picked
 * from the model's list by index when it runs; it runs only when there is one.
 */
export class EagerConfirm extends Step {
  private chosen: Answer | undefined;
  constructor(
    readonly index: number,
    readonly kind: 'champion-ok' | 'engineer-ok',
  ) {
    super();
  }
  override check(m: Readonly<Model>): boolean {
    return m.confirmWorth.length > 0;
  }
  async act(h: ModelHarness, m: Readonly<Model>) {
    this.chosen = new Answer(m.confirmWorth[this.index % m.confirmWorth.length]!, this.kind);
    return this.chosen.act(h);
  }
  protected override learn(m: Model, outcome: string): void {
    if (outcome.startsWith('applied') && this.chosen) m.confirmWorth = m.confirmWorth.filter((c) => c !== this.chosen!.client);
  }
  toString() {
    return `${this.chosen ? this.chosen.toString() : `${this.kind === 'engineer-ok' ? 'engineerConfirms' : 'championConfirms'}(pilot-installed #${this.index})`} (eager)`;
  }
}

export class UserAnswer extends Step {
  constructor(
    readonly index: number,
    readonly answer: 'ok' | 'defer',
  ) {
    super();
  }
  override check(m: Readonly<Model>): boolean {
    return m.dms > 0;
  }
  async act(h: ModelHarness) {
    const dms = rowsOf<{ id: number; platform: 'slack' | 'teams'; recipient: string }>(
      await h.db.execute(sql`select id, platform, recipient from user_dms where kind = 'tonight' order by id`),
    );
    if (dms.length === 0) return 'no DM to answer';
    const dm = dms[this.index % dms.length]!;
    const result = await answerUserDm(h.ctx, { actor: { platform: dm.platform, id: dm.recipient }, dmId: Number(dm.id), answer: this.answer });
    return `${result.outcome}${result.code ? ` ${result.code}` : ''} (dm ${dm.id})`;
  }
  toString() {
    return `user${this.answer === 'ok' ? 'Ok' : 'Defers'}(dm #${this.index})`;
  }
}

const OWNERS = [{ zone: MSP.timezone, spec: MSP.desktop, name: 'msp' }, ...CLIENTS.map((c) => ({ zone: c.timezone, spec: c.desktop, name: c.id }))];

export class Clock extends Step {
  protected override moves = true;
  constructor(
    readonly kind: 'hours' | 'nextWindow' | 'intoWindow' | 'dmTime' | 'nextBusyWindow' | 'throughBusyWindow',
    readonly n: number,
    readonly owner: number,
  ) {
    super();
  }
  async target(h: ModelHarness): Promise<Date> {
    const now = h.clock.now;
    const owner = OWNERS[this.owner % OWNERS.length]!;
    switch (this.kind) {
      case 'nextBusyWindow':
      case 'throughBusyWindow': {
        // The next window in which something is due: what an engineer waiting on the rollout skips ahead to
        // (its start, or just past its end so its runs finish; the jump still stops at its DM times on the way).
        const busy = await h.busyOwners();
        const owners = HARNESS_OWNERS.filter((o) => busy.has(o.id));
        const next = (owners.length > 0 ? owners : HARNESS_OWNERS).flatMap((o) => o.specs.map((spec) => windowsAfter(spec, o.zone, now, 1)[0]!));
        const first = next.reduce((a, b) => (b.start.getTime() < a.start.getTime() ? b : a));
        return new Date((this.kind === 'nextBusyWindow' ? first.start.getTime() : first.end.getTime()) + (this.n % 30) * 60_000);
      }
      case 'hours':
        return new Date(now.getTime() + this.n * 3_600_000);
      case 'nextWindow':
        return new Date(windowsAfter(owner.spec, owner.zone, now, 1)[0]!.start.getTime() + (this.n % 30) * 60_000);
      case 'intoWindow': {
        const w = windowsAfter(owner.spec, owner.zone, now, 1)[0]!;
        return new Date(w.start.getTime() + Math.floor(((w.end.getTime() - w.start.getTime()) * (this.n % 100)) / 100));
      }
      case 'dmTime': {
        // 15:00 in the owner's zone (the DM planner's default time), the next time it comes round.
        const local = new Date(now);
        for (let i = 1; i <= 48; i++) {
          const t = new Date(Math.ceil(local.getTime() / 3_600_000) * 3_600_000 + (i - 1) * 3_600_000);
          const hour = Number(new Intl.DateTimeFormat('en-GB', { timeZone: owner.zone, hour: '2-digit', hourCycle: 'h23' }).format(t));
          if (hour === 15 && t.getTime() > now.getTime()) return new Date(t.getTime() + 60_000);
        }
        return new Date(now.getTime() + 3_600_000);
      }
    }
  }
  async act(h: ModelHarness) {
    await h.advanceTo(await this.target(h));
    return 'ok';
  }
  toString() {
    const owner = OWNERS[this.owner % OWNERS.length]!.name;
    switch (this.kind) {
      case 'hours':
        return `clock(+${this.n}h)`;
      case 'nextBusyWindow':
        return `clock(next window with work +${this.n % 30}min)`;
      case 'throughBusyWindow':
        return `clock(past the end of the next window with work +${this.n % 30}min)`;
      case 'nextWindow':
        return `clock(next ${owner} window +${this.n % 30}min)`;
      case 'intoWindow':
        return `clock(into next ${owner} window at ${this.n % 100}%)`;
      case 'dmTime':
        return `clock(next 15:00 in ${owner})`;
    }
  }
}

export class Reimport extends Step {
  constructor(
    readonly kind: 'add' | 'retire',
    readonly index: number,
  ) {
    super();
  }
  async act(h: ModelHarness) {
    if (this.kind === 'add') {
      const device = EXTRA_DEVICES[this.index % EXTRA_DEVICES.length]!;
      if (h.live.some((d) => d.name === device.name) || h.retired.includes(device.name)) return 'already imported';
      h.live = [...h.live, device];
    } else {
      const device = h.live[this.index % h.live.length]!;
      h.live = h.live.filter((d) => d !== device);
      h.retired.push(device.name);
    }
    await applyInventory(h.db, worldInventory(h.live), h.clock.now);
    await refreshDirectory(h.db, h.clock.now);
    return 'imported';
  }
  toString() {
    return this.kind === 'add' ? `reimport(+${EXTRA_DEVICES[this.index % EXTRA_DEVICES.length]!.name})` : `reimport(retire live #${this.index})`;
  }
}

export class Restart extends Step {
  protected override moves = true;
  async act(h: ModelHarness) {
    await h.restartWorker();
    return 'restarted';
  }
  toString() {
    return 'restartWorker';
  }
}

const update = fc.constantFrom(...UPDATE_KEYS);
const client = fc.constantFrom(...CLIENTS.map((c) => c.id));

/**
 * One weighted choice per step. The weights lean toward what moves the rollout on (approvals, clock jumps to the
 * next window with work, eager promotes and confirmations) so a forty-step sequence often reaches the broad ring,
 * while every kind of step (holds and their release, refusals, defers, skips, re-imports, restarts) stays common
 * enough to land at any point of it.
 */
export function commandArbitraries(): Array<fc.Arbitrary<Cmd>> {
  const clock = fc.oneof(
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 30 }).map((n): Cmd => new Clock('hours', n, 0)) },
    { weight: 4, arbitrary: fc.nat(59).map((n): Cmd => new Clock('nextBusyWindow', n, 0)) },
    { weight: 5, arbitrary: fc.nat(59).map((n): Cmd => new Clock('throughBusyWindow', n, 0)) },
    { weight: 2, arbitrary: fc.tuple(fc.nat(59), fc.nat(OWNERS.length - 1)).map(([n, o]): Cmd => new Clock('nextWindow', n, o)) },
    { weight: 2, arbitrary: fc.tuple(fc.nat(99), fc.nat(OWNERS.length - 1)).map(([n, o]): Cmd => new Clock('intoWindow', n, o)) },
    { weight: 1, arbitrary: fc.nat(OWNERS.length - 1).map((o): Cmd => new Clock('dmTime', 0, o)) },
  );
  const ok = fc.constantFrom<'champion-ok' | 'engineer-ok'>('champion-ok', 'champion-ok', 'engineer-ok');
  const step = fc.oneof(
    { weight: 3, arbitrary: fc.constant<Cmd>(new Approve(null)) },
    { weight: 3, arbitrary: update.map((u): Cmd => new Approve(u)) },
    { weight: 4, arbitrary: fc.option(update, { nil: null, freq: 2 }).map((u): Cmd => new Approve(u, true)) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.option(update, { nil: null }), fc.option(client, { nil: null }), fc.option(fc.constantFrom<Ring>('msp', 'pilot', 'broad'), { nil: null }))
        .map(([u, c, r]): Cmd => new Hold(u, r === 'msp' ? null : c, r)),
    },
    { weight: 2, arbitrary: fc.nat(5).map((i): Cmd => new ReleaseHold(i)) },
    { weight: 2, arbitrary: fc.constant<Cmd>(new Promote()) },
    { weight: 8, arbitrary: fc.constant<Cmd>(new Promote(true)) },
    {
      weight: 2,
      arbitrary: fc.tuple(client, fc.constantFrom<'champion-ok' | 'engineer-ok' | 'problem'>('champion-ok', 'champion-ok', 'engineer-ok', 'problem')).map(([c, k]): Cmd => new Answer(c, k)),
    },
    { weight: 8, arbitrary: fc.tuple(fc.nat(5), ok).map(([i, k]): Cmd => new EagerConfirm(i, k)) },
    { weight: 2, arbitrary: fc.tuple(fc.nat(20), fc.constantFrom<'ok' | 'defer'>('ok', 'defer')).map(([i, a]): Cmd => new UserAnswer(i, a)) },
    { weight: 16, arbitrary: clock },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom<'add' | 'retire'>('add', 'retire'), fc.nat(20)).map(([k, i]): Cmd => new Reimport(k, i)) },
    { weight: 1, arbitrary: fc.constant<Cmd>(new Restart()) },
    {
      weight: 1,
      arbitrary: fc.tuple(update, fc.constantFrom<'msp' | 'pilot'>('msp', 'pilot'), client).map(([u, r, c]): Cmd => new Skip(u, r, r === 'pilot' ? c : null)),
    },
  );
  return [step];
}
