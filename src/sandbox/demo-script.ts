/**
 * "A month in minutes" (issue 8): the script `patchbay demo` plays on a running sandbox. It only does what people
 * and time would do: it moves the sandbox clock, and it clicks through the sandbox page's API (signed Slack
 * interactions, token-bearing Teams invokes), so every approval, sign-off and deferral travels the production path.
 * Everything it waits for is observable state: messages in the emulators, rows in the database.
 *
 * Time moves in stops. Between stops the clock nearly stands still; at a stop the script waits for the jobs to
 * catch up (sweeps, ticks, the outbox), answers what people would answer, and while a maintenance window has work
 * in flight the clock runs at `speed`. The next stop is the earliest of: the end of an open window, the next
 * window of a device that still needs one, a client's afternoon DM time, the end of each update's soak on ring
 * msp (Promote is offered per update, while ring msp may still run for others). Never jumping past any of them
 * is what keeps every run inside its window and every "save your work" DM on time.
 */
import { DateTime } from 'luxon';
import type { AppDatabase } from '../db/client.ts';
import * as demoRepo from '../db/demo-repo.ts';
import type { DemoGateRow, OpenDm } from '../db/demo-repo.ts';
import { patchTuesday, parseReleaseId } from '../domain/calendar.ts';
import { isHeld, type Hold } from '../domain/rollout.ts';
import { nextSoakEnd } from '../domain/eligibility.ts';
import { loadMspPicture } from '../db/eligibility-repo.ts';
import { DEFAULT_DM_TIME, dmSendTime, parseDmTime } from '../domain/user-dm.ts';
import { firstWarnableWindow, noticeHoursOf } from '../domain/notice.ts';
import { parseWindowSpec, type WindowRule } from '../domain/window-spec.ts';
import { nextWindow } from '../domain/windows.ts';
import type { Sandbox } from './sandbox.ts';
import type { SandboxAnswer, SandboxSlackMessage, SandboxState } from './api-types.ts';
import { PAGE_TOKEN_HEADER } from './page-guard.ts';

export const DEMO_STEPS = [
  { id: 'digest', label: 'Patch Tuesday: digest' },
  { id: 'approve', label: 'Engineer approves' },
  { id: 'msp', label: 'Ring msp' },
  { id: 'promote', label: 'Soak, promote to pilot' },
  { id: 'pilot', label: 'Pilot and sign-off' },
  { id: 'broad', label: 'Broad rollout and DMs' },
  { id: 'summary', label: 'Summary' },
] as const;

export type DemoStep = (typeof DEMO_STEPS)[number]['id'];

export interface DemoProgress {
  step: DemoStep;
  state: 'start' | 'update' | 'done';
  /** One line for a person: what just happened. */
  detail: string;
  clock: Date;
}

/** What the script drives: the running sandbox, its database, and the page API at `baseUrl`. */
export interface DemoWorld {
  baseUrl: string;
  db: AppDatabase;
  sandbox: Pick<Sandbox, 'clock' | 'slack' | 'connector' | 'directory' | 'deployer' | 'wakeDelayedRuns' | 'pageToken'>;
  releaseId: string;
  /** The sandbox's scheduler tick (real ms): how long a jump takes to be noticed. */
  tickMs: number;
}

export interface DemoOptions {
  /** Clock ms per real ms while a window has work in flight. */
  speed?: number;
  /** Clock ms per real ms between stops: slow enough that nothing is due before the script has looked. */
  idleRate?: number;
  onProgress?: (progress: DemoProgress) => void;
  /** Multiplies every step's timeout (a slow machine, a debugger). */
  timeoutScale?: number;
  /** The client whose champion reports a problem; default the first client (by name) with a Teams sign-off. */
  problemClient?: string;
  problemText?: string;
  /**
   * Answers a champion's sign-off card. Default: the page API, as the page's button would (handed to the hook
   * too). The browser test presses the button in the page instead; it must leave the pilot answered as asked.
   */
  answerSignoff?: (card: SignoffCard, throughApi: (card: SignoffCard) => Promise<void>) => Promise<void>;
  /** Stops the script at its next wait (it then rejects with the signal's reason). */
  signal?: AbortSignal;
}

export interface SignoffCard {
  clientId: string;
  clientName: string;
  champion: { id: string; name: string };
  conversationId: string;
  activityId: string;
  /** Report a problem (with `problemText`) rather than confirm. */
  problem: boolean;
  problemText: string;
}

export const DEFAULT_DEMO_SPEED = 600;
const DEFAULT_IDLE_RATE = 1;
export const DEFAULT_PROBLEM_TEXT = 'Since last night the X-ray viewer in Dentrix will not open on the front desk PC; the imaging bridge crashes on start.';

/** Real-time budget per step, in ms, before the script gives up and names the step. */
const STEP_TIMEOUT_MS: Record<DemoStep, number> = {
  digest: 90_000,
  approve: 60_000,
  msp: 240_000,
  promote: 90_000,
  pilot: 300_000,
  broad: 420_000,
  summary: 60_000,
};

export class DemoStepError extends Error {
  constructor(
    readonly step: DemoStep,
    message: string,
  ) {
    super(`demo step "${DEMO_STEPS.find((s) => s.id === step)?.label ?? step}": ${message}`);
    this.name = 'DemoStepError';
  }
}

