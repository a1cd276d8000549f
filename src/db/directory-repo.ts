/**
 * Who the bot can reach, cached in Postgres: Slack members matched to inventory people by email (chat_identities,
 * source `directory`, refreshed daily from users.list), and Teams users through their stored personal
 * conversation references (teams_conversations, kind `personal`). Users nobody can reach are listed for the
 * engineers, never dropped.
 */
import { sql } from 'drizzle-orm';
import { isValidZone } from '../domain/windows.ts';
import type { DmRecipient } from '../domain/user-dm.ts';
import type { SlackMember } from '../adapters/directory/slack-users.ts';
import { rowsOf, type AppDatabase } from './client.ts';

export const DIRECTORY_MAX_AGE_MS = 24 * 3_600_000;

export async function directorySyncedAt(db: AppDatabase): Promise<Date | undefined> {
  const [row] = rowsOf<{ at: string | null }>(await db.execute(sql`select settings->>'directorySyncedAt' as at from msp where id = 1`));
  return row?.at ? new Date(row.at) : undefined;
}

export interface DirectoryResult {
  members: number;
  matched: number;
  removed: number;
}

/**
 * Stores a users.list snapshot in one transaction: each inventory person whose email a member has gets that
 * member's Slack id (and zone, and name when the file gave none); directory matches whose member left or changed
 * email are removed. Inventory-given identities (engineers' ids) are never touched.
 */
export async function storeSlackDirectory(db: AppDatabase, members: readonly SlackMember[], now: Date): Promise<DirectoryResult> {
  const at = now.toISOString();
  const rows = JSON.stringify(
    members.filter((m) => m.email).map((m) => ({ id: m.id, email: m.email, tz: m.tz && isValidZone(m.tz) ? m.tz : null, name: m.realName ?? null })),
  );
  return db.transaction(async (tx) => {
    await tx.execute(sql`create temporary table if not exists directory_members (id text, email text, tz text, name text) on commit drop`);
    await tx.execute(sql`insert into directory_members select id, lower(email), tz, name from jsonb_to_recordset(${rows}::jsonb) as m(id text, email text, tz text, name text)`);
    const matched = rowsOf<{ n: number }>(
      await tx.execute(sql`with m as (
          select distinct on (dm.id) dm.id, dm.email, p.id as person_id from directory_members dm
            join people p on p.email = dm.email and p.retired_at is null order by dm.id, p.id)
        insert into chat_identities (person_id, platform, external_id, email, source, created_at, updated_at)
        select person_id, 'slack', id, email, 'directory', ${at}::timestamptz, ${at}::timestamptz from m
        on conflict (platform, external_id) do update set person_id = excluded.person_id, email = excluded.email, updated_at = excluded.updated_at
          where chat_identities.source = 'directory'
        returning 1 as n`),
    ).length;
    const removed = rowsOf(
      await tx.execute(sql`delete from chat_identities ci where ci.platform = 'slack' and ci.source = 'directory'
        and not exists (select 1 from directory_members dm join people p on p.email = dm.email where dm.id = ci.external_id and p.id = ci.person_id)
        returning 1`),
    ).length;
    await tx.execute(sql`update people p set timezone = dm.tz, display_name = coalesce(p.display_name, dm.name), updated_at = ${at}::timestamptz
      from directory_members dm where p.email = dm.email and p.retired_at is null
        and (p.timezone is distinct from dm.tz or (p.display_name is null and dm.name is not null)) and dm.tz is not null`);
    await tx.execute(sql`update msp set settings = settings || jsonb_build_object('directorySyncedAt', ${at}::text) where id = 1`);
    await tx.execute(sql`insert into audit_log (at, actor, action, subject, detail, source)
      values (${at}::timestamptz, 'system', 'directory.sync', 'slack', ${JSON.stringify({ members: members.length, matched, removed })}::jsonb, 'system')`);
    return { members: members.length, matched, removed };
  });
}

/**
 * The people behind these emails, keyed by email, with how to reach them on the client's platform: Slack by the member id (a DM needs no conversations.open), Teams by the personal chat.
 */
