/**
 * Who a client's Teams conversation speaks to. A channel or group chat linked to a client, and a champion's own
 * personal chat, carry the champions' traffic (sign-off cards, plans, window summaries). Any other personal
 * chat belongs to an end user: it gets that user's own "save your work" DMs and nothing else, even when it was
 * linked to the client by tenant. A personal chat an engineer's link code linked counts as a champion's: the
 * engineer handed that code to someone they chose.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

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

/** Clients with at least one conversation that carries champion traffic. */
export async function clientsWithChampionChats(db: AppDatabase): Promise<Set<string>> {
  return new Set(
    rowsOf<{ client_id: string }>(
      await db.execute(sql`select distinct t.client_id from teams_conversations t where t.removed_at is null and t.client_id is not null and ${championAudience}`),
    ).map((r) => r.client_id),
  );
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
