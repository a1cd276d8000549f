/**
 * After a decision, the digest messages that show the decided updates are edited, in the decision's own
 * transaction. Each edit is the message drawn again from the release model as it was posted plus the standings
 * just decided (the `digest_changed` notice, src/chat/notices/digest.ts), never a patch of what was stored or
 * last sent, so edits queued by decisions taken one after another (the release row lock orders them) end on the
 * latest state whatever happens to the ones in between.
 */
import { standingOf, type ReleaseDecisionState } from '../domain/approval.ts';
import { buildDigest } from '../domain/digest.ts';
import type { AppDatabase } from '../db/client.ts';
import { listNotes, type StoredNote } from '../db/notes-repo.ts';
import { digestPosts, loadDigestInput } from '../db/release-repo.ts';
import type { DigestChanged } from '../chat/notices/digest.ts';
import { notify } from '../chat/notify.ts';
import { subjects } from '../chat/subjects.ts';

/** The MSP's zone (kept under its old name for the use-cases that ask it here). */
export { mspTimezone as mspZone } from '../db/msp-repo.ts';

/**
 * The notice that edits the release's digest messages showing `keys` (null = the release as a whole, which every
 * update's line reflects); undefined when no digest was posted.
 */
export async function digestChanged(
  tx: AppDatabase,
  state: ReleaseDecisionState,
  keys: ReadonlyArray<string | null>,
  now: Date,
  cause: string,
): Promise<DigestChanged | undefined> {
  const releaseId = state.releaseId;
  const posted = await digestPosts(tx, subjects.digest(releaseId));
  if (posted.length === 0) return undefined;
  // The digest's messages are queued in one transaction, so they share one time: the notes written by then are in
  // their text (drawn as the digest was then), later ones are shown under their update.
  const postedAt = posted[0]!.postedAt.getTime();
  const notes = await listNotes(tx, releaseId);
  const isLater = (n: StoredNote) => new Date(n.createdAt).getTime() > postedAt;
  const input = await loadDigestInput(tx, releaseId, posted[0]!.postedAt);
  const digest = buildDigest({ ...input, notes: notes.filter((n) => !isLater(n)) });
  const updates = Object.fromEntries(
    Object.keys(state.updates).map((key) => {
      const later = notes.filter((n) => n.updateKey === key && isLater(n)).map((n) => ({ author: n.author, text: n.text, tags: n.tags }));
      return [key, { standing: standingOf(state, key), notes: later }];
    }),
  );
  return {
    kind: 'digest_changed',
    releaseId,
    cause,
    changed: keys,
    digest,
    posted: posted.map((p) => ({ outboxId: p.outboxId, channel: p.channel, subject: p.subject })),
    release: standingOf(state, null),
    updates,
    at: now.toISOString(),
  };
}

/** Queues the edits `digestChanged` calls for; returns the outbox ids inserted. */
export async function queueDigestRefresh(
  tx: AppDatabase,
  state: ReleaseDecisionState,
  keys: ReadonlyArray<string | null>,
  now: Date,
  cause: string,
): Promise<number[]> {
  const notice = await digestChanged(tx, state, keys, now, cause);
  return notice ? notify(tx, [notice], now) : [];
}