export async function loadRecipients(db: AppDatabase, platform: 'slack' | 'teams', emails: readonly string[]): Promise<Map<string, DmRecipient>> {
  const wanted = JSON.stringify([...new Set(emails.map((e) => e.toLowerCase()))]);
  // Set-based: each table is read once for all the people wanted (distinct on picks each person's row), where a
  // subquery per person read teams_conversations once per person: 25,000 scans a night.
  const rows = rowsOf<{ id: number; email: string; display_name: string | null; timezone: string | null; slack_id: string | null; conversation_id: string | null; aad_id: string | null }>(
    await db.execute(sql`with p as (
        select p.id, p.email, p.display_name, p.timezone from people p
        where p.retired_at is null and p.email in (select jsonb_array_elements_text(${wanted}::jsonb))),
      slack as (select distinct on (ci.person_id) ci.person_id, ci.external_id from chat_identities ci join p on p.id = ci.person_id
        where ci.platform = 'slack' order by ci.person_id, (ci.source = 'directory') desc, ci.id),
      teams as (select distinct on (ci.person_id) ci.person_id, ci.external_id from chat_identities ci join p on p.id = ci.person_id
        where ci.platform = 'teams' order by ci.person_id, ci.id),
      tc as (select distinct on (t.person_id) t.person_id, t.conversation_id, t.reference from teams_conversations t join p on p.id = t.person_id
        where t.kind = 'personal' and t.removed_at is null order by t.person_id, t.id desc)
      select p.id, p.email, p.display_name, p.timezone, slack.external_id as slack_id, tc.conversation_id,
        coalesce(teams.external_id, tc.reference->'user'->>'aadObjectId', tc.reference->'user'->>'id') as aad_id
      from p left join slack on slack.person_id = p.id left join teams on teams.person_id = p.id left join tc on tc.person_id = p.id`),
  );
  const out = new Map<string, DmRecipient>();
  for (const r of rows) {
    const address =
      platform === 'slack' ? (r.slack_id ? { platform, channel: r.slack_id, recipient: r.slack_id } : undefined)
      : r.conversation_id && r.aad_id ? { platform, channel: r.conversation_id, recipient: r.aad_id }
      : undefined;
    out.set(r.email, { personId: Number(r.id), email: r.email, displayName: r.display_name, zone: r.timezone && isValidZone(r.timezone) ? r.timezone : null, address });
  }
  return out;
}

export interface UnmatchedUser {
  clientId: string | null;
  email: string;
  platform: 'slack' | 'teams';
  /** Their live devices' names: a waiver may name a device rather than the user. */
  devices: string[];
}

/** Device users the bot cannot reach on their client's chat, for `/patch status` and the release thread. */
export async function unmatchedUsers(db: AppDatabase): Promise<UnmatchedUser[]> {
  const rows = rowsOf<{ client_id: string | null; email: string; platform: 'slack' | 'teams'; devices: string[] | string }>(
    await db.execute(sql`select d.client_id, p.email, coalesce(c.settings->>'chatPlatform', 'slack') as platform, jsonb_agg(d.name order by d.name) as devices
      from devices d join people p on p.email = d.user_email and p.retired_at is null
      left join clients c on c.id = d.client_id
      where d.retired_at is null and d.user_email is not null and (
        (coalesce(c.settings->>'chatPlatform', 'slack') = 'slack'
          and not exists (select 1 from chat_identities ci where ci.person_id = p.id and ci.platform = 'slack'))
        or (c.settings->>'chatPlatform' = 'teams'
          and not exists (select 1 from teams_conversations t where t.person_id = p.id and t.kind = 'personal' and t.removed_at is null)))
      group by d.client_id, p.email, coalesce(c.settings->>'chatPlatform', 'slack')
      order by 1 nulls first, 2`),
  );
  return rows.map((r) => ({ clientId: r.client_id, email: r.email, platform: r.platform, devices: typeof r.devices === 'string' ? (JSON.parse(r.devices) as string[]) : r.devices }));
}
