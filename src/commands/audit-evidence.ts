/**
 * The audit log as evidence: exported for a range (CSV or JSONL, every row with its hashes, read and written a
 * batch at a time), verified in the database, and an export verified offline by whoever was handed it.
 *
 * JSONL: a header line (`"type":"header"`: range, segment, anchor, the log's head, how the hash is made), one line a
 * row (`"type":"row"`), a trailer line (`"type":"trailer"`: row count and the exported head). CSV (RFC 4180,
 * spreadsheet-safe and reversible, see `spreadsheetCell`): the rows only, and `FILE.manifest.json` beside it saying
 * what the JSONL header and trailer say.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { parse } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';
import type { AppDatabase } from '../db/client.ts';
import { auditHead, auditSegment, readAuditRows } from '../db/audit-repo.ts';
import {
  AUDIT_CHAIN_VERSION,
  AUDIT_EXPORT_COLUMNS,
  AUDIT_GENESIS_HASH,
  CANONICAL_DESCRIPTION,
  chainCheck,
  describeBreak,
  fromSpreadsheetCell,
  isAuditHash,
  spreadsheetCell,
  type AuditExportManifest,
  type ChainBreak,
  type ChainedAuditRow,
} from '../domain/audit-chain.ts';

export type AuditExportFormat = 'csv' | 'jsonl';
export const DEFAULT_BATCH_SIZE = 1000;

export interface ExportInput {
  from: Date;
  to: Date;
  format: AuditExportFormat;
  now: Date;
  batchSize?: number;
  onBatch?: (rows: number) => void;
}

const rowRecord = (row: ChainedAuditRow) => ({
  id: row.id,
  at: row.at,
  actor: row.actor,
  action: row.action,
  subject: row.subject,
  source: row.source,
  detail: row.detail,
  prev_hash: row.prevHash,
  row_hash: row.rowHash,
});

const csvLines = (records: unknown[][]): string => stringify(records, { record_delimiter: 'windows' });
const csvCells = (row: ChainedAuditRow): string[] => AUDIT_EXPORT_COLUMNS.map((c) => spreadsheetCell(String(rowRecord(row)[c] ?? '')));

async function put(out: Writable, chunk: string): Promise<void> {
  if (chunk !== '' && !out.write(chunk)) await once(out, 'drain');
}

/** Writes the export to `out` (a batch of rows per write, waiting when it is full); answers its manifest. */
export async function exportAudit(db: AppDatabase, out: Writable, input: ExportInput): Promise<AuditExportManifest> {
  const logHead = (await auditHead(db)).last;
  const segment = await auditSegment(db, input);
  // Rows committed after the head was read are not part of this export (ids are commit order, so none hide below).
  const lastId = segment.lastId === undefined || logHead === undefined ? undefined : Math.min(segment.lastId, logHead.id);
  const firstId = lastId === undefined ? undefined : segment.firstId;
  const manifest: AuditExportManifest = {
    format: AUDIT_CHAIN_VERSION,
    from: input.from.toISOString(),
    to: input.to.toISOString(),
    exportedAt: input.now.toISOString(),
    firstId: firstId ?? null,
    lastId: lastId ?? null,
    anchorHash: segment.anchorHash ?? AUDIT_GENESIS_HASH,
    rows: 0,
    headHash: segment.anchorHash ?? AUDIT_GENESIS_HASH,
    logHead: { id: logHead?.id ?? null, hash: logHead?.hash ?? AUDIT_GENESIS_HASH },
    canonical: CANONICAL_DESCRIPTION,
  };
  const { rows: _rows, headHash: _head, ...header } = manifest;
  if (input.format === 'jsonl') await put(out, `${JSON.stringify({ type: 'header', ...header })}\n`);
  else await put(out, csvLines([[...AUDIT_EXPORT_COLUMNS]]));
  if (firstId !== undefined && lastId !== undefined) {
    const batchSize = input.batchSize ?? DEFAULT_BATCH_SIZE;
    let pending: string[] = [];
    let cells: string[][] = [];
    for await (const row of readAuditRows(db, { firstId, lastId, batchSize, ...(input.onBatch ? { onBatch: input.onBatch } : {}) })) {
      if (input.format === 'jsonl') pending.push(`${JSON.stringify({ type: 'row', ...rowRecord(row) })}\n`);
      else cells.push(csvCells(row));
      manifest.rows++;
      manifest.headHash = row.rowHash;
      if (pending.length + cells.length >= batchSize) {
        await put(out, input.format === 'jsonl' ? pending.join('') : csvLines(cells));
        pending = [];
        cells = [];
      }
    }
    await put(out, input.format === 'jsonl' ? pending.join('') : csvLines(cells));
  }
  if (input.format === 'jsonl') await put(out, `${JSON.stringify({ type: 'trailer', rows: manifest.rows, lastId: manifest.lastId, headHash: manifest.headHash })}\n`);
  return manifest;
}

