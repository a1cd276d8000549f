/**
 * Which releases' digests are waiting to be drawn again: one row per release while it is (idempotency_keys, scope
 * `digest-refresh`, like deployer-outages-repo: one row per open condition, no migration needed). A decision marks
 * its release in its own transaction (so the mark commits with it, and a crash before the redraw leaves the mark for
 * the next pass to find); a redraw clears it only if no decision marked it again meanwhile (`gen` moved on).
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

const SCOPE = 'digest-refresh';
const keyOf = (releaseId: string) => `${SCOPE}:${releaseId}`;

export interface DirtyDigest {
  releaseId: string;
  /** Bumped by every mark: a redraw that read `gen` clears the mark only if it is still `gen`. */
  gen: number;
  /** The update keys decided since the last redraw (null: the release as a whole). */
  keys: Array<string | null>;
  /** When the first of these marks was made (ms): with `gen`, names this redraw. */
  since: number;
}

/**
 * Marks the release's digest for a redraw of the messages showing `keys`, adding them to the keys already waiting.
 * Called under the release row lock, so two decisions on one release mark it one after the other.
 */
export async function markDigestDirty(tx: AppDatabase, releaseId: string, keys: ReadonlyArray<string | null>, now: Date): Promise<void> {
  await markDigestsDirty(tx, [{ releaseId, keys }], now);
}

/** The same for several releases (each named once, its row locked by the caller) in one statement. */
export async function markDigestsDirty(tx: AppDatabase, marks: ReadonlyArray<{ releaseId: string; keys: ReadonlyArray<string | null> }>, now: Date): Promise<void> {
  const added = JSON.stringify(marks.map((m) => ({ key: keyOf(m.releaseId), result: { releaseId: m.releaseId, gen: 1, keys: m.keys } })));
  await tx.execute(sql`insert into idempotency_keys (key, scope, result, created_at)
    select x.key, ${SCOPE}, x.result, ${now.toISOString()}::timestamptz from jsonb_to_recordset(${added}::jsonb) as x(key text, result jsonb)
    on conflict (key) do update set result = jsonb_build_object(
      'releaseId', excluded.result -> 'releaseId',
      'gen', (idempotency_keys.result ->> 'gen')::int + 1,
      'keys', (select coalesce(jsonb_agg(distinct k), '[]'::jsonb)
               from jsonb_array_elements((idempotency_keys.result -> 'keys') || (excluded.result -> 'keys')) as k))`);
}

interface MarkRow {
  result: unknown;
  created_at: unknown;
}

function toDirty(row: MarkRow): DirtyDigest {
  const result = (typeof row.result === 'string' ? JSON.parse(row.result) : row.result) as { releaseId: string; gen: number; keys: Array<string | null> };
  const since = row.created_at instanceof Date ? row.created_at.getTime() : new Date(String(row.created_at)).getTime();
  return { releaseId: result.releaseId, gen: Number(result.gen), keys: result.keys, since };
}

/** Every release waiting for a redraw, longest waiting first. */
export async function dirtyDigests(db: AppDatabase): Promise<DirtyDigest[]> {
  const rows = rowsOf<MarkRow>(await db.execute(sql`select result, created_at from idempotency_keys where scope = ${SCOPE} order by created_at, key`));
  return rows.map(toDirty);
}

/**
 * Takes the release's redraw lock (to commit; level 4 of the lock order in src/use-cases/transaction.ts, with the
 * message edit locks) and reads its mark as it now is: undefined when another redraw cleared it meanwhile.
 */
export async function claimDigestRedraw(tx: AppDatabase, releaseId: string): Promise<DirtyDigest | undefined> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`digest-redraw:${releaseId}`}))`);
  const [row] = rowsOf<MarkRow>(await tx.execute(sql`select result, created_at from idempotency_keys where key = ${keyOf(releaseId)}`));
  return row ? toDirty(row) : undefined;
}

/** Clears the mark a redraw read; false when a decision marked it again since (it needs another redraw). */
export async function clearDigestDirty(tx: AppDatabase, mark: DirtyDigest): Promise<boolean> {
  const deleted = rowsOf(
    await tx.execute(sql`delete from idempotency_keys where key = ${keyOf(mark.releaseId)} and (result ->> 'gen')::int = ${mark.gen} returning key`),
  );
  return deleted.length > 0;
}
