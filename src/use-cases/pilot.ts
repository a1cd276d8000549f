/**
 * A client's champions answer the pilot: "Everything works" confirms it (and schedules the client's broad ring),
 * "Report a problem" holds the client and tells the engineers. One transaction each, in the same order the
 * engineers' hold takes its locks (the release row first), so a champion's answer and an engineer's hold, or two
 * champions answering at once, serialise and give one outcome. The rules are the rollout domain's
 * (`confirm_pilot`, `report_problem`); this module finds out who is asking and writes what follows.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import { enqueueOutbox, type OutboxItem } from '../db/outbox-repo.ts';
import { loadBook } from '../db/rollout-repo.ts';
import { lockRelease } from '../db/decisions-repo.ts';
import { auditLog, decisions } from '../db/schema.ts';
import { needsNoticeSql } from '../db/notice-repo.ts';
import { gateKey, gatesTouched, type Actor as RolloutActor, type RolloutEvent } from '../domain/rollout.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { noticeHoursOf, plannedWindows } from '../domain/notice.ts';
import { findEngineer, type Actor, type UseCaseContext } from './decisions.ts';
import { championConversations } from '../db/audience-repo.ts';
import { broadWorkByClass } from './audience.ts';
import { confirmationNotice } from './thread-notices.ts';
import { applyGateEvents } from './gates.ts';
import { isUniqueViolation, withTransaction } from './transaction.ts';
import { zoneShort } from '../domain/zone-label.ts';
import { renderPlanCard, renderSignoffCard, signoffText } from '../bot/teams/signoff-card.ts';
import { BLOCK_KIT_LIMITS, escapeMrkdwn, truncateMrkdwn } from '../bot/slack/block-kit.ts';
import { subjects } from '../chat/subjects.ts';

// The view is data the sign-off card renders: its own module, so the card does not import this use-case.
import type { DeviceOutcome, SignoffView } from '../domain/signoff-view.ts';
export type { DeviceOutcome, SignoffView } from '../domain/signoff-view.ts';

export interface PilotResult {
  outcome: 'applied' | 'noop' | 'refused';
  code?: 'not_champion' | 'held' | 'no_pilot' | 'text_required' | 'not_ready';
  message: string;
  view: SignoffView | undefined;
}

export const signoffSubject = subjects.signoff;

interface Asker {
  kind: 'champion' | 'engineer';
  personId: number;
  name: string;
}

/** The asker is one of this client's champions (by their chat identity), an engineer, or nobody we know. */
export async function whoIsAsking(db: AppDatabase, actor: Actor, clientId: string): Promise<Asker | undefined> {
  const [champion] = rowsOf<{ id: number; name: string | null; email: string | null }>(
    await db.execute(sql`select p.id, p.display_name as name, p.email from chat_identities ci
      join people p on p.id = ci.person_id and p.retired_at is null
      join person_roles r on r.person_id = p.id and r.role = 'champion' and r.client_id = ${clientId}
      where ci.platform = ${actor.platform} and ci.external_id = ${actor.id} limit 1`),
  );
  if (champion) return { kind: 'champion', personId: Number(champion.id), name: champion.name ?? champion.email ?? actor.id };
  const engineer = await findEngineer(db, actor);
  if (engineer) {
    const [p] = rowsOf<{ name: string | null }>(await db.execute(sql`select display_name as name from people where id = ${engineer.personId}`));
    return { kind: 'engineer', personId: engineer.personId, name: p?.name ?? actor.id };
  }
  return undefined;
}