export const manifestPath = (file: string): string => `${file}.manifest.json`;

/**
 * Into a file: written beside it under a temporary name and renamed when complete, so a file with the export's
 * name is never a half-written one; a CSV's manifest goes beside it.
 */
export async function exportAuditToFile(db: AppDatabase, file: string, input: ExportInput): Promise<AuditExportManifest> {
  const partial = `${file}.partial`;
  const out = createWriteStream(partial);
  try {
    const manifest = await exportAudit(db, out, input);
    out.end();
    await once(out, 'finish');
    if (input.format === 'csv') await writeFile(manifestPath(file), `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(partial, file);
    return manifest;
  } catch (error) {
    out.destroy();
    await rm(partial, { force: true });
    throw error;
  }
}

export type VerifyOutcome =
  | { ok: true; rows: number; firstId: number | undefined; lastId: number | undefined; headHash: string }
  | { ok: false; problem: string; break?: ChainBreak };

/** The whole log (or the segment of a range) recomputed from the database, and the head row checked against it. */
export async function verifyDatabase(db: AppDatabase, range: { from: Date; to: Date } | undefined, batchSize = DEFAULT_BATCH_SIZE): Promise<VerifyOutcome> {
  const head = await auditHead(db);
  if (head.last === undefined) return { ok: true, rows: 0, firstId: undefined, lastId: undefined, headHash: AUDIT_GENESIS_HASH };
  const segment = range ? await auditSegment(db, range) : { firstId: 0, lastId: head.last.id, anchorHash: undefined };
  if (segment.firstId === undefined || segment.lastId === undefined) return { ok: true, rows: 0, firstId: undefined, lastId: undefined, headHash: AUDIT_GENESIS_HASH };
  const check = chainCheck(segment.anchorHash ?? AUDIT_GENESIS_HASH);
  const lastId = Math.min(segment.lastId, head.last.id);
  let firstId: number | undefined;
  for await (const row of readAuditRows(db, { firstId: segment.firstId, lastId, batchSize })) {
    firstId ??= row.id;
    const found = check.push(row);
    if (found) return { ok: false, problem: describeBreak(found), break: found };
  }
  if (head.head === undefined) return { ok: false, problem: 'audit_chain_head has no row: the chain has no recorded head to compare the last row with' };
  if (head.head.hash !== head.last.hash || head.head.lastId !== head.last.id) {
    return {
      ok: false,
      problem: `the chain head says the last row is ${head.head.lastId ?? 'none'} (hash ${head.head.hash}) but the last row is ${head.last.id} (hash ${head.last.hash}): rows were removed from the end, or the head was changed`,
    };
  }
  return { ok: true, rows: check.rows, firstId, lastId: check.lastId, headHash: check.lastHash };
}

type Header = Omit<AuditExportManifest, 'rows' | 'headHash'>;
interface Trailer {
  rows: number;
  lastId: number | null;
  headHash: string;
}

/** An export checked on its own: every link, then the row count and head its header/trailer (or manifest) state. */
export async function verifyExportFile(file: string): Promise<VerifyOutcome> {
  if (file.endsWith('.csv')) return verifyCsv(file);
  if (file.endsWith('.jsonl')) return verifyJsonl(file);
  return { ok: false, problem: `${file}: say which format by its name (.csv or .jsonl), as patchbay audit export writes it` };
}

function rowFrom(record: Record<string, unknown>, where: string): ChainedAuditRow | string {
  const text = (key: string): string | null => (typeof record[key] === 'string' ? (record[key] as string) : null);
  const id = typeof record.id === 'number' ? record.id : Number(record.id);
  const prevHash = text('prev_hash');
  const rowHash = text('row_hash');
  if (!Number.isSafeInteger(id)) return `${where}: id ${JSON.stringify(record.id)} is not a whole number`;
  if (prevHash === null || !isAuditHash(prevHash)) return `${where} (row ${id}): prev_hash is not 64 hex digits`;
  if (rowHash === null || !isAuditHash(rowHash)) return `${where} (row ${id}): row_hash is not 64 hex digits`;
  return { id, at: text('at'), actor: text('actor'), action: text('action'), subject: text('subject'), detail: text('detail'), source: text('source'), prevHash, rowHash };
}

async function checkRows(rows: AsyncIterable<ChainedAuditRow | string>, header: Header, trailer: () => Trailer | string | undefined): Promise<VerifyOutcome> {
  if (header.format !== AUDIT_CHAIN_VERSION) return { ok: false, problem: `the export's format is ${JSON.stringify(header.format)}, not ${AUDIT_CHAIN_VERSION}` };
  const check = chainCheck(header.anchorHash);
  let firstId: number | undefined;
  for await (const row of rows) {
    if (typeof row === 'string') return { ok: false, problem: row };
    firstId ??= row.id;
    const found = check.push(row);
    if (found) return { ok: false, problem: describeBreak(found), break: found };
  }
  const end = trailer();
  if (end === undefined) return { ok: false, problem: 'the export has no trailer: it was cut short' };
  if (typeof end === 'string') return { ok: false, problem: end };
  if (end.rows !== check.rows) return { ok: false, problem: `the export says ${end.rows} rows but holds ${check.rows}: rows were removed or added` };
  if (end.headHash !== check.lastHash) return { ok: false, problem: `the export says its head is ${end.headHash} but its last row's hash is ${check.lastHash}` };
  if ((header.firstId ?? undefined) !== firstId || (end.lastId ?? undefined) !== check.lastId) {
    return { ok: false, problem: `the export says rows ${header.firstId ?? 'none'}..${end.lastId ?? 'none'} but holds ${firstId ?? 'none'}..${check.lastId ?? 'none'}` };
  }
  return { ok: true, rows: check.rows, firstId, lastId: check.lastId, headHash: check.lastHash };
}

async function verifyJsonl(file: string): Promise<VerifyOutcome> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })[Symbol.asyncIterator]();
  const parsed = async (): Promise<{ value?: Record<string, unknown>; line: number; error?: string } | undefined> => {
    const next = await lines.next();
    if (next.done) return undefined;
    line++;
    try {
      const value = JSON.parse(next.value) as unknown;
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return { line, error: `line ${line} is not a JSON object` };
      return { value: value as Record<string, unknown>, line };
    } catch {
      return { line, error: `line ${line} is not JSON` };
    }
  };
  let line = 0;
  const first = await parsed();
  if (first?.value?.type !== 'header') return { ok: false, problem: first?.error ?? `${file}: the first line is not the export's header` };
  let trailer: Trailer | string | undefined;
  async function* rows(): AsyncGenerator<ChainedAuditRow | string> {
    for (let next = await parsed(); next !== undefined; next = await parsed()) {
      if (next.error !== undefined) return yield next.error;
      if (trailer !== undefined) return yield `line ${next.line} comes after the trailer`;
      if (next.value!.type === 'trailer') trailer = next.value as unknown as Trailer;
      else if (next.value!.type === 'row') yield rowFrom(next.value!, `line ${next.line}`);
      else return yield `line ${next.line} is neither a row nor the trailer`;
    }
  }
  return checkRows(rows(), first.value as unknown as Header, () => trailer);
}

async function verifyCsv(file: string): Promise<VerifyOutcome> {
  let manifest: AuditExportManifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath(file), 'utf8')) as AuditExportManifest;
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing (the export writes it beside the CSV)' : 'is not JSON';
    return { ok: false, problem: `${manifestPath(file)} ${why}` };
  }
  const parser = createReadStream(file).pipe(parse({ columns: true }));
  let record = 1;
  async function* rows(): AsyncGenerator<ChainedAuditRow | string> {
    for await (const raw of parser as AsyncIterable<Record<string, string>>) {
      record++;
      const cells = Object.fromEntries(AUDIT_EXPORT_COLUMNS.map((c) => [c, raw[c] === undefined ? undefined : fromSpreadsheetCell(raw[c])]));
      yield rowFrom(cells, `record ${record}`);
    }
  }
  try {
    return await checkRows(rows(), manifest, () => manifest);
  } catch (error) {
    return { ok: false, problem: `${file} is not a readable CSV: ${(error as Error).message}` };
  }
}
