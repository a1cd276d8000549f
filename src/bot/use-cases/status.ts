/**
 * What engineers ask to see: where a release stands (per update, per ring, per client), a client's next
 * windows, the notes on an update. Read-only; any chat renders these.
 */
import { sql } from 'drizzle-orm';
import { DateTime } from 'luxon';
import { standingOf, type UpdateStanding } from '../../domain/approval.ts';
import { parseWindowSpec } from '../../domain/window-spec.ts';
import { windowsFrom, type MaintenanceWindow } from '../../domain/windows.ts';
import { rowsOf, type AppDatabase } from '../../db/client.ts';
import { loadDecisionState } from '../../db/decisions-repo.ts';
import { listNotes, type StoredNote } from '../../db/notes-repo.ts';

export interface ReleaseStatus {
  releaseId: string;
  title: string | null;
  release: UpdateStanding;
  updates: Array<{ key: string; kb: string | null; title: string | null; standing: UpdateStanding }>;
  rings: Array<{ ring: string; clientId: string | null; state: string }>;
  /** Holds on a client (no update named) in this release. */
  clientHolds: UpdateStanding['holds'];
  /** Rings an engineer let an update past untested (no test machine): never silent. */
  skips: Array<{ ring: string; clientId: string | null; updateKey: string; by: string; at: string; reason: string }>;
}

export async function recentReleaseIds(db: AppDatabase, limit: number): Promise<string[]> {
  return rowsOf<{ id: string }>(await db.execute(sql`select id from releases order by initial_release_date desc, id desc limit ${limit}`)).map((r) => r.id);
}

export async function releaseStatus(db: AppDatabase, releaseId: string): Promise<ReleaseStatus | undefined> {
  const loaded = await loadDecisionState(db, releaseId, { lock: false });
  if (!loaded) return undefined;
  const { state } = loaded;
  const [release] = rowsOf<{ title: string | null }>(await db.execute(sql`select title from releases where id = ${releaseId}`));
  const updates = rowsOf<{ update_key: string; kb: string | null; title: string | null }>(
    await db.execute(sql`select update_key, kb, title from updates where release_id = ${releaseId} and removed_at is null order by update_key`),
  );
  const rings = rowsOf<{ ring: string; client_id: string | null; state: string; skips: Array<{ updateKey: string; by: string; at: string; reason: string }> | null }>(
    await db.execute(sql`select ring, client_id, state, state_detail -> 'skips' as skips from rollouts where release_id = ${releaseId}
      order by case ring when 'msp' then 0 when 'pilot' then 1 else 2 end, client_id nulls first`),
  );
  return {
    releaseId,
    title: release?.title ?? null,
    release: standingOf(state, null),
    updates: updates.map((u) => ({ key: u.update_key, kb: u.kb, title: u.title, standing: standingOf(state, u.update_key) })),
    rings: rings.map((r) => ({ ring: r.ring, clientId: r.client_id, state: r.state })),
    clientHolds: state.holds.filter((h) => h.updateKey === null && h.clientId !== null),
    skips: rings.flatMap((r) => (r.skips ?? []).map((x) => ({ ring: r.ring, clientId: r.client_id, ...x }))),
  };
}

export interface ClientWindows {
  clientId: string;
  name: string;
  zone: string;
  byClass: Array<{ deviceClass: string; spec: string; windows: MaintenanceWindow[] } | { deviceClass: string; spec: string; error: string }>;
}

export async function clientWindows(db: AppDatabase, clientId: string, now: Date, count = 3): Promise<ClientWindows | undefined> {
  const [row] = rowsOf<{ id: string; name: string; timezone: string; windows: Record<string, string> | string }>(
    await db.execute(sql`select id, name, timezone, windows from clients where (id = ${clientId} or lower(name) = lower(${clientId})) and retired_at is null limit 1`),
  );
  if (!row) return undefined;
  const windows = (typeof row.windows === 'string' ? JSON.parse(row.windows) : row.windows) as Record<string, string>;
  const from = DateTime.fromJSDate(now).setZone(row.timezone);
  return {
    clientId: row.id,
    name: row.name,
    zone: row.timezone,
    byClass: Object.entries(windows)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([deviceClass, spec]) => {
        const rule = parseWindowSpec(spec);
        if (!rule.ok) return { deviceClass, spec, error: rule.error };
        return { deviceClass, spec, windows: windowsFrom(rule.value, row.timezone, from, count) };
      }),
  };
}

export async function notesOn(db: AppDatabase, releaseId: string, updateKey: string): Promise<StoredNote[]> {
  const bare = updateKey.trim().replace(/^KB/i, '');
  return (await listNotes(db, releaseId)).filter((n) => n.updateKey === updateKey.trim() || n.updateKey === bare);
}

export async function clientIds(db: AppDatabase): Promise<Array<{ id: string; name: string }>> {
  return rowsOf<{ id: string; name: string }>(await db.execute(sql`select id, name from clients where retired_at is null order by name, id`));
}

/** Clients whose id or name contains `query` (any case), by name; for a picker that asks as the engineer types. */
export async function searchClients(db: AppDatabase, query: string, limit: number): Promise<Array<{ id: string; name: string }>> {
  // The typed text is a literal substring, not a LIKE pattern: % and _ in it match themselves.
  const pattern = `%${query.trim().toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return rowsOf<{ id: string; name: string }>(
    await db.execute(sql`select id, name from clients where retired_at is null and (lower(id) like ${pattern} or lower(name) like ${pattern})
      order by name, id limit ${limit}`),
  );
}
