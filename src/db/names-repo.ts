/**
 * Names people read instead of ids: a client's name for its id, a person's display name for a chat id. Read
 * by renderers that must never show `acme-dental` or a GUID where a person expects "Acme Dental" or "Ana Silva".
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

/** Every client's name by id, retired ones too (a hold placed before a client left still names it). */
export async function clientNames(db: AppDatabase): Promise<Map<string, string>> {
  const rows = rowsOf<{ id: string; name: string }>(await db.execute(sql`select id, name from clients`));
  return new Map(rows.map((r) => [r.id, r.name]));
}

/** Display names by chat id (Slack user id, Teams AAD object id), for the people who have one. */
export async function chatDisplayNames(db: AppDatabase): Promise<Map<string, string>> {
  const rows = rowsOf<{ external_id: string; display_name: string }>(
    await db.execute(sql`select ci.external_id, p.display_name from chat_identities ci join people p on p.id = ci.person_id
      where p.display_name is not null and p.display_name <> ''`),
  );
  return new Map(rows.map((r) => [r.external_id, r.display_name]));
}
