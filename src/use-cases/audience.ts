/**
 * What a client's broad ring will actually install: the broad plan card promises nights only to machines the
 * planner would give a run, so a client whose broad machines have nothing to install gets no plan at all.
 */
import { activeHolds, effectiveApprovals } from '../db/decisions-repo.ts';
import { broadClassesNeedingNotice, broadDevices, championConversations, clientPlanSettings, type ClientPlanSettings } from '../db/audience-repo.ts';
import type { AppDatabase } from '../db/client.ts';
import { loadRelease } from '../db/release-repo.ts';
import { loadReleaseFacts } from '../db/rollout-repo.ts';
import { mspProducts, passedUpdates } from '../domain/eligibility.ts';
import { planWindow } from '../domain/plan.ts';
import { noticeHoursOf, plannedWindows } from '../domain/notice.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { zoneShort } from '../domain/zone-label.ts';
import type { PilotNotice } from '../chat/notices/pilot.ts';

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

/**
 * "Your machines will be patched on these nights" for a client's champions: the broad ring's next windows per
 * device class with something to install. None when the client is unknown or its broad ring has nothing to do.
 */
export async function broadPlanNotice(db: AppDatabase, releaseId: string, clientId: string, now: Date): Promise<Extract<PilotNotice, { kind: 'broad_plan' }> | undefined> {
  const client = await clientPlanSettings(db, clientId);
  if (!client) return undefined;
  // Only machines with something to install: no plan (no "save your work") for a broad ring with nothing to do.
  const work = await broadWorkByClass(db, releaseId, clientId);
  if (work.size === 0) return undefined;
  // Users a standing waiver covers are not waited for: their machines start in their windows like servers.
  const withUsers = await broadClassesNeedingNotice(db, clientId, now);
  const groups = planNights(client, work, withUsers, now);
  return { kind: 'broad_plan', clientId, plan: { releaseId, clientName: client.name, groups }, conversations: await championConversations(db, clientId) };
}

/** The next three nights per device class, in the client's zone; a class without a valid window is left out. */
function planNights(client: ClientPlanSettings, work: ReadonlyMap<string, number>, withUsers: ReadonlySet<string>, now: Date) {
  const notice = noticeHoursOf({ noticeHours: client.noticeHours });
  return [...work]
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([deviceClass, count]) => {
      const spec = client.windows[deviceClass];
      const parsed = spec ? parseWindowSpec(spec) : undefined;
      if (!parsed?.ok) return [];
      // A class with users starts only in a window they can still be told about (no unwarned reboot).
      const nights = plannedWindows(parsed.value, client.timezone, now, withUsers.has(deviceClass) ? notice : null, 3).map((w) => {
        const [start, end] = [w.start.setZone(client.timezone), w.end.setZone(client.timezone)];
        return `${start.toFormat('ccc d LLL, HH:mm')}–${end.toFormat('HH:mm')} ${zoneShort(end)}`;
      });
      return [{ deviceClass, count, nights }];
    });
}
