/**
 * Who a client's Teams conversation speaks to. A channel or group chat linked to a client, and a champion's own
 * personal chat, carry the champions' traffic (sign-off cards, plans, window summaries). Any other personal
 * chat belongs to an end user: it gets that user's own "save your work" DMs and nothing else, even when it was
 * linked to the client by tenant. A personal chat an engineer's link code linked counts as a champion's: the
 * engineer handed that code to someone they chose.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';
import { needsNoticeSql } from './notice-repo.ts';
import type { Gate } from '../domain/rollout.ts';

const championAudience = sql`(t.kind <> 'personal'
  or exists (select 1 from person_roles r where r.person_id = t.person_id and r.role = 'champion' and r.client_id = t.client_id)
  or exists (select 1 from link_codes l where l.used_by_conversation_id = t.conversation_id and l.client_id = t.client_id))`;

/** The client's conversations that carry champion traffic, oldest first. */
export async function championConversations(db: AppDatabase, clientId: string): Promise<string[]> {
  return rowsOf<{ conversation_id: string }>(
    await db.execute(sql`select t.conversation_id from teams_conversations t
      where t.client_id = ${clientId} and t.removed_at is null and ${championAudience} order by t.id`),
  ).map((r) => r.conversation_id);
}

/** Every client's conversations that carry champion traffic, oldest first: one read for a tick over all clients. */
export async function championConversationsByClient(db: AppDatabase): Promise<Map<string, string[]>> {
  const byClient = new Map<string, string[]>();
  const rows = rowsOf<{ client_id: string; conversation_id: string }>(
    await db.execute(sql`select t.client_id, t.conversation_id from teams_conversations t
      where t.removed_at is null and t.client_id is not null and ${championAudience} order by t.id`),
  );
  for (const r of rows) {
    const list = byClient.get(r.client_id);
    if (list) list.push(r.conversation_id);
    else byClient.set(r.client_id, [r.conversation_id]);
  }
  return byClient;
}

export interface BroadDevice {
  id: number;
  name: string;
  clientId: string;
  os: string | null;
  deviceClass: string;
}

/** A client's broad-ring devices in service. */
export async function broadDevices(db: AppDatabase, clientId: string): Promise<BroadDevice[]> {
  return rowsOf<{ id: number; name: string; client_id: string; os: string | null; class: string }>(
    await db.execute(sql`select id, name, client_id, os, class from devices where client_id = ${clientId} and ring = 'broad' and retired_at is null order by id`),
  ).map((r) => ({ id: Number(r.id), name: r.name, clientId: r.client_id, os: r.os, deviceClass: r.class }));
}

/** What a client's plan of nights is worked out from: its windows per device class, zone and notice hours. */
export interface ClientPlanSettings {
  name: string;
  timezone: string;
  windows: Record<string, string>;
  noticeHours: number | undefined;
}

export async function clientPlanSettings(db: AppDatabase, clientId: string): Promise<ClientPlanSettings | undefined> {
  const [client] = rowsOf<{ name: string; timezone: string; windows: Record<string, string>; notice_hours: string | null }>(
    await db.execute(sql`select name, timezone, windows, settings ->> 'noticeHours' as notice_hours from clients where id = ${clientId}`),
  );
  return client ? { name: client.name, timezone: client.timezone, windows: client.windows, noticeHours: client.notice_hours === null ? undefined : Number(client.notice_hours) } : undefined;
}

/** The device classes of a client's broad ring with a user the notice rule waits for (no standing waiver at `now`). */
export async function broadClassesNeedingNotice(db: AppDatabase, clientId: string, now: Date): Promise<Set<string>> {
  return new Set(
    rowsOf<{ class: string }>(
      await db.execute(sql`select distinct d.class from devices d where d.client_id = ${clientId} and d.ring = 'broad' and d.retired_at is null and ${needsNoticeSql(now)}`),
    ).map((r) => r.class),
  );
}

export interface ChampionNewsGate {
  releaseId: string;
  ring: 'pilot' | 'broad';
  clientId: string;
  /** The gate as stored (what its sign-off asks about, which round it is). */
  gate: Gate;
}

/** Gates whose client may have news for its champions: a pilot awaiting sign-off, a broad ring scheduled or running. */
export async function gatesWithChampionNews(db: AppDatabase, now: Date): Promise<ChampionNewsGate[]> {
  return rowsOf<{ release_id: string; ring: 'pilot' | 'broad'; client_id: string; state_detail: Gate }>(
    await db.execute(sql`select release_id, ring, client_id, state_detail from rollouts where client_id is not null
      and ((ring = 'pilot' and state = 'awaiting_confirmation') or (ring = 'broad' and state in ('scheduled', 'running')))
      and updated_at > ${now.toISOString()}::timestamptz - interval '45 days' order by id`),
  ).map((r) => ({ releaseId: r.release_id, ring: r.ring, clientId: r.client_id, gate: r.state_detail }));
}

/** Every client's name and zone (retired ones too: a summary may be about a window before retirement). */
export async function clientNamesAndZones(db: AppDatabase): Promise<Map<string, { name: string; timezone: string }>> {
  return new Map(
    rowsOf<{ id: string; name: string; timezone: string }>(await db.execute(sql`select id, name, timezone from clients`)).map((c) => [c.id, { name: c.name, timezone: c.timezone }]),
  );
}