/** Where the clock starts: a few minutes before the month's publication (10:00 Pacific on Patch Tuesday). */
export function demoClockStart(releaseId: string): Date {
  const month = parseReleaseId(releaseId);
  if (!month.ok) throw new Error(month.error);
  return month.value.publishedAt.minus({ minutes: 5 }).toJSDate();
}

export interface RingRow {
  ring: 'msp' | 'pilot' | 'broad';
  /** `msp` for the MSP's own machines. */
  client: string;
  gate: string;
  devices: number;
  succeeded: number;
  failed: Array<{ device: string; error: string }>;
  /** Runs that ended offline or rolled (to a later window), deferrals included. */
  offlineOrRolled: number;
  nothingToInstall: number;
  rebootedTwice: string[];
  windows: number;
}

export interface DemoSummary {
  releaseId: string;
  realMs: number;
  clock: { from: string; to: string; days: number };
  steps: Array<{ step: DemoStep; label: string; realMs: number; detail: string }>;
  rings: RingRow[];
  held: Array<{ client: string; reason: string; by: string }>;
  confirmations: Array<{ client: string; by: string; as: string }>;
  dms: { sent: number; answered: number; ok: number; deferred: number; offlineNotices: number };
  deferredBy: string | undefined;
  decisions: number;
  auditRows: number;
  runs: number;
  ledger: { installs: number; reboots: number };
  slack: { posted: number; edited: number; threadReplies: number };
  teams: { posted: number; edited: number };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type GateRow = DemoGateRow;

interface Stop {
  at: DateTime;
  kind: 'window-start' | 'window-end' | 'dm-time' | 'soak-end' | 'morning';
  detail: string;
  /** For window starts: the devices whose run for this window must appear before the clock speeds up. */
  devices?: number[];
}

export async function runDemoScript(world: DemoWorld, options: DemoOptions = {}): Promise<DemoSummary> {
  const run = new DemoRun(world, options);
  const digest = await run.patchTuesday();
  await run.approve(digest);
  await run.ringMsp();
  await run.promote();
  await run.pilot();
  await run.broad();
  return run.summary();
}

/** The page API: the same requests the sandbox page sends, with the token the page carries. */
class PageApi {
  private readonly token: Record<string, string>;

  constructor(
    private readonly baseUrl: string,
    pageToken: string,
    /** The step to blame when the page API refuses. */
    private readonly currentStep: () => DemoStep,
  ) {
    this.token = { [PAGE_TOKEN_HEADER]: pageToken };
  }

  async state(): Promise<SandboxState> {
    const res = await fetch(`${this.baseUrl}/sandbox/api/state`, { headers: this.token });
    if (!res.ok) throw new DemoStepError(this.currentStep(), `the sandbox page API answered ${res.status}`);
    return (await res.json()) as SandboxState;
  }

