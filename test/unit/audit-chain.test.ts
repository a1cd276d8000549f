/** The audit chain's definition (src/domain/audit-chain.ts): canonical form, hash, the link check, CSV cells, ranges. */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AUDIT_GENESIS_HASH,
  auditRange,
  auditRowHash,
  canonicalAuditRow,
  canonicalInstant,
  chainCheck,
  fromSpreadsheetCell,
  spreadsheetCell,
  type AuditChainRow,
  type ChainedAuditRow,
} from '../../src/domain/audit-chain.ts';

const row = (id: number, over: Partial<AuditChainRow> = {}): AuditChainRow => ({
  id,
  at: '2026-12-08T18:00:00.123456Z',
  actor: 'U0ENG1',
  action: 'decision.approve',
  subject: 'release:2026-Dec',
  detail: '{"kb": "KB5048667", "ring": "msp"}',
  source: 'slack',
  ...over,
});

function chain(rows: AuditChainRow[], anchor = AUDIT_GENESIS_HASH): ChainedAuditRow[] {
  let prev = anchor;
  return rows.map((r) => {
    const rowHash = auditRowHash(prev, r);
    const chained = { ...r, prevHash: prev, rowHash };
    prev = rowHash;
    return chained;
  });
}

describe('canonical audit row', () => {
  it('is compact JSON with sorted keys, the detail as a string and explicit nulls', () => {
    expect(canonicalAuditRow(row(7, { actor: null }))).toBe(
      '{"action":"decision.approve","actor":null,"at":"2026-12-08T18:00:00.123456Z","detail":"{\\"kb\\": \\"KB5048667\\", \\"ring\\": \\"msp\\"}","id":7,"source":"slack","subject":"release:2026-Dec"}',
    );
  });

  it('is what a third party computes with plain JSON tools (keys sorted, no spaces)', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.option(fc.string(), { nil: null }), fc.nat(), (actor, subject, detail, id) => {
        const r = row(id, { actor, subject, detail });
        const plain = { action: r.action, actor, at: r.at, detail, id, source: r.source, subject };
        const sorted = JSON.stringify(Object.fromEntries(Object.entries(plain).sort(([a], [b]) => (a < b ? -1 : 1))));
        expect(canonicalAuditRow(r)).toBe(sorted);
      }),
    );
  });

  it('hashes sha256(prev + newline + canonical), hex', () => {
    const r = row(1);
    const expected = createHash('sha256').update(`${AUDIT_GENESIS_HASH}\n${canonicalAuditRow(r)}`).digest('hex');
    expect(auditRowHash(AUDIT_GENESIS_HASH, r)).toBe(expected);
    expect(auditRowHash(AUDIT_GENESIS_HASH, row(1, { actor: 'U0ENG2' }))).not.toBe(expected);
  });

  it('refuses an instant not in UTC with six fractional digits, naming the row', () => {
    expect(() => canonicalAuditRow(row(3, { at: '2026-12-08T18:00:00.123Z' }))).toThrow(/audit row 3: "at" .* six fractional digits/);
    expect(() => canonicalAuditRow(row(3, { at: '2026-12-08T18:00:00.123456+01:00' }))).toThrow(/six fractional digits/);
    expect(canonicalInstant(new Date('2026-12-08T18:00:00.123Z'))).toBe('2026-12-08T18:00:00.123000Z');
  });
});

describe('chain check', () => {
  const rows = chain([row(1), row(2), row(5), row(6)]);

  it('passes an intact chain and ends at its head', () => {
    const check = chainCheck(AUDIT_GENESIS_HASH);
    for (const r of rows) expect(check.push(r)).toBeUndefined();
    expect(check.rows).toBe(4);
    expect(check.lastHash).toBe(rows[3]!.rowHash);
  });

  it('names a changed row by its row_hash', () => {
    const check = chainCheck(AUDIT_GENESIS_HASH);
    const changed = rows.map((r) => (r.id === 5 ? { ...r, detail: '{"kb": "KB0000000", "ring": "msp"}' } : r));
    const found = changed.map((r) => check.push(r)).find(Boolean);
    expect(found).toMatchObject({ id: 5, field: 'row_hash', stored: rows[2]!.rowHash });
    expect(found!.expected).not.toBe(rows[2]!.rowHash);
  });

  it('names the row after a removed one by its prev_hash', () => {
    const check = chainCheck(AUDIT_GENESIS_HASH);
    const found = rows.filter((r) => r.id !== 2).map((r) => check.push(r)).find(Boolean);
    expect(found).toMatchObject({ id: 5, field: 'prev_hash', expected: rows[0]!.rowHash, stored: rows[1]!.rowHash });
  });

  it('checks a segment from its anchor', () => {
    const check = chainCheck(rows[1]!.rowHash);
    expect(rows.slice(2).map((r) => check.push(r)).filter(Boolean)).toEqual([]);
    expect(chainCheck(AUDIT_GENESIS_HASH).push(rows[2]!)).toMatchObject({ id: 5, field: 'prev_hash' });
  });
});

describe('spreadsheet cells', () => {
  it('open as text when they look like formulas', () => {
    expect(spreadsheetCell('=HYPERLINK("x")')).toBe(`'=HYPERLINK("x")`);
    expect(spreadsheetCell('-1')).toBe("'-1");
    expect(spreadsheetCell("'quoted")).toBe("''quoted");
    expect(spreadsheetCell('U0ENG1')).toBe('U0ENG1');
  });

  it('read back to every byte written', () => {
    fc.assert(fc.property(fc.string(), (s) => fromSpreadsheetCell(spreadsheetCell(s)) === s));
  });
});

describe('audit range', () => {
  const now = new Date('2026-12-06T09:00:00Z');

  it('reads days in UTC with --to included, instants exactly, and defaults to everything until now', () => {
    expect(auditRange('2020-12-01', '2026-11-30', now)).toEqual({ ok: true, from: new Date('2020-12-01T00:00:00Z'), to: new Date('2026-12-01T00:00:00Z') });
    expect(auditRange('2026-12-01T08:00:00+01:00', undefined, now)).toEqual({ ok: true, from: new Date('2026-12-01T07:00:00Z'), to: now });
    expect(auditRange(undefined, undefined, now)).toEqual({ ok: true, from: new Date(0), to: now });
  });

  it('names what is wrong', () => {
    expect(auditRange('yesterday', undefined, now)).toEqual({ ok: false, error: expect.stringContaining('--from: "yesterday" is not a date') });
    expect(auditRange(undefined, '2026-02-30', now)).toEqual({ ok: false, error: '--to: "2026-02-30" is not a real date' });
    expect(auditRange('2026-12-02', '2026-12-01', now)).toEqual({ ok: false, error: expect.stringContaining('is not after --from') });
  });
});
