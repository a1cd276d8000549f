/**
 * A stored release announced in the engineers' channel (src/use-cases/store-release.ts): the digest, its parent
 * message and thread, when a month is stored for the first time; a thread reply listing what a revision changed.
 * The notice carries the digest's input as read in the storing transaction, so what is posted is the month as stored.
 */
import type { OutboxItem } from '../../db/outbox-repo.ts';
import type { DigestInput } from '../../domain/digest.ts';
import type { Release, ReleaseChange } from '../../domain/release.ts';
import { changeMessages, digestMessages } from '../slack/release-messages.ts';
import type { Audiences } from '../audiences.ts';

export type ReleaseNotice =
  /** A month stored for the first time: its digest. */
  | { kind: 'release_stored'; releaseId: string; digest: DigestInput }
  /** Microsoft revised a stored month: what changed, under its digest. */
  | { kind: 'release_revised'; release: Release; documentHash: string; changes: readonly ReleaseChange[] };

export function renderReleaseNotice(notice: ReleaseNotice, audiences: Audiences): OutboxItem[] {
  if (!audiences.engineers) return [];
  const { channel } = audiences.engineers;
  const messages =
    notice.kind === 'release_stored'
      ? digestMessages(notice.releaseId, notice.digest)
      : changeMessages(notice.release, notice.documentHash, [...notice.changes]);
  return messages.map((m) => ({
    key: m.key,
    channel,
    action: 'post' as const,
    subject: m.subject,
    payload: { text: m.message.text, blocks: m.message.blocks, ...(m.threadSubject ? { threadSubject: m.threadSubject } : {}) },
  }));
}