  async post(route: string, body: unknown): Promise<SandboxAnswer> {
    const res = await fetch(`${this.baseUrl}/sandbox/api/${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...this.token }, body: JSON.stringify(body) });
    const answer = (await res.json()) as SandboxAnswer;
    if (!answer.ok) throw new DemoStepError(this.currentStep(), `${route} was refused: ${answer.error ?? res.status}`);
    return answer;
  }
}

/** One playing of the month: its steps (the public methods, in order), its clock moves and its people's answers. */
class DemoRun {
  private readonly db: AppDatabase;
  private readonly sandbox: DemoWorld['sandbox'];
  private readonly releaseId: string;
  private readonly clock: DemoWorld['sandbox']['clock'];
  private readonly directory: DemoWorld['sandbox']['directory'];
  private readonly speed: number;
  private readonly idleRate: number;
  private readonly scale: number;
  private readonly problemText: string;
  private readonly startedReal = Date.now();
  private readonly clockFrom: Date;
  private readonly steps: DemoSummary['steps'] = [];
  private readonly engineer: { name: string; slackId: string };
  private readonly mspChannel: string;
  private readonly api: PageApi;

  private current: DemoStep = 'digest';
  private stepStarted = Date.now();
  private deadline = 0;
  private readonly ruleCache = new Map<string, WindowRule | undefined>();

  // Each sign-off asks about the updates installed on the pilot since the last: a late update gets its own.
  private readonly signedOff = new Set<string>();
  private problemClient: string | undefined;
  private readonly answeredDms = new Set<number>();
  private deferredBy: string | undefined;
  // Each update is promoted on its own once it has soaked on ring msp: after the first promotion the engineer
  // promotes each later offer (an update that installed on ring msp later) as it comes.
  private promotedOnce = false;
  private readonly clickedOffers = new Set<string>();

  constructor(
    private readonly world: DemoWorld,
    private readonly options: DemoOptions,
  ) {
    this.db = world.db;
    this.sandbox = world.sandbox;
    this.releaseId = world.releaseId;
    this.clock = this.sandbox.clock;
    this.directory = this.sandbox.directory;
    this.speed = options.speed ?? DEFAULT_DEMO_SPEED;
    this.idleRate = options.idleRate ?? DEFAULT_IDLE_RATE;
    this.scale = options.timeoutScale ?? 1;
    this.problemText = options.problemText ?? DEFAULT_PROBLEM_TEXT;
    this.clockFrom = this.clock.now();
    const engineer = this.directory.people.find((p) => p.role === 'engineer' && p.slackId);
    if (!engineer) throw new DemoStepError('digest', 'the sandbox inventory has no engineer with a Slack id');
    this.engineer = { name: engineer.name, slackId: engineer.slackId! };
    this.mspChannel = this.directory.msp.channel;
    this.problemClient = options.problemClient;
    this.api = new PageApi(world.baseUrl, this.sandbox.pageToken, () => this.current);
  }

  // --- (a) Patch Tuesday ----------------------------------------------------------------------------------------

  async patchTuesday(): Promise<SandboxSlackMessage> {
    const { releaseId } = this;
    const month = parseReleaseId(releaseId);
    if (!month.ok) throw new Error(month.error);
    this.begin('digest', `clock to Patch Tuesday, ${month.value.publishedAt.toFormat('ccc d LLL yyyy HH:mm ZZZZ')}`);
    this.setRate(this.idleRate);
    await this.jumpTo(patchTuesday(month.value.year, month.value.month).plus({ minutes: 1 }));
    const digest = await this.until(`the ${releaseId} digest in the engineers' channel`, async () => digestOf(await this.api.state(), this.mspChannel, releaseId), 500);
    this.finish(`${releaseId} digest posted in #${this.directory.slackChannels()[0]?.name ?? this.mspChannel}`);
    return digest;
  }

  // --- (b) approval ---------------------------------------------------------------------------------------------

  async approve(digest: SandboxSlackMessage): Promise<void> {
    const { releaseId, engineer } = this;
    this.begin('approve', `${engineer.name} presses Approve release`);
    await this.api.post('slack/action', { user: engineer.slackId, channel: this.mspChannel, ts: digest.ts, actionId: 'release.approve', blockId: `release:${releaseId}` });
    await this.until('ring msp to be scheduled', async () => ((await this.gates()).some((g) => g.ring === 'msp') ? true : undefined));
    await this.until('the digest to show the approval', async () => {
      const m = digestOf(await this.api.state(), this.mspChannel, releaseId);
      return m && m.edits > 0 ? true : undefined;
    });
    this.finish(`${releaseId} approved by ${engineer.name}; ring msp scheduled`);
  }

  // --- (c) ring msp ---------------------------------------------------------------------------------------------

  async ringMsp(): Promise<void> {
    const { db, releaseId, clock } = this;
    this.begin('msp', "the MSP's own machines, in their windows");
    // Ring msp is done for an update once every MSP machine that needs it settled it: the first such update (or the
    // whole ring resting) ends this step; machines that need only later updates keep their own windows.
    await this.drive(async () => {
      const msp = (await this.gates()).find((g) => g.ring === 'msp');
      if (msp && !['scheduled', 'running'].includes(msp.state)) return msp.state;
      const standings = (await loadMspPicture(db, releaseId, clock.now(), await this.holds()))?.standings ?? [];
      if (standings.some((st) => st.state === 'soaking' || st.state === 'ready')) return 'an update finished';
      return (await this.newOffer()) ? 'offered' : undefined;
    });
    // Its last window's summary is posted once the window has closed: go there before moving on.
    await this.drive(async () => {
      return (await demoRepo.openMspRunCount(db, releaseId, clock.now())) === 0 ? 'closed' : undefined;
    });
    await this.settle();
    const mspCounts = await demoRepo.mspRunStates(db, releaseId);
    const mspResting = !['scheduled', 'running'].includes((await this.gates()).find((g) => g.ring === 'msp')?.state ?? 'scheduled');
    this.finish(`ring msp ${mspResting ? 'finished' : 'finished for its first updates'}: ${mspCounts.map((c) => `${c.n} ${c.state}`).join(', ')}`);
  }

  // --- (d) soak and promotion -----------------------------------------------------------------------------------

  async promote(): Promise<void> {
    this.begin('promote', 'each update soaks on ring msp, then an engineer promotes what is offered');
    // Promote is offered per update as soon as one installed on ring msp and soaked, not when the whole ring rests.
    await this.drive(async () => ((await this.newOffer()) ? 'offered' : undefined));
    const offer = (await this.newOffer())!;
    this.clickedOffers.add(offer.ts);
    await this.api.post('slack/action', { user: this.engineer.slackId, channel: this.mspChannel, ts: offer.ts, actionId: 'rollout_promote' });
    await this.until('the pilot gates', async () => ((await this.gates()).find((g) => g.ring === 'msp')?.state_detail.promotions?.length ? true : undefined));
    this.promotedOnce = true;
    const pilots = (await this.gates()).filter((g) => g.ring === 'pilot').length;
    this.finish(`promoted to pilot by ${this.engineer.name}: ${pilots} client pilot(s) scheduled`);
  }

  // --- (e, f) pilot windows and champions' sign-off ---------------------------------------------------------------

  async pilot(): Promise<void> {
    this.begin('pilot', "each client's test machines in its own night, then its champion answers");
    await this.drive(async () => {
      const pilot = (await this.gates()).filter((g) => g.ring === 'pilot');
      // A pilot a later promotion reopened (an update approved or promoted late) was answered once already: the
      // broad step carries on with what it confirmed, and the late update gets its own sign-off there.
      const answered = (g: GateRow) => !['scheduled', 'running', 'awaiting_confirmation'].includes(g.state) || (g.state_detail.confirmed?.length ?? 0) > 0;
      return pilot.length > 0 && pilot.every(answered) ? 'answered' : undefined;
    });
    const pilotStates = (await this.gates()).filter((g) => g.ring === 'pilot');
    this.finish(
      `pilots answered: ${pilotStates.filter((g) => g.state === 'confirmed').length} confirmed, ${pilotStates.filter((g) => g.state === 'problem').map((g) => `${g.client_id} held`).join(', ') || 'none held'}`,
    );
  }

  // --- (g, h) broad rollout with users' DMs -----------------------------------------------------------------------

  async broad(): Promise<void> {
    this.begin('broad', 'the rest of the machines; users hear about it in the afternoon');
    await this.drive(async () => {
      const all = await this.gates();
      // A client that confirmed something rolls it out, even when a later promotion reopened its pilot meanwhile.
      const confirmed = all.filter((g) => g.ring === 'pilot' && (g.state === 'confirmed' || (g.state_detail.confirmed?.length ?? 0) > 0)).map((g) => g.client_id);
      const broad = all.filter((g) => g.ring === 'broad');
      return confirmed.every((c) => broad.some((b) => b.client_id === c && b.state === 'finished')) ? 'finished' : undefined;
    });
    // The last windows' summaries come once they close.
    await this.drive(async () => {
      return (await demoRepo.openRunCount(this.db, this.releaseId, this.clock.now())) === 0 ? 'closed' : undefined;
    });
    await this.settle();
    this.setRate(this.idleRate);
    const finished = (await this.gates()).filter((g) => g.ring === 'broad' && g.state === 'finished').length;
    this.finish(`broad finished for ${finished} client(s)${this.deferredBy ? `; ${this.deferredBy} deferred one night` : ''}`);
  }

  // --- (i) the summary, from the database and the emulators -------------------------------------------------------

  async summary(): Promise<DemoSummary> {
    const { steps, startedReal } = this;
    this.begin('summary', 'reading the results');
    const summary = await collectSummary(this.world, { steps, realMs: Date.now() - startedReal, clockFrom: this.clockFrom, deferredBy: this.deferredBy });
    this.finish(`${summary.runs} runs, ${summary.decisions} decisions, ${summary.slack.posted + summary.teams.posted} chat messages`);
    summary.steps = steps;
    summary.realMs = Date.now() - startedReal;
    return summary;
  }

  // --- steps and their deadlines ----------------------------------------------------------------------------------

  private report(state: DemoProgress['state'], detail: string): void {
    this.options.onProgress?.({ step: this.current, state, detail, clock: this.clock.now() });
  }

  private begin(step: DemoStep, detail: string): void {
    this.current = step;
    this.stepStarted = Date.now();
    this.deadline = this.stepStarted + STEP_TIMEOUT_MS[step] * this.scale;
    this.report('start', detail);
  }

  private finish(detail: string): void {
    const { current } = this;
    this.steps.push({ step: current, label: DEMO_STEPS.find((s) => s.id === current)!.label, realMs: Date.now() - this.stepStarted, detail });
    this.report('done', detail);
  }

  private checkDeadline(waitingFor: string): void {
    this.options.signal?.throwIfAborted();
    if (Date.now() > this.deadline) {
      const seconds = Math.round((STEP_TIMEOUT_MS[this.current] * this.scale) / 1000);
      throw new DemoStepError(this.current, `timed out after ${seconds} s waiting for ${waitingFor} (clock ${this.clock.now().toISOString()})`);
    }
  }

  /** Polls `probe` until it yields a value; the step's deadline bounds it. */
  private async until<T>(what: string, probe: () => Promise<T | undefined>, everyMs = 250): Promise<T> {
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      this.checkDeadline(what);
      await sleep(everyMs);
    }
  }

