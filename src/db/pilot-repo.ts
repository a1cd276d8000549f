/**
 * What a client's pilot sign-off reads (src/use-cases/pilot.ts): who is answering, the client's pilot machines and
 * their latest runs, the updates and client-visible notes, a hold in force, and the facts of the broad ring's plan.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';
import { needsNoticeSql } from './notice-repo.ts';

const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

/** A person as their chat identity names them. */
export interface PersonNames {
  personId: number;
  name: string | null;
  email: string | null;
}

/** One of this client's champions (live, with the role for this client) behind a chat identity, if it is one. */
export async function findChampion(db: AppDatabase, platform: string, externalId: string, clientId: string): Promise<PersonNames | undefined> {
  const [row] = rowsOf<{ id: number; name: string | null; email: string | null }>(
    await db.execute(sql`select p.id, p.display_name as name, p.email from chat_identities ci
      join people p on p.id = ci.person_id and p.retired_at is null
      join person_roles r on r.person_id = p.id and r.role = 'champion' and r.client_id = ${clientId}
      where ci.platform = ${platform} and ci.external_id = ${externalId} limit 1`),
  );
  return row ? { personId: Number(row.id), name: row.name, email: row.email } : undefined;
}

export async function personDisplayName(db: AppDatabase, personId: number): Promise<string | null> {
  const [row] = rowsOf<{ name: string | null }>(await db.execute(sql`select display_name as name from people where id = ${personId}`));
  return row?.name ?? null;
}

/** The person behind a chat id on any platform (who confirmed, who reported, who held). */
export async function personByChatId(db: AppDatabase, externalId: string): Promise<Omit<PersonNames, 'personId'> | undefined> {
  const [row] = rowsOf<{ name: string | null; email: string | null }>(
    await db.execute(sql`select p.display_name as name, p.email from chat_identities ci join people p on p.id = ci.person_id
      where ci.external_id = ${externalId} limit 1`),
  );
  return row;
}

/** Where a champion can be reached in Teams: their UPN, else their email. */
export async function teamsContact(db: AppDatabase, personId: number): Promise<string | undefined> {
  const [row] = rowsOf<{ email: string | null; upn: string | null }>(
    await db.execute(sql`select p.email, ci.upn from people p left join chat_identities ci on ci.person_id = p.id and ci.platform = 'teams'
      where p.id = ${personId} limit 1`),
  );
  return row?.upn ?? row?.email ?? undefined;
}

export async function clientNameAndZone(db: AppDatabase, clientId: string): Promise<{ name: string; timezone: string } | undefined> {
  const [row] = rowsOf<{ name: string; timezone: string }>(await db.execute(sql`select name, timezone from clients where id = ${clientId}`));
  return row;
}

export interface PilotDeviceRun {
  name: string;
  /** The device's latest run of the release; null state when it has none. */
  state: string | null;
  result: string | null;
  reboots: number;
  error: string | null;
}

/** The client's live pilot machines with their latest run of the release, by name. */
export async function pilotDeviceRuns(db: AppDatabase, releaseId: string, clientId: string): Promise<PilotDeviceRun[]> {
  const rows = rowsOf<{ name: string; state: string | null; result: string | null; reboots: number | null; error: string | null }>(
    await db.execute(sql`select distinct on (d.id) d.name, r.state, r.result, r.reboots, r.error from devices d
      left join runs r on r.device_id = d.id and r.release_id = ${releaseId}
      where d.client_id = ${clientId} and d.ring = 'pilot' and d.retired_at is null
      order by d.id, r.window_start desc nulls last`),
  );
  return rows.map((r) => ({ name: r.name, state: r.state, result: r.result, reboots: Number(r.reboots ?? 0), error: r.error })).sort((a, b) => a.name.localeCompare(b.name));
}

export interface UpdateWords {
  updateKey: string;
  kb: string | null;
  title: string | null;
  family: string | null;
  restart: string | null;
}

