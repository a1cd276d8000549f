/**
 * Decisions and holds as the rest of the product reads them, and the decision state the approval use-cases
 * load under a lock. The rollout engine reads `effectiveApprovals` and `activeHolds`; nothing else should
 * fold the decisions table itself, so "what counts as approved" is decided in one place.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { ActiveHold, ReleaseDecisionState } from '../domain/approval.ts';
import { rowsOf, type AppDatabase } from './client.ts';
import { holds } from './schema.ts';

export interface EffectiveApproval {
  /** Null: the whole release is approved. */
  updateKey: string | null;
  approvedBy: string;
  at: Date;
}

export interface HoldRow {
  id: number;
  scope: 'update' | 'client' | 'ring' | 'all';
  releaseId: string | null;
  updateKey: string | null;
  clientId: string | null;
  ring: 'msp' | 'pilot' | 'broad' | null;
  reason: string;
  placedBy: string;
  at: Date;
}

const toDate = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));

/**
 * For each update of a release (and the release as a whole, update_id null), its latest approve or withdraw decision:
 * the approval in force when it is an approve. Holds are separate (see activeHolds): an approved update that is held
 * does not start. Shared by `effectiveApprovals` and `loadDecisionState`, so "what counts as approved" is one query.
 */
const latestApprovalDecisions = (releaseId: SQL) => sql`
  select distinct on (d.update_id) u.update_key as update_key, d.kind, d.actor, d.created_at
  from decisions d left join updates u on u.id = d.update_id
  where d.release_id = ${releaseId} and d.kind in ('approve', 'withdraw')
  order by d.update_id nulls first, d.created_at desc, d.id desc`;

interface ApprovalRow {
  update_key: string | null;
  kind: string;
  actor: string;
  created_at: unknown;
}

/** Approvals in force for a release, by update key (the release as a whole first). */
export async function effectiveApprovals(db: AppDatabase, releaseId: string): Promise<EffectiveApproval[]> {
  return toApprovals(rowsOf<ApprovalRow>(await db.execute(latestApprovalDecisions(sql`${releaseId}`))));
}

function toApprovals(rows: readonly ApprovalRow[]): EffectiveApproval[] {
  return rows
    .filter((row) => row.kind === 'approve')
    .map((row) => ({ updateKey: row.update_key, approvedBy: row.actor, at: toDate(row.created_at) }))
    .sort((a, b) => (a.updateKey ?? '').localeCompare(b.updateKey ?? '', 'en', { numeric: true }));
}

/** Every hold not yet released, whatever its release; oldest first. */
export async function activeHolds(db: AppDatabase): Promise<HoldRow[]> {
  const rows = rowsOf<{
    id: number;
    scope: HoldRow['scope'];
    release_id: string | null;
    update_key: string | null;
    client_id: string | null;
    ring: HoldRow['ring'];
    reason: string;
    placed_by: string;
    placed_at: unknown;
  }>(
    await db.execute(sql`
      select h.id, h.scope, h.release_id, u.update_key as update_key, h.client_id, h.ring, h.reason, h.placed_by, h.placed_at
      from holds h left join updates u on u.id = h.update_id
      where h.released_at is null
      order by h.placed_at, h.id`),
  );
  return rows.map((row) => ({
    id: Number(row.id),
    scope: row.scope,
    releaseId: row.release_id,
    updateKey: row.update_key,
    clientId: row.client_id,
    ring: row.ring,
    reason: row.reason,
    placedBy: row.placed_by,
    at: toDate(row.placed_at),
  }));
}

export interface LoadedRelease {
  state: ReleaseDecisionState;
  /** Update key (updates.update_key) -> updates.id, for writing decisions and holds. */
  updateIds: Map<string, number>;
  /** Approve and withdraw decisions so far per update id (null: the release as a whole): the next key's sequence. */
  approvalCounts: ReadonlyMap<number | null, number>;
}

/**
 * Locks the release row FOR UPDATE: the first lock of every decision on a release (the lock order is in
 * src/use-cases/transaction.ts). False when the release is not stored.
 */
export async function lockRelease(tx: AppDatabase, releaseId: string): Promise<boolean> {
  return rowsOf(await tx.execute(sql`select id from releases where id = ${releaseId} for update`)).length > 0;
}

/** Several release rows at once, in id order (the order every writer locking more than one takes them in). */
export async function lockReleases(tx: AppDatabase, releaseIds: readonly string[]): Promise<void> {
  // One text whatever the number of releases: the statement is prepared once per connection, not once per count.
  await tx.execute(sql`select id from releases where id in (select jsonb_array_elements_text(${JSON.stringify(releaseIds)}::jsonb)) order by id for update`);
}

interface StateRow {
  found: boolean;
  updates: Array<{ id: number; update_key: string }>;
  approvals: ApprovalRow[];
  holds: Array<{ id: number; update_key: string | null; client_id: string | null; ring: ActiveHold['ring']; reason: string; placed_by: string; placed_at: string }>;
  /** KBs a run reached a machine with (started, finished or failed); null for a run naming none. */
  deployed: Array<string | null>;
  counts: Array<{ update_id: number | null; n: number }>;
}

