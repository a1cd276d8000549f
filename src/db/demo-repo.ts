/**
 * What `patchbay demo` (src/sandbox/demo-script.ts) reads to drive a month through the sandbox and to report
 * on it: read-only queries, each named for what the script waits on.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Hold } from '../domain/rollout.ts';
import { rowsOf, type AppDatabase } from './client.ts';

type Ring = 'msp' | 'pilot' | 'broad';

const query = async <T>(db: AppDatabase, statement: SQL): Promise<T[]> => rowsOf<T>(await db.execute(statement));
const count = async (db: AppDatabase, statement: SQL): Promise<number> => Number((await query<{ n: number }>(db, statement))[0]?.n ?? 0);

export interface DemoGateRow {
  id: number;
  ring: Ring;
  client_id: string | null;
  state: string;
  state_detail: { soakUntil?: string | null; problem?: { text: string } | null; asked?: string[]; confirmed?: string[]; promotions?: unknown[] };
}

export const demoGates = (db: AppDatabase, releaseId: string) =>
  query<DemoGateRow>(db, sql`select id, ring, client_id, state, state_detail from rollouts where release_id = ${releaseId} order by id`);

export async function activeHolds(db: AppDatabase): Promise<Hold[]> {
  const rows = await query<{ scope: Hold['scope']; release_id: string | null; client_id: string | null; ring: Hold['ring'] }>(
    db,
    sql`select scope, release_id, client_id, ring from holds where released_at is null`,
  );
  return rows.map((h) => ({ scope: h.scope, releaseId: h.release_id, updateKey: null, clientId: h.client_id, ring: h.ring }));
}

/** Runs still to settle now: work in flight, not yet looked at, or left behind by a window that has closed. */
export const busyRunCount = (db: AppDatabase, releaseId: string, now: Date) =>
  count(db, sql`select count(*)::int as n from runs where release_id = ${releaseId}
      and (state = 'running' or (state = 'scheduled' and (coalesce((detail ->> 'offlineChecks')::int, 0) = 0 or window_end <= ${now.toISOString()}::timestamptz)))`);

/** Only what is due: a row paced or backed off to a later instant is not something a stop should wait for. */
export const dueOutboxCount = (db: AppDatabase, now: Date) =>
  count(db, sql`select count(*)::int as n from chat_outbox where state in ('pending', 'sending') and next_attempt_at <= ${now.toISOString()}::timestamptz`);

/** The windows open now with runs of the release, and whose they are (`msp` or a client id). */
export const openWindowEnds = (db: AppDatabase, releaseId: string, now: Date) =>
  query<{ window_end: unknown; who: string }>(db, sql`select distinct r.window_end, coalesce(d.client_id, 'msp') as who
        from runs r join devices d on d.id = r.device_id
        where r.release_id = ${releaseId} and r.window_start <= ${now.toISOString()}::timestamptz and r.window_end > ${now.toISOString()}::timestamptz`);

export interface UnsettledDevice {
  device_id: number;
  name: string;
  ring: Ring;
  client_id: string | null;
  spec: string | null;
  tz: string;
  user_email: string | null;
  dm_time: string | null;
  notice_hours: string | null;
}

/** Devices of a scheduled or running ring with no settled run yet, with their window spec and zone. */
export const unsettledDevices = (db: AppDatabase, releaseId: string) =>
  query<UnsettledDevice>(
    db,
    sql`select d.id as device_id, d.name, g.ring, g.client_id, coalesce(c.windows, m.windows) ->> d.class as spec, coalesce(c.timezone, m.timezone) as tz,
          d.user_email, c.settings ->> 'dmTime' as dm_time, c.settings ->> 'noticeHours' as notice_hours
        from rollouts g
          join devices d on d.ring = g.ring and coalesce(d.client_id, '') = coalesce(g.client_id, '') and d.retired_at is null and d.flagged_at is null
          left join clients c on c.id = g.client_id
          join msp m on m.id = 1
        where g.release_id = ${releaseId} and g.state in ('scheduled', 'running')
          and not exists (select 1 from runs r where r.device_id = d.id and r.rollout_id = g.id
            and (r.state in ('succeeded', 'failed') or (r.state = 'skipped' and r.result in ('nothing_applies', 'no_os'))))
        order by d.id`,
  );

/** `device_id window_start_ms` of every run of the release. */
export async function plannedRunKeys(db: AppDatabase, releaseId: string): Promise<string[]> {
  const rows = await query<{ k: string }>(db, sql`select device_id || ' ' || (extract(epoch from window_start) * 1000)::bigint as k from runs where release_id = ${releaseId}`);
  return rows.map((r) => r.k);
}