  // --- the clock and what the jobs left ---------------------------------------------------------------------------

  private setRate(rate: number): void {
    if (this.clock.rate !== rate) this.clock.setRate(rate);
  }

  private async jumpTo(at: DateTime): Promise<void> {
    if (at.toMillis() > this.clock.nowMs()) this.clock.jumpTo(at.toJSDate());
    await this.sandbox.wakeDelayedRuns();
  }

  private gates(): Promise<GateRow[]> {
    return demoRepo.demoGates(this.db, this.releaseId);
  }

  private holds(): Promise<Hold[]> {
    return demoRepo.activeHolds(this.db);
  }

  /** Runs still to settle now: work in flight, not yet looked at, or left behind by a window that has closed. */
  private busyRuns(): Promise<number> {
    return demoRepo.busyRunCount(this.db, this.releaseId, this.clock.now());
  }

  /** Lets the schedulers notice a jump: a couple of ticks, then the outbox drained. */
  private async settle(): Promise<void> {
    await sleep(this.world.tickMs * 2.5);
    // Only what is due: a row paced or backed off to a later instant is not something a stop should wait for.
    await this.until('the chat outbox to drain', async () => ((await demoRepo.dueOutboxCount(this.db, this.clock.now())) === 0 ? true : undefined), 200);
  }

  /**
   * Moves time stop by stop until `goal` holds: at full speed while a window has work in flight, otherwise a jump
   * to the next stop and a pause for the jobs to notice it.
   */
  private async drive(goal: () => Promise<string | undefined>): Promise<string> {
    for (;;) {
      await this.react();
      const reached = await goal();
      if (reached !== undefined) return reached;
      if ((await this.busyRuns()) > 0) {
        this.setRate(this.speed);
        this.checkDeadline('the open windows to finish their runs');
        await sleep(300);
        continue;
      }
      this.setRate(this.idleRate);
      const stop = await this.nextStop();
      if (!stop) throw new DemoStepError(this.current, 'nothing is left to happen, yet the step is not done (is something held or stuck?)');
      this.checkDeadline(`the next stop (${stop.detail})`);
      await this.jumpTo(stop.at);
      this.report('update', `${stop.detail}: ${stop.at.setZone(this.directory.msp.timezone).toFormat('ccc d LLL HH:mm ZZZZ')}`);
      if (stop.kind === 'window-start') {
        await this.awaitPlannedRuns(stop);
        this.setRate(this.speed);
      } else {
        await this.settle();
      }
    }
  }