/** A person's display name for a platform id (who confirmed, who reported), else the id itself. */
async function nameOf(db: AppDatabase, id: string): Promise<string> {
  if (id === 'system') return 'automatic confirmation';
  const [row] = rowsOf<{ name: string | null; email: string | null }>(
    await db.execute(sql`select p.display_name as name, p.email from chat_identities ci join people p on p.id = ci.person_id
      where ci.external_id = ${id} limit 1`),
  );
  return row?.name ?? row?.email ?? id;
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

/** Everything the sign-off card shows, read from Postgres. */
export async function loadSignoff(db: AppDatabase, releaseId: string, clientId: string): Promise<SignoffView | undefined> {
  const [client] = rowsOf<{ name: string; timezone: string }>(await db.execute(sql`select name, timezone from clients where id = ${clientId}`));
  if (!client) return undefined;
  const book = await loadBook(db, releaseId, false, gatesTouched({ type: 'confirm_pilot', id: '', actor: { kind: 'system' }, clientId }));
  const gate = book.gates[`pilot/${clientId}`];
  const devices = rowsOf<{ name: string; state: string; result: string | null; reboots: number; error: string | null }>(
    await db.execute(sql`select distinct on (d.id) d.name, r.state, r.result, r.reboots, r.error from devices d
      left join runs r on r.device_id = d.id and r.release_id = ${releaseId}
      where d.client_id = ${clientId} and d.ring = 'pilot' and d.retired_at is null
      order by d.id, r.window_start desc nulls last`),
  ).sort((a, b) => a.name.localeCompare(b.name));
  // Exactly what the sign-off asks about (installed on this client's pilots, never a held update), or what the
  // answer covered; never the release as a whole. Nothing installed: nothing listed, and no card is sent.
  // What the card asks about; once answered, what the answer covered. A confirmation on a pilot that a later
  // promotion reopened leaves the gate scheduled, not confirmed: its card must still show what was confirmed.
  const asked = new Set(gate?.asked?.length ? gate.asked : (gate?.confirmation?.updates ?? []));
  const updates = rowsOf<{ update_key: string; kb: string | null; title: string | null; family: string | null; restart: string | null }>(
    await db.execute(sql`select update_key, kb, title, family, restart_required as restart from updates
      where release_id = ${releaseId} and removed_at is null order by update_key`),
  ).filter((u) => asked.has(u.update_key));
  const notes = rowsOf<{ kb: string | null; update_key: string; body: string }>(
    await db.execute(sql`select u.kb, u.update_key, n.body from research_notes n join updates u on u.id = n.update_id
      where u.release_id = ${releaseId} and n.deleted_at is null and n.tags ? 'client-visible' order by n.id`),
  );
  const [hold] = rowsOf<{ placed_by: string; placed_at: unknown; reason: string }>(
    await db.execute(sql`select placed_by, placed_at, reason from holds where released_at is null
      and ((scope = 'client' and client_id = ${clientId}) or scope = 'all') and (release_id is null or release_id = ${releaseId})
      order by placed_at limit 1`),
  );
  const championIds = rowsOf<{ external_id: string }>(
    await db.execute(sql`select distinct ci.external_id from person_roles r join people p on p.id = r.person_id and p.retired_at is null
      join chat_identities ci on ci.person_id = p.id and ci.platform = 'teams'
      where r.role = 'champion' and r.client_id = ${clientId} order by ci.external_id limit 60`),
  ).map((r) => r.external_id);
  let answer: SignoffView['answer'];
  if (gate?.confirmation) answer = { kind: 'confirmed', by: await nameOf(db, gate.confirmation.by), as: gate.confirmation.as, at: gate.confirmation.at };
  else if (gate?.problem) answer = { kind: 'problem', by: await nameOf(db, gate.problem.by), at: gate.problem.at, text: gate.problem.text };
  const toIso = (v: unknown) => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());
  return {
    releaseId,
    clientId,
    clientName: client.name,
    zone: client.timezone,
    gate: (gate?.state as SignoffView['gate'] | undefined) ?? 'none',
    devices: devices.map((d) => ({ name: d.name, outcome: d.state ? outcomeOf(d.state, d.result) : 'waiting', reboots: Number(d.reboots ?? 0), error: d.error })),
    updates: updates.map((u) => ({ kb: u.kb, words: plainWords(u) })),
    notes: notes.map((n) => ({ kb: n.kb ?? n.update_key, body: n.body })),
    answer,
    hold: hold ? { by: await nameOf(db, hold.placed_by), at: toIso(hold.placed_at), reason: hold.reason } : undefined,
    championIds,
    round: (gate?.confirmed ?? []).length > 0 ? [...asked].sort().join('+') : '',
  };
}

