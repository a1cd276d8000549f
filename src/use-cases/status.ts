/**
 * What engineers ask to see: where a release stands (per update, per ring, per client), a client's next
 * windows, the notes on an update. Read-only; any chat renders these.
 */
import { DateTime } from 'luxon';
import { standingOf } from '../domain/approval.ts';
import type { StatusFacts, StatusNames } from '../domain/status.ts';
import { chatDisplayNames, clientNames } from '../db/names-repo.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { windowsFrom, type MaintenanceWindow } from '../domain/windows.ts';
import type { AppDatabase } from '../db/client.ts';
import { findLiveClient, liveClients, searchLiveClients, type ClientChoice } from '../db/clients-repo.ts';
import { loadDecisionState } from '../db/decisions-repo.ts';
import { listNotes, type StoredNote } from '../db/notes-repo.ts';
import { activeHolds, effectiveApprovals } from '../db/decisions-repo.ts';
import { latestReleaseIds, liveUpdateLabels, loadRelease, newerReleaseId, releaseRingStates, releaseTitle } from '../db/release-repo.ts';
import { loadBook, loadReleaseFacts, releaseGateDevices } from '../db/rollout-repo.ts';
import { gatesWaiting, type GateWait, type ReleaseFacts } from '../domain/eligibility.ts';
import type { PlanDevice } from '../domain/plan.ts';
import { gateKey } from '../domain/rollout.ts';
import type { Ring } from '../domain/inventory.ts';

/** The facts status is drawn from (see domain/status.ts for the words). */
export type ReleaseStatus = StatusFacts;

export async function recentReleaseIds(db: AppDatabase, limit: number): Promise<string[]> {
  return latestReleaseIds(db, limit);
}

export async function releaseStatus(db: AppDatabase, releaseId: string): Promise<ReleaseStatus | undefined> {
  const loaded = await loadDecisionState(db, releaseId, { lock: false });
  if (!loaded) return undefined;
  const { state } = loaded;
  const release = await releaseTitle(db, releaseId);
  const updates = await liveUpdateLabels(db, releaseId);
  const rings = await releaseRingStates(db, releaseId);
  const progress = (await loadReleaseFacts(db, [releaseId])).get(releaseId);
  const waits = progress && rings.some((r) => r.state === 'scheduled') ? await scheduledWaits(db, releaseId, progress) : new Map<string, GateWait>();
  const newer = await newerReleaseId(db, releaseId);
  return {
    releaseId,
    title: release?.title ?? null,
    supersededBy: newer ?? null,
    release: standingOf(state, null),
    updates: updates.map((u) => ({ key: u.key, kb: u.kb, title: u.title, family: u.family, standing: standingOf(state, u.key) })),
    rings: rings.map((r) => {
      const wait = waits.get(gateKey(r.ring as Ring, r.clientId));
      return { ring: r.ring, clientId: r.clientId, state: r.state, ...(wait ? { waitingFor: wait } : {}) };
    }),
    clientHolds: state.holds.filter((h) => h.updateKey === null && h.clientId !== null),
    skips: rings.flatMap((r) => r.skips.map((x) => ({ ring: r.ring, clientId: r.clientId, ...x }))),
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
  const row = await findLiveClient(db, clientId);
  if (!row) return undefined;
  const from = DateTime.fromJSDate(now).setZone(row.timezone);
  return {
    clientId: row.id,
    name: row.name,
    zone: row.timezone,
    byClass: Object.entries(row.windows)
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

export async function clientIds(db: AppDatabase): Promise<ClientChoice[]> {
  return liveClients(db);
}

/** Clients whose id or name contains `query` (any case), by name; for a picker that asks as the engineer types. */
export async function searchClients(db: AppDatabase, query: string, limit: number): Promise<ClientChoice[]> {
  return searchLiveClients(db, query, limit);
}

/** Client and people names for status: whoever reads it sees "Harbour Accounting" and "Ana Silva", not ids. */
export async function statusNames(db: AppDatabase): Promise<StatusNames> {
  const [clients, people] = await Promise.all([clientNames(db), chatDisplayNames(db)]);
  return { clients, people };
}
