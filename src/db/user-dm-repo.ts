/**
 * Storage for end-user DMs (user_dms): what tonight's DM planning reads, and the rows a DM and its answer write.
 */
import { sql } from 'drizzle-orm';
import type { ClientSettings } from './schema.ts';
import { rowsOf, type AppDatabase } from './client.ts';

export interface CandidateDevice {
  gateId: number;
  releaseId: string;
  ring: 'msp' | 'pilot' | 'broad';
  clientId: string | null;
  id: number;
  name: string;
  os: string | null;
  userEmail: string;
  spec: string | null;
  timezone: string;
  /** The owner's notice_hours setting; undefined when unset (the MSP's own machines, or left out). */
  noticeHours: number | undefined;
}

/** Live devices with a primary user, in every gate that may still get runs, with the owner's window and zone. */
export async function candidateDevices(db: AppDatabase): Promise<CandidateDevice[]> {
  const rows = rowsOf<Record<string, unknown>>(
    await db.execute(sql`with g as (select id, release_id, ring, client_id from rollouts where state in ('scheduled', 'running'))
      select g.id as gate_id, g.release_id, g.ring, g.client_id, d.id, d.name, d.os, d.user_email, c.windows ->> d.class as spec, coalesce(d.timezone, c.timezone) as timezone,
          c.settings ->> 'noticeHours' as notice_hours
        from g join clients c on c.id = g.client_id and c.retired_at is null
          join devices d on d.client_id = g.client_id and d.ring = g.ring and d.retired_at is null and d.user_email is not null
      union all
      select g.id, g.release_id, g.ring, g.client_id, d.id, d.name, d.os, d.user_email, m.windows ->> d.class, coalesce(d.timezone, m.timezone), null
        from g join msp m on m.id = 1
          join devices d on d.client_id is null and d.ring = g.ring and d.retired_at is null and d.user_email is not null
        where g.client_id is null
      order by 1, 5`),
  );
  return rows.map((r) => ({
    gateId: Number(r.gate_id),
    releaseId: String(r.release_id),
    ring: r.ring as CandidateDevice['ring'],
    clientId: (r.client_id as string | null) ?? null,
    id: Number(r.id),
    name: String(r.name),
    os: (r.os as string | null) ?? null,
    userEmail: String(r.user_email).toLowerCase(),
    spec: (r.spec as string | null) ?? null,
    timezone: String(r.timezone),
    noticeHours: r.notice_hours === null || r.notice_hours === undefined ? undefined : Number(r.notice_hours),
  }));
}

export async function clientSettings(db: AppDatabase): Promise<Map<string | null, { zone: string; settings: ClientSettings; name: string }>> {
  const rows = rowsOf<{ id: string | null; timezone: string; settings: unknown; name: string }>(
    await db.execute(sql`select id, timezone, settings, name from clients where retired_at is null
      union all select null, timezone, '{}'::jsonb, name from msp where id = 1`),
  );
  return new Map(
    rows.map((r) => [r.id, { zone: r.timezone, name: r.name, settings: (typeof r.settings === 'string' ? JSON.parse(r.settings) : (r.settings ?? {})) as ClientSettings }]),
  );
}

export interface StoredDm {
  id: number;
  key: string;
  kind: 'tonight' | 'offline';
  personId: number;
  clientId: string | null;
  releaseId: string | null;
  night: string;
  platform: 'slack' | 'teams';
  channel: string;
  recipient: string;
  zone: string;
  devices: Array<{ deviceId: number; name: string; releaseId: string; rolloutId: number; windowStart: string; windowEnd: string; updates: string[] }>;
  answer: string | null;
  answeredAt: Date | null;
  text: string;
}

export async function loadDm(db: AppDatabase, id: number, lock = false): Promise<StoredDm | undefined> {
  const [r] = rowsOf<Record<string, unknown>>(
    await db.execute(sql`select d.*, o.payload->>'text' as text from user_dms d
      left join chat_outbox o on o.idempotency_key = 'userdm:' || d.key
      where d.id = ${id} ${lock ? sql`for update of d` : sql``}`),
  );
  if (!r) return undefined;
  const devices = typeof r.devices === 'string' ? JSON.parse(r.devices) : r.devices;
  return {
    id: Number(r.id),
    key: String(r.key),
    kind: r.kind as StoredDm['kind'],
    personId: Number(r.person_id),
    clientId: (r.client_id as string | null) ?? null,
    releaseId: (r.release_id as string | null) ?? null,
    night: String(r.night),
    platform: r.platform as StoredDm['platform'],
    channel: String(r.channel),
    recipient: String(r.recipient),
    zone: String(r.zone),
    devices: devices as StoredDm['devices'],
    answer: (r.answer as string | null) ?? null,
    answeredAt: r.answered_at ? new Date(String(r.answered_at instanceof Date ? r.answered_at.toISOString() : r.answered_at)) : null,
    text: String(r.text ?? ''),
  };
}

