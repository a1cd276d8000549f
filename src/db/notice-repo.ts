/**
 * What the sweep needs to keep a promise to end users: for devices with a user and a window about to get runs,
 * whether that user was sent a "save your work" DM naming that window (and when the platform took it), or
 * answered one. The rule itself (how many hours is enough) is src/domain/notice.ts.
 */
import { sql, type SQL } from 'drizzle-orm';
import { noticeHoursOf, waiverFor, warnedInTime, type NoticeEvidence, type NoticeWaiver, type WaiverScope } from '../domain/notice.ts';
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
 * devices it listed: whoever was told to save their work for that window was told. With `at`, also whether an
 * engineer's waiver in force at `at` covers the device (the sweep passes its now).
 */
export async function noticeEvidence(db: AppDatabase, pairs: ReadonlyArray<{ deviceId: number; windowStart: string }>, at?: Date): Promise<Map<string, NoticeEvidence>> {
  const out = new Map<string, NoticeEvidence>();
  if (pairs.length === 0) return out;
  if (at) {
    const waivers = await noticeWaivers(db, at);
    if (waivers.length > 0) {
      const subjects = await waiverSubjects(db, [...new Set(pairs.map((p) => p.deviceId))]);
      for (const p of pairs) {
        const subject = subjects.get(p.deviceId);
        if (subject && waiverFor(waivers, subject, at)) out.set(noticeKey(p.deviceId, p.windowStart), { sentAt: null, answered: false, waived: true });
      }
    }
  }
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
    const key = noticeKey(Number(r.device_id), new Date(Number(r.window_ms)).toISOString());
    out.set(key, { sentAt, answered: Boolean(r.answered), ...(out.get(key)?.waived ? { waived: true } : {}) });
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
  const waivers = await noticeWaivers(db);
  const rows = rowsOf<{
    id: number;
    device_id: number;
    name: string;
    client_id: string | null;
    user_email: string;
    scheduled_ms: string | number;
    window_ms: string | number;
    notice_hours: string | null;
    sent_ms: string | number | null;
    answered: boolean;
  }>(
    await db.execute(sql`select r.id, r.device_id, d.name, d.client_id, d.user_email, (extract(epoch from r.scheduled_at) * 1000)::bigint as scheduled_ms,
        (extract(epoch from r.window_start) * 1000)::bigint as window_ms, c.settings ->> 'noticeHours' as notice_hours,
        (extract(epoch from min(o.sent_at)) * 1000)::bigint as sent_ms, coalesce(bool_or(u.answered_at <= r.scheduled_at), false) as answered
      from runs r join devices d on d.id = r.device_id and d.user_email is not null
        left join clients c on c.id = d.client_id
        left join people p on lower(p.email) = lower(d.user_email)
        left join user_dms u on u.person_id = p.id and u.kind = 'tonight'
          and exists (select 1 from jsonb_array_elements(u.devices) e where (e ->> 'windowStart')::timestamptz = r.window_start)
        left join chat_outbox o on o.idempotency_key = 'userdm:' || u.key and o.state = 'sent'
      where r.state <> 'skipped' and coalesce(r.detail ->> 'deferred', 'false') <> 'true'
      group by r.id, r.device_id, d.name, d.client_id, d.user_email, r.scheduled_at, r.window_start, c.settings`),
  );
  return rows
    .filter((r) => {
      // A waiver counts when it was in force as the run was planned: the same moment the sweep judged it at.
      const waived = waiverFor(waivers, { name: r.name, userEmail: r.user_email, clientId: r.client_id }, new Date(Number(r.scheduled_ms))) !== undefined;
      const evidence = { sentAt: r.sent_ms === null ? null : new Date(Number(r.sent_ms)), answered: Boolean(r.answered), waived };
      return !warnedInTime(evidence, new Date(Number(r.window_ms)), noticeHoursOf({ noticeHours: r.notice_hours === null ? undefined : Number(r.notice_hours) }));
    })
    .map((r) => ({ runId: Number(r.id), deviceId: Number(r.device_id), windowStart: new Date(Number(r.window_ms)).toISOString() }));
}

/** Waivers in force at `at` (or ever made, without it; revoked ones carry their revocation), oldest first. */
export async function noticeWaivers(db: AppDatabase, at?: Date): Promise<NoticeWaiver[]> {
  const rows = rowsOf<{ id: number; scope: WaiverScope; target: string; reason: string; actor: string; created_at: unknown; revoked_at: unknown }>(
    await db.execute(sql`select id, scope, target, reason, actor, created_at, revoked_at from notice_waivers
      ${at ? sql`where created_at <= ${at.toISOString()}::timestamptz and (revoked_at is null or revoked_at > ${at.toISOString()}::timestamptz)` : sql``}
      order by created_at, id`),
  );
  return rows.map((r) => ({
    id: Number(r.id),
    scope: r.scope,
    target: r.target,
    reason: r.reason,
    by: r.actor,
    at: toDate(r.created_at)!,
    revokedAt: toDate(r.revoked_at),
  }));
}

function toDate(v: unknown): Date | null {
  if (v === null || v === undefined) return null;
  return v instanceof Date ? v : new Date(String(v));
}

