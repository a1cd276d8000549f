/**
 * The audit log's hash chain: what an auditor re-computes to see that no row was altered, removed or slipped in.
 *
 * Every row carries `prev_hash` (the row before it in id order; the first row has the genesis value) and
 * `row_hash = hex(SHA-256(utf8(prev_hash + "\n" + canonical(row))))`. The canonical form is compact JSON with the
 * keys in a fixed (sorted) order and explicit nulls:
 *   {"action":…,"actor":…,"at":…,"detail":…,"id":…,"source":…,"subject":…}
 * - `at` is the instant in UTC, ISO 8601 with exactly six fractional digits (PostgreSQL's precision), e.g.
 *   `2026-12-08T18:00:00.000000Z`;
 * - `detail` is a JSON *string* holding the jsonb value as PostgreSQL renders it (`detail::text`): that rendering is
 *   already normal (keys ordered, duplicates gone, numbers as stored), so the hash never depends on how a client
 *   library re-serialises numbers or key order;
 * - strings are escaped as JSON.stringify does (also PostgreSQL's to_json and Python's json.dumps with
 *   ensure_ascii=False), so a third party can re-compute a hash with ordinary tools.
 * The database computes the same thing in its insert trigger (migration audit_hash_chain_trigger); this module is
 * the definition the verifier and the offline file check use, and the tests hold the two to each other.
 */
import { createHash } from 'node:crypto';

export const AUDIT_CHAIN_VERSION = 'patchbay-audit-chain-v1';
/** What the first row chains from. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

export interface AuditChainRow {
  id: number;
  /** UTC, six fractional digits: see `canonicalInstant`. */
  at: string | null;
  actor: string | null;
  action: string | null;
  subject: string | null;
  /** The jsonb value as PostgreSQL renders it (`detail::text`). */
  detail: string | null;
  source: string | null;
}

export interface ChainedAuditRow extends AuditChainRow {
  prevHash: string;
  rowHash: string;
}

const CANONICAL_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const HASH = /^[0-9a-f]{64}$/;

/** A Date (millisecond precision) in the canonical form: the three digits PostgreSQL has beyond it are zeros. */
export function canonicalInstant(date: Date): string {
  return `${date.toISOString().slice(0, -1)}000Z`;
}

export function isAuditHash(value: string): boolean {
  return HASH.test(value);
}

const json = (value: string | null): string => (value === null ? 'null' : JSON.stringify(value));

export function canonicalAuditRow(row: AuditChainRow): string {
  if (!Number.isSafeInteger(row.id)) throw new Error(`audit row id ${String(row.id)} is not a whole number`);
  if (row.at !== null && !CANONICAL_AT.test(row.at)) {
    throw new Error(`audit row ${row.id}: "at" is ${JSON.stringify(row.at)}, not UTC with six fractional digits (e.g. 2026-12-08T18:00:00.000000Z)`);
  }
  return (
    `{"action":${json(row.action)},"actor":${json(row.actor)},"at":${json(row.at)},"detail":${json(row.detail)},` +
    `"id":${row.id},"source":${json(row.source)},"subject":${json(row.subject)}}`
  );
}

export function auditRowHash(prevHash: string, row: AuditChainRow): string {
  return createHash('sha256').update(`${prevHash}\n${canonicalAuditRow(row)}`, 'utf8').digest('hex');
}

/** The first link that does not hold, named by the row where it shows. */
export interface ChainBreak {
  id: number;
  field: 'prev_hash' | 'row_hash';
  expected: string;
  stored: string;
  why: string;
}

export interface ChainCheck {
  /** The first break this row shows, or undefined; after a break the check goes on from the row's stored hash. */
  push(row: ChainedAuditRow): ChainBreak | undefined;
  readonly rows: number;
  /** The last row's stored hash (the anchor when no row was pushed). */
  readonly lastHash: string;
  readonly lastId: number | undefined;
}

/**
 * Walks rows in id order from `anchor` (the genesis value, or the hash of the row before the first one checked).
 * A row whose `prev_hash` is not the previous row's hash means a row was removed or inserted before it; a row whose
 * `row_hash` is not the hash of its own content means that row was changed.
 */