const fromJson = <T>(v: unknown): T => (typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));

/**
 * Everything a decision reads of its release in ONE statement (a click's transaction is mostly round trips): the live
 * updates (a revision's dropped ones keep their past decisions but take no new ones), the approvals in force, the
 * active holds, what was deployed, and how many approve/withdraw decisions each target had.
 */
/**
 * The decision state of each of the releases, in one statement whatever their number (a batch of decisions reads
 * every release it decides on at once); a release not stored is `found: false`.
 */
async function readDecisionStates(tx: AppDatabase, releaseIds: readonly string[]): Promise<Map<string, StateRow>> {
  const rows = rowsOf<Record<keyof StateRow | 'release_id', unknown>>(
    await tx.execute(sql`select x.id as release_id,
      exists (select 1 from releases where id = x.id) as found,
      (select coalesce(jsonb_agg(jsonb_build_object('id', id, 'update_key', update_key) order by id), '[]'::jsonb)
        from updates where release_id = x.id and removed_at is null) as updates,
      (select coalesce(jsonb_agg(to_jsonb(a)), '[]'::jsonb) from (${latestApprovalDecisions(sql`x.id`)}) a) as approvals,
      (select coalesce(jsonb_agg(to_jsonb(h) order by h.id), '[]'::jsonb) from (
        select h.id, u.update_key as update_key, h.client_id, h.ring, h.reason, h.placed_by, h.placed_at
        from holds h left join updates u on u.id = h.update_id
        where h.released_at is null and h.release_id = x.id) h) as holds,
      (select coalesce(jsonb_agg(distinct k.kb), '[]'::jsonb)
        from runs r left join lateral jsonb_array_elements_text(r.updates) as k(kb) on true
        where r.release_id = x.id and r.state in ('running', 'succeeded', 'failed')) as deployed,
      (select coalesce(jsonb_agg(jsonb_build_object('update_id', update_id, 'n', n)), '[]'::jsonb) from (
        select update_id, count(*)::int as n from decisions where release_id = x.id and kind in ('approve', 'withdraw')
        group by update_id) c) as counts
      from jsonb_array_elements_text(${JSON.stringify(releaseIds)}::jsonb) as x(id)`),
  );
  return new Map(
    rows.map((r) => [
      String(r.release_id),
      {
        found: r.found === true || r.found === 't',
        updates: fromJson(r.updates),
        approvals: fromJson(r.approvals),
        holds: fromJson(r.holds),
        deployed: fromJson(r.deployed),
        counts: fromJson(r.counts),
      },
    ]),
  );
}

/**
 * The decision state of one release. With `lock`, the release row is locked FOR UPDATE first, in a statement of its
 * own (pipelined with the read) so the read after it sees every decision committed before the lock was granted: every decision on one release
 * is taken one at a time, and the second of two simultaneous clicks sees the first. Undefined when not stored.
 */
export async function loadDecisionState(
  tx: AppDatabase,
  releaseId: string,
  options: { lock: boolean; eventId?: string },
): Promise<LoadedRelease | undefined> {
  // Sent together: the read runs (and takes its snapshot) only once the lock statement before it has finished.
  const [locked, reads] = await Promise.all([options.lock ? lockRelease(tx, releaseId) : true, readDecisionStates(tx, [releaseId])]);
  const read = reads.get(releaseId);
  if (!locked || !read?.found) return undefined;
  const applied = new Set<string>();
  if (options.eventId !== undefined && (await decisionRecorded(tx, options.eventId))) applied.add(options.eventId);
  return toLoaded(releaseId, read, applied);
}

/** The decision states of releases whose rows the caller has locked, in one statement; undefined for one not stored. */
export async function loadDecisionStates(tx: AppDatabase, releaseIds: readonly string[]): Promise<Map<string, LoadedRelease | undefined>> {
  const reads = await readDecisionStates(tx, releaseIds);
  return new Map(releaseIds.map((id) => {
    const read = reads.get(id);
    return [id, read?.found ? toLoaded(id, read, new Set()) : undefined];
  }));
}

function toLoaded(releaseId: string, read: StateRow, applied: Set<string>): LoadedRelease {
  const state: ReleaseDecisionState = {
    releaseId,
    updates: Object.fromEntries(read.updates.map((u) => [u.update_key, { approval: null }])),
    releaseApproval: null,
    holds: read.holds.map(
      (h): ActiveHold => ({
        id: String(h.id),
        updateKey: h.update_key,
        clientId: h.client_id,
        ring: h.ring ?? null,
        reason: h.reason,
        by: h.placed_by,
        at: toDate(h.placed_at).toISOString(),
      }),
    ),
    deployed: {
      release: read.deployed.length > 0,
      updates: Object.fromEntries(read.deployed.filter((kb) => kb !== null).map((kb) => [kb, true])),
    },
    applied,
  };
  for (const a of toApprovals(read.approvals)) {
    const approval = { by: a.approvedBy, at: a.at.toISOString() };
    if (a.updateKey === null) state.releaseApproval = approval;
    else if (state.updates[a.updateKey]) state.updates[a.updateKey] = { approval };
  }
  const updateIds = new Map(read.updates.map((u) => [u.update_key, Number(u.id)]));
  const approvalCounts = new Map(read.counts.map((c) => [c.update_id === null ? null : Number(c.update_id), Number(c.n)]));
  return { state, updateIds, approvalCounts };
}

