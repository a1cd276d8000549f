/**
 * The pool prepares its small statements (src/db/prepared-statements.ts): drizzle asks for none, and an unprepared
 * statement with parameters costs two round trips and stops the connection's pipeline. Large statements stay
 * unprepared, so bulk inserts do not pile up on the server. PostgreSQL only: PGlite has no wire protocol.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';

let database: TestDatabase;
beforeAll(async () => {
  if (testBackend() === 'postgres') database = await openTestDatabase({ migrate: false });
});
afterAll(async () => {
  await database?.close();
});

describe.skipIf(testBackend() !== 'postgres')('prepared statements on the pool', () => {
  it('prepares a small statement with parameters, in a transaction and a nested one; not one with over 100 parameters', async () => {
    const prepared = await database.db.transaction(async (tx) => {
      await tx.execute(sql`select ${1}::int as small_marker`);
      await tx.transaction(async (inner) => void (await inner.execute(sql`select ${2}::int as nested_marker`)));
      const many = Array.from({ length: 150 }, (_, i) => sql`${i}::int`);
      await tx.execute(sql`select large_marker from (values (${sql.join(many, sql`), (`)})) as t(large_marker) limit 1`);
      // pg_prepared_statements is per session: the transaction's connection is the one that ran them.
      return rowsOf<{ statement: string }>(await tx.execute(sql`select statement from pg_prepared_statements`)).map((r) => r.statement);
    });
    expect(prepared.some((s) => s.includes('small_marker'))).toBe(true);
    expect(prepared.some((s) => s.includes('nested_marker'))).toBe(true);
    expect(prepared.some((s) => s.includes('large_marker'))).toBe(false);
  });
});