  /** The sweep plans the window's runs on its next tick; until it has, the next stop would be tomorrow's. */
  private async awaitPlannedRuns(stop: Stop): Promise<void> {
    const devices = stop.devices!;
    const startIso = stop.at.toUTC().toISO()!;
    // Bounded: a window may rightly plan nothing for these devices (its users' DM went out too late, nothing
    // has passed the earlier rings yet); the next stop then looks past it.
    for (let tick = 0; tick < 20; tick++) {
      if ((await demoRepo.runsPlannedAt(this.db, startIso, devices)) > 0) break;
      this.checkDeadline(`runs planned for the window opening ${startIso}`);
      await sleep(this.world.tickMs);
    }
  }

  // --- the next stop: the earliest instant anything is due ---------------------------------------------------------

  /** Undefined when nothing is left to happen. */
  private async nextStop(): Promise<Stop | undefined> {
    const { db, releaseId, clock } = this;
    const now = DateTime.fromJSDate(clock.now(), { zone: 'utc' });
    const stops: Stop[] = [];
    for (const row of await demoRepo.openWindowEnds(db, releaseId, clock.now())) {
      stops.push({ at: toDateTime(row.window_end), kind: 'window-end', detail: `${row.who}'s window closes` });
    }
    const activeHolds = await this.holds();
    const dmClients = await this.deviceStops(now, activeHolds, stops);
    stops.push(...dmTimeStops(now, dmClients));
    stops.push(...this.gateStops(now, await this.gates()));
    // Each update soaks from when it finished ring msp, while the ring still runs for others (Sunday's servers):
    // its soak end is a stop, or the clock would jump past its Promote offer to the next window.
    const soakEnd = nextSoakEnd((await loadMspPicture(db, releaseId, clock.now(), activeHolds))?.standings ?? []);
    if (soakEnd !== null && Date.parse(soakEnd) > now.toMillis()) {
      stops.push({ at: DateTime.fromISO(soakEnd, { zone: 'utc' }), kind: 'soak-end', detail: 'an update has soaked on ring msp' });
    }
    stops.sort((a, b) => a.at.toMillis() - b.at.toMillis());
    return stops[0];
  }

  /**
   * Adds each unsettled device's next window (and its user's DM before it) to `stops`; answers the clients whose
   * users get DMs, with their zone and DM time.
   */
  private async deviceStops(now: DateTime, activeHolds: Hold[], stops: Stop[]): Promise<Map<string, { tz: string; dmTime: string }>> {
    const { db, releaseId } = this;
    const unsettled = await demoRepo.unsettledDevices(db, releaseId);
    const planned = new Set(await demoRepo.plannedRunKeys(db, releaseId));
    const dmClients = new Map<string, { tz: string; dmTime: string }>();
    for (const d of unsettled) {
      if (isHeld(activeHolds, { releaseId, ring: d.ring, clientId: d.client_id })) continue;
      const rule = this.ruleOf(d.spec);
      if (!rule) continue;
      // A device with a user runs only in a window its user can still be told about in time (no unwarned reboot).
      const notice = d.user_email ? noticeHoursOf({ noticeHours: d.notice_hours === null ? undefined : Number(d.notice_hours) }) : undefined;
      let window = notice === undefined ? nextWindow(rule, d.tz, now) : firstWarnableWindow(rule, d.tz, now.toJSDate(), notice);
      // A window the device already has a run for (a user's deferral) is settled for it: look past it.
      for (let i = 0; i < 30 && planned.has(`${d.device_id} ${window.start.toMillis()}`); i++) window = nextWindow(rule, d.tz, window.start);
      if (notice !== undefined) {
        // Its user's DM for that window: at the DM time, or earlier when that would leave too little notice.
        const sendAt = DateTime.fromJSDate(dmSendTime(window.start.toJSDate(), d.tz, d.dm_time ?? DEFAULT_DM_TIME, notice), { zone: 'utc' });
        if (sendAt > now) stops.push({ at: sendAt, kind: 'dm-time', detail: `${d.client_id ?? 'msp'}'s users hear about ${d.ring} work` });
      }
      const existing = stops.find((s) => s.kind === 'window-start' && s.at.toMillis() === window.start.toMillis());
      if (existing) existing.devices!.push(d.device_id);
      else stops.push({ at: window.start, kind: 'window-start', detail: `${d.client_id ?? 'msp'} ${d.ring} window opens`, devices: [d.device_id] });
      if (d.user_email && d.client_id) dmClients.set(d.client_id, { tz: d.tz, dmTime: d.dm_time ?? DEFAULT_DM_TIME });
    }
    return dmClients;
  }

