/** The release model's supersedence, across every stored release (the updates table's `supersedes` lists). */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';
import type { SupersedingUpdate } from '../domain/supersedence.ts';

/**
 * Every stored update that replaces one of `kbs`, or replaces one of those, and so on (a recursive walk, so a
 * chain across months comes back whole). Updates a revision dropped are left out.
 */
export async function updatesSuperseding(db: AppDatabase, kbs: readonly string[]): Promise<SupersedingUpdate[]> {
  const wanted = [...new Set(kbs.map((kb) => kb.replace(/^kb/i, '')))];
  if (wanted.length === 0) return [];
  const rows = rowsOf<{ kb: string; supersedes: unknown }>(
    await db.execute(sql`with recursive chain(kb) as (
        select jsonb_array_elements_text(${JSON.stringify(wanted)}::jsonb)
        union
        select u.kb from updates u join chain c on u.supersedes ? c.kb where u.kb is not null and u.removed_at is null
      )
      select distinct u.kb, u.supersedes from updates u
      where u.kb is not null and u.removed_at is null and exists (select 1 from chain c where u.supersedes ? c.kb)`),
  );
  return rows.map((r) => ({ kb: r.kb, supersedes: (typeof r.supersedes === 'string' ? JSON.parse(r.supersedes) : r.supersedes) as string[] }));
}
