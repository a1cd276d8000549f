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
