/**
 * What a client's broad ring will actually install: the broad plan card promises nights only to machines the
 * planner would give a run, so a client whose broad machines have nothing to install gets no plan at all.
 */
import { activeHolds, effectiveApprovals } from '../db/decisions-repo.ts';
import { broadDevices } from '../db/audience-repo.ts';
import type { AppDatabase } from '../db/client.ts';
import { loadRelease } from '../db/release-repo.ts';
import { loadReleaseFacts } from '../db/rollout-repo.ts';
import { mspProducts, passedUpdates } from '../domain/eligibility.ts';
import { planWindow } from '../domain/plan.ts';

/**
 * Broad devices with something to install, counted by device class (empty: nothing to install anywhere). The same
 * eligibility as the sweep: only updates that passed this client's pilot and its confirmation, none already done.
 */
export async function broadWorkByClass(db: AppDatabase, releaseId: string, clientId: string): Promise<Map<string, number>> {
  const [release, devices, approvals, holds, facts] = await Promise.all([
    loadRelease(db, releaseId),
    broadDevices(db, clientId),
    effectiveApprovals(db, releaseId),
    activeHolds(db),
    loadReleaseFacts(db, [releaseId]),
  ]);
  const counts = new Map<string, number>();
  const releaseFacts = facts.get(releaseId);
  if (!release || !releaseFacts || devices.length === 0) return counts;
  const plan = planWindow({
    releaseId,
    ring: 'broad',
    clientId,
    devices,
    products: release.products,
    updates: release.updates.map((u) => ({ key: u.id, productIds: u.productIds, restartRequired: u.restartRequired })),
    approved: approvals.some((a) => a.updateKey === null) ? 'all' : new Set(approvals.map((a) => a.updateKey!)),
    holds: holds.map((h) => ({ scope: h.scope, releaseId: h.releaseId, updateKey: h.updateKey, clientId: h.clientId, ring: h.ring })),
    passed: passedUpdates(releaseFacts, 'broad', clientId, release.updates.map((u) => u.id)),
    passedProducts: mspProducts(releaseFacts, release.products, release.updates.map((u) => ({ key: u.id, productIds: u.productIds }))),
    done: releaseFacts.done,
  });
  const classOf = new Map(devices.map((d) => [d.id, d.deviceClass]));
  for (const run of plan.runs) {
    const deviceClass = classOf.get(run.deviceId)!;
    counts.set(deviceClass, (counts.get(deviceClass) ?? 0) + 1);
  }
  return counts;
}
