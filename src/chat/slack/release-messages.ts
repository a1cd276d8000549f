/**
 * How a stored release is announced in the MSP channel: the digest (parent message and its thread) for a new
 * release, a thread reply for a revision's changes. Pure; the `release_stored` and `release_revised` notices
 * (src/chat/notices/release.ts) turn what these return into outbox rows.
 */
import { buildDigest, type DigestInput } from '../../domain/digest.ts';
import { latestRevision, type Release, type ReleaseChange } from '../../domain/release.ts';
import { BLOCK_KIT_LIMITS, cutMrkdwn, escapeMrkdwn, mrkdwn, splitText } from './block-kit.ts';
import { renderDigestBlocks } from './digest-blocks.ts';
import { subjects } from '../subjects.ts';

/** One Slack message of an announcement, with its key, subject and the parent it threads under. */
export interface QueuedMessage {
  key: string;
  subject: string;
  message: { text: string; blocks: unknown[] };
  threadSubject?: string;
}

export function digestMessages(releaseId: string, input: DigestInput): QueuedMessage[] {
  const messages = renderDigestBlocks(buildDigest(input), { interactive: true });
  const parent = subjects.digest(releaseId);
  return messages.map((message, n) =>
    n === 0
      ? { key: parent, subject: parent, message }
      : { key: subjects.digestThread(releaseId, n), subject: subjects.digestThread(releaseId, n), message, threadSubject: parent },
  );
}

/** One thread reply under the digest listing what the revision changed (more replies only if it is very long). */
export function changeMessages(release: Release, documentHash: string, changes: ReleaseChange[]): QueuedMessage[] {
  const intro = `Microsoft revised ${release.id} (revision ${latestRevision(release)}, ${release.currentReleaseDate.slice(0, 10)}): ${changes.length} change${changes.length === 1 ? '' : 's'}`;
  const lines = changes.map((change) => `• ${escapeMrkdwn(change.message)}`);
  // Each message stays far below Block Kit's per-message size; the text is split, never cut.
  const bodies = splitText(lines.join('\n'), 6000);
  const subject = `release-changes:${release.id}:${documentHash.slice(0, 16)}`;
  return bodies.map((body, n) => {
    const sections = splitText(body, BLOCK_KIT_LIMITS.sectionText - 100).map((text) => ({ type: 'section' as const, text: mrkdwn(text) }));
    const heading = n === 0 ? escapeMrkdwn(intro) : `${escapeMrkdwn(intro)} (continued)`;
    const fallback = n === 0 ? `${heading}: ${changes.slice(0, 3).map((c) => escapeMrkdwn(c.message)).join('; ')}${changes.length > 3 ? '; …' : ''}` : heading;
    const id = n === 0 ? subject : `${subject}:${n}`;
    return {
      key: id,
      subject: id,
      threadSubject: subjects.digest(release.id),
      message: {
        text: cutMrkdwn(fallback, BLOCK_KIT_LIMITS.fallbackText),
        blocks: [{ type: 'section' as const, text: mrkdwn(`*${heading}*`) }, ...sections],
      },
    };
  });
}
