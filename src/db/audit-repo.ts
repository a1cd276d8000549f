/**
 * The audit log: appending (append-only: migration 0001 refuses UPDATE and DELETE; the insert trigger of
 * audit_hash_chain_trigger chains each row) and reading it back as evidence, a bounded batch at a time.
 */
import { and, asc, desc, gt, gte, lt, lte, sql } from 'drizzle-orm';
import type { ChainedAuditRow } from '../domain/audit-chain.ts';
import { auditLog, type SOURCES } from './schema.ts';
import { rowsOf, type AppDatabase } from './client.ts';

export interface AuditEntry {
  at: Date;
  actor: string;
  action: string;
  subject: string;
  detail: Record<string, unknown>;
  source: (typeof SOURCES)[number];
}

export async function appendAudit(db: AppDatabase, entry: AuditEntry): Promise<void> {
  await appendAudits(db, [entry]);
}

/**
 * Several rows in one statement, chained in the order given (the insert trigger runs row by row, and the rows come
 * in `ord` order). One statement text whatever their number: prepared once per connection, and built without the
 * query builder, which cost a burst of decisions more than the insert itself.
 */
export async function appendAudits(db: AppDatabase, entries: readonly AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const rows = JSON.stringify(entries.map((e, ord) => ({ ord, at: e.at.toISOString(), actor: e.actor, action: e.action, subject: e.subject, detail: e.detail, source: e.source })));
  await db.execute(sql`insert into audit_log (at, actor, action, subject, detail, source)
    select at, actor, action, subject, detail, source
    from jsonb_to_recordset(${rows}::jsonb) as x(ord int, at timestamptz, actor text, action text, subject text, detail jsonb, source text)
    order by ord`);
}

/** The row as the chain hashes it: `at` in the canonical UTC form, `detail` as PostgreSQL renders the jsonb. */
const chainedColumns = {
  id: auditLog.id,
  at: sql<string>`to_char(${auditLog.at} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
  actor: auditLog.actor,
  action: auditLog.action,
  subject: auditLog.subject,
  detail: sql<string>`${auditLog.detail}::text`,
  source: auditLog.source,
  prevHash: auditLog.prevHash,
  rowHash: auditLog.rowHash,
};

export interface AuditHead {
  /** What audit_chain_head says (undefined when it has no row). */
  head: { lastId: number | null; hash: string } | undefined;
  /** The last row there is. */
  last: { id: number; hash: string } | undefined;
}

/** Read in one statement, so an append in between cannot make the two disagree. */
export async function auditHead(db: AppDatabase): Promise<AuditHead> {
  const [row] = rowsOf<{ head_id: string | null; head_hash: string | null; last_id: string | null; last_hash: string | null }>(
    await db.execute(sql`select h.last_id::text as head_id, h.row_hash as head_hash, l.id::text as last_id, l.row_hash as last_hash
      from (select 1) as one
      left join audit_chain_head h on h.one
      left join lateral (select id, row_hash from audit_log order by id desc limit 1) l on true`),
  );
  return {
    head: row?.head_hash == null ? undefined : { lastId: row.head_id == null ? null : Number(row.head_id), hash: row.head_hash },
    last: row?.last_id == null || row.last_hash == null ? undefined : { id: Number(row.last_id), hash: row.last_hash },
  };
}

export interface AuditSegment {
  /** Undefined when no row is dated in the range. */
  firstId: number | undefined;
  lastId: number | undefined;
  /** The row_hash of the row before firstId (the genesis value's place: undefined when firstId is the first row). */
  anchorHash: string | undefined;
}

/**
 * The rows dated in [from, to) are not always contiguous in the chain (`at` is the writer's clock, ids are commit
 * order), so the segment runs from the first to the last of them, with every row between: a contiguous piece of the
 * chain verifies on its own.
 */
export async function auditSegment(db: AppDatabase, range: { from: Date; to: Date }): Promise<AuditSegment> {
  const inRange = and(gte(auditLog.at, range.from), lt(auditLog.at, range.to));
  const [bounds] = await db.select({ first: sql<string | null>`min(${auditLog.id})::text`, last: sql<string | null>`max(${auditLog.id})::text` }).from(auditLog).where(inRange);
  if (bounds?.first == null || bounds.last == null) return { firstId: undefined, lastId: undefined, anchorHash: undefined };
  const firstId = Number(bounds.first);
  const [before] = await db.select({ hash: auditLog.rowHash }).from(auditLog).where(lt(auditLog.id, firstId)).orderBy(desc(auditLog.id)).limit(1);
  return { firstId, lastId: Number(bounds.last), anchorHash: before?.hash };
}

export interface AuditReadOptions {
  firstId: number;
  lastId: number;
  batchSize: number;
  /** Told of every batch read (its size): how the tests see that a large range is read in bounded pieces. */
  onBatch?: (rows: number) => void;
}

/** Rows firstId..lastId in id order, one keyset-paged batch at a time: six years never sit in memory at once. */
export async function* readAuditRows(db: AppDatabase, options: AuditReadOptions): AsyncGenerator<ChainedAuditRow> {
  let after = options.firstId - 1;
  for (;;) {
    const batch = await db
      .select(chainedColumns)
      .from(auditLog)
      .where(and(gt(auditLog.id, after), lte(auditLog.id, options.lastId)))
      .orderBy(asc(auditLog.id))
      .limit(options.batchSize);
    options.onBatch?.(batch.length);
    for (const row of batch) yield { ...row, id: Number(row.id) };
    if (batch.length < options.batchSize) return;
    after = Number(batch[batch.length - 1]!.id);
  }
}