  /** A champion's next morning while a sign-off waits on them; ring msp's soak end. */
  private gateStops(now: DateTime, gates: GateRow[]): Stop[] {
    const stops: Stop[] = [];
    for (const gate of gates) {
      if (gate.ring === 'pilot' && gate.state === 'awaiting_confirmation' && !this.signedOff.has(signoffKey(gate))) {
        const zone = this.directory.clients.find((c) => c.id === gate.client_id)?.timezone ?? this.directory.msp.timezone;
        if (!workingHours(now.toJSDate(), zone)) stops.push({ at: nextMorning(now, zone), kind: 'morning', detail: `morning at ${gate.client_id}: its champion looks at the pilot` });
      }
      if (gate.ring === 'msp' && gate.state === 'soaking' && gate.state_detail.soakUntil) {
        stops.push({ at: DateTime.fromISO(gate.state_detail.soakUntil, { zone: 'utc' }), kind: 'soak-end', detail: 'ring msp has soaked' });
      }
    }
    return stops;
  }

  private ruleOf(spec: string | null): WindowRule | undefined {
    if (!spec) return undefined;
    if (!this.ruleCache.has(spec)) {
      const parsed = parseWindowSpec(spec);
      this.ruleCache.set(spec, parsed.ok ? parsed.value : undefined);
    }
    return this.ruleCache.get(spec);
  }

  // --- reactions: what people do when something reaches them -------------------------------------------------------

  private async react(): Promise<void> {
    await this.promoteLater();
    await this.signOff();
    await this.answerDms();
  }

  private readonly answerThroughApi = async (card: SignoffCard): Promise<void> => {
    await this.api.post('teams/action', {
      user: card.champion.id,
      conversationId: card.conversationId,
      activityId: card.activityId,
      verb: card.problem ? 'pilot.problem' : 'pilot.confirm',
      data: { releaseId: this.releaseId, clientId: card.clientId, ...(card.problem ? { problem: card.problemText } : {}) },
    });
  };

  private async signOff(): Promise<void> {
    const awaiting = (await this.gates()).filter((g) => g.ring === 'pilot' && g.state === 'awaiting_confirmation' && !this.signedOff.has(signoffKey(g)));
    if (awaiting.length === 0) return;
    const { directory } = this;
    const linked = new Set(await demoRepo.linkedTeamsClients(this.db));
    if (this.problemClient === undefined) {
      this.problemClient = directory.clients.find((c) => linked.has(c.id) && directory.people.some((p) => p.role === 'champion' && p.client === c.id && p.aadId))?.id;
    }
    for (const gate of awaiting) {
      const clientId = gate.client_id!;
      const client = directory.clients.find((c) => c.id === clientId);
      // Champions look at their test machines in their working day, not the moment the night's runs end; an
      // answer in the small hours would start the broad ring in the very window the pilot ran in, unannounced.
      if (!workingHours(this.clock.now(), client?.timezone ?? directory.msp.timezone)) continue;
      if ((await demoRepo.openClientRunCount(this.db, clientId, this.clock.now())) > 0) continue;
      await this.answerSignoff(clientId, client?.name ?? clientId, linked.has(clientId));
      await this.until(`${clientId}'s pilot to take the answer`, async () => {
        const pilot = (await this.gates()).find((g) => g.ring === 'pilot' && g.client_id === clientId);
        return pilot && pilot.state !== 'awaiting_confirmation' ? pilot : undefined;
      });
      this.signedOff.add(signoffKey(gate));
    }
  }

  /** The champion answers the sign-off card in Teams; a client without one is confirmed by the engineer in Slack. */
  private async answerSignoff(clientId: string, clientName: string, linked: boolean): Promise<void> {
    const champion = this.directory.people.find((p) => p.role === 'champion' && p.client === clientId && p.aadId);
    if (linked && champion) {
      const found = await this.until(`the pilot sign-off card in ${clientName}'s Teams`, async () => signoffCard(await this.api.state(), clientId));
      const problem = clientId === this.problemClient;
      const card: SignoffCard = {
        clientId,
        clientName,
        champion: { id: champion.aadId!, name: champion.name },
        conversationId: found.conversationId,
        activityId: found.activityId,
        problem,
        problemText: this.problemText,
      };
      await (this.options.answerSignoff ? this.options.answerSignoff(card, this.answerThroughApi) : this.answerThroughApi(card));
      this.report('update', problem ? `${champion.name} (${clientName}) reports a problem: the client is held` : `${champion.name} (${clientName}): everything works`);
    } else {
      await this.api.post('slack/command', { user: this.engineer.slackId, channel: this.mspChannel, text: `/patch confirm ${clientId}` });
      this.report('update', `no Teams champion for ${clientName}: ${this.engineer.name} confirms with /patch confirm`);
    }
  }

  private async answerDms(): Promise<void> {
    const open = await demoRepo.unansweredTonightDms(this.db, this.releaseId);
    const todo = open.filter((dm) => !this.answeredDms.has(dm.id));
    if (todo.length === 0) return;
    const state = await this.api.state();
    for (const dm of todo) {
      // One user (the first told about a broad night) needs their machine; deferring a pilot machine would
      // only stall that client's sign-off, so pilot users all say OK.
      const defer = this.deferredBy === undefined && dm.ring === 'broad';
      const person = this.directory.people.find((p) => (dm.platform === 'slack' ? p.slackId === dm.recipient : p.aadId === dm.recipient));
      const who = person?.name ?? dm.name ?? dm.recipient;
      if (!(await this.answerDm(state, dm, defer))) continue;
      this.answeredDms.add(dm.id);
      if (defer) {
        this.deferredBy = who;
        this.report('update', `${who} needs their computer tonight: deferred to the next window`);
      }
    }
    if (this.answeredDms.size > 0) this.report('update', `${this.answeredDms.size} user DM(s) answered`);
  }

