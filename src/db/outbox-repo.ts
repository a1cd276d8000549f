/**
 * The chat outbox: messages to send are rows written in the same transaction as the change they report, and
 * src/jobs/outbox.ts delivers them. `enqueueOutbox` is what use-cases and jobs call; the rest is the
 * deliverer's bookkeeping. Redis only carries the job that says "deliver row N"; the row is the truth.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

export type OutboxAction = 'post' | 'update' | 'ephemeral';

export interface OutboxPayload {
  text: string;
  blocks?: unknown[];
  /** The subject of the parent message whose ts becomes thread_ts. */
  threadSubject?: string;
  /** For `ephemeral`: who sees it. */
  user?: string;
  [key: string]: unknown;
}

export interface OutboxItem {
  /** Unique per message meant: a second enqueue with the same key is ignored. */
  key: string;
  platform?: 'slack' | 'teams';
  channel: string;
  action: OutboxAction;
  /** The message's identity; an `update` edits the message posted with this subject. */
  subject: string;
  payload: OutboxPayload;
}

/**
 * Inserts the rows (ON CONFLICT DO NOTHING on the key); returns the ids actually inserted, in order. The rows go
 * as one JSON parameter read by jsonb_to_recordset: a night's DMs are thousands of rows, and a VALUES list binds
 * nine parameters a row (drizzle's insert took 4x as long for 500 rows, building and binding them).
 */
export async function enqueueOutbox(tx: AppDatabase, items: readonly OutboxItem[], now: Date): Promise<number[]> {
  if (items.length === 0) return [];
  const rows = JSON.stringify(
    items.map((item) => ({ key: item.key, platform: item.platform ?? 'slack', channel: item.channel, action: item.action, subject: item.subject, payload: item.payload })),
  );
  const at = now.toISOString();
  const inserted = rowsOf<{ id: number | string }>(
    await tx.execute(sql`insert into chat_outbox (idempotency_key, platform, channel, action, subject, payload, next_attempt_at, created_at, updated_at)
      select key, platform, channel, action, subject, payload, ${at}::timestamptz, ${at}::timestamptz, ${at}::timestamptz
      from jsonb_to_recordset(${rows}::jsonb) as r(key text, platform text, channel text, action text, subject text, payload jsonb)
      on conflict (idempotency_key) do nothing returning id`),
  );
  return inserted.map((row) => Number(row.id)).sort((a, b) => a - b);
}

