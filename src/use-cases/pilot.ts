/**
 * A client's champions answer the pilot: "Everything works" confirms it (and schedules the client's broad ring),
 * "Report a problem" holds the client and tells the engineers. One transaction each, in the same order the
 * engineers' hold takes its locks (the release row first), so a champion's answer and an engineer's hold, or two
 * champions answering at once, serialise and give one outcome. The rules are the rollout domain's
 * (`confirm_pilot`, `report_problem`); this module finds out who is asking and writes what follows.
 */
import type { AppDatabase } from '../db/client.ts';
import type { OutboxItem } from '../db/outbox-repo.ts';
import { loadBook } from '../db/rollout-repo.ts';
import { lockRelease } from '../db/decisions-repo.ts';
import { appendAudit } from '../db/audit-repo.ts';
import { insertDecision } from '../db/rollout-actions-repo.ts';
import {
  clientNameAndZone,
  clientVisibleNotes,
  findChampion,
  firstHoldOnClient,
  personByChatId,
  personDisplayName,
  pilotDeviceRuns,
  releaseUpdateWords,
  teamsChampionIds,
  teamsContact,
} from '../db/pilot-repo.ts';
import { gateKey, gatesTouched, type Actor as RolloutActor, type RolloutEvent } from '../domain/rollout.ts';
import { findEngineer, type Actor, type UseCaseContext } from './decisions.ts';
import { championConversations } from '../db/audience-repo.ts';
import { broadPlanNotice } from './audience.ts';
import { pilotConfirmed } from './thread-notices.ts';
import { applyGateEvents } from './gates.ts';
import { isUniqueViolation, withTransaction } from './transaction.ts';
import { subjects } from '../chat/subjects.ts';
import { notify } from '../chat/notify.ts';
import { renderClientCards, type PilotNotice } from '../chat/notices/pilot.ts';

// The view is data the sign-off card renders: its own module, so the card does not import this use-case.
import { signoffAsked, signoffRound, type DeviceOutcome, type SignoffView } from '../domain/signoff-view.ts';
export type { DeviceOutcome, SignoffView } from '../domain/signoff-view.ts';

export interface PilotResult {
  outcome: 'applied' | 'noop' | 'refused';
  code?: 'not_champion' | 'held' | 'no_pilot' | 'text_required' | 'not_ready';
  message: string;
  view: SignoffView | undefined;
}

export const signoffSubject = subjects.signoff;

type SignoffCardNotice = Extract<PilotNotice, { kind: 'signoff_card' }>;
type BroadPlanNotice = Extract<PilotNotice, { kind: 'broad_plan' }>;

interface Asker {
  kind: 'champion' | 'engineer';
  personId: number;
  name: string;
}

/** The asker is one of this client's champions (by their chat identity), an engineer, or nobody we know. */
export async function whoIsAsking(db: AppDatabase, actor: Actor, clientId: string): Promise<Asker | undefined> {
  const champion = await findChampion(db, actor.platform, actor.id, clientId);
  if (champion) return { kind: 'champion', personId: champion.personId, name: champion.name ?? champion.email ?? actor.id };
  const engineer = await findEngineer(db, actor);
  if (engineer) return { kind: 'engineer', personId: engineer.personId, name: (await personDisplayName(db, engineer.personId)) ?? actor.id };
  return undefined;
}

/** A person's display name for a platform id (who confirmed, who reported), else the id itself. */
async function nameOf(db: AppDatabase, id: string): Promise<string> {
  if (id === 'system') return 'automatic confirmation';
  const person = await personByChatId(db, id);
  return person?.name ?? person?.email ?? id;
}

export function plainWords(u: { kb: string | null; title: string | null; family: string | null; restart: string | null }): string {
  // MSRC names a security update by its KB number alone; a champion needs to read what it is for.
  const kbDigits = (text: string | null) => text?.trim().replace(/^KB/i, '') ?? null;
  const named = u.title !== null && kbDigits(u.title) !== kbDigits(u.kb) && !/^\d+$/.test(u.title.trim()) ? u.title : null;
  const what = named ?? `${u.family ?? 'Microsoft'} security update`;
  const restart = u.restart === 'Yes' ? ' Needs a restart.' : u.restart === 'Maybe' ? ' May need a restart.' : '';
  return `${what}${u.kb ? ` (KB${u.kb.replace(/^KB/i, '')})` : ''}.${restart}`;
}

