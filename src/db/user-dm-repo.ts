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

export async function engineersChannel(db: AppDatabase): Promise<string | undefined> {
  return rowsOf<{ channel: string }>(await db.execute(sql`select channel from msp where id = 1`))[0]?.channel;
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
