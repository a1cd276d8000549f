/**
 * Loads what src/domain/eligibility.ts needs to say where each update of a release stands in ring msp, for the
 * sweep (offers) and the Promote use-case (what a promotion covers, or why nothing is ready), from one place.
 */
import { sql } from 'drizzle-orm';
import { DEFAULT_SOAK_HOURS } from '../domain/rollout.ts';
import { isHeld, type Hold } from '../domain/rollout.ts';
import { mspStandings, type MspStanding, type ReleaseFacts } from '../domain/eligibility.ts';
import { rowsOf, type AppDatabase } from './client.ts';
import { activeHolds, effectiveApprovals } from './decisions-repo.ts';
import { loadRelease } from './release-repo.ts';
import { loadMspFacts, loadReleaseFacts, mspDevices } from './rollout-repo.ts';

export interface MspPicture {
  facts: ReleaseFacts;
  standings: MspStanding[];
  /** KB number and title by update key, for messages people read. */
  names: Map<string, { kb: string | null; title: string | null; family: string | null }>;
}

export async function holdsNow(db: AppDatabase): Promise<Hold[]> {
  return (await activeHolds(db)).map((h) => ({ scope: h.scope, releaseId: h.releaseId, updateKey: h.updateKey, clientId: h.clientId, ring: h.ring }));
}

/**
 * Each approved update not held for ring msp, and where it stands there (installed where, soaking until when).
 * `facts: 'msp'` reads only what the standings need (loadMspFacts): the picture's `facts` then say nothing of other rings.
 */
export async function loadMspPicture(db: AppDatabase, releaseId: string, now: Date, holds?: readonly Hold[], facts: 'all' | 'msp' = 'all'): Promise<MspPicture | undefined> {
  const release = await loadRelease(db, releaseId);
  if (!release) return undefined;
  const [approvals, releaseFacts, devices, settings, held] = await Promise.all([
    effectiveApprovals(db, releaseId),
    facts === 'msp' ? loadMspFacts(db, releaseId) : loadReleaseFacts(db, [releaseId]).then((all) => all.get(releaseId)!),
    mspDevices(db),
    db.execute(sql`select (settings ->> 'soakHours')::float as soak from msp where id = 1`),
    holds ? Promise.resolve(holds) : holdsNow(db),
  ]);
  const all = approvals.some((a) => a.updateKey === null);
  const approved = new Set(approvals.map((a) => a.updateKey));
  const target = { releaseId, ring: 'msp' as const, clientId: null };
  const updates = release.updates
    .filter((u) => (all || approved.has(u.id)) && !isHeld(held, { ...target, updateKey: u.id }))
    .map((u) => ({ key: u.id, productIds: u.productIds }));
  const soak = rowsOf<{ soak: number | null }>(settings)[0]?.soak;
  return {
    facts: releaseFacts,
    standings: mspStandings({ facts: releaseFacts, devices, products: release.products, updates, soakHours: soak ?? DEFAULT_SOAK_HOURS }, now),
    names: new Map(release.updates.map((u) => [u.id, { kb: u.kb ?? null, title: u.name ?? null, family: u.family ?? null }])),
  };
}
