/**
 * What a sweep reads about a release (its update catalog, approvals, gates and run facts), loaded once per sweep and
 * handed to every step: opening windows, settling reopened gates, finishing unopened ones and finishing rings all
 * plan over the same picture instead of reading it again.
 */
import type { UpdateRef } from '../../adapters/deployers/port.ts';
import type { AppDatabase } from '../../db/client.ts';
import { effectiveApprovals } from '../../db/decisions-repo.ts';
import { loadReleaseStates, type StoredBook } from '../../db/rollout-repo.ts';
import type { ReleaseFacts } from '../../domain/eligibility.ts';
import type { PlanUpdate } from '../../domain/plan.ts';
import type { Product } from '../../domain/release.ts';

/** A release's updates as the planner and the deployer need them. */
export interface Catalog {
  products: Product[];
  updates: PlanUpdate[];
  byKey: Map<string, UpdateRef>;
}

export type Approved = ReadonlySet<string> | 'all';

export interface ReleaseInputs {
  catalog: Catalog;
  approved: Approved;
  /** The release's gates as stored when the sweep read them. */
  book: StoredBook;
  facts: ReleaseFacts;
}

export class SweepReads {
  private readonly releases = new Map<string, ReleaseInputs | undefined>();

  constructor(
    private readonly db: AppDatabase,
    private readonly catalogOf: (releaseId: string) => Promise<Catalog | undefined>,
  ) {}

  /** Reads the releases not read yet in this sweep, together. */
  async load(releaseIds: Iterable<string>): Promise<void> {
    const missing = [...new Set(releaseIds)].filter((id) => !this.releases.has(id));
    if (missing.length === 0) return;
    const [approvals, states, catalogs] = await Promise.all([
      Promise.all(missing.map((id) => effectiveApprovals(this.db, id))),
      loadReleaseStates(this.db, missing),
      Promise.all(missing.map((id) => this.catalogOf(id))),
    ]);
    missing.forEach((releaseId, i) => {
      const catalog = catalogs[i];
      const state = states.get(releaseId)!;
      const approved: Approved = approvals[i]!.some((a) => a.updateKey === null) ? 'all' : new Set(approvals[i]!.map((a) => a.updateKey!));
      this.releases.set(releaseId, catalog ? { catalog, approved, ...state } : undefined);
    });
  }

  /** A release loaded before; undefined when its release is not stored (nothing is planned for it). */
  get(releaseId: string): ReleaseInputs | undefined {
    return this.releases.get(releaseId);
  }

  async release(releaseId: string): Promise<ReleaseInputs | undefined> {
    await this.load([releaseId]);
    return this.get(releaseId);
  }
}
