/**
 * The report archive (table `report_archive`, append-only): every report file sent, with its SHA-256, stored in
 * the transaction that queues its delivery, so a report is archived exactly when it is sent and a second attempt
 * (a scheduler tick twice, a retried job) collides on the delivery key instead of sending again. The outbox row
 * names the key; the Slack sender reads the bytes back here when it uploads.
 */
import { createHash } from 'node:crypto';
import { and, asc, desc, eq, gte, inArray, sql } from 'drizzle-orm';
import type { BroadClosed, ReportKind, ScheduleClient } from '../domain/report-schedule.ts';
import { rowsOf, type AppDatabase } from './client.ts';
import { reportArchive } from './schema.ts';

/** One file of a report as it is delivered. */
export interface ReportFileBytes {
  name: string;
  mimeType: string;
  /** `csv`, `pdf`, `png`, `json`. */
  format: string;
  bytes: Uint8Array;
}

export interface ArchiveRequest {
  deliveryKey: string;
  clientId: string | null;
  periodId: string;
  kind: ReportKind;
  files: readonly ReportFileBytes[];
  sentTo: readonly string[];
  sentAt: Date;
}

export interface ArchivedFile {
  id: number;
  deliveryKey: string;
  clientId: string | null;
  periodId: string;
  kind: ReportKind;
  format: string;
  fileName: string;
  mimeType: string;
  sha256: string;
  size: number;
  sentTo: string[];
  sentAt: Date;
}

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Archives the files; `fresh` is false when this delivery key was archived before (nothing is written then). */
export async function archiveReport(tx: AppDatabase, request: ArchiveRequest): Promise<{ fresh: boolean; ids: number[] }> {
  if (request.files.length === 0) throw new Error(`report ${request.deliveryKey} has no files to archive`);
  const inserted = await tx
    .insert(reportArchive)
    .values(
      request.files.map((f) => ({
        deliveryKey: request.deliveryKey,
        clientId: request.clientId,
        periodId: request.periodId,
        kind: request.kind,
        format: f.format,
        fileName: f.name,
        mimeType: f.mimeType,
        content: Buffer.from(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength),
        sha256: sha256Hex(f.bytes),
        sentTo: [...request.sentTo],
        sentAt: request.sentAt,
      })),
    )
    .onConflictDoNothing({ target: [reportArchive.deliveryKey, reportArchive.fileName] })
    .returning({ id: reportArchive.id });
  return { fresh: inserted.length > 0, ids: inserted.map((r) => Number(r.id)).sort((a, b) => a - b) };
}

const described = {
  id: reportArchive.id,
  deliveryKey: reportArchive.deliveryKey,
  clientId: reportArchive.clientId,
  periodId: reportArchive.periodId,
  kind: reportArchive.kind,
  format: reportArchive.format,
  fileName: reportArchive.fileName,
  mimeType: reportArchive.mimeType,
  sha256: reportArchive.sha256,
  size: sql<number>`octet_length(${reportArchive.content})`.mapWith(Number),
  sentTo: reportArchive.sentTo,
  sentAt: reportArchive.sentAt,
};

/** Which delivery keys were archived since `since` (what the scheduler must not send again). */
export async function archivedKeysSince(db: AppDatabase, since: Date, kinds: readonly ReportKind[]): Promise<Set<string>> {
  const rows = await db
    .selectDistinct({ key: reportArchive.deliveryKey })
    .from(reportArchive)
    .where(and(gte(reportArchive.sentAt, since), inArray(reportArchive.kind, [...kinds])));
  return new Set(rows.map((r) => r.key));
}

/** The archive's files, newest first, without their bytes; `clientId` narrows to one client. */
export async function listArchive(db: AppDatabase, filter: { clientId?: string; limit?: number } = {}): Promise<ArchivedFile[]> {
  const query = db.select(described).from(reportArchive);
  const rows = await (filter.clientId !== undefined ? query.where(eq(reportArchive.clientId, filter.clientId)) : query)
    .orderBy(desc(reportArchive.id))
    .limit(filter.limit ?? 100);
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}

/** The files of one delivery with their bytes, in the order they were archived. */
export async function filesOfDelivery(db: AppDatabase, deliveryKey: string): Promise<Array<ArchivedFile & { bytes: Buffer }>> {
  const rows = await db.select({ ...described, bytes: reportArchive.content }).from(reportArchive).where(eq(reportArchive.deliveryKey, deliveryKey)).orderBy(asc(reportArchive.id));
  return rows.map((r) => checked({ ...r, id: Number(r.id) }));
}

/** One archived file with its bytes, checked against its stored SHA-256; undefined when there is no such id. */
export async function fetchArchived(db: AppDatabase, id: number): Promise<(ArchivedFile & { bytes: Buffer }) | undefined> {
  const [row] = await db.select({ ...described, bytes: reportArchive.content }).from(reportArchive).where(eq(reportArchive.id, id));
  return row === undefined ? undefined : checked({ ...row, id: Number(row.id) });
}

export class ArchiveIntegrityError extends Error {
  constructor(readonly id: number) {
    super(`archived report file ${id} does not match its SHA-256: the stored bytes were altered`);
    this.name = 'ArchiveIntegrityError';
  }
}

function checked<T extends { id: number; sha256: string; bytes: Buffer }>(row: T): T {
  if (sha256Hex(row.bytes) !== row.sha256) throw new ArchiveIntegrityError(row.id);
  return row;
}

/**
 * What the report schedule judges (src/domain/report-schedule.ts): the live clients with their zone and report day,
 * and each client's broad ring of a release that closed since `since` (its last run's window end, or when the ring
 * finished if later).
 */
export async function reportScheduleFacts(db: AppDatabase, since: Date): Promise<{ clients: ScheduleClient[]; broadClosed: BroadClosed[]; since?: Date }> {
  const clients = rowsOf<{ id: string; timezone: string; report_day: unknown; created_at: Date | string }>(
    await db.execute(sql`select id, timezone, settings->'reportDay' as report_day, created_at from clients where retired_at is null order by id`),
  ).map((c) => ({ id: c.id, timezone: c.timezone, since: new Date(c.created_at).toISOString(), ...(typeof c.report_day === 'number' ? { reportDay: c.report_day } : {}) }));
  const [mspRow] = rowsOf<{ created_at: Date | string }>(await db.execute(sql`select created_at from msp where id = 1`));
  const closed = rowsOf<{ client_id: string; release_id: string; closed_at: Date | string }>(
    await db.execute(sql`select r.client_id, r.release_id, greatest(r.finished_at, max(x.window_end)) as closed_at
      from rollouts r left join runs x on x.rollout_id = r.id
      where r.ring = 'broad' and r.client_id is not null and r.finished_at is not null
      group by r.id having greatest(r.finished_at, max(x.window_end)) > ${since.toISOString()}::timestamptz`),
  );
  return {
    clients,
    broadClosed: closed.map((c) => ({ clientId: c.client_id, releaseId: c.release_id, closedAt: new Date(c.closed_at).toISOString() })),
    ...(mspRow ? { since: new Date(mspRow.created_at) } : {}),
  };
}
