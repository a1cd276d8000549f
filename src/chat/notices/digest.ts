/**
 * The release digest's notices: its messages edited after engineers decided something (src/use-cases/decisions.ts
 * via digest-refresh.ts), and the lines its thread gets when a client's pilot is confirmed (thread-notices.ts).
 * Each renderer is pure: the notice carries the model and standings it shows, the audiences the rest.
 */
import { createHash } from 'node:crypto';
import type { OutboxItem } from '../../db/outbox-repo.ts';
import type { UpdateStanding } from '../../domain/approval.ts';
import type { Digest } from '../../domain/digest.ts';
import { isSlackUserId } from '../chat-ids.ts';
import { escapeMrkdwn } from '../slack/block-kit.ts';
import { renderDigestBlocks } from '../slack/digest-blocks.ts';
import { renderDigestStatus, showsRelease, updatesShown, type DigestStatus, type NoteLine } from '../slack/decision-blocks.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

/** One posted digest message: where it is and the outbox row that posted it (its edits are keyed by it). */
export interface PostedDigestMessage {
  outboxId: number;
  channel: string;
  subject: string;
}

/**
 * A decision changed what the digest shows: every posted message showing one of `changed` (null: the release as a
 * whole, which every update's line reflects) is drawn again from `digest` with the standings as they now are.
 */
export interface DigestChanged {
  kind: 'digest_changed';
  releaseId: string;
  /** The decision's id: one edit per message per decision, however often the decision is retried. */
  cause: string;
  changed: ReadonlyArray<string | null>;
  /** The digest as it was posted: the release model, with the notes written by then in its text. */
  digest: Digest;
  posted: readonly PostedDigestMessage[];
  release: UpdateStanding;
  /** Per update key: its standing, and the notes written since the digest was posted (shown under it). */
  updates: Readonly<Record<string, { standing: UpdateStanding; notes: readonly NoteLine[] }>>;
  /** When it was decided (ISO): times in the edit read relative to it. */
  at: string;
}

/** A client's pilot was confirmed (by its champion, an engineer on its behalf, or auto-confirm). */
export interface PilotConfirmed {
  kind: 'pilot_confirmed';
  releaseId: string;
  clientId: string;
  /** The client's name when it was confirmed. */
  clientName: string;
  as: 'champion' | 'engineer' | 'auto';
  /** The person's display name (absent for auto-confirm). */
  by?: string;
  /** The updates the confirmation covered, by key, with the label people read. */
  updates: ReadonlyArray<{ key: string; label: string }>;
  /** Which night each class of the client's broad machines starts. */
  nights: ReadonlyArray<{ deviceClass: string; count: number; users: boolean; night: string }>;
  autoConfirmHours: number | undefined;
}

export type DigestNotice = DigestChanged | PilotConfirmed;

export function renderDigestNotice(notice: DigestNotice, audiences: Audiences): OutboxItem[] {
  return notice.kind === 'digest_changed' ? digestEdits(notice, audiences) : confirmationPost(notice, audiences);
}

/** The edits: each posted message is matched to the message the renderer draws at its place in the digest. */
function digestEdits(notice: DigestChanged, audiences: Audiences): OutboxItem[] {
  const { releaseId } = notice;
  const messages = renderDigestBlocks(notice.digest, { interactive: true });
  const place = new Map(messages.map((_, n) => [n === 0 ? subjects.digest(releaseId) : subjects.digestThread(releaseId, n), n]));
  const keys = Object.keys(notice.updates);
  const everything = notice.changed.includes(null);
  const wanted = new Set(notice.changed);
  const status: DigestStatus = {
    releaseId,
    release: notice.release,
    updates: new Map(Object.entries(notice.updates).map(([key, u]) => [key, { standing: u.standing, notes: [...u.notes] }])),
    zone: audiences.mspZone,
    now: new Date(notice.at),
    clientNames: { get: audiences.clientName },
    personNames: { get: audiences.personName },
  };
  return notice.posted.flatMap((post): OutboxItem[] => {
    const n = place.get(post.subject);
    const message = n === undefined ? undefined : messages[n];
    if (!message) return [];
    const shown = updatesShown(message, keys);
    const touched = everything ? shown.length > 0 || showsRelease(message, releaseId) : shown.some((k) => wanted.has(k));
    if (!touched) return [];
    const edited = renderDigestStatus(message, status);
    const payload = { text: edited.text, blocks: edited.blocks };
    return [{ key: `refresh:${notice.cause}:${post.outboxId}`, platform: 'slack', channel: post.channel, action: 'update', subject: post.subject, payload }];
  });
}

