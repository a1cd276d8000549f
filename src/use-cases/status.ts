/**
 * What engineers ask to see: where a release stands (per update, per ring, per client), a client's next
 * windows, the notes on an update. Read-only; any chat renders these.
 */
import { sql } from 'drizzle-orm';
import { DateTime } from 'luxon';
import { standingOf } from '../domain/approval.ts';
import type { StatusFacts, StatusNames } from '../domain/status.ts';
import { chatDisplayNames, clientNames } from '../db/names-repo.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { windowsFrom, type MaintenanceWindow } from '../domain/windows.ts';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import { loadDecisionState } from '../db/decisions-repo.ts';
import { listNotes, type StoredNote } from '../db/notes-repo.ts';
import { activeHolds, effectiveApprovals } from '../db/decisions-repo.ts';
import { loadRelease } from '../db/release-repo.ts';
import { loadBook, loadReleaseFacts, releaseGateDevices } from '../db/rollout-repo.ts';
import { gatesWaiting, type GateWait, type ReleaseFacts } from '../domain/eligibility.ts';
import type { PlanDevice } from '../domain/plan.ts';
import { gateKey } from '../domain/rollout.ts';
import type { Ring } from '../domain/inventory.ts';

/** The facts status is drawn from (see domain/status.ts for the words). */
export type ReleaseStatus = StatusFacts;

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
  const progress = (await loadReleaseFacts(db, [releaseId])).get(releaseId);
  const waits = progress && rings.some((r) => r.state === 'scheduled') ? await scheduledWaits(db, releaseId, progress) : new Map<string, GateWait>();
  const [newer] = rowsOf<{ id: string }>(
    await db.execute(sql`select n.id from releases n join releases r on r.id = ${releaseId}
      where n.initial_release_date > r.initial_release_date order by n.initial_release_date, n.id limit 1`),
  );
  return {
    releaseId,
    title: release?.title ?? null,
    supersededBy: newer?.id ?? null,
    release: standingOf(state, null),
    updates: updates.map((u) => ({ key: u.update_key, kb: u.kb, title: u.title, standing: standingOf(state, u.update_key) })),
    rings: rings.map((r) => {
      const wait = waits.get(gateKey(r.ring as Ring, r.client_id));
      return { ring: r.ring, clientId: r.client_id, state: r.state, ...(wait ? { waitingFor: wait } : {}) };
    }),
    clientHolds: state.holds.filter((h) => h.updateKey === null && h.clientId !== null),
    skips: rings.flatMap((r) => (r.skips ?? []).map((x) => ({ ring: r.ring, clientId: r.client_id, ...x }))),
    ...(progress ? { progress } : {}),
  };
}

/** Scheduled gates whose next window carries nothing yet (an update still in an earlier ring, or held): the planner's rules. */
async function scheduledWaits(db: AppDatabase, releaseId: string, facts: ReleaseFacts): Promise<Map<string, GateWait>> {
  const [release, approvals, holdRows, rows, book] = await Promise.all([
    loadRelease(db, releaseId),
    effectiveApprovals(db, releaseId),
    activeHolds(db),
    releaseGateDevices(db, releaseId),
    loadBook(db, releaseId),
  ]);
  if (!release || approvals.length === 0) return new Map();
  const devices = new Map<string, PlanDevice[]>();
  for (const r of rows) devices.set(r.gateKey, [...(devices.get(r.gateKey) ?? []), r]);
  const catalog = { products: release.products, updates: release.updates.map((u) => ({ key: u.id, productIds: u.productIds, restartRequired: u.restartRequired })) };
  const approved = approvals.some((a) => a.updateKey === null) ? ('all' as const) : new Set(approvals.map((a) => a.updateKey!));
  const holds = holdRows.map((h) => ({ scope: h.scope, releaseId: h.releaseId, updateKey: h.updateKey, clientId: h.clientId, ring: h.ring }));
  return gatesWaiting(book, devices, catalog, approved, holds, facts);
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

/** Client and people names for status: whoever reads it sees "Harbour Accounting" and "Ana Silva", not ids. */
export async function statusNames(db: AppDatabase): Promise<StatusNames> {
  const [clients, people] = await Promise.all([clientNames(db), chatDisplayNames(db)]);
  return { clients, people };
}
