/**
 * CISA's KEV catalog in Postgres. The catalog is replaced as a whole on each refresh, but row by row: an
 * unchanged entry is not written, and an entry that left the catalog is marked `removed_at` (CISA does withdraw
 * entries), so the digest stops calling it known-exploited while the history stays readable.
 */
import { isNull, sql } from 'drizzle-orm';
import type { KevIndex, KevEntry } from '../domain/digest.ts';
import type { AppDatabase } from './client.ts';
import { rowsOf } from './client.ts';
import { at, upsertRows } from './upsert.ts';
import { auditLog, kevEntries } from './schema.ts';

export interface KevReplaceResult {
  version: string;
  added: number;
  changed: number;
  removed: number;
  unchanged: number;
}

export async function replaceKevCatalog(
  db: AppDatabase,
  kev: KevIndex,
  options: { now: Date; actor?: string; source?: 'cli' | 'system' },
): Promise<KevReplaceResult> {
  if (kev.entries.size === 0) {
    // An empty catalog is a broken download, not CISA withdrawing everything: keep what is stored.
    throw new Error(`KEV catalog ${kev.version} has no entries; the stored catalog is kept`);
  }
  const { now } = options;
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(7261636862021004)`);
    const rows = [...kev.entries.values()]
      .sort((a, b) => (a.cveId < b.cveId ? -1 : a.cveId > b.cveId ? 1 : 0))
      .map((entry) => ({
        cve: entry.cveId,
        name: entry.vulnerabilityName,
        dateAdded: entry.dateAdded,
        dueDate: entry.dueDate,
        knownRansomware: entry.knownRansomwareCampaignUse ?? null,
        removedAt: null,
        updatedAt: now,
      }));
    const counts = await upsertRows(tx, kevEntries, rows, [kevEntries.cve], [
      kevEntries.name,
      kevEntries.dateAdded,
      kevEntries.dueDate,
      kevEntries.knownRansomware,
      kevEntries.removedAt,
    ]);
    const cves = JSON.stringify(rows.map((row) => row.cve));
    const removed = rowsOf<{ cve: string }>(
      await tx.execute(sql`update kev_entries set removed_at = ${at(now)}, updated_at = ${at(now)}
        where removed_at is null and cve not in (select jsonb_array_elements_text(${cves}::jsonb))
        returning cve`),
    );
    // The catalog's identity is one value for every row; one statement keeps it current without per-row churn.
    await tx.execute(sql`update kev_entries set catalog_version = ${kev.version}, catalog_released = ${kev.dateReleased}
      where catalog_version is distinct from ${kev.version} or catalog_released is distinct from ${kev.dateReleased}`);
    const result = {
      version: kev.version,
      added: counts.added,
      changed: counts.changed,
      removed: removed.length,
      unchanged: rows.length - counts.added - counts.changed,
    };
    await tx.insert(auditLog).values({
      at: now,
      actor: options.actor ?? 'system',
      action: 'kev.replace',
      subject: 'kev',
      source: options.source ?? 'system',
      detail: { ...result, dateReleased: kev.dateReleased, removedCves: removed.slice(0, 50).map((r) => r.cve) },
    });
    return result;
  });
}

/** The stored catalog as the digest reads it; undefined when none was ever stored. */
export async function loadKevIndex(db: AppDatabase): Promise<KevIndex | undefined> {
  const rows = await db.select().from(kevEntries).where(isNull(kevEntries.removedAt));
  if (rows.length === 0) return undefined;
  const entries = new Map<string, KevEntry>();
  for (const row of rows) {
    entries.set(row.cve, {
      cveId: row.cve,
      vulnerabilityName: row.name ?? '',
      dateAdded: row.dateAdded,
      dueDate: row.dueDate ?? '',
      knownRansomwareCampaignUse: row.knownRansomware === 'Known' ? 'Known' : row.knownRansomware === 'Unknown' ? 'Unknown' : undefined,
    });
  }
  return { version: rows[0]!.catalogVersion ?? 'unknown', dateReleased: rows[0]!.catalogReleased ?? '', entries };
}

/** When the catalog was last replaced (the watcher refreshes it daily); undefined when never. */
export async function kevRefreshedAt(db: AppDatabase): Promise<Date | undefined> {
  const [row] = rowsOf<{ at: string | Date | null }>(await db.execute(sql`select max(at) as at from audit_log where action = 'kev.replace'`));
  return row?.at ? new Date(row.at) : undefined;
}