/**
 * "Harbour Accounting's champion Ana Silva confirmed the pilot of 2024-Feb (KB5034765 …)", in words people use,
 * then which night each class of its other machines that runs them starts (`nights`, one line each; none while
 * updates are named: none runs them; none and none named: "are scheduled").
 */
export function confirmationText(
  clientName: string,
  c: Pick<PilotConfirmed, 'releaseId' | 'as' | 'by'>,
  autoConfirmHours: number | undefined,
  what: readonly string[] = [],
  nights: readonly string[] = [],
): string {
  const covered = what.length > 0 ? ` (${what.join(', ')})` : '';
  // No night and named updates: none of its other machines runs them (broadFirstNights counts only those that do).
  const none = `none of its other machines runs ${what.length > 1 ? 'them' : 'it'}, so nothing more installs for this confirmation.`;
  const tail = nights.length > 0 ? `the rest of its machines start:\n${nights.join('\n')}` : what.length > 0 ? none : 'the rest of its machines are scheduled.';
  if (c.as === 'auto') {
    const after = autoConfirmHours !== undefined ? ` after ${autoConfirmHours} h` : '';
    return `${clientName}'s pilot of ${c.releaseId}${covered} was auto-confirmed${after} without an answer from its champions; ${tail}`;
  }
  if (c.as === 'engineer') return `${c.by ?? 'An engineer'} confirmed ${clientName}'s pilot of ${c.releaseId}${covered} on its behalf; ${tail}`;
  return `${clientName}'s champion ${c.by ?? ''} confirmed the pilot of ${c.releaseId}${covered}; ${tail}`.replace('  ', ' ');
}

/**
 * One thread note per confirmation: who confirmed, what, and which night the broad ring runs. Keyed by the updates
 * it covered: a retried click is one note; a later confirmation (of a late update) is a note of its own.
 */
function confirmationPost(notice: PilotConfirmed, audiences: Audiences): OutboxItem[] {
  if (!audiences.engineers) return [];
  const { releaseId, clientId } = notice;
  const what = notice.updates.map((u) => escapeMrkdwn(u.label));
  const nights = notice.nights.map(
    (n) => `• ${escapeMrkdwn(n.deviceClass)} (${n.count}): ${n.night}${n.users ? ', once their users have had the \u201csave your work\u201d message' : ''}`,
  );
  const by = notice.by !== undefined ? { by: isSlackUserId(notice.by) ? `<@${notice.by}>` : escapeMrkdwn(notice.by) } : {};
  const text = `:white_check_mark: ${confirmationText(escapeMrkdwn(notice.clientName), { releaseId, as: notice.as, ...by }, notice.autoConfirmHours, what, nights)}`;
  const keys = notice.updates.map((u) => u.key);
  const batch = keys.length > 0 ? `:${createHash('sha1').update(keys.join(' ')).digest('hex').slice(0, 12)}` : '';
  return [
    {
      key: `pilot-confirmed:${releaseId}:${clientId}${batch}`,
      platform: 'slack',
      channel: audiences.engineers.channel,
      action: 'post',
      subject: subjects.pilotConfirmed(releaseId, clientId),
      payload: { text, threadSubject: subjects.digest(releaseId) },
    },
  ];
}