function outcomeOf(state: string, result: string | null): DeviceOutcome {
  switch (state) {
    case 'succeeded':
      return 'updated';
    case 'failed':
      return 'failed';
    case 'offline':
    case 'rolled':
    case 'cancelled':
      return 'missed';
    case 'skipped':
      return result === null ? 'missed' : 'nothing';
    case 'running':
      return 'in_progress';
    default:
      return 'waiting';
  }
}

/**
 * A pilot machine the pilot gave no run: before the pilot's window it has not started; once the pilot finished, the
 * planner had nothing for it to install (found walking the sandbox: the card said "Not started yet" to a champion
 * asked to sign off).
 */
export function noRunOutcome(gateState: string | undefined): DeviceOutcome {
  return gateState === undefined || gateState === 'scheduled' || gateState === 'running' ? 'waiting' : 'nothing';
}

/** Everything the sign-off card shows, read from Postgres. */
export async function loadSignoff(db: AppDatabase, releaseId: string, clientId: string): Promise<SignoffView | undefined> {
  const client = await clientNameAndZone(db, clientId);
  if (!client) return undefined;
  const book = await loadBook(db, releaseId, false, gatesTouched({ type: 'confirm_pilot', id: '', actor: { kind: 'system' }, clientId }));
  const gate = book.gates[`pilot/${clientId}`];
  const devices = await pilotDeviceRuns(db, releaseId, clientId);
  // Exactly what the sign-off asks about (installed on this client's pilots, never a held update), or what the
  // answer covered; never the release as a whole. Nothing installed: nothing listed, and no card is sent.
  // What the card asks about; once answered, what the answer covered. A confirmation on a pilot that a later
  // promotion reopened leaves the gate scheduled, not confirmed: its card must still show what was confirmed.
  const asked = signoffAsked(gate);
  const updates = (await releaseUpdateWords(db, releaseId)).filter((u) => asked.has(u.updateKey));
  const notes = await clientVisibleNotes(db, releaseId);
  const hold = await firstHoldOnClient(db, releaseId, clientId);
  const championIds = await teamsChampionIds(db, clientId);
  let answer: SignoffView['answer'];
  if (gate?.confirmation) answer = { kind: 'confirmed', by: await nameOf(db, gate.confirmation.by), as: gate.confirmation.as, at: gate.confirmation.at };
  else if (gate?.problem) answer = { kind: 'problem', by: await nameOf(db, gate.problem.by), at: gate.problem.at, text: gate.problem.text };
  return {
    releaseId,
    clientId,
    clientName: client.name,
    zone: client.timezone,
    gate: (gate?.state as SignoffView['gate'] | undefined) ?? 'none',
    devices: devices.map((d) => ({ name: d.name, outcome: d.state ? outcomeOf(d.state, d.result) : noRunOutcome(gate?.state), reboots: d.reboots, error: d.error })),
    updates: updates.map((u) => ({ kb: u.kb, words: plainWords(u) })),
    notes,
    answer,
    hold: hold ? { ...hold, by: await nameOf(db, hold.by) } : undefined,
    championIds,
    round: signoffRound(gate),
  };
}

/** The client's conversations for champion traffic (channel, group chat, champions' personal chats; no user's chat). */
export async function clientConversations(db: AppDatabase, clientId: string): Promise<string[]> {
  return championConversations(db, clientId);
}

/** The sign-off card as a notice for each of the client's conversations: a post the first time, an edit after an answer. */
export async function signoffNotice(db: AppDatabase, view: SignoffView, action: 'post' | 'update', version: string): Promise<SignoffCardNotice> {
  return { kind: 'signoff_card', view, action, version, conversations: await clientConversations(db, view.clientId) };
}

/** The broad plan card as a notice (one builder for the pilot's confirmation and the Teams tick). */
function planNotice(db: AppDatabase, releaseId: string, clientId: string, now: Date): Promise<BroadPlanNotice | undefined> {
  return broadPlanNotice(db, releaseId, clientId, now);
}

