/**
 * Batched upserts shared by the release and KEV repositories: a re-read of the same data writes nothing.
 */
import { getTableName, sql, type SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import { rowsOf, type AppDatabase } from './client.ts';

/** Rows per statement; each batch travels as one jsonb parameter (see inventory-repo for why). */
const ROWS_PER_STATEMENT = 2000;

/**
 * INSERT … ON CONFLICT DO UPDATE that touches a stored row only when one of `compared` differs, so a re-read
 * of the same release writes nothing. Returns how many rows were inserted and how many changed.
 */
export async function upsertRows<TRow extends Record<string, unknown>>(
  tx: AppDatabase,
  table: PgTable,
  rows: TRow[],
  conflictTarget: PgColumn[],
  compared: PgColumn[],
): Promise<{ added: number; changed: number }> {
  const counts = { added: 0, changed: 0 };
  if (rows.length === 0) return counts;
  const quoted = (name: string) => `"${name.replace(/"/g, '""')}"`;
  const tableName = quoted(getTableName(table));
  const properties = Object.keys(rows[0]!);
  const columns = properties.map((property) => {
    const column = (table as unknown as Record<string, PgColumn | undefined>)[property];
    if (!column) throw new Error(`${getTableName(table)} has no column ${property}`);
    return column;
  });
  const columnList = sql.raw(columns.map((c) => quoted(c.name)).join(', '));
  const recordType = sql.raw(columns.map((c) => `${quoted(c.name)} ${c.getSQLType()}`).join(', '));
  const assignments = sql.raw([...compared.map((c) => `${quoted(c.name)} = excluded.${quoted(c.name)}`), `"updated_at" = excluded."updated_at"`].join(', '));
  const stored = sql.raw(compared.map((c) => `${tableName}.${quoted(c.name)}`).join(', '));
  const proposed = sql.raw(compared.map((c) => `excluded.${quoted(c.name)}`).join(', '));
  const conflictList = sql.raw(conflictTarget.map((c) => quoted(c.name)).join(', '));
  for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT) {
    const batch = rows.slice(start, start + ROWS_PER_STATEMENT);
    const payload = JSON.stringify(batch.map((row) => Object.fromEntries(columns.map((c, i) => [c.name, row[properties[i]!]]))));
    const written = rowsOf<{ inserted: boolean }>(
      await tx.execute(sql`insert into ${sql.raw(tableName)} (${columnList})
        select ${columnList} from jsonb_to_recordset(${payload}::jsonb) as incoming(${recordType})
        on conflict (${conflictList}) do update set ${assignments}
        where (${stored}) is distinct from (${proposed})
        returning (xmax = 0) as inserted`),
    );
    for (const row of written) {
      if (row.inserted) counts.added++;
      else counts.changed++;
    }
  }
  return counts;
}

/** Raw SQL gets no column type to map a Date with, and postgres.js will not guess: pass the instant as text. */
export function at(instant: Date): SQL {
  return sql`${instant.toISOString()}::timestamptz`;
}
