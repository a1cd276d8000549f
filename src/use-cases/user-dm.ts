/**
 * An end user answers their "save your work tonight" DM, from Slack or Teams. One transaction each: lock the DM
 * row, check the one person it was sent to is the one pressing, then write the answer, the decision and audit
 * rows, and the outbox rows (the DM edited to show the answer; over the deferral limit, a note to the engineers).
 *
 * "I need it tonight" pre-inserts each named device's run for tonight's window in state `rolled`
 * (detail.deferred, rolled_to = the device's next window): the rollout sweep inserts with ON CONFLICT (device,
 * window_start) DO NOTHING, so tonight plans nothing for those devices, and they are planned as usual next window.
 */
import { sql } from 'drizzle-orm';
import { DateTime } from 'luxon';
import { latestDmQueueTime, noticeHoursOf } from '../domain/notice.ts';
import { answerLine, deferral, listNames } from '../domain/user-dm.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { nextWindow } from '../domain/windows.ts';
import { rowsOf } from '../db/client.ts';
import { enqueueOutbox, type OutboxItem } from '../db/outbox-repo.ts';
import { clientSettings, deferralsUsed, deviceWindows, engineersChannel, loadDm, type StoredDm } from '../db/user-dm-repo.ts';
import { userDmPayload } from '../bot/user-dm-render.ts';
import { withTransaction, type UseCaseContext } from './transaction.ts';
import { subjects } from '../chat/subjects.ts';

export type DmAnswer = 'ok' | 'defer';

export interface DmAnswerResult {
  outcome: 'applied' | 'noop' | 'refused';
  code?: 'no_such_dm' | 'not_yours' | 'already_answered' | 'too_late';
  /** For the person who pressed (shown only to them). */
  message: string;
  answer?: 'ok' | 'defer' | 'escalated';
}

export const dmSubject = (dm: Pick<StoredDm, 'key'>): string => subjects.userDm(dm.key);

