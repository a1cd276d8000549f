/**
 * What the engineers' rollout actions (src/use-cases/rollout-actions.ts: promote, hold a client from its window
 * summary, retry a window's failed runs, skip a ring) read and write besides the gates: the window's failed runs and
 * their retries, the decision rows, and the facts a window summary is drawn from again after a click.
 */
import { sql } from 'drizzle-orm';
import type { WindowTally } from '../domain/window-report.ts';
import { rowsOf, type AppDatabase } from './client.ts';
import { windowTallies } from './rollout-repo.ts';
import { decisions } from './schema.ts';

const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

/** Clients still in the inventory with at least one live device: those a promotion schedules a pilot for. */
export async function clientsWithLiveDevices(db: AppDatabase): Promise<string[]> {
  const rows = rowsOf<{ id: string }>(
    await db.execute(sql`select c.id from clients c where c.retired_at is null
      and exists (select 1 from devices d where d.client_id = c.id and d.retired_at is null) order by c.id`),
  );
  return rows.map((r) => r.id);
}

/** The release a client's window was patching (the newest, when runs of several shared it), else the newest stored. */
export async function releaseOfWindow(db: AppDatabase, clientId: string, windowStart: string): Promise<string | undefined> {
  const [row] = rowsOf<{ release_id: string }>(
    await db.execute(sql`select r.release_id from runs r join devices d on d.id = r.device_id join releases rel on rel.id = r.release_id
      where d.client_id = ${clientId} and r.window_start = ${windowStart}::timestamptz
      order by rel.initial_release_date desc limit 1`),
  );
  if (row) return row.release_id;
  return rowsOf<{ id: string }>(await db.execute(sql`select id from releases order by initial_release_date desc, id desc limit 1`))[0]?.id;
}

/** Two clicks on one window queue here (until commit); the second then finds no run still marked failed. */
export async function lockRetryWindow(tx: AppDatabase, scope: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`retry:${scope}`}))`);
}

/** One editor at a time per message: the second reads the model after the first committed, so it keeps its line. */
export async function lockMessageEdit(tx: AppDatabase, subject: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`edit:${subject}`}))`);
}

export interface FailedRun {
  id: number;
  deviceId: number;
  releaseId: string | null;
  rolloutId: number | null;
  updates: string[];
  windowEnd: string;
  /** The device class's window rule (the client's, else the MSP's), and the zone it is read in. */
  spec: string | null;
  timezone: string;
}

/** A window's failed runs not retried yet, on live devices, locked (`for update`) in id order. */
export async function failedRunsToRetry(tx: AppDatabase, who: string, windowStart: string): Promise<FailedRun[]> {
  const rows = rowsOf<{ id: number; device_id: number; release_id: string | null; rollout_id: number | null; updates: string[]; window_end: unknown; spec: string | null; timezone: string }>(
    await tx.execute(sql`select r.id, r.device_id, r.release_id, r.rollout_id, r.updates, r.window_end,
        coalesce(c.windows, m.windows) ->> d.class as spec, coalesce(c.timezone, m.timezone) as timezone
      from runs r join devices d on d.id = r.device_id left join clients c on c.id = d.client_id left join msp m on m.id = 1
      where r.window_start = ${windowStart}::timestamptz and coalesce(d.client_id, 'msp') = ${who}
        and r.state = 'failed' and not (r.detail ? 'retriedTo') and d.retired_at is null
      order by r.id for update of r`),
  );
  return rows.map((r) => ({
    id: Number(r.id),
    deviceId: Number(r.device_id),
    releaseId: r.release_id,
    rolloutId: r.rollout_id === null ? null : Number(r.rollout_id),
    updates: r.updates,
    windowEnd: iso(r.window_end),
    spec: r.spec,
    timezone: r.timezone,
  }));
}

/** How many of a window's failed runs could still be retried (the summary offers Retry failed only then). */
export async function retryableRunCount(db: AppDatabase, who: string, windowStart: string): Promise<number> {
  const [row] = rowsOf<{ n: number }>(
    await db.execute(sql`select count(*)::int as n from runs r join devices d on d.id = r.device_id
      where r.window_start = ${windowStart}::timestamptz and coalesce(d.client_id, 'msp') = ${who}
        and r.state = 'failed' and not (r.detail ? 'retriedTo') and d.retired_at is null`),
  );
  return Number(row?.n ?? 0);
}

/** A "Retry failed" decision as stored: who asked, when, and where each run went. */
export interface RetryDecision {
  actor: string;
  source: string;
  at: string;
  again: number[];
  later: Array<{ run: number; windowStart: string }>;
}

/** Every retry asked for one window (`scope`: `who:windowStart`), oldest first. */
export async function retryDecisions(db: AppDatabase, scope: string): Promise<RetryDecision[]> {
  const rows = rowsOf<{ actor: string; source: string; created_at: unknown; detail: { again?: number[]; later?: Array<{ run: number; windowStart: string }> } }>(
    await db.execute(sql`select actor, source, created_at, detail from decisions
      where kind = 'retry_failed' and idempotency_key like ${`retry_failed:${scope}:%`} order by id`),
  );
  return rows.map((r) => ({ actor: r.actor, source: r.source, at: iso(r.created_at), again: r.detail.again ?? [], later: r.detail.later ?? [] }));
}

