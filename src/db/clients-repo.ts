/**
 * The inventory's clients as the use-cases ask about them: which ids are live, a client's schedule and settings,
 * its broad ring's device classes, and the picker's searches. Retired clients are left out unless said otherwise.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';
import { needsNoticeSql } from './notice-repo.ts';

export interface ClientChoice {
  id: string;
  name: string;
}

/** Of `ids`, the clients the inventory still has. */
export async function liveClientIdsAmong(db: AppDatabase, ids: readonly string[]): Promise<Set<string>> {
  const rows = rowsOf<{ id: string }>(
    await db.execute(sql`select id from clients where retired_at is null and id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`),
  );
  return new Set(rows.map((r) => r.id));
}

export interface ClientSchedule {
  timezone: string;
  /** Window specs by device class. */
  windows: Record<string, string>;
  /** The client's own notice rule (settings.noticeHours), when it has one. */
  noticeHours: number | undefined;
}

/** A client's zone, windows and notice hours (retired or not); undefined for an unknown id. */
export async function clientSchedule(db: AppDatabase, clientId: string): Promise<ClientSchedule | undefined> {
  const [row] = rowsOf<{ timezone: string; windows: Record<string, string>; notice_hours: string | null }>(
    await db.execute(sql`select timezone, windows, settings ->> 'noticeHours' as notice_hours from clients where id = ${clientId}`),
  );
  return row ? { timezone: row.timezone, windows: row.windows, noticeHours: row.notice_hours === null ? undefined : Number(row.notice_hours) } : undefined;
}

export interface DeviceOsCount {
  deviceClass: string;
  /** The OS the inventory gives (null: none given, so no update can be matched to it). */
  os: string | null;
  count: number;
  /** Some machine of the group has a user the notice rule waits for at `now` (no waiver covers it). */
  users: boolean;
}

/** A client's live broad-ring machines, counted per device class and OS. */
export async function broadDeviceOsCounts(db: AppDatabase, clientId: string, now: Date): Promise<DeviceOsCount[]> {
  const rows = rowsOf<{ class: string; os: string | null; n: number; users: boolean }>(
    await db.execute(sql`select d.class, d.os, count(*)::int as n, bool_or(${needsNoticeSql(now)}) as users from devices d
      where d.client_id = ${clientId} and d.ring = 'broad' and d.retired_at is null group by d.class, d.os order by d.class, d.os`),
  );
  return rows.map((r) => ({ deviceClass: r.class, os: r.os, count: Number(r.n), users: Boolean(r.users) }));
}

/** A client's name and its auto-confirm setting (settings.autoConfirmHours), retired or not. */
export async function clientConfirmationSettings(db: AppDatabase, clientId: string): Promise<{ name: string; autoConfirmHours: number | undefined } | undefined> {
  const [row] = rowsOf<{ name: string; hours: string | null }>(
    await db.execute(sql`select name, settings ->> 'autoConfirmHours' as hours from clients where id = ${clientId}`),
  );
  return row ? { name: row.name, autoConfirmHours: row.hours === null ? undefined : Number(row.hours) } : undefined;
}

export interface LiveClient extends ClientChoice {
  timezone: string;
  windows: Record<string, string>;
}

/** A live client by its id or its name (any case). */
export async function findLiveClient(db: AppDatabase, idOrName: string): Promise<LiveClient | undefined> {
  const [row] = rowsOf<{ id: string; name: string; timezone: string; windows: Record<string, string> | string }>(
    await db.execute(sql`select id, name, timezone, windows from clients where (id = ${idOrName} or lower(name) = lower(${idOrName})) and retired_at is null limit 1`),
  );
  if (!row) return undefined;
  const windows = (typeof row.windows === 'string' ? JSON.parse(row.windows) : row.windows) as Record<string, string>;
  return { id: row.id, name: row.name, timezone: row.timezone, windows };
}

/** Every live client, by name. */
export async function liveClients(db: AppDatabase): Promise<ClientChoice[]> {
  return rowsOf<ClientChoice>(await db.execute(sql`select id, name from clients where retired_at is null order by name, id`));
}

/** Live clients whose id or name contains `query` (any case), by name. */
export async function searchLiveClients(db: AppDatabase, query: string, limit: number): Promise<ClientChoice[]> {
  // The typed text is a literal substring, not a LIKE pattern: % and _ in it match themselves.
  const pattern = `%${query.trim().toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return rowsOf<ClientChoice>(
    await db.execute(sql`select id, name from clients where retired_at is null and (lower(id) like ${pattern} or lower(name) like ${pattern})
      order by name, id limit ${limit}`),
  );
}