export async function answerUserDm(
  ctx: UseCaseContext,
  input: {
    actor: { platform: 'slack' | 'teams'; id: string };
    dmId: number;
    answer: DmAnswer;
    /** Slack: where the clicked message really lives (the D… channel and its ts), so the edit finds it. */
    messageRef?: { channel: string; ts: string } | undefined;
  },
): Promise<DmAnswerResult> {
  const now = ctx.now();
  return withTransaction(ctx, async (tx, after): Promise<DmAnswerResult> => {
    const dm = await loadDm(tx, input.dmId, true);
    if (!dm || dm.kind !== 'tonight') return { outcome: 'refused', code: 'no_such_dm', message: 'This message is no longer known to patchbay. Nothing was changed.' };
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
    const firstStart = Math.min(...dm.devices.map((d) => Date.parse(d.windowStart)));
    if (input.answer === 'defer' && now.getTime() >= firstStart) {
      return { outcome: 'refused', code: 'too_late', message: 'The window has already started, so it can no longer be put off. Ask your IT team.' };
    }

    const actor = input.actor.id;
    const source = input.actor.platform;
    const at = now.toISOString();
    const decision = async (kind: 'acknowledge' | 'defer', key: string, deviceId: number | null, releaseId: string | null, detail: Record<string, unknown>) => {
      await tx.execute(sql`insert into decisions (kind, release_id, client_id, device_id, actor, actor_person_id, source, detail, idempotency_key, created_at)
        values (${kind}, ${releaseId}, ${dm.clientId}, ${deviceId}, ${actor}, ${dm.personId}, ${source}, ${JSON.stringify(detail)}::jsonb, ${key}, ${at}::timestamptz)
        on conflict (idempotency_key) do nothing`);
    };
    const audit = async (action: string, detail: Record<string, unknown>) => {
      await tx.execute(sql`insert into audit_log (at, actor, action, subject, detail, source)
        values (${at}::timestamptz, ${actor}, ${action}, ${dmSubject(dm)}, ${JSON.stringify(detail)}::jsonb, ${source})`);
    };

    let answer: 'ok' | 'defer' | 'escalated';
    let deferredTo: Date | undefined;
    const extra: OutboxItem[] = [];
    if (input.answer === 'ok') {
      answer = 'ok';
      await decision('acknowledge', `userdm:${dm.id}:ok`, null, dm.releaseId, { dmId: dm.id, night: dm.night, devices: dm.devices.map((d) => d.name) });
      await audit('user_dm.ok', { dmId: dm.id, devices: dm.devices.map((d) => d.name) });
    } else {
      const settings = (await clientSettings(tx)).get(dm.clientId);
      const verdict = deferral(await deferralsUsed(tx, dm.personId, dm.releaseId, dm.id), settings?.settings.maxDeferralsPerRelease);
      if (verdict.allowed) {
        answer = 'defer';
        const notice = noticeHoursOf(settings?.settings);
        const windows = await deviceWindows(tx, dm.devices.map((d) => d.deviceId));
        for (const d of dm.devices) {
          const w = windows.get(d.deviceId);
          const rule = w?.spec ? parseWindowSpec(w.spec) : undefined;
          if (!w || !rule?.ok) continue;
          // The next window its user can still be told about: that is when it runs, so that is what they read.
          let next = nextWindow(rule.value, w.zone, DateTime.fromISO(d.windowStart, { zone: w.zone }));
          while (latestDmQueueTime(next.start.toJSDate(), notice).getTime() < now.getTime()) next = nextWindow(rule.value, w.zone, next.start);
          const nextStart = next.start.toJSDate();
          if (!deferredTo || nextStart < deferredTo) deferredTo = nextStart;
          const detail = { deferred: true, reason: 'deferred_by_user', by: actor, dmId: dm.id };
          await tx.execute(sql`insert into runs (device_id, release_id, rollout_id, window_start, window_end, state, step, updates, result, detail, rolled_to, scheduled_at, finished_at, updated_at)
            values (${d.deviceId}, ${d.releaseId}, ${d.rolloutId}, ${d.windowStart}::timestamptz, ${d.windowEnd}::timestamptz, 'rolled', 'record',
              ${JSON.stringify(d.updates)}::jsonb, 'deferred', ${JSON.stringify(detail)}::jsonb, ${nextStart.toISOString()}::timestamptz, ${at}::timestamptz, ${at}::timestamptz, ${at}::timestamptz)
            on conflict (device_id, window_start) do nothing`);
          await decision('defer', `userdm:${dm.id}:defer:${d.deviceId}`, d.deviceId, d.releaseId, { dmId: dm.id, night: dm.night, windowStart: d.windowStart, rolledTo: nextStart.toISOString(), deferral: verdict.used });
        }
        await audit('user_dm.defer', { dmId: dm.id, devices: dm.devices.map((d) => d.name), deferral: verdict.used, left: verdict.left, rolledTo: deferredTo?.toISOString() });
      } else {
        answer = 'escalated';
        await audit('user_dm.defer_refused', { dmId: dm.id, devices: dm.devices.map((d) => d.name), used: verdict.used });
        const channel = await engineersChannel(tx);
        const [who] = rowsOf<{ email: string | null; display_name: string | null }>(await tx.execute(sql`select email, display_name from people where id = ${dm.personId}`));
        if (channel) {
          const name = who?.display_name ?? who?.email ?? `person ${dm.personId}`;
          const clientWord = dm.clientId ?? 'the MSP';
          extra.push({
            key: subjects.userDmEscalated(dm.id),
            channel,
            action: 'post',
            subject: subjects.userDmEscalated(dm.id),
            payload: {
              text: `${escapeForEngineers(name)} (${escapeForEngineers(clientWord)}) asked to put off ${escapeForEngineers(listNames(dm.devices.map((d) => d.name)))} tonight, past the limit of ${verdict.used} deferrals this release. They stay in tonight\u2019s window unless you hold them (\`/patch hold ${escapeForEngineers(dm.clientId ?? 'KB')} REASON\`).`,
            },
          });
        }
      }
    }
    await tx.execute(sql`update user_dms set answer = ${answer}, answered_at = ${at}::timestamptz where id = ${dm.id}`);
    const line = answerLine(answer, now, dm.zone, deferredTo);
    // The edit goes where the DM really is: on Slack the clicked message's channel (D…), recorded here if the
    // deliverer recorded the post under the user id it was addressed to.
    let channel = dm.channel;
    if (dm.platform === 'slack' && input.messageRef) {
      channel = input.messageRef.channel;
      await tx.execute(sql`insert into chat_messages (platform, channel, message_id, subject, created_at, updated_at)
        values ('slack', ${channel}, ${input.messageRef.ts}, ${dmSubject(dm)}, ${at}::timestamptz, ${at}::timestamptz) on conflict do nothing`);
    }
    const outboxIds = await enqueueOutbox(
      tx,
      [
        { key: `userdm:${dm.id}:answered`, platform: dm.platform, channel, action: 'update', subject: dmSubject(dm), payload: userDmPayload(dm.platform, { dmId: dm.id, text: dm.text, answerLine: line }) },
        ...extra,
      ],
      now,
    );
    after.outbox(outboxIds);
    return { outcome: 'applied', message: line, answer };
  });
}

function escapeForEngineers(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