/** The plan card's outbox rows (for the Teams tick, which queues them with its own). */
export async function planItems(db: AppDatabase, releaseId: string, clientId: string, now: Date): Promise<OutboxItem[]> {
  const notice = await planNotice(db, releaseId, clientId, now);
  return notice ? renderClientCards(notice) : [];
}

export interface AnswerInput {
  actor: Actor;
  releaseId: string;
  clientId: string;
  /** Unique per click (the activity id): a re-sent click is one answer. */
  requestId: string;
}

const NOT_CHAMPION = 'Only this client\u2019s champions can answer its pilot. Nothing was changed.';

type AnswerEvent = Extract<RolloutEvent, { type: 'confirm_pilot' | 'report_problem' }>;

/**
 * One answer, one transaction. The release row first: the engineers' hold and decisions lock it too, so their order
 * is one order (src/use-cases/transaction.ts). Two champions racing for the one confirmation key retry too: the
 * second then finds the gate answered.
 */
async function answer(ctx: UseCaseContext, input: AnswerInput, build: (asker: Asker) => AnswerEvent | PilotResult): Promise<PilotResult> {
  return withTransaction(
    ctx,
    async (tx, after): Promise<PilotResult> => {
      const now = ctx.now();
      const asker = await whoIsAsking(tx, input.actor, input.clientId);
      if (!asker) return { outcome: 'refused', code: 'not_champion', message: NOT_CHAMPION, view: undefined };
      if (!(await lockRelease(tx, input.releaseId))) return { outcome: 'refused', code: 'no_pilot', message: `No release ${input.releaseId} is stored.`, view: undefined };
      const built = build(asker);
      if ('outcome' in built) return { ...built, view: await loadSignoff(tx, input.releaseId, input.clientId) };
      const event = built;
      const before = await loadBook(tx, input.releaseId, true, gatesTouched(event));
      const pilot = before.gates[`pilot/${input.clientId}`];
      if (!pilot) return { outcome: 'refused', code: 'no_pilot', message: `${input.clientId} has no pilot for ${input.releaseId}.`, view: undefined };
      const viewBefore = await loadSignoff(tx, input.releaseId, input.clientId);
      if (event.type === 'confirm_pilot' && viewBefore?.hold && pilot.state === 'awaiting_confirmation') {
        return { outcome: 'refused', code: 'held', message: `The engineers put ${viewBefore.clientName} on hold, so nothing was confirmed.`, view: viewBefore };
      }
      // The problem alert is this module's own (the champion's words, a reply button), not the engine's plain line.
      const gates = await applyGateEvents(tx, input.releaseId, [event], now, { book: before, told: ['alert_engineers'] });
      const t = gates.results[0]!;
      if (t.outcome === 'noop') return { outcome: 'noop', message: t.reason, view: viewBefore };
      if (t.outcome === 'refused') {
        const code = t.code === 'not_allowed' ? 'not_champion' : t.code === 'text_required' ? 'text_required' : 'not_ready';
        return { outcome: 'refused', code, message: code === 'not_champion' ? NOT_CHAMPION : t.message, view: viewBefore };
      }
      after.outbox(gates.outboxIds);
      const view = await recordAnswer(tx, input, asker, event, now);
      const confirmed = gates.book.gates[gateKey('pilot', input.clientId)]?.confirmation?.updates ?? [];
      after.outbox(await tellAnswer(tx, input, asker, event, view, now, confirmed));
      // Last: the audit chain's head is the lock order's last level, held to commit (src/use-cases/transaction.ts).
      await auditAnswer(tx, input, event, asker, now);
      const thanks = event.type === 'confirm_pilot' ? 'Thank you: the tested updates now go to your other machines that need them, in their windows.' : 'Thank you: the engineers have been told and your rollout is on hold.';
      return { outcome: 'applied', message: thanks, view };
    },
    { alsoRetry: isUniqueViolation },
  );
}

const answerKind = (event: AnswerEvent) => (event.type === 'confirm_pilot' ? 'confirm_pilot' : 'report_problem');
const answerText = (event: AnswerEvent) => (event.type === 'report_problem' ? event.text : null);