  /** Presses OK or Defer on the user's DM; false when the DM is not on the page yet. */
  private async answerDm(state: SandboxState, dm: OpenDm, defer: boolean): Promise<boolean> {
    const actionId = defer ? 'userdm.defer' : 'userdm.ok';
    if (dm.platform === 'slack') {
      const message = state.slack.dms.flatMap((c) => c.messages).find((m) => m.blocks.some((b) => (b as { block_id?: string }).block_id === `userdm:${dm.id}`));
      if (!message) return false;
      await this.api.post('slack/action', { user: dm.recipient, channel: message.channel, ts: message.ts, actionId, blockId: `userdm:${dm.id}` });
    } else {
      const found = dmCard(state, dm.id);
      if (!found) return false;
      await this.api.post('teams/action', { user: dm.recipient, conversationId: found.conversationId, activityId: found.activityId, verb: actionId, data: { dmId: dm.id } });
    }
    return true;
  }

  /** A Promote offer in the release thread not clicked yet: the tick posts one per update as its soak ends. */
  private async newOffer(): Promise<SandboxSlackMessage | undefined> {
    return digestOf(await this.api.state(), this.mspChannel, this.releaseId)?.replies.find((r) => hasAction(r, 'rollout_promote') && !this.clickedOffers.has(r.ts));
  }