/**
 * The same runs start over with a new identity for their device calls (`retry` goes into their operation keys), so
 * the device manager does not hand back the failed install as if it were this one.
 */
export async function restartRuns(tx: AppDatabase, runIds: readonly number[], now: Date): Promise<void> {
  if (runIds.length === 0) return;
  await tx.execute(sql`update runs set state = 'scheduled', step = 'online_check', attempts = 0, reboots = 0, error = null, result = null,
      started_at = null, finished_at = null, step_started_at = null, rolled_to = null, updated_at = ${now.toISOString()}::timestamptz,
      detail = jsonb_build_object('seq', coalesce((detail ->> 'seq')::int, 0) + 1, 'retry', coalesce((detail ->> 'retry')::int, 0) + 1,
        'previousError', error)
    where id in (select (jsonb_array_elements_text(${JSON.stringify(runIds)}::jsonb))::int)`);
}

/** A failed run whose retry went to a later window stays as it was (the window's record), marked with where. */
export async function markRetriedTo(tx: AppDatabase, moves: ReadonlyArray<{ id: number; to: string }>, actorId: string, now: Date): Promise<void> {
  if (moves.length === 0) return;
  await tx.execute(sql`update runs r set detail = r.detail || jsonb_build_object('retriedTo', x.to, 'retriedBy', ${actorId}::text),
      updated_at = ${now.toISOString()}::timestamptz
    from jsonb_to_recordset(${JSON.stringify(moves)}::jsonb) as x(id integer, "to" text) where r.id = x.id`);
}

export type NewDecision = typeof decisions.$inferInsert;

/** A decision row; its idempotency key is unique, so a repeat fails here (the caller's transaction retries). */
export async function insertDecision(tx: AppDatabase, decision: NewDecision): Promise<void> {
  await tx.insert(decisions).values(decision);
}

/** An update of the release as typed (KB5036893, 5036893, or its key); undefined when there is none. */
export async function findReleaseUpdate(db: AppDatabase, releaseId: string, typed: string): Promise<{ updateKey: string; kb: string | null } | undefined> {
  const text = typed.trim();
  const bare = text.replace(/^KB/i, '');
  const [row] = rowsOf<{ update_key: string; kb: string | null }>(
    await db.execute(sql`select update_key, kb from updates where release_id = ${releaseId} and removed_at is null
      and (update_key = ${text} or update_key = ${bare} or kb = ${bare}) order by id limit 1`),
  );
  return row ? { updateKey: row.update_key, kb: row.kb } : undefined;
}

export async function isLiveClient(db: AppDatabase, clientId: string | null): Promise<boolean> {
  return rowsOf(await db.execute(sql`select 1 from clients where id = ${clientId} and retired_at is null`)).length > 0;
}

/** A hold on a whole client, as placed. */
export interface ClientHold {
  by: string;
  via: string;
  at: string;
  reason: string;
}

/** The client's holds in force (scope `client`), oldest first. */
export async function clientHoldsInForce(db: AppDatabase, clientId: string): Promise<ClientHold[]> {
  const rows = rowsOf<{ placed_by: string; placed_via: string; placed_at: unknown; reason: string }>(
    await db.execute(sql`select placed_by, placed_via, placed_at, reason from holds
      where scope = 'client' and client_id = ${clientId} and released_at is null order by placed_at, id`),
  );
  return rows.map((r) => ({ by: r.placed_by, via: r.placed_via, at: iso(r.placed_at), reason: r.reason }));
}

/** The Slack channels a message with this subject was posted in: where an edit of it goes. */
export async function postedChannels(db: AppDatabase, subject: string): Promise<string[]> {
  const rows = rowsOf<{ channel: string }>(
    await db.execute(sql`select distinct channel from chat_outbox
      where platform = 'slack' and subject = ${subject} and action in ('post', 'update') order by channel`),
  );
  return rows.map((r) => r.channel);
}

/** One window's tally as the runs read now, with the owner's name and zone (as the sweep's summary drew it). */
export async function windowAsNow(db: AppDatabase, who: string, windowStart: string, now: Date): Promise<{ tally: WindowTally; zone: string } | undefined> {
  const [tally] = await windowTallies(db, now, { who, windowStart });
  if (!tally) return undefined;
  const [owner] = rowsOf<{ name: string; timezone: string }>(
    await db.execute(
      who === 'msp' ? sql`select name, timezone from msp where id = 1` : sql`select name, timezone from clients where id = ${who}`,
    ),
  );
  return { tally: who === 'msp' || !owner ? tally : { ...tally, name: owner.name }, zone: owner?.timezone ?? 'UTC' };
}
