/**
 * Stored Teams conversation references (teams_conversations), beyond the install and removal the Teams
 * use-cases write (src/use-cases/teams-link.ts).
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

/**
 * Points every live reference whose serviceUrl starts with `oldPrefix` at `serviceUrl`; returns how many changed.
 * The sandbox's Bot Connector emulator gets a new port at each start, and proactive sends go wherever the stored
 * reference says.
 */
export async function repointServiceUrls(db: AppDatabase, oldPrefix: string, serviceUrl: string, now: Date): Promise<number> {
  const pattern = `${oldPrefix.replaceAll('\\', '\\\\').replaceAll('%', '\\%').replaceAll('_', '\\_')}%`;
  const changed = rowsOf<{ id: number }>(
    await db.execute(sql`update teams_conversations
      set reference = jsonb_set(reference, '{serviceUrl}', to_jsonb(${serviceUrl}::text)), updated_at = ${now.toISOString()}::timestamptz
      where removed_at is null and reference ->> 'serviceUrl' like ${pattern} and reference ->> 'serviceUrl' <> ${serviceUrl}
      returning id`),
  );
  return changed.length;
}

/** The conversation's stored reference and tenant, unless it was removed. */
export async function liveConversationReference(db: AppDatabase, conversationId: string): Promise<{ reference: unknown; tenantId: string | null } | undefined> {
  const [row] = rowsOf<{ reference: unknown; tenant_id: string | null }>(
    await db.execute(sql`select reference, tenant_id from teams_conversations where conversation_id = ${conversationId} and removed_at is null`),
  );
  return row ? { reference: row.reference, tenantId: row.tenant_id } : undefined;
}

/** Ids of every conversation the bot is installed in now. */
export async function liveConversationIds(db: AppDatabase): Promise<string[]> {
  return rowsOf<{ conversation_id: string }>(await db.execute(sql`select conversation_id from teams_conversations where removed_at is null`)).map((r) => r.conversation_id);
}

export interface ConversationToStore {
  conversationId: string;
  tenantId: string | undefined;
  kind: 'channel' | 'groupChat' | 'personal';
  /** The platform's conversation reference, stored as given. */
  reference: Record<string, unknown>;
}

/**
 * Stores (or refreshes) a conversation's reference. A client or person already linked stays linked when this
 * call names none; a removed conversation is live again.
 */
export async function storeConversation(db: AppDatabase, c: ConversationToStore, clientId: string | null, personId: number | null, now: Date): Promise<void> {
  await db.execute(sql`insert into teams_conversations (conversation_id, tenant_id, kind, client_id, person_id, reference, created_at, updated_at)
    values (${c.conversationId}, ${c.tenantId ?? null}, ${c.kind}, ${clientId}, ${personId}, ${JSON.stringify(c.reference)}::jsonb,
      ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz)
    on conflict (conversation_id) do update set reference = excluded.reference, tenant_id = excluded.tenant_id, kind = excluded.kind,
      client_id = coalesce(excluded.client_id, teams_conversations.client_id),
      person_id = coalesce(excluded.person_id, teams_conversations.person_id),
      removed_at = null, updated_at = excluded.updated_at`);
}

/** The bot was removed from a conversation: the row stays, for the audit trail. */
export async function markConversationRemoved(db: AppDatabase, conversationId: string, now: Date): Promise<void> {
  await db.execute(sql`update teams_conversations set removed_at = ${now.toISOString()}::timestamptz, updated_at = ${now.toISOString()}::timestamptz
    where conversation_id = ${conversationId} and removed_at is null`);
}

/** The client a live conversation is linked to, if any. */
export async function linkedClientId(db: AppDatabase, conversationId: string): Promise<string | undefined> {
  const [row] = rowsOf<{ client_id: string | null }>(
    await db.execute(sql`select client_id from teams_conversations where conversation_id = ${conversationId} and removed_at is null`),
  );
  return row?.client_id ?? undefined;
}