  private async promoteLater(): Promise<void> {
    // Ring msp may still be running for other updates (a server's Sunday window): an offer is clicked as it comes.
    if (!this.promotedOnce) return;
    const offer = await this.newOffer();
    if (!offer) return;
    this.clickedOffers.add(offer.ts);
    const promotions = async () => (await this.gates()).find((g) => g.ring === 'msp')?.state_detail.promotions?.length ?? 0;
    const before = await promotions();
    await this.api.post('slack/action', { user: this.engineer.slackId, channel: this.mspChannel, ts: offer.ts, actionId: 'rollout_promote' });
    // The click lands before the story moves on (a last offer must not be left half-taken when the month ends). An
    // offer an earlier click already covered (a Promote takes everything ready at that moment) is answered "already
    // promoted" and adds no promotion: then nothing is left ready, and waiting for one would hang the month.
    await this.until('the later promotion', async () => {
      if ((await promotions()) > before) return true;
      const standings = (await loadMspPicture(this.db, this.releaseId, this.clock.now(), await this.holds()))?.standings ?? [];
      return standings.some((st) => st.state === 'ready') ? undefined : true;
    });
    this.report('update', `${this.engineer.name} promotes the updates that finished ring msp since`);
  }
}

function signoffKey(gate: GateRow): string {
  return `${gate.client_id} ${(gate.state_detail.asked ?? []).join('+')}`;
}

/** Each DM client's next afternoon DM time. */
function dmTimeStops(now: DateTime, dmClients: Map<string, { tz: string; dmTime: string }>): Stop[] {
  const stops: Stop[] = [];
  for (const [client, { tz, dmTime }] of dmClients) {
    const { hour, minute } = parseDmTime(dmTime) ?? parseDmTime(DEFAULT_DM_TIME)!;
    const local = now.setZone(tz);
    let at = local.set({ hour, minute, second: 0, millisecond: 0 });
    if (at <= local) at = local.plus({ days: 1 }).set({ hour, minute, second: 0, millisecond: 0 });
    stops.push({ at, kind: 'dm-time', detail: `${client}'s users hear about tonight` });
  }
  return stops;
}

const MORNING_HOUR = 8;
const EVENING_HOUR = 18;

function workingHours(at: Date, zone: string): boolean {
  const hour = DateTime.fromJSDate(at, { zone }).hour;
  return hour >= MORNING_HOUR && hour < EVENING_HOUR;
}

function nextMorning(now: DateTime, zone: string): DateTime {
  const local = now.setZone(zone);
  const today = local.set({ hour: MORNING_HOUR, minute: 0, second: 0, millisecond: 0 });
  return today > local ? today : local.plus({ days: 1 }).set({ hour: MORNING_HOUR, minute: 0, second: 0, millisecond: 0 });
}

function toDateTime(value: unknown): DateTime {
  return DateTime.fromJSDate(value instanceof Date ? value : new Date(String(value)), { zone: 'utc' });
}

function blocksHave(blocks: unknown, needle: (o: Record<string, unknown>) => boolean): boolean {
  if (Array.isArray(blocks)) return blocks.some((b) => blocksHave(b, needle));
  if (blocks && typeof blocks === 'object') {
    const o = blocks as Record<string, unknown>;
    return needle(o) || Object.values(o).some((v) => typeof v === 'object' && blocksHave(v, needle));
  }
  return false;
}

function hasAction(message: SandboxSlackMessage, actionId: string): boolean {
  return blocksHave(message.blocks, (o) => o.action_id === actionId);
}

export function digestOf(state: SandboxState, channel: string, releaseId: string): SandboxSlackMessage | undefined {
  return state.slack.channels
    .find((c) => c.id === channel)
    ?.messages.find((m) => m.blocks.some((b) => (b as { block_id?: string }).block_id === `release:${releaseId}`));
}

/** The client's sign-off card still offering its answers, preferably in the client's team channel. */
function signoffCard(state: SandboxState, clientId: string): { conversationId: string; activityId: string } | undefined {
  const conversations = state.teams.conversations.filter((c) => c.clientId === clientId).sort((a, b) => (a.kind === 'channel' ? -1 : 0) - (b.kind === 'channel' ? -1 : 0));
  for (const conversation of conversations) {
    const activity = conversation.activities.find((a) => a.card && blocksHave(a.card, (o) => o.verb === 'pilot.confirm'));
    if (activity) return { conversationId: conversation.id, activityId: activity.id };
  }
  return undefined;
}

function dmCard(state: SandboxState, dmId: number): { conversationId: string; activityId: string } | undefined {
  for (const conversation of state.teams.conversations) {
    const activity = conversation.activities.find((a) => a.card && blocksHave(a.card, (o) => o.verb === 'userdm.ok' && (o.data as { dmId?: number } | undefined)?.dmId === dmId));
    if (activity) return { conversationId: conversation.id, activityId: activity.id };
  }
  return undefined;
}

/** The month's outcome, read back from the database, the simulated fleet and the chat emulators. */
export async function collectSummary(
  world: DemoWorld,
  context: { steps: DemoSummary['steps']; realMs: number; clockFrom: Date; deferredBy: string | undefined },
): Promise<DemoSummary> {
  const { db, sandbox, releaseId } = world;
  const { gates, runs, deviceCounts, holds, dms, counts } = await demoRepo.demoSummaryRows(db, releaseId);
  const rings = ringRows({ gates, runs, deviceCounts });
  const held = holds.map((h) => ({ client: h.client_id, reason: h.reason, by: sandbox.directory.people.find((p) => p.aadId === h.placed_by || p.slackId === h.placed_by)?.name ?? h.placed_by }));
  const confirmations = gates
    .filter((g) => g.ring === 'pilot' && g.confirmed_by)
    .map((g) => {
      const [as, ...rest] = g.confirmed_by!.split(':');
      const id = rest.join(':');
      return { client: g.client_id!, as: as!, by: sandbox.directory.people.find((p) => p.aadId === id || p.slackId === id)?.name ?? id };
    });
  const botId = sandbox.slack.bot.userId;
  const slackMessages = sandbox.slack.messages().filter((m) => m.user === botId);
  const teamsActivities = sandbox.connector.activities().filter((a) => !a.id.startsWith('in:'));
  const clockTo = sandbox.clock.now();
  return {
    releaseId,
    realMs: context.realMs,
    clock: {
      from: context.clockFrom.toISOString(),
      to: clockTo.toISOString(),
      days: Math.round(((clockTo.getTime() - context.clockFrom.getTime()) / 86_400_000) * 10) / 10,
    },
    steps: context.steps,
    rings,
    held,
    confirmations,
    dms: { sent: Number(dms?.sent ?? 0), answered: Number(dms?.answered ?? 0), ok: Number(dms?.ok ?? 0), deferred: Number(dms?.deferred ?? 0), offlineNotices: Number(dms?.offline ?? 0) },
    deferredBy: context.deferredBy,
    decisions: Number(counts?.decisions ?? 0),
    auditRows: Number(counts?.audit ?? 0),
    runs: Number(counts?.runs ?? 0),
    ledger: {
      installs: sandbox.deployer.ledger.filter((e) => e.kind === 'install').length,
      reboots: sandbox.deployer.ledger.filter((e) => e.kind === 'reboot').length,
    },
    slack: {
      posted: slackMessages.length,
      edited: slackMessages.reduce((n, m) => n + m.edits, 0),
      threadReplies: slackMessages.filter((m) => m.thread_ts && m.thread_ts !== m.ts).length,
    },
    teams: {
      posted: teamsActivities.length,
      edited: teamsActivities.reduce((n, a) => n + Math.max(0, a.versions.length - 1), 0),
    },
  };
}

type SummaryRows = Awaited<ReturnType<typeof demoRepo.demoSummaryRows>>;

/** One row per gate: how its devices' runs ended. */
function ringRows({ gates, runs, deviceCounts }: Pick<SummaryRows, 'gates' | 'runs' | 'deviceCounts'>): RingRow[] {
  return gates.map((g) => {
    const mine = runs.filter((r) => r.ring === g.ring && r.client_id === g.client_id);
    const succeeded = new Set(mine.filter((r) => r.state === 'succeeded').map((r) => r.device));
    return {
      ring: g.ring,
      client: g.client_id ?? 'msp',
      gate: g.state,
      devices: Number(deviceCounts.find((d) => d.ring === g.ring && d.client_id === g.client_id)?.n ?? 0),
      succeeded: succeeded.size,
      failed: mine.filter((r) => r.state === 'failed').map((r) => ({ device: r.device, error: r.error ?? r.result ?? 'failed' })),
      offlineOrRolled: mine.filter((r) => r.state === 'offline' || r.state === 'rolled').length,
      nothingToInstall: new Set(mine.filter((r) => r.state === 'skipped' && (r.result === 'nothing_applies' || r.result === 'no_os')).map((r) => r.device)).size,
      rebootedTwice: [...new Set(mine.filter((r) => Number(r.reboots) >= 2).map((r) => r.device))],
      windows: new Set(mine.map((r) => String(toDateTime(r.window_start).toMillis()))).size,
    };
  });
}