/**
 * How many nights this person put their machines off in this release, not counting the night of `answering` (the
 * DM being answered). Nights, not DMs: since each window has its own DM, a person with a desktop at 22:00 and a laptop at
 * 12:00 the next day gets two the same afternoon, and putting both off is one night's deferral, as it was when
 * they shared a DM.
 */
export async function deferralsUsed(db: AppDatabase, personId: number, releaseId: string | null, answering?: number): Promise<number> {
  const [r] = rowsOf<{ n: string | number }>(
    await db.execute(sql`select count(distinct night) as n from user_dms where person_id = ${personId} and release_id is not distinct from ${releaseId}
      and answer = 'defer' ${answering === undefined ? sql`` : sql`and night <> (select night from user_dms where id = ${answering})`}`),
  );
  return Number(r?.n ?? 0);
}

/** The device's class window spec and its owner's zone, for working out the next window. */
export async function deviceWindows(db: AppDatabase, deviceIds: readonly number[]): Promise<Map<number, { spec: string | null; zone: string }>> {
  const rows = rowsOf<{ id: number; spec: string | null; zone: string }>(
    await db.execute(sql`select d.id, coalesce(c.windows, m.windows) ->> d.class as spec, coalesce(d.timezone, c.timezone, m.timezone) as zone
      from devices d left join clients c on c.id = d.client_id join msp m on m.id = 1
      where d.id in (select jsonb_array_elements_text(${JSON.stringify(deviceIds)}::jsonb)::int)`),
  );
  return new Map(rows.map((r) => [Number(r.id), { spec: r.spec, zone: r.zone }]));
}

/** A person's name for the engineers to read: display name, else email, else `person N`. */
export async function personLabel(db: AppDatabase, personId: number): Promise<string> {
  const [who] = rowsOf<{ email: string | null; display_name: string | null }>(await db.execute(sql`select email, display_name from people where id = ${personId}`));
  return who?.display_name ?? who?.email ?? `person ${personId}`;
}

export interface DmDecision {
  kind: 'acknowledge' | 'defer';
  /** One decision per key: answering twice records it once. */
  key: string;
  releaseId: string | null;
  clientId: string | null;
  deviceId: number | null;
  actor: string;
  personId: number;
  source: 'slack' | 'teams';
  detail: Record<string, unknown>;
}

export async function recordDmDecision(tx: AppDatabase, d: DmDecision, at: Date): Promise<void> {
  await tx.execute(sql`insert into decisions (kind, release_id, client_id, device_id, actor, actor_person_id, source, detail, idempotency_key, created_at)
    values (${d.kind}, ${d.releaseId}, ${d.clientId}, ${d.deviceId}, ${d.actor}, ${d.personId}, ${d.source}, ${JSON.stringify(d.detail)}::jsonb, ${d.key}, ${at.toISOString()}::timestamptz)
    on conflict (idempotency_key) do nothing`);
}

/**
 * Tonight's run of a device its user put off, already `rolled` to `rolledTo`: the sweep inserts with ON CONFLICT
 * (device, window_start) DO NOTHING, so it plans nothing for the device tonight.
 */
export async function insertDeferredRun(tx: AppDatabase, device: StoredDm['devices'][number], rolledTo: Date, detail: Record<string, unknown>, at: Date): Promise<void> {
  const now = at.toISOString();
  await tx.execute(sql`insert into runs (device_id, release_id, rollout_id, window_start, window_end, state, step, updates, result, detail, rolled_to, scheduled_at, finished_at, updated_at)
    values (${device.deviceId}, ${device.releaseId}, ${device.rolloutId}, ${device.windowStart}::timestamptz, ${device.windowEnd}::timestamptz, 'rolled', 'record',
      ${JSON.stringify(device.updates)}::jsonb, 'deferred', ${JSON.stringify(detail)}::jsonb, ${rolledTo.toISOString()}::timestamptz, ${now}::timestamptz, ${now}::timestamptz, ${now}::timestamptz)
    on conflict (device_id, window_start) do nothing`);
}

export async function recordDmAnswer(tx: AppDatabase, dmId: number, answer: 'ok' | 'defer' | 'escalated', at: Date): Promise<void> {
  await tx.execute(sql`update user_dms set answer = ${answer}, answered_at = ${at.toISOString()}::timestamptz where id = ${dmId}`);
}

