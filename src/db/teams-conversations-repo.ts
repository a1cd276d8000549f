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
