/**
 * The runs' outcomes per release, read again only when they may have changed (issue 19). Every sweep (15 s) and
 * every DM tick (1 min) asked for them: the day after a night of 100,000 runs that was ~200,000 rows, ~1 s, each
 * time, though nothing had changed. Triggers (migration 0012) bump a release's stamp in outcome_stamps in the same
 * transaction as any write to a run that is or was succeeded or failed, and `devices:os` when a device's OS changes
 * (an outcome carries it). A reader that finds the stamps it saw last reuses what it read then.
 *
 * Why this is safe: the stamps are read BEFORE the outcomes, each in its own statement. A change committed before
 * the stamp read is in the outcomes read after it; one committed after changes the stamp the next reader compares.
 * Reading them the other way round could keep an outcome read before a change under the stamp read after it.
 *
 * Nothing is cached inside a transaction (it may write runs and roll back, leaving a stamp that a later, different
 * commit reaches again), nor when a release has no stamp at all. The cache is per database handle and per process,
 * and starts empty: a restarted process reads everything once.
 */
import { sql } from 'drizzle-orm';
import { PgTransaction } from 'drizzle-orm/pg-core';
import { rowsOf, type AppDatabase } from './client.ts';

/** Releases remembered per database: the few a sweep works on; older ones are read again if asked. */
const MAX_ENTRIES = 16;

interface Entry<T> {
  stamp: string;
  value: T;
}

const caches = new WeakMap<AppDatabase, Map<string, Entry<unknown>>>();

/** Each release's stamp: its runs' shards and the devices' OS shards, as one string (empty when it has none). */
export async function outcomeStamps(db: AppDatabase, releaseIds: readonly string[]): Promise<Map<string, string>> {
  const rows = rowsOf<{ release_id: string; stamp: string | null }>(
    await db.execute(sql`select r.id as release_id,
        (select string_agg(s.scope || '/' || s.shard || '/' || s.epoch || '/' || s.version, ',' order by s.scope, s.shard)
          from outcome_stamps s where s.scope in ('runs:' || r.id, 'devices:os')
          having count(*) filter (where s.scope = 'runs:' || r.id) > 0) as stamp
      from jsonb_array_elements_text(${JSON.stringify(releaseIds)}::jsonb) as r(id)`),
  );
  return new Map(rows.map((r) => [r.release_id, r.stamp ?? '']));
}

/**
 * `read` for the releases whose stamp changed since it last answered for them under `variant`; the others from the
 * cache. Values are shared between callers: treat them as read-only.
 */
export async function perReleaseSinceStamp<T>(
  db: AppDatabase,
  releaseIds: readonly string[],
  variant: string,
  read: (releaseIds: readonly string[]) => Promise<Map<string, T>>,
): Promise<Map<string, T>> {
  if (db instanceof PgTransaction || releaseIds.length === 0) return read(releaseIds);
  // Stamps first: see the header.
  const stamps = await outcomeStamps(db, releaseIds);
  let cache = caches.get(db);
  if (!cache) caches.set(db, (cache = new Map()));
  const out = new Map<string, T>();
  const stale: string[] = [];
  for (const releaseId of new Set(releaseIds)) {
    const stamp = stamps.get(releaseId) ?? '';
    const hit = stamp === '' ? undefined : cache.get(`${variant} ${releaseId}`);
    if (hit && hit.stamp === stamp) {
      out.set(releaseId, hit.value as T);
      // Kept as the most recently read.
      cache.delete(`${variant} ${releaseId}`);
      cache.set(`${variant} ${releaseId}`, hit);
    } else stale.push(releaseId);
  }
  if (stale.length === 0) return out;
  const fresh = await read(stale);
  for (const releaseId of stale) {
    const value = fresh.get(releaseId)!;
    out.set(releaseId, value);
    const stamp = stamps.get(releaseId) ?? '';
    const key = `${variant} ${releaseId}`;
    cache.delete(key);
    if (stamp === '') continue;
    cache.set(key, { stamp, value });
    // Map order is insertion order: the first key is the one least recently read.
    if (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value!);
  }
  return out;
}
