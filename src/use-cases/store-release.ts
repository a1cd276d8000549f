/**
 * Storing a release as read from MSRC (the release watcher, `patchbay digest --post`): the repository writes the
 * rows, the audit entry and the announcement in one transaction; the announcement is rendered here, above the
 * repository, by the Slack renderers (src/db knows no chat platform).
 */
import type { AppDatabase } from '../db/client.ts';
import { saveRelease, type StoreOptions, type StoreResult } from '../db/release-repo.ts';
import type { Release } from '../domain/release.ts';
import { slackReleaseMessages } from '../chat/slack/release-messages.ts';

export type { StoreOptions, StoreOutcome, StoreResult } from '../db/release-repo.ts';

export function storeRelease(db: AppDatabase, release: Release, options: Omit<StoreOptions, 'messages'>): Promise<StoreResult> {
  return saveRelease(db, release, { ...options, messages: slackReleaseMessages });
}
