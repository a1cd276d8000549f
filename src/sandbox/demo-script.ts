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
import type { DemoGateRow } from '../db/demo-repo.ts';
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
  const { db, sandbox, releaseId } = world;
  const { clock } = sandbox;
  const speed = options.speed ?? DEFAULT_DEMO_SPEED;
  const idleRate = options.idleRate ?? DEFAULT_IDLE_RATE;
  const scale = options.timeoutScale ?? 1;
  const problemText = options.problemText ?? DEFAULT_PROBLEM_TEXT;
  const startedReal = Date.now();
  const clockFrom = clock.now();
  const steps: DemoSummary['steps'] = [];
  const directory = sandbox.directory;
  const engineer = directory.people.find((p) => p.role === 'engineer' && p.slackId);
  if (!engineer) throw new DemoStepError('digest', 'the sandbox inventory has no engineer with a Slack id');
  const mspChannel = directory.msp.channel;

  let current: DemoStep = 'digest';
  let stepStarted = Date.now();
  let deadline = 0;
  const report = (state: DemoProgress['state'], detail: string) => options.onProgress?.({ step: current, state, detail, clock: clock.now() });
  const begin = (step: DemoStep, detail: string) => {
    current = step;
    stepStarted = Date.now();
    deadline = stepStarted + STEP_TIMEOUT_MS[step] * scale;
    report('start', detail);
  };
  const finish = (detail: string) => {
    steps.push({ step: current, label: DEMO_STEPS.find((s) => s.id === current)!.label, realMs: Date.now() - stepStarted, detail });
    report('done', detail);
  };
  const checkDeadline = (waitingFor: string) => {
    options.signal?.throwIfAborted();
    if (Date.now() > deadline) {
      throw new DemoStepError(current, `timed out after ${Math.round((STEP_TIMEOUT_MS[current] * scale) / 1000)} s waiting for ${waitingFor} (clock ${clock.now().toISOString()})`);
    }
  };
  /** Polls `probe` until it yields a value; the step's deadline bounds it. */
  const until = async <T>(what: string, probe: () => Promise<T | undefined>, everyMs = 250): Promise<T> => {
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      checkDeadline(what);
      await sleep(everyMs);
    }
  };

  // The page API: the same requests the sandbox page sends, with the token the page carries.
  const pageToken = { [PAGE_TOKEN_HEADER]: sandbox.pageToken };
  const api = {
    async state(): Promise<SandboxState> {
      const res = await fetch(`${world.baseUrl}/sandbox/api/state`, { headers: pageToken });
      if (!res.ok) throw new DemoStepError(current, `the sandbox page API answered ${res.status}`);
      return (await res.json()) as SandboxState;
    },
    async post(route: string, body: unknown): Promise<SandboxAnswer> {
      const res = await fetch(`${world.baseUrl}/sandbox/api/${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...pageToken }, body: JSON.stringify(body) });
      const answer = (await res.json()) as SandboxAnswer;
      if (!answer.ok) throw new DemoStepError(current, `${route} was refused: ${answer.error ?? res.status}`);
      return answer;
    },
  };

  const setRate = (rate: number) => {
    if (clock.rate !== rate) clock.setRate(rate);
  };
  const jumpTo = async (at: DateTime) => {
    if (at.toMillis() > clock.nowMs()) clock.jumpTo(at.toJSDate());
    await sandbox.wakeDelayedRuns();
  };

  const gates = () => demoRepo.demoGates(db, releaseId);
  const holds = (): Promise<Hold[]> => demoRepo.activeHolds(db);

  /** Runs still to settle now: work in flight, not yet looked at, or left behind by a window that has closed. */
  const busyRuns = (): Promise<number> => demoRepo.busyRunCount(db, releaseId, clock.now());
  // Only what is due: a row paced or backed off to a later instant is not something a stop should wait for.
  const pendingOutbox = (): Promise<number> => demoRepo.dueOutboxCount(db, clock.now());
  /** Lets the schedulers notice a jump: a couple of ticks, then the outbox drained. */
  const settle = async () => {
    await sleep(world.tickMs * 2.5);
    await until('the chat outbox to drain', async () => ((await pendingOutbox()) === 0 ? true : undefined), 200);
  };

  const ruleCache = new Map<string, WindowRule | undefined>();
  const ruleOf = (spec: string | null): WindowRule | undefined => {
    if (!spec) return undefined;
    if (!ruleCache.has(spec)) {
      const parsed = parseWindowSpec(spec);
      ruleCache.set(spec, parsed.ok ? parsed.value : undefined);
    }
    return ruleCache.get(spec);
  };

  /** The earliest instant anything is due; undefined when nothing is left to happen. */
  const nextStop = async (): Promise<Stop | undefined> => {
    const now = DateTime.fromJSDate(clock.now(), { zone: 'utc' });
    const stops: Stop[] = [];
    for (const row of await demoRepo.openWindowEnds(db, releaseId, clock.now())) {
      stops.push({ at: toDateTime(row.window_end), kind: 'window-end', detail: `${row.who}'s window closes` });
    }
    const activeHolds = await holds();
    const unsettled = await demoRepo.unsettledDevices(db, releaseId);
    const planned = new Set(await demoRepo.plannedRunKeys(db, releaseId));
    const dmClients = new Map<string, { tz: string; dmTime: string }>();
    for (const d of unsettled) {
      if (isHeld(activeHolds, { releaseId, ring: d.ring, clientId: d.client_id })) continue;
      const rule = ruleOf(d.spec);
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
    for (const [client, { tz, dmTime }] of dmClients) {
      const { hour, minute } = parseDmTime(dmTime) ?? parseDmTime(DEFAULT_DM_TIME)!;
      const local = now.setZone(tz);
      let at = local.set({ hour, minute, second: 0, millisecond: 0 });
      if (at <= local) at = local.plus({ days: 1 }).set({ hour, minute, second: 0, millisecond: 0 });
      stops.push({ at, kind: 'dm-time', detail: `${client}'s users hear about tonight` });
    }
    for (const gate of await gates()) {
      if (gate.ring === 'pilot' && gate.state === 'awaiting_confirmation' && !signedOff.has(signoffKey(gate))) {
        const zone = directory.clients.find((c) => c.id === gate.client_id)?.timezone ?? directory.msp.timezone;
        if (!workingHours(now.toJSDate(), zone)) stops.push({ at: nextMorning(now, zone), kind: 'morning', detail: `morning at ${gate.client_id}: its champion looks at the pilot` });
      }
      if (gate.ring === 'msp' && gate.state === 'soaking' && gate.state_detail.soakUntil) {
        stops.push({ at: DateTime.fromISO(gate.state_detail.soakUntil, { zone: 'utc' }), kind: 'soak-end', detail: 'ring msp has soaked' });
      }
    }
    // Each update soaks from when it finished ring msp, while the ring still runs for others (Sunday's servers):
    // its soak end is a stop, or the clock would jump past its Promote offer to the next window.
    const soakEnd = nextSoakEnd((await loadMspPicture(db, releaseId, clock.now(), activeHolds))?.standings ?? []);
    if (soakEnd !== null && Date.parse(soakEnd) > now.toMillis()) {
      stops.push({ at: DateTime.fromISO(soakEnd, { zone: 'utc' }), kind: 'soak-end', detail: 'an update has soaked on ring msp' });
    }
    stops.sort((a, b) => a.at.toMillis() - b.at.toMillis());
    return stops[0];
  };

  // --- reactions: what people do when something reaches them ---------------------------------------------------

  // Each sign-off asks about the updates installed on the pilot since the last: a late update gets its own.
  const signedOff = new Set<string>();
  const signoffKey = (gate: GateRow) => `${gate.client_id} ${(gate.state_detail.asked ?? []).join('+')}`;
  let problemClient = options.problemClient;
  const answeredDms = new Set<number>();
  let deferredBy: string | undefined;

  const answerThroughApi = async (card: SignoffCard): Promise<void> => {
    await api.post('teams/action', {
      user: card.champion.id,
      conversationId: card.conversationId,
      activityId: card.activityId,
      verb: card.problem ? 'pilot.problem' : 'pilot.confirm',
      data: { releaseId, clientId: card.clientId, ...(card.problem ? { problem: card.problemText } : {}) },
    });
  };

  const signOff = async (): Promise<void> => {
    const awaiting = (await gates()).filter((g) => g.ring === 'pilot' && g.state === 'awaiting_confirmation' && !signedOff.has(signoffKey(g)));
    if (awaiting.length === 0) return;
    const linked = new Set(await demoRepo.linkedTeamsClients(db));
    if (problemClient === undefined) {
      problemClient = directory.clients.find((c) => linked.has(c.id) && directory.people.some((p) => p.role === 'champion' && p.client === c.id && p.aadId))?.id;
    }
    for (const gate of awaiting) {
      const clientId = gate.client_id!;
      const client = directory.clients.find((c) => c.id === clientId);
      // Champions look at their test machines in their working day, not the moment the night's runs end; an
      // answer in the small hours would start the broad ring in the very window the pilot ran in, unannounced.
      if (!workingHours(clock.now(), client?.timezone ?? directory.msp.timezone)) continue;
      if ((await demoRepo.openClientRunCount(db, clientId, clock.now())) > 0) continue;
      const champion = directory.people.find((p) => p.role === 'champion' && p.client === clientId && p.aadId);
      if (linked.has(clientId) && champion) {
        const found = await until(`the pilot sign-off card in ${client?.name ?? clientId}'s Teams`, async () => signoffCard(await api.state(), clientId));
        const problem = clientId === problemClient;
        const card: SignoffCard = {
          clientId,
          clientName: client?.name ?? clientId,
          champion: { id: champion.aadId!, name: champion.name },
          conversationId: found.conversationId,
          activityId: found.activityId,
          problem,
          problemText,
        };
        await (options.answerSignoff ? options.answerSignoff(card, answerThroughApi) : answerThroughApi(card));
        report('update', problem ? `${champion.name} (${client?.name ?? clientId}) reports a problem: the client is held` : `${champion.name} (${client?.name ?? clientId}): everything works`);
      } else {
        await api.post('slack/command', { user: engineer.slackId, channel: mspChannel, text: `/patch confirm ${clientId}` });
        report('update', `no Teams champion for ${client?.name ?? clientId}: ${engineer.name} confirms with /patch confirm`);
      }
      await until(`${clientId}'s pilot to take the answer`, async () => {
        const gate = (await gates()).find((g) => g.ring === 'pilot' && g.client_id === clientId);
        return gate && gate.state !== 'awaiting_confirmation' ? gate : undefined;
      });
      signedOff.add(signoffKey(gate));
    }
  };

  const answerDms = async (): Promise<void> => {
    const open = await demoRepo.unansweredTonightDms(db, releaseId);
    const todo = open.filter((dm) => !answeredDms.has(dm.id));
    if (todo.length === 0) return;
    const state = await api.state();
    for (const dm of todo) {
      // One user (the first told about a broad night) needs their machine; deferring a pilot machine would
      // only stall that client's sign-off, so pilot users all say OK.
      const defer = deferredBy === undefined && dm.ring === 'broad';
      const person = directory.people.find((p) => (dm.platform === 'slack' ? p.slackId === dm.recipient : p.aadId === dm.recipient));
      const who = person?.name ?? dm.name ?? dm.recipient;
      if (dm.platform === 'slack') {
        const message = state.slack.dms.flatMap((c) => c.messages).find((m) => m.blocks.some((b) => (b as { block_id?: string }).block_id === `userdm:${dm.id}`));
        if (!message) continue;
        await api.post('slack/action', { user: dm.recipient, channel: message.channel, ts: message.ts, actionId: defer ? 'userdm.defer' : 'userdm.ok', blockId: `userdm:${dm.id}` });
      } else {
        const found = dmCard(state, dm.id);
        if (!found) continue;
        await api.post('teams/action', { user: dm.recipient, conversationId: found.conversationId, activityId: found.activityId, verb: defer ? 'userdm.defer' : 'userdm.ok', data: { dmId: dm.id } });
      }
      answeredDms.add(dm.id);
      if (defer) {
        deferredBy = who;
        report('update', `${who} needs their computer tonight: deferred to the next window`);
      }
    }
    if (answeredDms.size > 0) report('update', `${answeredDms.size} user DM(s) answered`);
  };

  // Each update is promoted on its own once it has soaked on ring msp: after the first promotion the engineer
  // promotes each later offer (an update that installed on ring msp later) as it comes.
  let promotedOnce = false;
  const clickedOffers = new Set<string>();
  /** A Promote offer in the release thread not clicked yet: the tick posts one per update as its soak ends. */
  const newOffer = async (): Promise<SandboxSlackMessage | undefined> =>
    digestOf(await api.state(), mspChannel, releaseId)?.replies.find((r) => hasAction(r, 'rollout_promote') && !clickedOffers.has(r.ts));
  const promoteLater = async (): Promise<void> => {
    // Ring msp may still be running for other updates (a server's Sunday window): an offer is clicked as it comes.
    if (!promotedOnce) return;
    const offer = await newOffer();
    if (!offer) return;
    clickedOffers.add(offer.ts);
    const before = (await gates()).find((g) => g.ring === 'msp')?.state_detail.promotions?.length ?? 0;
    await api.post('slack/action', { user: engineer.slackId, channel: mspChannel, ts: offer.ts, actionId: 'rollout_promote' });
    // The click lands before the story moves on (a last offer must not be left half-taken when the month ends). An
    // offer an earlier click already covered (a Promote takes everything ready at that moment) is answered "already
    // promoted" and adds no promotion: then nothing is left ready, and waiting for one would hang the month.
    await until('the later promotion', async () => {
      if ((((await gates()).find((g) => g.ring === 'msp')?.state_detail.promotions?.length ?? 0) > before)) return true;
      const standings = (await loadMspPicture(db, releaseId, clock.now(), await holds()))?.standings ?? [];
      return standings.some((st) => st.state === 'ready') ? undefined : true;
    });
    report('update', `${engineer.name} promotes the updates that finished ring msp since`);
  };

  const react = async () => {
    await promoteLater();
    await signOff();
    await answerDms();
  };

  /**
   * Moves time stop by stop until `goal` holds: at full speed while a window has work in flight, otherwise a jump
   * to the next stop and a pause for the jobs to notice it.
   */
  const drive = async (goal: () => Promise<string | undefined>) => {
    for (;;) {
      await react();
      const reached = await goal();
      if (reached !== undefined) return reached;
      if ((await busyRuns()) > 0) {
        setRate(speed);
        checkDeadline('the open windows to finish their runs');
        await sleep(300);
        continue;
      }
      setRate(idleRate);
      const stop = await nextStop();
      if (!stop) throw new DemoStepError(current, 'nothing is left to happen, yet the step is not done (is something held or stuck?)');
      checkDeadline(`the next stop (${stop.detail})`);
      await jumpTo(stop.at);
      report('update', `${stop.detail}: ${stop.at.setZone(directory.msp.timezone).toFormat('ccc d LLL HH:mm ZZZZ')}`);
      if (stop.kind === 'window-start') {
        // The sweep plans the window's runs on its next tick; until it has, the next stop would be tomorrow's.
        const devices = stop.devices!;
        const startIso = stop.at.toUTC().toISO()!;
        // Bounded: a window may rightly plan nothing for these devices (its users' DM went out too late, nothing
        // has passed the earlier rings yet); the next stop then looks past it.
        for (let tick = 0; tick < 20; tick++) {
          if ((await demoRepo.runsPlannedAt(db, startIso, devices)) > 0) break;
          checkDeadline(`runs planned for the window opening ${startIso}`);
          await sleep(world.tickMs);
        }
        setRate(speed);
      } else {
        await settle();
      }
    }
  };

  // (a) Patch Tuesday -----------------------------------------------------------------------------------------
  const month = parseReleaseId(releaseId);
  if (!month.ok) throw new Error(month.error);
  begin('digest', `clock to Patch Tuesday, ${month.value.publishedAt.toFormat('ccc d LLL yyyy HH:mm ZZZZ')}`);
  setRate(idleRate);
  await jumpTo(patchTuesday(month.value.year, month.value.month).plus({ minutes: 1 }));
  const digest = await until(`the ${releaseId} digest in the engineers' channel`, async () => digestOf(await api.state(), mspChannel, releaseId), 500);
  finish(`${releaseId} digest posted in #${directory.slackChannels()[0]?.name ?? mspChannel}`);

  // (b) approval ---------------------------------------------------------------------------------------------
  begin('approve', `${engineer.name} presses Approve release`);
  await api.post('slack/action', { user: engineer.slackId, channel: mspChannel, ts: digest.ts, actionId: 'release.approve', blockId: `release:${releaseId}` });
  await until('ring msp to be scheduled', async () => ((await gates()).some((g) => g.ring === 'msp') ? true : undefined));
  await until('the digest to show the approval', async () => {
    const m = digestOf(await api.state(), mspChannel, releaseId);
    return m && m.edits > 0 ? true : undefined;
  });
  finish(`${releaseId} approved by ${engineer.name}; ring msp scheduled`);

  // (c) ring msp ---------------------------------------------------------------------------------------------
  begin('msp', "the MSP's own machines, in their windows");
  // Ring msp is done for an update once every MSP machine that needs it settled it: the first such update (or the
  // whole ring resting) ends this step; machines that need only later updates keep their own windows.
  await drive(async () => {
    const msp = (await gates()).find((g) => g.ring === 'msp');
    if (msp && !['scheduled', 'running'].includes(msp.state)) return msp.state;
    const standings = (await loadMspPicture(db, releaseId, clock.now(), await holds()))?.standings ?? [];
    if (standings.some((st) => st.state === 'soaking' || st.state === 'ready')) return 'an update finished';
    return (await newOffer()) ? 'offered' : undefined;
  });
  // Its last window's summary is posted once the window has closed: go there before moving on.
  await drive(async () => {
    return (await demoRepo.openMspRunCount(db, releaseId, clock.now())) === 0 ? 'closed' : undefined;
  });
  await settle();
  const mspCounts = await demoRepo.mspRunStates(db, releaseId);
  const mspResting = !['scheduled', 'running'].includes((await gates()).find((g) => g.ring === 'msp')?.state ?? 'scheduled');
  finish(`ring msp ${mspResting ? 'finished' : 'finished for its first updates'}: ${mspCounts.map((c) => `${c.n} ${c.state}`).join(', ')}`);

  // (d) soak and promotion -------------------------------------------------------------------------------------
  begin('promote', 'each update soaks on ring msp, then an engineer promotes what is offered');
  // Promote is offered per update as soon as one installed on ring msp and soaked, not when the whole ring rests.
  await drive(async () => ((await newOffer()) ? 'offered' : undefined));
  const offer = (await newOffer())!;
  clickedOffers.add(offer.ts);
  await api.post('slack/action', { user: engineer.slackId, channel: mspChannel, ts: offer.ts, actionId: 'rollout_promote' });
  await until('the pilot gates', async () => ((await gates()).find((g) => g.ring === 'msp')?.state_detail.promotions?.length ? true : undefined));
  promotedOnce = true;
  const pilots = (await gates()).filter((g) => g.ring === 'pilot').length;
  finish(`promoted to pilot by ${engineer.name}: ${pilots} client pilot(s) scheduled`);

  // (e, f) pilot windows and champions' sign-off ------------------------------------------------------------------
  begin('pilot', "each client's test machines in its own night, then its champion answers");
  await drive(async () => {
    const pilot = (await gates()).filter((g) => g.ring === 'pilot');
    // A pilot a later promotion reopened (an update approved or promoted late) was answered once already: the
    // broad step carries on with what it confirmed, and the late update gets its own sign-off there.
    const answered = (g: GateRow) => !['scheduled', 'running', 'awaiting_confirmation'].includes(g.state) || (g.state_detail.confirmed?.length ?? 0) > 0;
    return pilot.length > 0 && pilot.every(answered) ? 'answered' : undefined;
  });
  const pilotStates = (await gates()).filter((g) => g.ring === 'pilot');
  finish(
    `pilots answered: ${pilotStates.filter((g) => g.state === 'confirmed').length} confirmed, ${pilotStates.filter((g) => g.state === 'problem').map((g) => `${g.client_id} held`).join(', ') || 'none held'}`,
  );

  // (g, h) broad rollout with users' DMs ------------------------------------------------------------------------------
  begin('broad', 'the rest of the machines; users hear about it in the afternoon');
  await drive(async () => {
    const all = await gates();
    // A client that confirmed something rolls it out, even when a later promotion reopened its pilot meanwhile.
    const confirmed = all.filter((g) => g.ring === 'pilot' && (g.state === 'confirmed' || (g.state_detail.confirmed?.length ?? 0) > 0)).map((g) => g.client_id);
    const broad = all.filter((g) => g.ring === 'broad');
    return confirmed.every((c) => broad.some((b) => b.client_id === c && b.state === 'finished')) ? 'finished' : undefined;
  });
  // The last windows' summaries come once they close.
  await drive(async () => {
    return (await demoRepo.openRunCount(db, releaseId, clock.now())) === 0 ? 'closed' : undefined;
  });
  await settle();
  setRate(idleRate);
  finish(`broad finished for ${(await gates()).filter((g) => g.ring === 'broad' && g.state === 'finished').length} client(s)${deferredBy ? `; ${deferredBy} deferred one night` : ''}`);

  // (i) the summary, from the database and the emulators ---------------------------------------------------------------
  begin('summary', 'reading the results');
  const summary = await collectSummary(world, { steps, realMs: Date.now() - startedReal, clockFrom, deferredBy });
  finish(`${summary.runs} runs, ${summary.decisions} decisions, ${summary.slack.posted + summary.teams.posted} chat messages`);
  summary.steps = steps;
  summary.realMs = Date.now() - startedReal;
  return summary;
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
  const rings: RingRow[] = gates.map((g) => {
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
