/**
 * The sandbox's read-only queries: who is in its directory (people and their chat ids, clients), which owners have
 * a ring under way (the page's "next window" jump), which Teams conversations the bot is already installed in.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

export interface DirectoryPersonRow {
  id: number;
  email: string | null;
  display_name: string | null;
  role: 'engineer' | 'champion' | 'user';
  client_id: string | null;
  slack_id: string | null;
  teams_id: string | null;
}

export interface DirectoryClientRow {
  id: string;
  name: string;
  timezone: string;
  windows: Record<string, string>;
  settings: { slackChannel?: string; teamsTenantId?: string; chatPlatform?: 'slack' | 'teams'; dmTime?: string; noticeHours?: number };
}

export async function directoryClients(db: AppDatabase): Promise<DirectoryClientRow[]> {
  return rowsOf<DirectoryClientRow>(await db.execute(sql`select id, name, timezone, windows, settings from clients where retired_at is null order by name`));
}

/** Every live person with each of their roles (engineers first), and their first Slack and Teams ids. */
export async function directoryPeople(db: AppDatabase): Promise<DirectoryPersonRow[]> {
  return rowsOf<DirectoryPersonRow>(
    await db.execute(sql`select p.id, p.email, p.display_name, r.role, r.client_id,
        (select ci.external_id from chat_identities ci where ci.person_id = p.id and ci.platform = 'slack' and ci.source <> 'directory' order by ci.id limit 1) as slack_id,
        (select ci.external_id from chat_identities ci where ci.person_id = p.id and ci.platform = 'teams' order by ci.id limit 1) as teams_id
      from people p join person_roles r on r.person_id = p.id
      where p.retired_at is null
      order by case r.role when 'engineer' then 0 when 'champion' then 1 else 2 end, p.display_name, p.email, p.id`),
  );
}

/**
 * Which owners (null: the MSP) have work waiting in which device class: a ring scheduled or running, with a machine
 * of the class in it (not retired) that has not yet settled for that release (no run that succeeded, failed or was
 * skipped), and neither the release nor the client held as a whole. "Next window" goes to one of those classes'
 * windows, not to a window where nothing would happen.
 */
export async function classesWithWork(db: AppDatabase): Promise<Array<{ clientId: string | null; deviceClass: string }>> {
  const rows = rowsOf<{ client_id: string | null; class: string }>(
    await db.execute(sql`select distinct g.client_id, d.class from rollouts g
      join devices d on d.client_id is not distinct from g.client_id and d.ring = g.ring and d.retired_at is null
      where g.state in ('scheduled', 'running')
        and not exists (select 1 from runs r where r.device_id = d.id and r.release_id = g.release_id and r.state in ('succeeded', 'failed', 'skipped'))
        and not exists (select 1 from holds h where h.release_id = g.release_id and h.released_at is null
          and (h.scope = 'all' or (h.scope = 'client' and h.client_id is not distinct from g.client_id)))`),
  );
  return rows.map((r) => ({ clientId: r.client_id, deviceClass: r.class }));
}

/**
 * Machines at work in a window open at `now`: a run under way, or one its window has yet to start (not one waiting
 * for its device to come online). What a jump of the page's clock must not skip over.
 */
export async function runsAtWorkNow(db: AppDatabase, now: Date): Promise<number> {
  const at = now.toISOString();
  const [row] = rowsOf<{ n: number }>(
    await db.execute(sql`select count(*)::int as n from runs
      where window_start <= ${at}::timestamptz and window_end > ${at}::timestamptz
        and (state = 'running' or (state = 'scheduled' and coalesce((detail ->> 'offlineChecks')::int, 0) = 0))`),
  );
  return Number(row!.n);
}
