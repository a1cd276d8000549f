/**
 * The one way a writer tells people something: `notify(tx, notices, now)` renders each notice for its audience and
 * writes the outbox rows in the writer's transaction, so a change and the message that reports it commit together.
 * Hand the returned ids to `AfterCommit.outbox` so the deliverer is woken after commit.
 */
import type { AppDatabase } from '../db/client.ts';
import { enqueueOutbox } from '../db/outbox-repo.ts';
import { loadAudiences, type Audiences } from './audiences.ts';
import { renderNotice, type Notice } from './notices.ts';

export async function notify(tx: AppDatabase, notices: readonly Notice[], now: Date, audiences?: Audiences): Promise<number[]> {
  if (notices.length === 0) return [];
  const to = audiences ?? (await loadAudiences(tx));
  return enqueueOutbox(tx, notices.flatMap((notice) => renderNotice(notice, to)), now);
}