/**
 * An engineer (person_roles `engineer`, not retired) by their chat identity: their person id and zone (their own,
 * else the MSP's, else UTC), in one statement: it is the first read of every click.
 */
export async function engineerByChatIdentity(db: AppDatabase, platform: string, externalId: string): Promise<{ personId: number; timezone: string } | undefined> {
  const [row] = rowsOf<{ person_id: number; timezone: string }>(
    await db.execute(sql`select p.id as person_id, coalesce(p.timezone, (select timezone from msp where id = 1), 'UTC') as timezone from chat_identities ci
      join people p on p.id = ci.person_id and p.retired_at is null
      join person_roles r on r.person_id = p.id and r.role = 'engineer'
      where ci.platform = ${platform} and ci.external_id = ${externalId} limit 1`),
  );
  return row ? { personId: Number(row.person_id), timezone: row.timezone } : undefined;
}

/** Whether a decision with this idempotency key was recorded (the request was handled before). */
export async function decisionRecorded(tx: AppDatabase, idempotencyKey: string): Promise<boolean> {
  return rowsOf(await tx.execute(sql`select 1 from decisions where idempotency_key = ${idempotencyKey}`)).length > 0;
}

/** Releases the holds among `holdIds` still active, as `by` at `now`. */
export async function releaseHoldRows(tx: AppDatabase, holdIds: readonly number[], by: string, now: Date): Promise<void> {
  const ids = JSON.stringify(holdIds);
  await tx.execute(sql`update holds set released_at = ${now.toISOString()}::timestamptz, released_by = ${by}
    where released_at is null and id in (select (jsonb_array_elements_text(${ids}::jsonb))::int)`);
}

/** Stores a hold; returns its row id. */
export async function insertHold(tx: AppDatabase, hold: typeof holds.$inferInsert): Promise<number> {
  const [row] = await tx.insert(holds).values(hold).returning({ id: holds.id });
  return row!.id;
}

/** An approval, withdrawal, hold or hold release as the decisions table keeps it. */
export interface NewReleaseDecision {
  kind: 'approve' | 'withdraw' | 'hold' | 'release_hold';
  releaseId: string;
  updateId: number | null;
  holdId: number | null;
  actor: string;
  actorPersonId: number | null;
  source: 'slack' | 'teams' | 'cli';
  reason: string | null;
  detail: Record<string, unknown>;
  idempotencyKey: string;
  createdAt: Date;
}

/**
 * Stores decisions in one statement whatever their number, in the order given; returns their row ids in that order.
 * A key stored before fails the whole statement (decisions_idempotency_key), as it would fail one insert.
 */
export async function insertDecisions(tx: AppDatabase, rows: readonly NewReleaseDecision[]): Promise<number[]> {
  const values = rows.map((d, ord) => ({
    ord,
    kind: d.kind,
    release_id: d.releaseId,
    update_id: d.updateId,
    hold_id: d.holdId,
    actor: d.actor,
    actor_person_id: d.actorPersonId,
    source: d.source,
    reason: d.reason,
    detail: d.detail,
    idempotency_key: d.idempotencyKey,
    created_at: d.createdAt.toISOString(),
  }));
  const inserted = rowsOf<{ id: number; idempotency_key: string }>(
    await tx.execute(sql`insert into decisions (kind, release_id, update_id, hold_id, actor, actor_person_id, source, reason, detail, idempotency_key, created_at)
      select kind, release_id, update_id, hold_id, actor, actor_person_id, source, reason, detail, idempotency_key, created_at
      from jsonb_to_recordset(${JSON.stringify(values)}::jsonb) as x(ord int, kind text, release_id text, update_id int, hold_id int, actor text,
        actor_person_id int, source text, reason text, detail jsonb, idempotency_key text, created_at timestamptz)
      order by ord
      returning id, idempotency_key`),
  );
  const ids = new Map(inserted.map((r) => [r.idempotency_key, Number(r.id)]));
  return rows.map((d) => ids.get(d.idempotencyKey)!);
}

/** Claims a note request's key for good (notes are no decisions, so no decisions row catches a resubmission). */
export async function claimNoteRequest(tx: AppDatabase, key: string, now: Date): Promise<boolean> {
  const claimed = rowsOf(
    await tx.execute(sql`insert into idempotency_keys (key, scope, created_at) values (${key}, 'note', ${now.toISOString()}::timestamptz)
      on conflict do nothing returning key`),
  );
  return claimed.length > 0;
}
