/**
 * The device manager's outage in progress, shared by every worker so the engineers hear of it once: one row per
 * manager while it is down, opened by the first worker that finds it down and closed by the first that hears it
 * answer again. Kept as a claimed key (idempotency_keys, scope `deployer-outage`, the outage in `result`): a key
 * claimed once per outage is exactly what that table holds, and no migration is needed for it.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

const SCOPE = 'deployer-outage';

export interface StoredOutage {
  backend: string;
  manager: string;
  host: string;
  since: string;
  reason: string;
}

const keyOf = (backend: string) => `${SCOPE}:${backend}`;

function toOutage(result: unknown): StoredOutage {
  return (typeof result === 'string' ? JSON.parse(result) : result) as StoredOutage;
}

/** Records `backend` as down unless it already is; `opened` is true for the one caller that recorded it. */
export async function openDeployerOutage(db: AppDatabase, backend: string, outage: StoredOutage): Promise<{ outage: StoredOutage; opened: boolean }> {
  const inserted = rowsOf<{ result: unknown }>(
    await db.execute(sql`insert into idempotency_keys (key, scope, result, created_at)
      values (${keyOf(backend)}, ${SCOPE}, ${JSON.stringify(outage)}::jsonb, ${outage.since}::timestamptz)
      on conflict (key) do nothing returning result`),
  );
  if (inserted[0]) return { outage: toOutage(inserted[0].result), opened: true };
  const current = rowsOf<{ result: unknown }>(await db.execute(sql`select result from idempotency_keys where key = ${keyOf(backend)}`))[0];
  // Closed between the two statements: it answered meanwhile, so this sighting is stale and reports nothing.
  return current ? { outage: toOutage(current.result), opened: false } : { outage, opened: false };
}

/** Ends `backend`'s outage; the outage it ended, to the one caller that ended it, else undefined. */
export async function closeDeployerOutage(db: AppDatabase, backend: string): Promise<StoredOutage | undefined> {
  const deleted = rowsOf<{ result: unknown }>(await db.execute(sql`delete from idempotency_keys where key = ${keyOf(backend)} returning result`));
  return deleted[0] ? toOutage(deleted[0].result) : undefined;
}