/** Which of `keys` are in the outbox already (queued, sent or given up on): what a tick need not build again. */
async function queuedKeys(db: AppDatabase, keys: readonly string[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const rows = rowsOf<{ k: string }>(
    await db.execute(sql`select idempotency_key as k from chat_outbox where idempotency_key in (select jsonb_array_elements_text(${JSON.stringify(keys)}::jsonb))`),
  );
  return new Set(rows.map((r) => r.k));
}

/** The items some of whose keys are not in the outbox yet; an item with no keys is owed nothing. */
export async function withUnqueuedKeys<T>(db: AppDatabase, items: readonly T[], keysOf: (item: T) => readonly string[]): Promise<T[]> {
  const queued = await queuedKeys(db, items.flatMap(keysOf));
  return items.filter((item) => keysOf(item).some((key) => !queued.has(key)));
}

export interface OutboxRow {
  id: number;
  platform: 'slack' | 'teams';
  channel: string;
  action: string;
  subject: string | null;
  payload: OutboxPayload;
  state: string;
  attempts: number;
  nextAttemptAt: Date;
}

function toRow(r: Record<string, unknown>): OutboxRow {
  return {
    id: Number(r.id),
    platform: r.platform as OutboxRow['platform'],
    channel: String(r.channel),
    action: String(r.action),
    subject: (r.subject as string | null) ?? null,
    payload: (typeof r.payload === 'string' ? JSON.parse(r.payload) : r.payload) as OutboxPayload,
    state: String(r.state),
    attempts: Number(r.attempts),
    nextAttemptAt: r.next_attempt_at instanceof Date ? r.next_attempt_at : new Date(String(r.next_attempt_at)),
  };
}

export async function loadOutboxRow(db: AppDatabase, id: number): Promise<OutboxRow | undefined> {
  const [row] = rowsOf<Record<string, unknown>>(await db.execute(sql`select id, platform, channel, action, subject, payload, state, attempts, next_attempt_at from chat_outbox where id = ${id}`));
  return row ? toRow(row) : undefined;
}

const UNSENT = sql`state in ('pending', 'sending', 'failed')`;

/** The oldest row of a channel not yet sent: the one that must go out before any later one. */
export async function channelHead(db: AppDatabase, platform: string, channel: string): Promise<OutboxRow | undefined> {
  const [row] = rowsOf<Record<string, unknown>>(
    await db.execute(sql`select id, platform, channel, action, subject, payload, state, attempts, next_attempt_at from chat_outbox
      where platform = ${platform} and channel = ${channel} and ${UNSENT} order by id limit 1`),
  );
  return row ? toRow(row) : undefined;
}

/** Rows due for (re)delivery, oldest first: what the sweep hands back to the queue. */
export async function dueOutboxIds(db: AppDatabase, now: Date, platforms: readonly string[], limit = 500): Promise<number[]> {
  const rows = rowsOf<{ id: number }>(
    await db.execute(sql`select id from chat_outbox where ${UNSENT} and next_attempt_at <= ${now.toISOString()}::timestamptz
      and platform in (select jsonb_array_elements_text(${JSON.stringify(platforms)}::jsonb)) order by id limit ${limit}`),
  );
  return rows.map((r) => Number(r.id));
}

/** Marks the row as being sent; attempts counts calls that may have reached the platform. */
export async function markSending(db: AppDatabase, id: number, now: Date): Promise<void> {
  await db.execute(sql`update chat_outbox set state = 'sending', attempts = attempts + 1, updated_at = ${now.toISOString()}::timestamptz where id = ${id}`);
}

/**
 * Marks the row sent and, for a post, records the message (so later updates and thread replies find its ts),
 * in one transaction: either both are stored or neither.
 */
export async function markSent(
  db: AppDatabase,
  row: OutboxRow,
  result: { messageId: string | undefined; threadId: string | undefined; note?: string },
  now: Date,
): Promise<void> {
  const at = now.toISOString();
  await db.transaction(async (tx) => {
    if (row.action === 'post' && result.messageId !== undefined && row.subject !== null) {
      await tx.execute(sql`insert into chat_messages (platform, channel, message_id, thread_id, subject, created_at, updated_at)
        values (${row.platform}, ${row.channel}, ${result.messageId}, ${result.threadId ?? null}, ${row.subject}, ${at}::timestamptz, ${at}::timestamptz)
        on conflict do nothing`);
    }
    if (row.action === 'update' && row.subject !== null) {
      await tx.execute(sql`update chat_messages set updated_at = ${at}::timestamptz
        where platform = ${row.platform} and channel = ${row.channel} and subject = ${row.subject}`);
    }
    await tx.execute(sql`update chat_outbox set state = 'sent', sent_at = ${at}::timestamptz, sent_message_id = ${result.messageId ?? null},
      last_error = ${result.note ?? null}, updated_at = ${at}::timestamptz where id = ${row.id}`);
  });
}

/** The platform refused the call before acting on it (a 429): not an attempt, the row simply waits. */
export async function markPending(db: AppDatabase, id: number, retryAt: Date, now: Date): Promise<void> {
  await db.execute(sql`update chat_outbox set state = 'pending', attempts = greatest(attempts - 1, 0), last_error = 'rate limited',
    next_attempt_at = ${retryAt.toISOString()}::timestamptz, updated_at = ${now.toISOString()}::timestamptz where id = ${id}`);
}

/** A failure worth retrying later: the row waits until `retryAt` (the sweep picks it up again). */
export async function markFailed(db: AppDatabase, id: number, error: string, retryAt: Date, now: Date): Promise<void> {
  await db.execute(sql`update chat_outbox set state = 'failed', last_error = ${error.slice(0, 1000)},
    next_attempt_at = ${retryAt.toISOString()}::timestamptz, updated_at = ${now.toISOString()}::timestamptz where id = ${id}`);
}

/**
 * Every unsent row of a platform is due now, with its attempts forgiven: for when what made them fail is known to
 * be fixed (the sandbox's emulator is back on a new address). Returns how many.
 */
export async function retryUnsentNow(db: AppDatabase, platform: string, now: Date): Promise<number> {
  const rows = rowsOf<{ id: number }>(
    await db.execute(sql`update chat_outbox set state = 'pending', attempts = 0, next_attempt_at = ${now.toISOString()}::timestamptz,
      updated_at = ${now.toISOString()}::timestamptz where platform = ${platform} and ${UNSENT} returning id`),
  );
  return rows.length;
}

/** A failure no retry can fix (channel gone, blocks refused): kept for a person to look at, never resent. */
export async function markDead(db: AppDatabase, id: number, error: string, now: Date): Promise<void> {
  await db.execute(sql`update chat_outbox set state = 'dead', last_error = ${error.slice(0, 1000)}, updated_at = ${now.toISOString()}::timestamptz where id = ${id}`);
}

export async function findChatMessage(
  db: AppDatabase,
  platform: string,
  channel: string,
  subject: string,
): Promise<{ messageId: string; threadId: string | null } | undefined> {
  const [row] = rowsOf<{ message_id: string; thread_id: string | null }>(
    await db.execute(sql`select message_id, thread_id from chat_messages where platform = ${platform} and channel = ${channel} and subject = ${subject}`),
  );
  return row ? { messageId: row.message_id, threadId: row.thread_id } : undefined;
}

/** Is a post with this subject still waiting in the outbox (so an edit or a reply must wait for it)? */
export async function postPending(db: AppDatabase, platform: string, channel: string, subject: string): Promise<boolean> {
  const rows = rowsOf(
    await db.execute(sql`select 1 from chat_outbox where platform = ${platform} and channel = ${channel} and subject = ${subject}
      and action = 'post' and ${UNSENT} limit 1`),
  );
  return rows.length > 0;
}

/** A later edit of the same message waiting behind this one makes this one pointless: the later one shows all. */
export async function newerUpdatePending(db: AppDatabase, row: OutboxRow): Promise<number | undefined> {
  const [hit] = rowsOf<{ id: number }>(
    await db.execute(sql`select id from chat_outbox where platform = ${row.platform} and channel = ${row.channel} and subject = ${row.subject}
      and action = 'update' and id > ${row.id} and ${UNSENT} order by id desc limit 1`),
  );
  return hit ? Number(hit.id) : undefined;
}
