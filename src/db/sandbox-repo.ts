/**
 * Whose database this is: the sandbox's (it seeded it, and it never carried real chat since) or someone's real
 * one. The markers are audit rows, because the audit log is append-only (migration 0001): nothing can quietly
 * remove the record that a database went live, and an auditor sees that a database was once a sandbox.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';
import { auditLog } from './schema.ts';

export const SANDBOX_ACTOR = 'sandbox';
/** Written by the sandbox into a database with no history, before it seeds anything. */
export const SANDBOX_CLAIM = 'sandbox.database_claimed';
/** Written the first time a sandbox database runs with real Slack or Teams credentials: never a sandbox again. */
export const LIVE_CHAT = 'database.live_chat';
/** The markers' subject: looked up through audit_log's subject index, as every start with chat asks. */
const MARKER_SUBJECT = 'database';

/** Tables whose rows are history someone may care about; any row in a database the sandbox did not claim is. */
const HISTORY_TABLES = ['msp', 'clients', 'people', 'devices', 'releases', 'decisions', 'holds', 'rollouts', 'runs', 'teams_conversations', 'chat_outbox', 'chat_messages', 'audit_log'] as const;

export type DatabaseOwner =
  | { owner: 'empty' }
  /** `claimed` false: a sandbox database from before the claim was written; claim it now. */
  | { owner: 'sandbox'; claimed: boolean }
  /** `history` names what is there, e.g. "2 releases, 40 audit rows". */
  | { owner: 'other'; history: string; wentLive: boolean };

async function markers(db: AppDatabase): Promise<{ claimed: boolean; live: boolean; firstAudit: { actor: string; action: string } | undefined }> {
  const [row] = rowsOf<{ claimed: boolean; live: boolean; first_actor: string | null; first_action: string | null }>(
    await db.execute(sql`select
        exists (select 1 from audit_log where subject = ${MARKER_SUBJECT} and action = ${SANDBOX_CLAIM}) as claimed,
        exists (select 1 from audit_log where subject = ${MARKER_SUBJECT} and action = ${LIVE_CHAT}) as live,
        (select actor from audit_log order by id limit 1) as first_actor,
        (select action from audit_log order by id limit 1) as first_action`),
  );
  return {
    claimed: Boolean(row?.claimed),
    live: Boolean(row?.live),
    firstAudit: row?.first_actor ? { actor: row.first_actor, action: row.first_action ?? '' } : undefined,
  };
}

async function historyCounts(db: AppDatabase): Promise<Array<{ table: string; n: number }>> {
  const selects = HISTORY_TABLES.map((t) => `select '${t}' as table_name, count(*)::int as n from ${t}`).join(' union all ');
  return rowsOf<{ table_name: string; n: number }>(await db.execute(sql.raw(selects)))
    .map((r) => ({ table: r.table_name, n: Number(r.n) }))
    .filter((r) => r.n > 0);
}

/** Claimed, or (from before the claim existed) its first audit row is the sandbox importing its sample inventory. */
function seededBySandbox(m: Awaited<ReturnType<typeof markers>>): boolean {
  return m.claimed || (m.firstAudit?.actor === SANDBOX_ACTOR && m.firstAudit.action === 'inventory.import');
}

export async function databaseOwner(db: AppDatabase): Promise<DatabaseOwner> {
  const found = await markers(db);
  if (seededBySandbox(found) && !found.live) return { owner: 'sandbox', claimed: found.claimed };
  const counts = await historyCounts(db);
  if (counts.length === 0) return { owner: 'empty' };
  return { owner: 'other', history: counts.map((c) => `${c.n} ${c.table.replaceAll('_', ' ')} rows`).join(', '), wentLive: found.live };
}

/** Marks an empty (or adopted) database as the sandbox's, before it writes anything else. */
export async function claimForSandbox(db: AppDatabase, now: Date): Promise<void> {
  await db.insert(auditLog).values({ at: now, actor: SANDBOX_ACTOR, action: SANDBOX_CLAIM, subject: MARKER_SUBJECT, source: 'system', detail: {} });
}

/** Real chat is about to run on this database: if the sandbox had claimed it, record that it no longer may. */
export async function recordLiveChat(db: AppDatabase, now: Date, platforms: string[]): Promise<boolean> {
  const found = await markers(db);
  if (!seededBySandbox(found) || found.live) return false;
  await db.insert(auditLog).values({ at: now, actor: 'system', action: LIVE_CHAT, subject: MARKER_SUBJECT, source: 'system', detail: { platforms } });
  return true;
}
