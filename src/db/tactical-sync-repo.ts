/**
 * The device manager sync's bookkeeping, kept in `msp.settings.tacticalSync` (beside `directorySyncedAt`: keys the
 * inventory does not own survive an import): when it last ran, an engineer's pending `/patch sync`, whether a
 * failure was already told, and what the last message listed as still wrong.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';
import type { TacticalSyncState } from './schema.ts';

export type { TacticalSyncState };

/**
 * The state, or undefined before any inventory is imported (no MSP row: nothing to sync into). `lock` takes the MSP
 * row for update, so two processes deciding "the sync is due" or "tell the failure" cannot both decide yes.
 */
export async function loadTacticalSyncState(db: AppDatabase, options: { lock?: boolean } = {}): Promise<TacticalSyncState | undefined> {
  const lock = options.lock ? sql` for update` : sql``;
  const [row] = rowsOf<{ state: TacticalSyncState | string | null }>(await db.execute(sql`select settings -> 'tacticalSync' as state from msp where id = 1${lock}`));
  if (!row) return undefined;
  const state = typeof row.state === 'string' ? (JSON.parse(row.state) as TacticalSyncState) : row.state;
  return state ?? {};
}

/** Replaces the state; the rest of `msp.settings` is left as it is. */
export async function saveTacticalSyncState(db: AppDatabase, state: TacticalSyncState): Promise<void> {
  await db.execute(sql`update msp set settings = jsonb_set(settings, '{tacticalSync}', ${JSON.stringify(state)}::jsonb) where id = 1`);
}

/**
 * Live devices a Tactical sync brought in, by lower-cased name, with the machine's own zone (null: it has none). A
 * device only the inventory file named so far is not here: its agent's zone has not been read yet.
 */
export async function storedDeviceZones(db: AppDatabase): Promise<Map<string, string | null>> {
  const rows = rowsOf<{ name: string; timezone: string | null }>(
    await db.execute(sql`select name, timezone from devices where retired_at is null and synced_from = 'tactical'`),
  );
  return new Map(rows.map((r) => [r.name.toLowerCase(), r.timezone]));
}

/** Every live device's name, lower-cased: what patchbay managed before a sync. */
export async function liveDeviceNames(db: AppDatabase): Promise<Set<string>> {
  const rows = rowsOf<{ name: string }>(await db.execute(sql`select name from devices where retired_at is null`));
  return new Set(rows.map((r) => r.name.toLowerCase()));
}