/** Where a Slack DM really is (its D… channel and ts), so an edit under `subject` finds it. */
export async function recordSlackDmMessage(tx: AppDatabase, ref: { channel: string; ts: string }, subject: string, at: Date): Promise<void> {
  await tx.execute(sql`insert into chat_messages (platform, channel, message_id, subject, created_at, updated_at)
    values ('slack', ${ref.channel}, ${ref.ts}, ${subject}, ${at.toISOString()}::timestamptz, ${at.toISOString()}::timestamptz) on conflict do nothing`);
}

/** `deviceId/yyyy-MM-ddTHH:mm:ss` (UTC) of every run already in one of the windows starting at `starts` (ISO). */
export async function runsInWindows(db: AppDatabase, starts: readonly string[]): Promise<Set<string>> {
  return new Set(
    rowsOf<{ k: string }>(
      await db.execute(sql`select device_id || '/' || to_char(window_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') as k from runs
        where window_start in (select jsonb_array_elements_text(${JSON.stringify(starts)}::jsonb)::timestamptz)`),
    ).map((r) => r.k),
  );
}

/** Which of these DM keys have a row already (written by an earlier tick, whatever became of it since). */
export async function writtenDmKeys(db: AppDatabase, keys: readonly string[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const rows = rowsOf<{ key: string }>(
    await db.execute(sql`select key from user_dms where key in (select jsonb_array_elements_text(${JSON.stringify([...new Set(keys)])}::jsonb))`),
  );
  return new Set(rows.map((r) => r.key));
}

export interface NewTonightDm {
  key: string;
  personId: number;
  clientId: string | null;
  releaseId: string;
  night: string;
  platform: 'slack' | 'teams';
  channel: string;
  recipient: string;
  zone: string;
  /** Stored as given, with the window's bounds as ISO strings. */
  devices: ReadonlyArray<{ windowStart: Date; windowEnd: Date }>;
  sendAt: Date;
}

/** The columns every kind of DM row has, named as the inserts' jsonb_to_recordset reads them. */
function dmColumns(dm: NewTonightDm | NewOfflineDm) {
  return {
    key: dm.key,
    person_id: dm.personId,
    client_id: dm.clientId,
    release_id: dm.releaseId,
    night: dm.night,
    platform: dm.platform,
    channel: dm.channel,
    recipient: dm.recipient,
    zone: dm.zone,
  };
}

/** Inserts tonight's DM rows, skipping keys already written; the ids and keys actually inserted. */
export async function insertTonightDms(tx: AppDatabase, dms: readonly NewTonightDm[], now: Date): Promise<Array<{ id: number; key: string }>> {
  const rows = JSON.stringify(
    dms.map((dm) => ({
      ...dmColumns(dm),
      devices: dm.devices.map((d) => ({ ...d, windowStart: d.windowStart.toISOString(), windowEnd: d.windowEnd.toISOString() })),
      send_at: dm.sendAt.toISOString(),
    })),
  );
  return rowsOf<{ id: number; key: string }>(
    await tx.execute(sql`insert into user_dms (key, kind, person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at, created_at)
      select key, 'tonight', person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at, ${now.toISOString()}::timestamptz
      from jsonb_to_recordset(${rows}::jsonb) as r(key text, person_id int, client_id text, release_id text, night date, platform text, channel text,
        recipient text, zone text, devices jsonb, send_at timestamptz)
      on conflict (key) do nothing returning id, key`),
  ).map((r) => ({ id: Number(r.id), key: r.key }));
}

export interface OfflineRuns {
  releaseId: string;
  clientId: string | null;
  email: string;
  /** The latest window the user's devices were offline in. */
  windowEnd: Date;
  /** The devices' names, comma-separated, as the inventory spells them. */
  names: string;
}

/**
 * Per release and user: devices whose run ended offline in a window that closed in the 18 hours before `now`, for
 * users not yet told about that release. The tick asks every minute, and after the first morning nearly everyone in
 * the answer had been told: each cost a lookup and a transaction that wrote nothing, minute after minute.
 */
export async function recentOfflineRuns(db: AppDatabase, now: Date): Promise<OfflineRuns[]> {
  const rows = rowsOf<{ release_id: string; client_id: string | null; email: string; window_end: unknown; name: string }>(
    await db.execute(sql`select r.release_id, d.client_id, d.user_email as email, max(r.window_end) as window_end, string_agg(d.name, ', ' order by d.name) as name
      from runs r join devices d on d.id = r.device_id
      where r.state = 'offline' and d.user_email is not null and r.release_id is not null
        and r.window_end <= ${now.toISOString()}::timestamptz and r.window_end > ${now.toISOString()}::timestamptz - interval '18 hours'
        and not exists (select 1 from user_dms u join people p on p.id = u.person_id
          where u.kind = 'offline' and u.release_id = r.release_id and p.email = d.user_email)
      group by r.release_id, d.client_id, d.user_email`),
  );
  return rows.map((r) => ({
    releaseId: r.release_id,
    clientId: r.client_id,
    email: r.email,
    windowEnd: new Date(r.window_end instanceof Date ? r.window_end.getTime() : String(r.window_end)),
    names: r.name,
  }));
}

export interface NewOfflineDm {
  key: string;
  personId: number;
  clientId: string | null;
  releaseId: string;
  night: string;
  platform: 'slack' | 'teams';
  channel: string;
  recipient: string;
  zone: string;
  names: string;
}

/** The offline notices' DM rows, skipping keys already written; the keys actually inserted. */
export async function insertOfflineDms(tx: AppDatabase, dms: readonly NewOfflineDm[], now: Date): Promise<Set<string>> {
  const rows = JSON.stringify(
    dms.map((dm) => ({
      ...dmColumns(dm),
      devices: [{ names: dm.names }],
    })),
  );
  const inserted = rowsOf<{ key: string }>(
    await tx.execute(sql`insert into user_dms (key, kind, person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at, created_at)
      select key, 'offline', person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz
      from jsonb_to_recordset(${rows}::jsonb) as r(key text, person_id int, client_id text, release_id text, night date, platform text, channel text,
        recipient text, zone text, devices jsonb)
      on conflict (key) do nothing returning key`),
  );
  return new Set(inserted.map((r) => r.key));
}

/** A client's night some of whose "save your work" DMs the outbox dropped because their deadline passed first. */
export interface DroppedNight {
  clientId: string | null;
  night: string;
  /** The release whose digest the engineers hear it under (the latest published, should two share the night). */
  releaseId: string;
  /** The latest deadline its dropped DMs missed (the window's notice deadline). */
  deadline: Date;
}

/** A user's DM of such a night. */
export interface DroppedDm {
  personName: string;
  devices: string[];
}

/**
 * Tonight's DMs dropped as too late (chat_outbox state `dead`, the payload's `notAfter` passed) since `since`,
 * read through the partial index of such rows (migration 0013), so a tick finds them without reading the outbox's
 * history. `dmSubjectPrefix` is what a DM's outbox subject puts before its key (chat/subjects.ts).
 */
const droppedDmRows = (since: Date, dmSubjectPrefix: string) => sql`from chat_outbox o
  join user_dms d on d.key = substr(o.subject, ${dmSubjectPrefix.length + 1}) and d.kind = 'tonight'
  join people p on p.id = d.person_id
  join releases r on r.id = d.release_id
  where o.state = 'dead' and (o.payload ->> 'notAfter') is not null and o.updated_at >= ${since.toISOString()}::timestamptz
    and o.action = 'post' and o.subject like ${`${dmSubjectPrefix}%`}`;

/** The nights with dropped DMs, one row each however many were dropped (an outage can drop a whole client's). */
export async function droppedDmNights(db: AppDatabase, since: Date, dmSubjectPrefix: string): Promise<DroppedNight[]> {
  const rows = rowsOf<{ client_id: string | null; night: unknown; release_id: string; deadline: string }>(
    await db.execute(sql`select d.client_id, d.night::text as night, max(o.payload ->> 'notAfter') as deadline,
        (array_agg(d.release_id order by r.initial_release_date desc, r.id desc))[1] as release_id
      ${droppedDmRows(since, dmSubjectPrefix)}
      group by d.client_id, d.night order by d.night, d.client_id nulls first`),
  );
  return rows.map((r) => ({ clientId: r.client_id, night: String(r.night), releaseId: r.release_id, deadline: new Date(r.deadline) }));
}

/** The dropped DMs of one of those nights: whose, and which machines they named. */
export async function droppedDms(db: AppDatabase, since: Date, dmSubjectPrefix: string, night: DroppedNight): Promise<DroppedDm[]> {
  const rows = rowsOf<{ name: string; devices: unknown }>(
    await db.execute(sql`select coalesce(p.display_name, p.email, p.key) as name, d.devices
      ${droppedDmRows(since, dmSubjectPrefix)} and d.client_id is not distinct from ${night.clientId} and d.night = ${night.night}::date
      order by name`),
  );
  return rows.map((r) => {
    const devices = (typeof r.devices === 'string' ? JSON.parse(r.devices) : r.devices) as Array<{ name: string }>;
    return { personName: r.name, devices: devices.map((d) => d.name) };
  });
}
