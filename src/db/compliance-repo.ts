/**
 * The facts a compliance report judges (src/domain/compliance.ts), one client at a time so a report run over every
 * client holds one client's rows in memory, never the fleet's.
 *
 * Every query reads as of `asOf`: rows stamped later (a device imported, a hold placed, a run finished, a KEV entry
 * added after the period) are left out, so a past period's report does not change as the tables grow. Known gaps,
 * where a row is rewritten in place rather than appended: a release revised by Microsoft keeps only its latest
 * catalog, a device's ring/OS are today's, and Retry failed restarts a failed run row.
 */
import { sql } from 'drizzle-orm';
import {
  DEFAULT_POLICY,
  SEVERITIES,
  type ApprovalFact,
  type ComplianceDevice,
  type ComplianceInput,
  type CompliancePolicy,
  type ComplianceUpdate,
  type DeferralFact,
  type HoldFact,
  type ReportPeriod,
  type RunFact,
  type Severity,
} from '../domain/compliance.ts';
import { rowsOf, type AppDatabase } from './client.ts';

const iso = (v: unknown): string | null => (v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

/** Live clients as of `asOf`, in id order: what `--client all` walks. */
export async function reportableClientIds(db: AppDatabase, asOf: Date): Promise<string[]> {
  const rows = rowsOf<{ id: string }>(
    await db.execute(sql`select id from clients where created_at <= ${asOf.toISOString()}::timestamptz
      and (retired_at is null or retired_at > ${asOf.toISOString()}::timestamptz) order by id`),
  );
  return rows.map((r) => r.id);
}

/** One client's facts for the period; undefined when there is no such client. */
export async function loadComplianceInput(db: AppDatabase, clientId: string, period: ReportPeriod, asOf: Date): Promise<ComplianceInput | undefined> {
  const at = asOf.toISOString();
  const clients = rowsOf<{ id: string; name: string; settings: Record<string, unknown> }>(
    await db.execute(sql`select id, name, settings from clients where id = ${clientId}`),
  );
  const client = clients[0];
  if (!client) return undefined;
  const devices = await loadDevices(db, clientId, at);
  const deviceIds = JSON.stringify(devices.map((d) => d.id));
  return {
    client: { id: client.id, name: client.name },
    period,
    asOf: at,
    policy: policyOf(client.settings ?? {}),
    devices,
    updates: await loadUpdates(db, at),
    approvals: await loadApprovals(db, at),
    runs: await loadRuns(db, deviceIds, at),
    holds: await loadHolds(db, clientId, at),
    deferrals: await loadDeferrals(db, deviceIds, at),
  };
}

/** The client's own knobs (`slaCriticalDays`, `slaImportantDays`, `complianceGraceDays`, `staleDays`), else the defaults. */
export function policyOf(settings: Record<string, unknown>): CompliancePolicy {
  const days = (key: string, fallback: number): number => {
    const value = settings[key];
    return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  return {
    slaCriticalDays: days('slaCriticalDays', DEFAULT_POLICY.slaCriticalDays),
    slaImportantDays: days('slaImportantDays', DEFAULT_POLICY.slaImportantDays),
    graceDays: days('complianceGraceDays', DEFAULT_POLICY.graceDays),
    staleDays: days('staleDays', DEFAULT_POLICY.staleDays),
  };
}

async function loadDevices(db: AppDatabase, clientId: string, at: string): Promise<ComplianceDevice[]> {
  const rows = rowsOf<{ id: number; name: string; ring: string; class: string; os: string | null }>(
    await db.execute(sql`select id, name, ring, class, os from devices where client_id = ${clientId}
      and created_at <= ${at}::timestamptz and (retired_at is null or retired_at > ${at}::timestamptz) order by name`),
  );
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}

interface UpdateRow {
  release_id: string;
  update_key: string;
  kb: string | null;
  title: string | null;
  released_at: unknown;
  products: string[];
  product_ids: string[];
  supersedes: string[];
  severities: Array<string | null>;
  cves: Array<string | null>;
  kev: boolean;
}

/** Updates of every release out by `asOf` and still in it, with their CVEs' worst severity and KEV membership then. */
async function loadUpdates(db: AppDatabase, at: string): Promise<ComplianceUpdate[]> {
  const rows = rowsOf<UpdateRow>(
    await db.execute(sql`select u.release_id, u.update_key, u.kb, u.title, r.initial_release_date as released_at, u.products,
        u.product_ids, u.supersedes, array_agg(c.severity) as severities, array_agg(c.cve) as cves,
        coalesce(bool_or(k.cve is not null), false) as kev
      from updates u join releases r on r.id = u.release_id
        left join update_cves uc on uc.update_id = u.id
        left join cves c on c.id = uc.cve_id and c.removed_at is null
        left join kev_entries k on k.cve = c.cve and k.date_added <= ${at}::timestamptz::date and k.removed_at is null
      where r.initial_release_date <= ${at}::timestamptz and u.removed_at is null
      group by u.id, r.initial_release_date order by r.initial_release_date, u.release_id, u.update_key`),
  );
  return rows.map((r) => ({
    releaseId: r.release_id,
    key: r.update_key,
    kb: r.kb,
    title: r.title,
    releasedAt: iso(r.released_at)!,
    products: r.products.map((name, i) => ({ id: r.product_ids[i] ?? name, name, family: undefined })),
    severity: worstSeverity(r.severities),
    cves: r.cves.filter((c): c is string => c !== null),
    kev: r.kev,
    supersedes: r.supersedes,
  }));
}

function worstSeverity(severities: ReadonlyArray<string | null>): Severity {
  const rank = (s: string | null): number => {
    const i = SEVERITIES.indexOf(s as Severity);
    return i === -1 ? SEVERITIES.length - 1 : i;
  };
  const best = Math.min(SEVERITIES.length - 1, ...severities.map(rank));
  return SEVERITIES[best]!;
}

async function loadApprovals(db: AppDatabase, at: string): Promise<ApprovalFact[]> {
  const rows = rowsOf<{ release_id: string; update_key: string | null; kind: 'approve' | 'withdraw'; actor: string; created_at: unknown }>(
    await db.execute(sql`select d.release_id, u.update_key, d.kind, d.actor, d.created_at
      from decisions d left join updates u on u.id = d.update_id
      where d.kind in ('approve', 'withdraw') and d.release_id is not null and d.created_at <= ${at}::timestamptz
      order by d.created_at, d.id`),
  );
  return rows.map((r) => ({ releaseId: r.release_id, updateKey: r.update_key, kind: r.kind, actor: r.actor, at: iso(r.created_at)! }));
}

/** The client's devices' runs that had started or ended by `asOf` (a run's later steps are read as not yet taken). */
async function loadRuns(db: AppDatabase, deviceIds: string, at: string): Promise<RunFact[]> {
  const rows = rowsOf<{ device_id: number; release_id: string | null; updates: string[]; state: string; result: string | null; error: string | null; started_at: unknown; finished_at: unknown }>(
    await db.execute(sql`select device_id, release_id, updates, state, result, error, started_at, finished_at from runs
      where device_id in (select jsonb_array_elements_text(${deviceIds}::jsonb)::int)
        and (started_at <= ${at}::timestamptz or finished_at <= ${at}::timestamptz)
      order by id`),
  );
  return rows.map((r) => ({
    deviceId: Number(r.device_id),
    releaseId: r.release_id,
    updates: r.updates,
    state: r.state,
    result: r.result,
    error: r.error,
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
  }));
}

async function loadHolds(db: AppDatabase, clientId: string, at: string): Promise<HoldFact[]> {
  const rows = rowsOf<{ scope: HoldFact['scope']; release_id: string | null; update_key: string | null; client_id: string | null; ring: string | null; reason: string; placed_by: string; placed_at: unknown; released_at: unknown }>(
    await db.execute(sql`select h.scope, h.release_id, u.update_key, h.client_id, h.ring, h.reason, h.placed_by, h.placed_at, h.released_at
      from holds h left join updates u on u.id = h.update_id
      where h.placed_at <= ${at}::timestamptz and (h.released_at is null or h.released_at > ${at}::timestamptz)
        and (h.client_id is null or h.client_id = ${clientId})
      order by h.placed_at, h.id`),
  );
  return rows.map((r) => ({
    scope: r.scope,
    releaseId: r.release_id,
    updateKey: r.update_key,
    clientId: r.client_id,
    ring: r.ring,
    reason: r.reason,
    placedBy: r.placed_by,
    placedAt: iso(r.placed_at)!,
    // A release after asOf is not known yet as of then.
    releasedAt: null,
  }));
}

async function loadDeferrals(db: AppDatabase, deviceIds: string, at: string): Promise<DeferralFact[]> {
  const rows = rowsOf<{ device_id: number; release_id: string | null; actor: string; created_at: unknown; rolled_to: string | null }>(
    await db.execute(sql`select device_id, release_id, actor, created_at, detail ->> 'rolledTo' as rolled_to from decisions
      where kind = 'defer' and device_id in (select jsonb_array_elements_text(${deviceIds}::jsonb)::int) and created_at <= ${at}::timestamptz
      order by created_at, id`),
  );
  return rows.map((r) => ({ deviceId: Number(r.device_id), releaseId: r.release_id, by: r.actor, at: iso(r.created_at)!, until: r.rolled_to === null ? null : iso(r.rolled_to) }));
}
