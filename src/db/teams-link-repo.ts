/**
 * What linking a Teams conversation to a client reads and writes beyond the conversation row: who installed the
 * bot (people, their roles and chat identities), clients by tenant, and engineers' one-time link codes.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

/** Who added the bot, as Teams says: their Teams id and, when known, their email (lowercased by the caller). */
export interface TeamsInstaller {
  teamsId: string | undefined;
  email: string | null;
}

const isInstaller = (who: TeamsInstaller) => sql`(p.id in (select person_id from chat_identities where platform = 'teams' and external_id = ${who.teamsId ?? ''})
  or (${who.email}::text is not null and lower(p.email) = ${who.email}))`;

/** The live clients the installer champions, one row per (person, client). */
export async function championedClients(db: AppDatabase, who: TeamsInstaller): Promise<Array<{ personId: number; clientId: string; clientName: string }>> {
  return rowsOf<{ person_id: number; client_id: string; name: string }>(
    await db.execute(sql`select distinct p.id as person_id, r.client_id, c.name from people p
      join person_roles r on r.person_id = p.id and r.role = 'champion'
      join clients c on c.id = r.client_id and c.retired_at is null
      where p.retired_at is null and ${isInstaller(who)}`),
  ).map((r) => ({ personId: Number(r.person_id), clientId: r.client_id, clientName: r.name }));
}

/** The live clients configured with this Teams tenant id. */
export async function clientsByTenant(db: AppDatabase, tenantId: string): Promise<Array<{ id: string; name: string }>> {
  return rowsOf<{ id: string; name: string }>(
    await db.execute(sql`select id, name from clients where retired_at is null and settings ->> 'teamsTenantId' = ${tenantId}`),
  );
}

/** The installer as a person in the inventory (the lowest id when two match), any role. */
export async function installerPersonId(db: AppDatabase, who: TeamsInstaller): Promise<number | null> {
  const [row] = rowsOf<{ id: number }>(await db.execute(sql`select p.id from people p where p.retired_at is null and ${isInstaller(who)} order by p.id limit 2`));
  return row ? Number(row.id) : null;
}

/** Remembers a person's Teams id (learnt at install); an id already known keeps its person, and learns the MRI. */
export async function rememberTeamsIdentity(
  db: AppDatabase,
  identity: { personId: number; teamsId: string; mri: string | undefined; upn: string | undefined; tenantId: string | undefined; email: string | undefined },
  now: Date,
): Promise<void> {
  const { personId, teamsId, mri, upn, tenantId, email } = identity;
  await db.execute(sql`insert into chat_identities (person_id, platform, external_id, mri, upn, tenant_id, email, source, created_at, updated_at)
    values (${personId}, 'teams', ${teamsId}, ${mri ?? null}, ${upn ?? null}, ${tenantId ?? null}, ${email ?? null}, 'install',
      ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz)
    on conflict (platform, external_id) do update set mri = coalesce(excluded.mri, chat_identities.mri)`);
}

/** The MRI Teams shows for a known Teams id (AAD object id); nothing for someone the inventory does not know. */
export async function rememberTeamsMri(db: AppDatabase, aadObjectId: string, mri: string, now: Date): Promise<void> {
  await db.execute(sql`update chat_identities set mri = ${mri}, updated_at = ${now.toISOString()}::timestamptz
    where platform = 'teams' and external_id = ${aadObjectId} and mri is distinct from ${mri}`);
}

/** A live client by id. */
export async function liveClient(db: AppDatabase, clientId: string): Promise<{ id: string; name: string } | undefined> {
  return rowsOf<{ id: string; name: string }>(await db.execute(sql`select id, name from clients where id = ${clientId} and retired_at is null`))[0];
}

export async function insertLinkCode(db: AppDatabase, code: { code: string; clientId: string; createdBy: string; expiresAt: Date }, now: Date): Promise<void> {
  await db.execute(sql`insert into link_codes (code, client_id, created_by, created_at, expires_at)
    values (${code.code}, ${code.clientId}, ${code.createdBy}, ${now.toISOString()}::timestamptz, ${code.expiresAt.toISOString()}::timestamptz)`);
}

/** Marks an unused, unexpired code used by the conversation; the code's client, or undefined when it is not valid. */
export async function useLinkCode(db: AppDatabase, code: string, conversationId: string, now: Date): Promise<{ clientId: string; clientName: string } | undefined> {
  const [used] = rowsOf<{ client_id: string; name: string }>(
    await db.execute(sql`update link_codes l set used_at = ${now.toISOString()}::timestamptz, used_by_conversation_id = ${conversationId}
      from clients c where l.code = ${code} and l.used_at is null and l.expires_at > ${now.toISOString()}::timestamptz and c.id = l.client_id
      returning l.client_id, c.name`),
  );
  return used ? { clientId: used.client_id, clientName: used.name } : undefined;
}