/** Clients with a linked Teams conversation. */
export async function linkedTeamsClients(db: AppDatabase): Promise<string[]> {
  const rows = await query<{ client_id: string }>(db, sql`select distinct client_id from teams_conversations where removed_at is null and client_id is not null`);
  return rows.map((r) => r.client_id);
}

/** Runs in a window of the client's that is open now. */
export const openClientRunCount = (db: AppDatabase, clientId: string, now: Date) =>
  count(db, sql`select count(*)::int as n from runs r join devices d on d.id = r.device_id
        where d.client_id = ${clientId} and r.window_start <= ${now.toISOString()}::timestamptz and r.window_end > ${now.toISOString()}::timestamptz`);

export interface OpenDm {
  id: number;
  platform: 'slack' | 'teams';
  recipient: string;
  client_id: string | null;
  ring: string | null;
  name: string | null;
}

/** Tonight's DMs of the release nobody has answered yet, with their ring and the person's name. */
export const unansweredTonightDms = (db: AppDatabase, releaseId: string) =>
  query<OpenDm>(
    db,
    sql`select u.id, u.platform, u.recipient, u.client_id,
          (select g.ring from rollouts g where g.id = (u.devices -> 0 ->> 'rolloutId')::int) as ring,
          (select p.display_name from people p where p.id = u.person_id) as name
        from user_dms u where u.kind = 'tonight' and u.answer is null and u.release_id = ${releaseId} order by u.id`,
  );

/** Runs planned for these devices in the window starting at `startIso`. */
export const runsPlannedAt = (db: AppDatabase, startIso: string, deviceIds: readonly number[]) =>
  count(db, sql`select count(*)::int as n from runs where window_start = ${startIso}::timestamptz
            and device_id in (select jsonb_array_elements_text(${JSON.stringify(deviceIds.map(String))}::jsonb)::int)`);

/** The MSP's runs of the release in a window not yet closed. */
export const openMspRunCount = (db: AppDatabase, releaseId: string, now: Date) =>
  count(db, sql`select count(*)::int as n from runs r join devices d on d.id = r.device_id
      where r.release_id = ${releaseId} and d.client_id is null and r.window_end > ${now.toISOString()}::timestamptz`);

export const mspRunStates = (db: AppDatabase, releaseId: string) =>
  query<{ state: string; n: number }>(db, sql`select r.state, count(*)::int as n from runs r join devices d on d.id = r.device_id
    where r.release_id = ${releaseId} and d.client_id is null group by r.state order by r.state`);

/** The release's runs in a window not yet closed. */
export const openRunCount = (db: AppDatabase, releaseId: string, now: Date) =>
  count(db, sql`select count(*)::int as n from runs where release_id = ${releaseId} and window_end > ${now.toISOString()}::timestamptz`);

/** Everything the month's summary reports, read once at the end. */
export async function demoSummaryRows(db: AppDatabase, releaseId: string) {
  const gates = await query<{ ring: Ring; client_id: string | null; state: string; confirmed_by: string | null }>(
    db,
    sql`select ring, client_id, state, confirmed_by from rollouts where release_id = ${releaseId} order by case ring when 'msp' then 0 when 'pilot' then 1 else 2 end, client_id nulls first`,
  );
  const runs = await query<{ ring: Ring; client_id: string | null; device: string; state: string; result: string | null; error: string | null; reboots: number; window_start: unknown }>(
    db,
    sql`select g.ring, g.client_id, d.name as device, r.state, r.result, r.error, r.reboots, r.window_start
      from runs r join rollouts g on g.id = r.rollout_id join devices d on d.id = r.device_id
      where r.release_id = ${releaseId} order by r.id`,
  );
  const deviceCounts = await query<{ ring: Ring; client_id: string | null; n: number }>(
    db,
    sql`select ring, client_id, count(*)::int as n from devices where retired_at is null group by ring, client_id`,
  );
  const holds = await query<{ client_id: string; reason: string; placed_by: string }>(
    db,
    sql`select client_id, reason, placed_by from holds where released_at is null and client_id is not null order by id`,
  );
  const [dms] = await query<{ sent: number; answered: number; ok: number; deferred: number; offline: number }>(
    db,
    sql`select count(*) filter (where kind = 'tonight')::int as sent, count(*) filter (where kind = 'tonight' and answer is not null)::int as answered,
        count(*) filter (where answer = 'ok')::int as ok, count(*) filter (where answer = 'defer')::int as deferred,
        count(*) filter (where kind = 'offline')::int as offline
      from user_dms where release_id = ${releaseId}`,
  );
  const [counts] = await query<{ decisions: number; audit: number; runs: number }>(
    db,
    sql`select (select count(*)::int from decisions) as decisions, (select count(*)::int from audit_log) as audit,
        (select count(*)::int from runs where release_id = ${releaseId}) as runs`,
  );
  return { gates, runs, deviceCounts, holds, dms, counts };
}