/** The client's conversations for champion traffic (channel, group chat, champions' personal chats; no user's chat). */
export async function clientConversations(db: AppDatabase, clientId: string): Promise<string[]> {
  return championConversations(db, clientId);
}

/** The sign-off card for each of the client's conversations: a post the first time, an edit after an answer. */
export async function signoffItems(db: AppDatabase, view: SignoffView, action: 'post' | 'update', version: string): Promise<OutboxItem[]> {
  const card = renderSignoffCard(view);
  const text = signoffText(view);
  return (await clientConversations(db, view.clientId)).map((channel) => ({
    key: `teams:${signoffSubject(view.releaseId, view.clientId)}:${channel}:${action === 'post' ? 'post' : version}${view.round ? `:${view.round}` : ''}`,
    platform: 'teams' as const,
    channel,
    action,
    subject: signoffSubject(view.releaseId, view.clientId),
    payload: { text, card },
  }));
}

/** "Your machines will be patched on these nights": the broad ring's next windows per device class. */
export async function planItems(db: AppDatabase, releaseId: string, clientId: string, now: Date): Promise<OutboxItem[]> {
  const [client] = rowsOf<{ name: string; timezone: string; windows: Record<string, string>; notice_hours: string | null }>(
    await db.execute(sql`select name, timezone, windows, settings ->> 'noticeHours' as notice_hours from clients where id = ${clientId}`),
  );
  if (!client) return [];
  // Only machines with something to install: no plan (no "save your work") for a broad ring with nothing to do.
  const work = await broadWorkByClass(db, releaseId, clientId);
  if (work.size === 0) return [];
  const withUsers = new Set(
    rowsOf<{ class: string }>(
      // Users a standing waiver covers are not waited for: their machines start in their windows like servers.
      await db.execute(sql`select distinct d.class from devices d where d.client_id = ${clientId} and d.ring = 'broad' and d.retired_at is null and ${needsNoticeSql(now)}`),
    ).map((r) => r.class),
  );
  const classes = [...work].sort(([a], [b]) => a.localeCompare(b)).map(([c, n]) => ({ class: c, n, users: withUsers.has(c) }));
  const notice = noticeHoursOf({ noticeHours: client.notice_hours === null ? undefined : Number(client.notice_hours) });
  const groups = classes.flatMap((c) => {
    const spec = client.windows[c.class];
    const parsed = spec ? parseWindowSpec(spec) : undefined;
    if (!parsed?.ok) return [];
    // A class with users starts only in a window they can still be told about (no unwarned reboot).
    const nights = plannedWindows(parsed.value, client.timezone, now, c.users ? notice : null, 3).map(
      (w) => `${w.start.setZone(client.timezone).toFormat('ccc d LLL, HH:mm')}–${w.end.setZone(client.timezone).toFormat('HH:mm')} ${zoneShort(w.end.setZone(client.timezone))}`,
    );
    return [{ deviceClass: c.class, count: Number(c.n), nights }];
  });
  const card = renderPlanCard({ releaseId, clientName: client.name, groups });
  const text = `${releaseId}: your machines will be patched on these nights. Save your work and leave your computer on.`;
  return (await clientConversations(db, clientId)).map((channel) => ({
    key: `teams:plan:${releaseId}:${clientId}:${channel}`,
    platform: 'teams' as const,
    channel,
    action: 'post' as const,
    subject: subjects.plan(releaseId, clientId),
    payload: { text, card },
  }));
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
      after.outbox(await enqueueOutbox(tx, await answerItems(tx, input, asker, event, view, now, confirmed), now));
      const thanks = event.type === 'confirm_pilot' ? 'Thank you: the rest of your machines are scheduled.' : 'Thank you: the engineers have been told and your rollout is on hold.';
      return { outcome: 'applied', message: thanks, view };
    },
    { alsoRetry: isUniqueViolation },
  );
}