export function chainCheck(anchor: string): ChainCheck {
  let lastHash = anchor;
  let lastId: number | undefined;
  let rows = 0;
  return {
    push(row) {
      const previous = lastId === undefined ? 'the start of the range' : `row ${lastId}`;
      let found: ChainBreak | undefined;
      if (lastId !== undefined && row.id <= lastId) {
        found = { id: row.id, field: 'prev_hash', expected: lastHash, stored: row.prevHash, why: `row ${row.id} comes after row ${lastId}: rows are out of id order` };
      } else if (row.prevHash !== lastHash) {
        found = { id: row.id, field: 'prev_hash', expected: lastHash, stored: row.prevHash, why: `prev_hash is not the hash of ${previous}: a row before it was removed, added or changed` };
      } else {
        const expected = auditRowHash(row.prevHash, row);
        if (expected !== row.rowHash) found = { id: row.id, field: 'row_hash', expected, stored: row.rowHash, why: 'row_hash is not the hash of the row as stored: the row was changed' };
      }
      lastHash = row.rowHash;
      lastId = row.id;
      rows++;
      return found;
    },
    get rows() {
      return rows;
    },
    get lastHash() {
      return lastHash;
    },
    get lastId() {
      return lastId;
    },
  };
}

export function describeBreak(b: ChainBreak): string {
  return `audit row ${b.id}: ${b.why} (${b.field} expected ${b.expected}, stored ${b.stored})`;
}

/**
 * Spreadsheet-safe and reversible. A cell starting like a formula (`=`, `+`, `-`, `@`, tab, CR, or their fullwidth
 * forms, as csv-stringify's escape_formulas lists them) opens as text once it starts with `'`. csv-stringify's own
 * escaping cannot be undone (a stored `'=x` and a stored `=x` would both read back `'=x`) and the verifier must get
 * every byte back, so a value that already starts with `'` gets one more, and reading drops exactly one.
 */
const FORMULA_START = new Set(['=', '+', '-', '@', '\t', '\r', '\uFF1D', '\uFF0B', '\uFF0D', '\uFF20', "'"]);

export function spreadsheetCell(value: string): string {
  return value.length > 0 && FORMULA_START.has(value[0]!) ? `'${value}` : value;
}

export function fromSpreadsheetCell(cell: string): string {
  return cell.startsWith("'") ? cell.slice(1) : cell;
}

/** The columns of an export, CSV and JSONL alike; the hashes last, so a reader sees the row first. */
export const AUDIT_EXPORT_COLUMNS = ['id', 'at', 'actor', 'action', 'subject', 'source', 'detail', 'prev_hash', 'row_hash'] as const;

/** What an export says about itself (the JSONL header and trailer together; the CSV's manifest beside it). */
export interface AuditExportManifest {
  format: typeof AUDIT_CHAIN_VERSION;
  /** The range asked for: rows dated from (included) to (excluded), UTC. */
  from: string;
  to: string;
  exportedAt: string;
  /** The chain segment: contiguous in id order, so it verifies on its own from `anchorHash`. */
  firstId: number | null;
  lastId: number | null;
  /** prev_hash of the first row (the genesis value when the export starts at the first row ever). */
  anchorHash: string;
  rows: number;
  /** row_hash of the last row exported: the head of the exported chain. */
  headHash: string;
  /** The whole log's head when the export started, for comparing with a later export. */
  logHead: { id: number | null; hash: string };
  canonical: string;
}

export const CANONICAL_DESCRIPTION =
  'row_hash = hex(sha256(utf8(prev_hash + "\\n" + canonical))); canonical = compact JSON, keys in this order: ' +
  'action, actor, at, detail, id, source, subject; at in UTC with six fractional digits; detail is the jsonb text as a string; ' +
  `nulls explicit; the first row's prev_hash is ${AUDIT_GENESIS_HASH}`;

export type AuditRangeResult = { ok: true; from: Date; to: Date } | { ok: false; error: string };

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

function readBound(name: '--from' | '--to', spec: string): Date | string {
  const day = DAY.test(spec);
  if (!day && !INSTANT.test(spec)) return `${name}: "${spec}" is not a date like 2026-12-01 or an instant like 2026-12-01T08:00:00Z`;
  const at = new Date(day ? `${spec}T00:00:00Z` : spec);
  if (Number.isNaN(at.getTime()) || (day && at.toISOString().slice(0, 10) !== spec)) return `${name}: "${spec}" is not a real date`;
  // A day given as --to is included whole.
  return day && name === '--to' ? new Date(at.getTime() + 86_400_000) : at;
}

/**
 * `--from`/`--to` as instants, [from, to): a date is a UTC day (--to's day included), an instant is exact. Without
 * --from the range starts at the first row; without --to it ends now.
 */
export function auditRange(fromSpec: string | undefined, toSpec: string | undefined, now: Date): AuditRangeResult {
  const from = fromSpec === undefined ? new Date(0) : readBound('--from', fromSpec);
  if (typeof from === 'string') return { ok: false, error: from };
  const to = toSpec === undefined ? now : readBound('--to', toSpec);
  if (typeof to === 'string') return { ok: false, error: to };
  if (to.getTime() <= from.getTime()) return { ok: false, error: `--to (${to.toISOString()}) is not after --from (${from.toISOString()})` };
  return { ok: true, from, to };
}