/** The answer's decision row; returns the card as it now reads. */
async function recordAnswer(tx: AppDatabase, input: AnswerInput, asker: Asker, event: AnswerEvent, now: Date): Promise<SignoffView> {
  const kind = answerKind(event);
  const text = answerText(event);
  await insertDecision(tx, {
    kind,
    releaseId: input.releaseId,
    clientId: input.clientId,
    ring: 'pilot',
    actor: input.actor.id,
    actorPersonId: asker.personId > 0 ? asker.personId : null,
    source: input.actor.platform,
    reason: text,
    detail: { as: asker.kind },
    idempotencyKey: event.id,
    createdAt: now,
  });
  return (await loadSignoff(tx, input.releaseId, input.clientId))!;
}

async function auditAnswer(tx: AppDatabase, input: AnswerInput, event: AnswerEvent, asker: Asker, now: Date): Promise<void> {
  const text = answerText(event);
  await appendAudit(tx, {
    at: now,
    actor: input.actor.id,
    action: `decision.${answerKind(event)}`,
    subject: `rollout:${input.releaseId}:${input.clientId}`,
    source: input.actor.platform,
    detail: { as: asker.kind, ...(text !== null ? { text } : {}) },
  });
}

/**
 * The card edited in the client's conversations, and what follows the answer: a problem goes to the engineers in
 * the champion's words; a confirmation sends the broad plan, and one thread note says who confirmed what and which
 * night the rest start (`confirmed`: the updates this confirmation covered, the pilot gate's after the transition).
 */
async function tellAnswer(tx: AppDatabase, input: AnswerInput, asker: Asker, event: AnswerEvent, view: SignoffView, now: Date, confirmed: readonly string[]): Promise<number[]> {
  const card = await signoffNotice(tx, view, 'update', event.type);
  if (event.type === 'report_problem') return notify(tx, [card, await problemNotice(tx, view, asker, event.text)], now);
  const plan = await planNotice(tx, input.releaseId, input.clientId, now);
  const note = await pilotConfirmed(tx, { releaseId: input.releaseId, clientId: input.clientId, as: asker.kind, by: asker.name, updates: [...confirmed] }, now);
  return notify(tx, [card, ...(plan ? [plan] : []), ...(note ? [note] : [])], now);
}

export { PILOT_REPLY_CHAMPION_ACTION } from '../chat/notices/pilot.ts';

/** A champion's problem for the engineers' thread: their words, and how to reach them in Teams. */
async function problemNotice(tx: AppDatabase, view: SignoffView, asker: Asker, text: string): Promise<PilotNotice> {
  const contact = await teamsContact(tx, asker.personId);
  return { kind: 'pilot_problem_reported', releaseId: view.releaseId, clientId: view.clientId, clientName: view.clientName, reporter: asker.name, contact, text };
}

const asRolloutActor = (asker: Asker, actor: Actor, clientId: string): RolloutActor =>
  asker.kind === 'engineer' ? { kind: 'engineer', id: actor.id } : { kind: 'champion', id: actor.id, clientId };

/** "Everything works": the same confirmation an engineer gives on the client's behalf. */
export function confirmPilot(ctx: UseCaseContext, input: AnswerInput): Promise<PilotResult> {
  return answer(ctx, input, (asker) => ({
    type: 'confirm_pilot',
    // One per gate: however many champions click, only one confirmation can be stored.
    id: `confirm_pilot:${input.releaseId}:${input.clientId}`,
    actor: asRolloutActor(asker, input.actor, input.clientId),
    clientId: input.clientId,
  }));
}

export interface ProblemInput extends AnswerInput {
  text: string;
}

/** "Report a problem": holds the client and tells the engineers, with the champion's words as written. */
export function reportPilotProblem(ctx: UseCaseContext, input: ProblemInput): Promise<PilotResult> {
  const text = input.text.trim();
  return answer(ctx, input, (asker) =>
    text === ''
      ? { outcome: 'refused', code: 'text_required', message: 'Please say what went wrong, so the engineers can look.', view: undefined }
      : {
          type: 'report_problem',
          id: `report_problem:${input.releaseId}:${input.clientId}`,
          actor: asRolloutActor(asker, input.actor, input.clientId),
          clientId: input.clientId,
          text: text.slice(0, 4000),
        },
  );
}