/** What a waiver is matched against, per device: its name, user and owner. */
async function waiverSubjects(db: AppDatabase, deviceIds: readonly number[]): Promise<Map<number, { name: string; userEmail: string | null; clientId: string | null }>> {
  const rows = rowsOf<{ id: number; name: string; user_email: string | null; client_id: string | null }>(
    await db.execute(sql`select id, name, user_email, client_id from devices
      where id in (select jsonb_array_elements_text(${JSON.stringify(deviceIds)}::jsonb)::int)`),
  );
  return new Map(rows.map((r) => [Number(r.id), { name: r.name, userEmail: r.user_email, clientId: r.client_id }]));
}

export type WaiverTarget =
  | { ok: true; scope: WaiverScope; target: string; label: string; devices: number }
  | { ok: false; message: string };

/**
 * What `/patch notice waive|revoke TARGET` names: an email is a user; otherwise a client id (or `msp`), then a
 * device name, as the inventory spells them. `devices` counts the live devices with a user it covers.
 */
export async function resolveWaiverTarget(db: AppDatabase, text: string): Promise<WaiverTarget> {
  const t = text.trim();
  if (t.includes('@')) {
    const email = t.toLowerCase();
    const [r] = rowsOf<{ n: string | number }>(
      await db.execute(sql`select count(*) as n from devices where retired_at is null and lower(user_email) = ${email}`),
    );
    const devices = Number(r?.n ?? 0);
    return devices > 0 ? { ok: true, scope: 'user', target: email, label: email, devices } : { ok: false, message: `No device in the inventory has the user ${t}.` };
  }
  const [client] = rowsOf<{ id: string | null; name: string; n: string | number }>(
    await db.execute(sql`select c.id, c.name, (select count(*) from devices d where d.client_id = c.id and d.retired_at is null and d.user_email is not null) as n
        from clients c where c.id = ${t} and c.retired_at is null
      union all
      select null, m.name, (select count(*) from devices d where d.client_id is null and d.retired_at is null and d.user_email is not null)
        from msp m where m.id = 1 and ${t.toLowerCase()} = 'msp' and not exists (select 1 from clients where id = ${t})`),
  );
  if (client) return { ok: true, scope: 'client', target: client.id ?? 'msp', label: client.name, devices: Number(client.n) };
  const [device] = rowsOf<{ name: string; user_email: string | null }>(
    await db.execute(sql`select name, user_email from devices where retired_at is null and lower(name) = lower(${t}) order by id limit 1`),
  );
  if (device) return { ok: true, scope: 'device', target: device.name, label: device.name, devices: device.user_email ? 1 : 0 };
  return { ok: false, message: `${t} is not a user's email, a client id or a device name in the inventory.` };
}

/** Stores a waiver; undefined when one for the same target already stands (the caller answers with that one). */
export async function insertWaiver(
  db: AppDatabase,
  w: { scope: WaiverScope; target: string; reason: string; actor: string; source: 'slack' | 'teams' | 'cli' | 'system' },
  now: Date,
): Promise<NoticeWaiver | undefined> {
  const [row] = rowsOf<{ id: number }>(
    await db.execute(sql`insert into notice_waivers (scope, target, reason, actor, source, created_at)
      values (${w.scope}, ${w.target}, ${w.reason}, ${w.actor}, ${w.source}, ${now.toISOString()}::timestamptz)
      on conflict (scope, target) where revoked_at is null do nothing returning id`),
  );
  return row ? { id: Number(row.id), scope: w.scope, target: w.target, reason: w.reason, by: w.actor, at: now, revokedAt: null } : undefined;
}

/** The standing waiver for a target, if any. */
export async function standingWaiver(db: AppDatabase, scope: WaiverScope, target: string): Promise<NoticeWaiver | undefined> {
  return (await noticeWaivers(db)).find((w) => w.scope === scope && w.target === target && w.revokedAt === null);
}

/** Ends the standing waiver for a target (kept as history); the one revoked, if there was one. */
export async function revokeWaiver(db: AppDatabase, scope: WaiverScope, target: string, actor: string, now: Date): Promise<NoticeWaiver | undefined> {
  const [row] = rowsOf<{ id: number; reason: string; actor: string; created_at: unknown }>(
    await db.execute(sql`update notice_waivers set revoked_at = ${now.toISOString()}::timestamptz, revoked_by = ${actor}
      where scope = ${scope} and target = ${target} and revoked_at is null returning id, reason, actor, created_at`),
  );
  return row ? { id: Number(row.id), scope, target, reason: row.reason, by: row.actor, at: toDate(row.created_at)!, revokedAt: now } : undefined;
}

/**
 * SQL condition on a device row aliased `d`: it has a user whom no waiver standing at `now` covers, i.e. one the
 * notice rule waits for. What the plan card and the thread's "which night" count as "machines with users" (a
 * waived machine starts in its window as the sweep plans it, like one without a user). Mirrors waiverFor.
 */
export function needsNoticeSql(now: Date): SQL {
  const at = now.toISOString();
  return sql`(d.user_email is not null and not exists (select 1 from notice_waivers w
    where w.created_at <= ${at}::timestamptz and (w.revoked_at is null or w.revoked_at > ${at}::timestamptz)
      and ((w.scope = 'device' and w.target = d.name) or (w.scope = 'user' and w.target = lower(d.user_email))
        or (w.scope = 'client' and w.target = coalesce(d.client_id, 'msp')))))`;
}
