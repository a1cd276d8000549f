/**
 * An end user answers their "save your work tonight" DM, from Slack or Teams. One transaction each: lock the DM
 * row, check the one person it was sent to is the one pressing, then write the answer, the decision and audit
 * rows, and the notices (the DM edited to show the answer; over the deferral limit, a note to the engineers).
 *
 * "I need it tonight" pre-inserts each named device's run for tonight's window in state `rolled`
 * (detail.deferred, rolled_to = the device's next window): the rollout sweep inserts with ON CONFLICT (device,
 * window_start) DO NOTHING, so tonight plans nothing for those devices, and they are planned as usual next window.
 */
import { DateTime } from 'luxon';
import { latestDmQueueTime, noticeHoursOf } from '../domain/notice.ts';
import { answerLine, deferral } from '../domain/user-dm.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { nextWindow } from '../domain/windows.ts';
import { appendAudit } from '../db/audit-repo.ts';
import type { AppDatabase } from '../db/client.ts';
import {
  clientSettings,
  deferralsUsed,
  deviceWindows,
  insertDeferredRun,
  loadDm,
  personLabel,
  recordDmAnswer,
  recordDmDecision,
  recordSlackDmMessage,
  type DmDecision,
  type StoredDm,
} from '../db/user-dm-repo.ts';
import { notify } from '../chat/notify.ts';
import type { UserDmNotice } from '../chat/notices/user-dms.ts';
import { subjects } from '../chat/subjects.ts';
import { withTransaction, type UseCaseContext } from './transaction.ts';

export type DmAnswer = 'ok' | 'defer';

export interface DmAnswerResult {
  outcome: 'applied' | 'noop' | 'refused';
  code?: 'no_such_dm' | 'not_yours' | 'already_answered' | 'too_late';
  /** For the person who pressed (shown only to them). */
  message: string;
  answer?: 'ok' | 'defer' | 'escalated';
}

export interface DmAnswerInput {
  actor: { platform: 'slack' | 'teams'; id: string };
  dmId: number;
  answer: DmAnswer;
  /** Slack: where the clicked message really lives (the D… channel and its ts), so the edit finds it. */
  messageRef?: { channel: string; ts: string } | undefined;
}

export const dmSubject = (dm: Pick<StoredDm, 'key'>): string => subjects.userDm(dm.key);

/** What an answer did: the answer stored, the new window of a deferral, and anything the engineers are told. */
interface Answered {
  answer: 'ok' | 'defer' | 'escalated';
  deferredTo?: Date | undefined;
  notices: UserDmNotice[];
}

/** Everything the steps write is by this person, about this DM, at this moment. */
interface Answering {
  tx: AppDatabase;
  dm: StoredDm;
  actor: DmAnswerInput['actor'];
  now: Date;
}

export async function answerUserDm(ctx: UseCaseContext, input: DmAnswerInput): Promise<DmAnswerResult> {
  const now = ctx.now();
  return withTransaction(ctx, async (tx, after): Promise<DmAnswerResult> => {
    const dm = await loadDm(tx, input.dmId, true);
    if (!dm || dm.kind !== 'tonight') return { outcome: 'refused', code: 'no_such_dm', message: 'This message is no longer known to patchbay. Nothing was changed.' };
    const refused = refusal(dm, input, now);
    if (refused) return refused;
    const answering: Answering = { tx, dm, actor: input.actor, now };
    const done = input.answer === 'ok' ? await acknowledge(answering) : await putOff(answering);
    await recordDmAnswer(tx, dm.id, done.answer, now);
    const line = answerLine(done.answer, now, dm.zone, done.deferredTo, dm.devices.length);
    const channel = await dmChannel(answering, input.messageRef);
    const edit: UserDmNotice = { kind: 'user_dm_answered', dmId: dm.id, key: dm.key, platform: dm.platform, channel, text: dm.text, answerLine: line };
    after.outbox(await notify(tx, [edit, ...done.notices], now));
    return { outcome: 'applied', message: line, answer: done.answer };
  });
}

/**
 * Why this press changes nothing: not the recipient's, answered before, a deferral after the window opened, or any
 * answer after it ended.
 */
function refusal(dm: StoredDm, input: DmAnswerInput, now: Date): DmAnswerResult | undefined {
  // The only check that matters: the platform's id of who pressed against who the DM was sent to.
  if (dm.platform !== input.actor.platform || dm.recipient !== input.actor.id) {
    return { outcome: 'refused', code: 'not_yours', message: 'These buttons are for the person this message was sent to. Nothing was changed.' };
  }
  if (dm.answer !== null) {
    const same = dm.answer === input.answer || (dm.answer === 'escalated' && input.answer === 'defer');
    return same
      ? { outcome: 'noop', message: 'Already done.', answer: dm.answer as DmAnswerResult['answer'] }
      : { outcome: 'refused', code: 'already_answered', message: 'You already answered this message. Ask your IT team if plans changed.' };
  }
  // A card stays in the chat for days. Pressed the next morning, "already started" would read as "it is on now", and
  // an OK would put on record a warning taken after the restart it was about.
  const lastEnd = Math.max(...dm.devices.map((d) => Date.parse(d.windowEnd)));
  if (dm.devices.length > 0 && now.getTime() >= lastEnd) {
    const left = input.answer === 'defer' ? 'nothing left to put off' : 'nothing left to confirm';
    return { outcome: 'refused', code: 'too_late', message: `That window is over, so there is ${left}. Nothing was changed.` };
  }
  const firstStart = Math.min(...dm.devices.map((d) => Date.parse(d.windowStart)));
  if (input.answer === 'defer' && now.getTime() >= firstStart) {
    return { outcome: 'refused', code: 'too_late', message: 'The window has already started, so it can no longer be put off. Ask your IT team.' };
  }
  return undefined;
}