/** The release's updates (not removed) with what a champion reads about each, by key. */
export async function releaseUpdateWords(db: AppDatabase, releaseId: string): Promise<UpdateWords[]> {
  const rows = rowsOf<{ update_key: string; kb: string | null; title: string | null; family: string | null; restart: string | null }>(
    await db.execute(sql`select update_key, kb, title, family, restart_required as restart from updates
      where release_id = ${releaseId} and removed_at is null order by update_key`),
  );
  return rows.map((r) => ({ updateKey: r.update_key, kb: r.kb, title: r.title, family: r.family, restart: r.restart }));
}

/** Research notes tagged client-visible on the release's updates, oldest first. */
export async function clientVisibleNotes(db: AppDatabase, releaseId: string): Promise<Array<{ kb: string; body: string }>> {
  const rows = rowsOf<{ kb: string | null; update_key: string; body: string }>(
    await db.execute(sql`select u.kb, u.update_key, n.body from research_notes n join updates u on u.id = n.update_id
      where u.release_id = ${releaseId} and n.deleted_at is null and n.tags ? 'client-visible' order by n.id`),
  );
  return rows.map((r) => ({ kb: r.kb ?? r.update_key, body: r.body }));
}

/** The first hold in force on the client (or on everything) for this release or any. */
export async function firstHoldOnClient(db: AppDatabase, releaseId: string, clientId: string): Promise<{ by: string; at: string; reason: string } | undefined> {
  const [row] = rowsOf<{ placed_by: string; placed_at: unknown; reason: string }>(
    await db.execute(sql`select placed_by, placed_at, reason from holds where released_at is null
      and ((scope = 'client' and client_id = ${clientId}) or scope = 'all') and (release_id is null or release_id = ${releaseId})
      order by placed_at limit 1`),
  );
  return row ? { by: row.placed_by, at: iso(row.placed_at), reason: row.reason } : undefined;
}

/**
 * MRIs (`29:…`) of the client's live champions Teams has shown us: a card's refresh.userIds takes MRIs, not AAD
 * ids, and at most 60. A champion never seen has no MRI yet, so is not listed.
 */
export async function teamsChampionIds(db: AppDatabase, clientId: string): Promise<string[]> {
  const rows = rowsOf<{ mri: string }>(
    await db.execute(sql`select distinct ci.mri from person_roles r join people p on p.id = r.person_id and p.retired_at is null
      join chat_identities ci on ci.person_id = p.id and ci.platform = 'teams'
      where r.role = 'champion' and r.client_id = ${clientId} and ci.mri is not null order by ci.mri limit 60`),
  );
  return rows.map((r) => r.mri);
}

/** What the broad ring's plan card is drawn from: the client's name, zone, window rules and notice setting. */
export async function clientPlanSettings(
  db: AppDatabase,
  clientId: string,
): Promise<{ name: string; timezone: string; windows: Record<string, string>; noticeHours: number | undefined } | undefined> {
  const [row] = rowsOf<{ name: string; timezone: string; windows: Record<string, string>; notice_hours: string | null }>(
    await db.execute(sql`select name, timezone, windows, settings ->> 'noticeHours' as notice_hours from clients where id = ${clientId}`),
  );
  return row ? { name: row.name, timezone: row.timezone, windows: row.windows, noticeHours: row.notice_hours === null ? undefined : Number(row.notice_hours) } : undefined;
}

/** Device classes of the client's live broad machines whose users must be told before a window (no standing waiver). */
export async function broadClassesNeedingNotice(db: AppDatabase, clientId: string, now: Date): Promise<Set<string>> {
  const rows = rowsOf<{ class: string }>(
    await db.execute(sql`select distinct d.class from devices d where d.client_id = ${clientId} and d.ring = 'broad' and d.retired_at is null and ${needsNoticeSql(now)}`),
  );
  return new Set(rows.map((r) => r.class));
}
