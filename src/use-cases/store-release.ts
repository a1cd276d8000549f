/**
 * Storing a release as read from MSRC (the release watcher, `patchbay digest --post`): the repository writes the
 * rows, the audit entry and the announcement in one transaction; the announcement is a notice (`release_stored`,
 * `release_revised`, src/chat/notices/release.ts) handed to `notify` (src/db knows no chat platform).
 */
import type { AppDatabase } from '../db/client.ts';
import { saveRelease, type AnnounceRelease, type StoreOptions, type StoreResult } from '../db/release-repo.ts';
import type { Release } from '../domain/release.ts';
import type { ReleaseNotice } from '../chat/notices/release.ts';
import { notify } from '../chat/notify.ts';

export type { StoreOptions, StoreOutcome, StoreResult } from '../db/release-repo.ts';

export function storeRelease(db: AppDatabase, release: Release, options: Omit<StoreOptions, 'announce'>): Promise<StoreResult> {
  return saveRelease(db, release, { ...options, announce: announceRelease });
}

const announceRelease: AnnounceRelease = async (tx, announcement, now) => {
  const notice: ReleaseNotice =
    announcement.kind === 'new'
      ? { kind: 'release_stored', releaseId: announcement.releaseId, digest: announcement.digest }
      : { kind: 'release_revised', release: announcement.release, documentHash: announcement.documentHash, changes: announcement.changes };
  return (await notify(tx, [notice], now)).length;
};