/** The answer's decision and audit rows; returns the card as it now reads. */
async function recordAnswer(tx: AppDatabase, input: AnswerInput, asker: Asker, event: AnswerEvent, now: Date): Promise<SignoffView> {
  const kind = event.type === 'confirm_pilot' ? 'confirm_pilot' : 'report_problem';
  const text = event.type === 'report_problem' ? event.text : null;
  await tx.insert(decisions).values({
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
  await tx.insert(auditLog).values({
    at: now,
    actor: input.actor.id,
    action: `decision.${kind}`,
    subject: `rollout:${input.releaseId}:${input.clientId}`,
    source: input.actor.platform,
    detail: { as: asker.kind, ...(text !== null ? { text } : {}) },
  });
  return (await loadSignoff(tx, input.releaseId, input.clientId))!;
}

/** The card edited in the client's conversations, and what follows the answer for the client and the engineers. */
/** `confirmed`: the updates this confirmation covered (the pilot gate's confirmation after the transition). */
async function answerItems(tx: AppDatabase, input: AnswerInput, asker: Asker, event: AnswerEvent, view: SignoffView, now: Date, confirmed: readonly string[]): Promise<OutboxItem[]> {
  const items = await signoffItems(tx, view, 'update', event.type);
  if (event.type === 'report_problem') return [...items, ...(await problemAlert(tx, view, asker, event.text))];
  return [
    ...items,
    ...(await planItems(tx, input.releaseId, input.clientId, now)),
    // One thread note: who confirmed, what, and which night the rest of the client's machines start.
    ...(await confirmationNotice(tx, { releaseId: input.releaseId, clientId: input.clientId, as: asker.kind, by: asker.name, updates: [...confirmed] }, now)),
  ];
}

/** A link button; the Slack app only acks its click (Slack sends one even for a `url` button). */
export const PILOT_REPLY_CHAMPION_ACTION = 'pilot_reply_champion';

/** The engineers' thread for the release gets the problem, as written, with a way to reply to the champion. */
async function problemAlert(tx: AppDatabase, view: SignoffView, asker: Asker, text: string): Promise<OutboxItem[]> {
  const channel = rowsOf<{ channel: string }>(await tx.execute(sql`select channel from msp where id = 1`))[0]?.channel;
  if (!channel) return [];
  const [contact] = rowsOf<{ email: string | null; upn: string | null }>(
    await tx.execute(sql`select p.email, ci.upn from people p left join chat_identities ci on ci.person_id = p.id and ci.platform = 'teams'
      where p.id = ${asker.personId} limit 1`),
  );
  const who = contact?.upn ?? contact?.email;
  const headline = `:warning: ${escapeMrkdwn(view.clientName)} reported a pilot problem with ${escapeMrkdwn(view.releaseId)}; the client is on hold.`;
  const quote = `*${escapeMrkdwn(asker.name)}* wrote:\n>${escapeMrkdwn(text).replace(/\n/g, '\n>')}`;
  const blocks: unknown[] = [
    // Cut after escaping and quoting: both lengthen the text, and it is the result that must fit the section.
    { type: 'section', text: { type: 'mrkdwn', text: truncateMrkdwn(`${headline}\n${quote}`, BLOCK_KIT_LIMITS.sectionText) } },
    ...(who
      ? [
          {
            type: 'actions',
            elements: [
              {
                type: 'button',
                action_id: PILOT_REPLY_CHAMPION_ACTION,
                text: { type: 'plain_text', text: `Reply to ${asker.name}`.slice(0, 75) },
                // A Teams deep link opens a chat with the champion: the reply is a person's, not the bot's.
                url: `https://teams.microsoft.com/l/chat/0/0?users=${encodeURIComponent(who)}`,
                value: JSON.stringify({ release: view.releaseId, client: view.clientId }),
              },
            ],
          },
        ]
      : []),
  ];
  return [
    {
      key: subjects.pilotProblem(view.releaseId, view.clientId),
      platform: 'slack',
      channel,
      action: 'post',
      subject: subjects.pilotProblem(view.releaseId, view.clientId),
      payload: { text: escapeMrkdwn(`${view.clientName} reported a pilot problem with ${view.releaseId}: ${text.slice(0, 500)}`), blocks, threadSubject: subjects.digest(view.releaseId) },
    },
  ];
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
