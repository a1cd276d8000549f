/**
 * What the sweep needs to keep a promise to end users: for devices with a user and a window about to get runs,
 * whether that user was sent a "save your work" DM naming that window (and when the platform took it), or
 * answered one. The rule itself (how many hours is enough) is src/domain/notice.ts.
 */
import { sql } from 'drizzle-orm';
import { noticeHoursOf, warnedInTime, type NoticeEvidence } from '../domain/notice.ts';
import { rowsOf, type AppDatabase } from './client.ts';

export interface UserDevice {
  deviceId: number;
  userEmail: string;
  /** The owner's `noticeHours` setting; undefined when unset (the MSP's own machines, or left out). */
  noticeHours: number | undefined;
}

/** Which of these devices have a user, with their owner's notice setting. */
export async function userDevices(db: AppDatabase, deviceIds: readonly number[]): Promise<Map<number, UserDevice>> {
  if (deviceIds.length === 0) return new Map();
  const rows = rowsOf<{ id: number; user_email: string; notice_hours: string | null }>(
    await db.execute(sql`select d.id, d.user_email, c.settings ->> 'noticeHours' as notice_hours
      from devices d left join clients c on c.id = d.client_id
      where d.user_email is not null and d.id in (select jsonb_array_elements_text(${JSON.stringify(deviceIds)}::jsonb)::int)`),
  );
  return new Map(
    rows.map((r) => [Number(r.id), { deviceId: Number(r.id), userEmail: String(r.user_email), noticeHours: r.notice_hours === null ? undefined : Number(r.notice_hours) }]),
  );
}

/**
 * For each (device, window start) asked about: the earliest time the platform took a DM to the device's user that
 * names a device in that window, and whether the user answered one. A DM counts for its person, not only for the
 * devices it listed: whoever was told to save their work for that window was told.
 */
export async function noticeEvidence(db: AppDatabase, pairs: ReadonlyArray<{ deviceId: number; windowStart: string }>): Promise<Map<string, NoticeEvidence>> {
  const out = new Map<string, NoticeEvidence>();
  if (pairs.length === 0) return out;
  const rows = rowsOf<{ device_id: number; window_ms: string | number; sent_ms: string | number | null; answered: boolean }>(
    await db.execute(sql`with want as (
        select (x ->> 'deviceId')::int as device_id, (x ->> 'windowStart')::timestamptz as window_start from jsonb_array_elements(${JSON.stringify(pairs)}::jsonb) x),
      told as (
        select w.device_id, w.window_start, o.sent_at, u.answer
          from want w join devices d on d.id = w.device_id
            join people p on lower(p.email) = lower(d.user_email)
            join user_dms u on u.person_id = p.id and u.kind = 'tonight'
              and exists (select 1 from jsonb_array_elements(u.devices) e where (e ->> 'windowStart')::timestamptz = w.window_start)
            left join chat_outbox o on o.idempotency_key = 'userdm:' || u.key and o.state = 'sent')
      select device_id, (extract(epoch from window_start) * 1000)::bigint as window_ms, (extract(epoch from min(sent_at)) * 1000)::bigint as sent_ms,
          bool_or(answer is not null) as answered
        from told group by device_id, window_start`),
  );
  for (const r of rows) {
    const sentAt = r.sent_ms === null ? null : new Date(Number(r.sent_ms));
    out.set(noticeKey(Number(r.device_id), new Date(Number(r.window_ms)).toISOString()), { sentAt, answered: Boolean(r.answered) });
  }
  return out;
}

export const noticeKey = (deviceId: number, windowStart: string): string => `${deviceId} ${Date.parse(windowStart)}`;

export interface UnwarnedRun {
  runId: number;
  deviceId: number;
  windowStart: string;
}

/**
 * Runs that broke the promise: a run planned for work (not a user's deferral, not a device passed over) on a
 * device with a user, where by the time it was planned that user had neither been sent a DM for its window at
 * least the owner's notice hours before it opened, nor answered one. For checks from outside (tests, an audit):
 * the same evidence the sweep reads, judged with the same rule, in time order.
 */
export async function unwarnedRuns(db: AppDatabase): Promise<UnwarnedRun[]> {
  const rows = rowsOf<{ id: number; device_id: number; window_ms: string | number; notice_hours: string | null; sent_ms: string | number | null; answered: boolean }>(
    await db.execute(sql`select r.id, r.device_id, (extract(epoch from r.window_start) * 1000)::bigint as window_ms, c.settings ->> 'noticeHours' as notice_hours,
        (extract(epoch from min(o.sent_at)) * 1000)::bigint as sent_ms, coalesce(bool_or(u.answered_at <= r.scheduled_at), false) as answered
      from runs r join devices d on d.id = r.device_id and d.user_email is not null
        left join clients c on c.id = d.client_id
        left join people p on lower(p.email) = lower(d.user_email)
        left join user_dms u on u.person_id = p.id and u.kind = 'tonight'
          and exists (select 1 from jsonb_array_elements(u.devices) e where (e ->> 'windowStart')::timestamptz = r.window_start)
        left join chat_outbox o on o.idempotency_key = 'userdm:' || u.key and o.state = 'sent'
      where r.state <> 'skipped' and coalesce(r.detail ->> 'deferred', 'false') <> 'true'
      group by r.id, r.device_id, r.window_start, c.settings`),
  );
  return rows
    .filter((r) => {
      const evidence = { sentAt: r.sent_ms === null ? null : new Date(Number(r.sent_ms)), answered: Boolean(r.answered) };
      return !warnedInTime(evidence, new Date(Number(r.window_ms)), noticeHoursOf({ noticeHours: r.notice_hours === null ? undefined : Number(r.notice_hours) }));
    })
    .map((r) => ({ runId: Number(r.id), deviceId: Number(r.device_id), windowStart: new Date(Number(r.window_ms)).toISOString() }));
}
