/**
 * The rows behind a compliance report's evidence appendix (src/domain/compliance-evidence.ts): one client's
 * decisions, holds, pilot sign-offs and window runs within a period, read as of `asOf` so a past period's appendix
 * does not grow as the tables do (a hold released later reads as still in force then).
 */
import { sql } from 'drizzle-orm';
import type { DecisionFact, EvidenceFacts, HoldEvidence, SignoffFact, WindowRunFact } from '../domain/compliance-evidence.ts';
import type { ReportPeriod } from '../domain/compliance.ts';
import { rowsOf, type AppDatabase } from './client.ts';

const iso = (v: unknown): string | null => (v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

export async function loadEvidenceFacts(db: AppDatabase, clientId: string, period: ReportPeriod, asOf: Date): Promise<EvidenceFacts> {
  const bounds = { from: period.from, at: asOf.toISOString() };
  return {
    decisions: await loadDecisions(db, clientId, bounds),
    holds: await loadHolds(db, clientId, bounds),
    signoffs: await loadSignoffs(db, clientId, bounds),
    runs: await loadWindowRuns(db, clientId, bounds),
  };
}

interface Bounds {
  from: string;
  at: string;
}

/** Decisions of the period that touch this client: its own, its devices', and the MSP-wide ones (approvals, holds of all). */
async function loadDecisions(db: AppDatabase, clientId: string, b: Bounds): Promise<DecisionFact[]> {
  const rows = rowsOf<{ kind: string; release_id: string | null; update_key: string | null; ring: string | null; device: string | null; actor: string; actor_name: string | null; source: string; reason: string | null; created_at: unknown }>(
    await db.execute(sql`select d.kind, d.release_id, u.update_key, d.ring, dev.name as device, d.actor, p.display_name as actor_name, d.source, d.reason, d.created_at
      from decisions d left join updates u on u.id = d.update_id left join devices dev on dev.id = d.device_id
        left join people p on p.id = d.actor_person_id
      where d.created_at >= ${b.from}::timestamptz and d.created_at <= ${b.at}::timestamptz
        and (d.client_id = ${clientId} or (d.client_id is null and (d.device_id is null or dev.client_id = ${clientId})))
      order by d.created_at, d.id`),
  );
  return rows.map((r) => ({ kind: r.kind, releaseId: r.release_id, updateKey: r.update_key, ring: r.ring, device: r.device, actor: r.actor, actorName: r.actor_name, source: r.source, reason: r.reason, at: iso(r.created_at)! }));
}

/** Holds in force at some instant of the period that cover this client (its own, or every client's). */
async function loadHolds(db: AppDatabase, clientId: string, b: Bounds): Promise<HoldEvidence[]> {
  const rows = rowsOf<{ scope: string; release_id: string | null; update_key: string | null; ring: string | null; reason: string; placed_by: string; placed_at: unknown; released_by: string | null; released_at: unknown }>(
    await db.execute(sql`select h.scope, h.release_id, u.update_key, h.ring, h.reason, h.placed_by, h.placed_at,
        case when h.released_at <= ${b.at}::timestamptz then h.released_by end as released_by,
        case when h.released_at <= ${b.at}::timestamptz then h.released_at end as released_at
      from holds h left join updates u on u.id = h.update_id
      where h.placed_at <= ${b.at}::timestamptz and (h.released_at is null or h.released_at >= ${b.from}::timestamptz)
        and (h.client_id is null or h.client_id = ${clientId})
      order by h.placed_at, h.id`),
  );
  return rows.map((r) => ({ scope: r.scope, releaseId: r.release_id, updateKey: r.update_key, ring: r.ring, reason: r.reason, placedBy: r.placed_by, placedAt: iso(r.placed_at)!, releasedBy: r.released_by, releasedAt: iso(r.released_at) }));
}

/** The client's pilot gates confirmed within the period; the confirmer named through their chat identity. */
async function loadSignoffs(db: AppDatabase, clientId: string, b: Bounds): Promise<SignoffFact[]> {
  const rows = rowsOf<{ release_id: string; confirmed_by: string; name: string | null; confirmed_at: unknown }>(
    await db.execute(sql`select g.release_id, g.confirmed_by, g.confirmed_at,
        (select p.display_name from chat_identities ci join people p on p.id = ci.person_id
          where ci.external_id = split_part(g.confirmed_by, ':', 2) limit 1) as name
      from rollouts g where g.ring = 'pilot' and g.client_id = ${clientId} and g.confirmed_by is not null
        and g.confirmed_at >= ${b.from}::timestamptz and g.confirmed_at <= ${b.at}::timestamptz
      order by g.confirmed_at, g.id`),
  );
  return rows.map((r) => ({ releaseId: r.release_id, confirmedBy: r.confirmed_by, confirmedByName: r.name, confirmedAt: iso(r.confirmed_at)! }));
}

/** The client's devices' runs in windows that opened within the period, with the reboots the manager was asked for. */
async function loadWindowRuns(db: AppDatabase, clientId: string, b: Bounds): Promise<WindowRunFact[]> {
  const rows = rowsOf<{ device: string; release_id: string | null; ring: string | null; window_start: unknown; window_end: unknown; state: string; result: string | null; reboots: number; reboot_times: unknown[] | null; started_at: unknown; finished_at: unknown }>(
    await db.execute(sql`select dev.name as device, r.release_id, g.ring, r.window_start, r.window_end, r.state, r.result, r.reboots, r.started_at, r.finished_at,
        coalesce((select jsonb_agg(coalesce(o.sent_at, o.created_at) order by coalesce(o.sent_at, o.created_at)) from deployer_operations o
          where o.kind = 'reboot' and o.key like 'run' || r.id || '-%reboot-%' and o.created_at <= ${b.at}::timestamptz), '[]'::jsonb) as reboot_times
      from runs r join devices dev on dev.id = r.device_id left join rollouts g on g.id = r.rollout_id
      where dev.client_id = ${clientId} and r.window_start >= ${b.from}::timestamptz and r.window_start <= ${b.at}::timestamptz
      order by r.window_start, dev.name`),
  );
  // A run still going at asOf reads as it stood then: its later steps are not known yet.
  return rows.map((r) => {
    const finishedAt = iso(r.finished_at);
    const startedAt = iso(r.started_at);
    const done = finishedAt !== null && finishedAt <= b.at;
    return {
      device: r.device,
      releaseId: r.release_id,
      ring: r.ring,
      windowStart: iso(r.window_start)!,
      windowEnd: iso(r.window_end)!,
      state: done ? r.state : 'scheduled',
      result: done ? r.result : null,
      reboots: done ? Number(r.reboots) : 0,
      rebootTimes: (r.reboot_times ?? []).map((t) => iso(t)!),
      startedAt: startedAt !== null && startedAt <= b.at ? startedAt : null,
      finishedAt: done ? finishedAt : null,
    };
  });
}
