/**
 * Releasing a hold resumes what it stopped. A gate held as a whole never finished, so it simply opens its next
 * window; but an update (or a ring's update) held while its ring ran was left out of the ring's runs, and the ring
 * finished without it. This reopens the release's resting gates that now have eligible work for their devices
 * (src/domain/eligibility.ts `gatesWithWork`, the planner's own rules), in the hold release's transaction, so the
 * update reaches those machines in their next windows. A pilot asks its champion only about what installs then.
 */
import { activeHolds, effectiveApprovals } from '../db/decisions-repo.ts';
import type { AppDatabase } from '../db/client.ts';
import { loadRelease } from '../db/release-repo.ts';
import { loadBook, loadReleaseFacts, releaseGateDevices } from '../db/rollout-repo.ts';
import { gatesWithWork } from '../domain/eligibility.ts';
import type { PlanDevice } from '../domain/plan.ts';
import { applyGateEvents } from './gates.ts';

/** Reopens `releaseId`'s gates that have eligible work now; returns the gate keys it moved. */
export async function reopenGatesWithWork(tx: AppDatabase, releaseId: string, now: Date): Promise<string[]> {
  const [release, approvals, holdRows, facts, rows] = await Promise.all([
    loadRelease(tx, releaseId),
    effectiveApprovals(tx, releaseId),
    activeHolds(tx),
    loadReleaseFacts(tx, [releaseId]),
    releaseGateDevices(tx, releaseId),
  ]);
  const releaseFacts = facts.get(releaseId);
  if (!release || !releaseFacts || approvals.length === 0) return [];
  const book = await loadBook(tx, releaseId, true);
  const devices = new Map<string, PlanDevice[]>();
  for (const r of rows) devices.set(r.gateKey, [...(devices.get(r.gateKey) ?? []), r]);
  const catalog = { products: release.products, updates: release.updates.map((u) => ({ key: u.id, productIds: u.productIds, restartRequired: u.restartRequired })) };
  const approved = approvals.some((a) => a.updateKey === null) ? ('all' as const) : new Set(approvals.map((a) => a.updateKey!));
  const holds = holdRows.map((h) => ({ scope: h.scope, releaseId: h.releaseId, updateKey: h.updateKey, clientId: h.clientId, ring: h.ring }));
  const keys = gatesWithWork(book, devices, catalog, approved, holds, releaseFacts);
  if (keys.length === 0) return [];
  // A gate moved meanwhile fails the compare-and-set; the caller's withTransaction retries the whole release.
  const applied = await applyGateEvents(tx, releaseId, [{ type: 'reopen', gates: keys }], now, { book });
  const result = applied.results[0];
  return result?.outcome === 'applied' ? result.changed : [];
}
