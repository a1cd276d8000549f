/**
 * After a decision, the digest messages that show the decided updates are queued for an in-place edit, in the
 * decision's own transaction. Each edit is drawn from the message as first posted plus the state just decided
 * (see slack/decision-blocks.ts), so edits queued by decisions taken one after another (the release row lock
 * orders them) end on the latest state whatever happens to the ones in between.
 */
import { sql } from 'drizzle-orm';
import { standingOf, type ReleaseDecisionState } from '../domain/approval.ts';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import { chatDisplayNames, clientNames } from '../db/names-repo.ts';
import { listNotes } from '../db/notes-repo.ts';
import { enqueueOutbox, type OutboxItem } from '../db/outbox-repo.ts';
import type { SlackMessage } from '../bot/slack/block-kit.ts';
import { hasReleaseActions, renderDigestStatus, updateKeysIn, type DigestStatus, type NoteLine } from '../bot/slack/decision-blocks.ts';
import { subjects } from '../chat/subjects.ts';

interface PostRow {
  id: number;
  platform: string;
  channel: string;
  subject: string;
  payload: SlackMessage;
  created_at: unknown;
}

export async function mspZone(tx: AppDatabase): Promise<string> {
  const [row] = rowsOf<{ timezone: string }>(await tx.execute(sql`select timezone from msp where id = 1`));
  return row?.timezone ?? 'UTC';
}

/**
 * Queues edits of the release's digest messages that show `keys` (null = the release as a whole, which every
 * update's line reflects). Returns the outbox ids inserted.
 */
export async function queueDigestRefresh(
  tx: AppDatabase,
  state: ReleaseDecisionState,
  keys: ReadonlyArray<string | null>,
  now: Date,
  cause: string,
): Promise<number[]> {
  const releaseId = state.releaseId;
  const parent = subjects.digest(releaseId);
  const posts = rowsOf<PostRow>(
    await tx.execute(sql`select id, platform, channel, subject, payload, created_at from chat_outbox
      where action = 'post' and platform = 'slack' and (subject = ${parent} or subject like ${`${parent}:thread:%`}) order by id`),
  );
  if (posts.length === 0) return [];
  const everything = keys.includes(null);
  const wanted = new Set(keys.filter((k): k is string => k !== null));
  const zone = await mspZone(tx);
  const notes = await listNotes(tx, releaseId);
  const names = await clientNames(tx);
  const people = await chatDisplayNames(tx);

  const items: OutboxItem[] = [];
  for (const post of posts) {
    const payload = (typeof post.payload === 'string' ? JSON.parse(post.payload) : post.payload) as SlackMessage;
    const inMessage = updateKeysIn(payload.blocks);
    const touched = everything ? inMessage.length > 0 || hasReleaseActions(payload.blocks) : inMessage.some((k) => wanted.has(k));
    if (!touched) continue;
    // Notes written before the post are in its text already; later ones are shown under the update.
    const postedAt = new Date(String(post.created_at instanceof Date ? post.created_at.toISOString() : post.created_at)).getTime();
    const updates = new Map<string, { standing: ReturnType<typeof standingOf>; notes: NoteLine[] }>();
    for (const key of inMessage) {
      const later = notes
        .filter((n) => n.updateKey === key && new Date(n.createdAt).getTime() > postedAt)
        .map((n) => ({ author: n.author, text: n.text, tags: n.tags }));
      updates.set(key, { standing: standingOf(state, key), notes: later });
    }
    const status: DigestStatus = { releaseId, release: standingOf(state, null), updates, zone, now, clientNames: names, personNames: people };
    const message = renderDigestStatus(payload, status);
    items.push({
      key: `refresh:${cause}:${post.id}`,
      platform: 'slack',
      channel: post.channel,
      action: 'update',
      subject: post.subject,
      payload: { text: message.text, blocks: message.blocks },
    });
  }
  return enqueueOutbox(tx, items, now);
}