async function acknowledge(a: Answering): Promise<Answered> {
  const { dm } = a;
  const devices = dm.devices.map((d) => d.name);
  await decide(a, { kind: 'acknowledge', key: `userdm:${dm.id}:ok`, deviceId: null, releaseId: dm.releaseId, detail: { dmId: dm.id, night: dm.night, devices } });
  await audit(a, 'user_dm.ok', { dmId: dm.id, devices });
  return { answer: 'ok', notices: [] };
}

/** Within the client's deferral limit the devices move to their next window; past it the engineers decide. */
async function putOff(a: Answering): Promise<Answered> {
  const { tx, dm } = a;
  const settings = (await clientSettings(tx)).get(dm.clientId);
  const verdict = deferral(await deferralsUsed(tx, dm.personId, dm.releaseId, dm.id), settings?.settings.maxDeferralsPerRelease);
  const devices = dm.devices.map((d) => d.name);
  if (!verdict.allowed) {
    await audit(a, 'user_dm.defer_refused', { dmId: dm.id, devices, used: verdict.used });
    const personName = await personLabel(tx, dm.personId);
    return { answer: 'escalated', notices: [{ kind: 'user_dm_escalated', dmId: dm.id, clientId: dm.clientId, personName, devices, used: verdict.used }] };
  }
  const deferredTo = await deferDevices(a, noticeHoursOf(settings?.settings), verdict.used);
  await audit(a, 'user_dm.defer', { dmId: dm.id, devices, deferral: verdict.used, left: verdict.left, rolledTo: deferredTo?.toISOString() });
  return { answer: 'defer', deferredTo, notices: [] };
}

/** Rolls each device's run to the next window its user can still be told about; the earliest such window. */
async function deferDevices(a: Answering, noticeHours: number, deferral: number): Promise<Date | undefined> {
  const { tx, dm, actor, now } = a;
  const windows = await deviceWindows(tx, dm.devices.map((d) => d.deviceId));
  let deferredTo: Date | undefined;
  for (const d of dm.devices) {
    const w = windows.get(d.deviceId);
    const nextStart = w ? nextTellableStart(w, d.windowStart, noticeHours, now) : undefined;
    if (!nextStart) continue;
    if (!deferredTo || nextStart < deferredTo) deferredTo = nextStart;
    await insertDeferredRun(tx, d, nextStart, { deferred: true, reason: 'deferred_by_user', by: actor.id, dmId: dm.id }, now);
    const detail = { dmId: dm.id, night: dm.night, windowStart: d.windowStart, rolledTo: nextStart.toISOString(), deferral };
    await decide(a, { kind: 'defer', key: `userdm:${dm.id}:defer:${d.deviceId}`, deviceId: d.deviceId, releaseId: d.releaseId, detail });
  }
  return deferredTo;
}

/** The next window after `after` its user can still be told about: that is when it runs, so that is what they read. */
function nextTellableStart(w: { spec: string | null; zone: string }, after: string, noticeHours: number, now: Date): Date | undefined {
  const rule = w.spec ? parseWindowSpec(w.spec) : undefined;
  if (!rule?.ok) return undefined;
  let next = nextWindow(rule.value, w.zone, DateTime.fromISO(after, { zone: w.zone }));
  while (latestDmQueueTime(next.start.toJSDate(), noticeHours).getTime() < now.getTime()) next = nextWindow(rule.value, w.zone, next.start);
  return next.start.toJSDate();
}

/**
 * The edit goes where the DM really is: on Slack the clicked message's channel (D…), recorded here if the
 * deliverer recorded the post under the user id it was addressed to.
 */
async function dmChannel(a: Answering, messageRef: DmAnswerInput['messageRef']): Promise<string> {
  if (a.dm.platform !== 'slack' || !messageRef) return a.dm.channel;
  await recordSlackDmMessage(a.tx, messageRef, dmSubject(a.dm), a.now);
  return messageRef.channel;
}

async function decide(a: Answering, d: Pick<DmDecision, 'kind' | 'key' | 'deviceId' | 'releaseId' | 'detail'>): Promise<void> {
  await recordDmDecision(a.tx, { ...d, clientId: a.dm.clientId, actor: a.actor.id, personId: a.dm.personId, source: a.actor.platform }, a.now);
}

async function audit(a: Answering, action: string, detail: Record<string, unknown>): Promise<void> {
  await appendAudit(a.tx, { at: a.now, actor: a.actor.id, action, subject: dmSubject(a.dm), detail, source: a.actor.platform });
}
