/** Keys that may be claimed once (idempotency_keys): a retried delivery finds its key taken. */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

/** True for the first claim of `key`, false for any later one while it is kept. */
export async function claimOnce(db: AppDatabase, claim: { key: string; scope: string; now: Date; keepMs: number }): Promise<boolean> {
  const claimed = rowsOf(
    await db.execute(sql`insert into idempotency_keys (key, scope, created_at, expires_at)
      values (${claim.key}, ${claim.scope}, ${claim.now.toISOString()}::timestamptz, ${new Date(claim.now.getTime() + claim.keepMs).toISOString()}::timestamptz)
      on conflict do nothing returning key`),
  );
  return claimed.length > 0;
}
