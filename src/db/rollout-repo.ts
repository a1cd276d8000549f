/**
 * Rollouts and runs in Postgres, the source of truth Redis is rebuilt from.
 *
 * - A rollout row is one gate of src/domain/rollout.ts; `version` is compared and set on every write, so two
 *   workers applying events to one gate cannot both win.
 * - A run row is one device in one window; UNIQUE (device_id, window_start) with ON CONFLICT DO NOTHING is what
 *   makes a run exist once however many times a window is planned. Its `detail.seq` is compared and set on every
 *   step, so a second processor of the same run (a stalled job handed to another worker) loses at once.
 */
import { sql } from 'drizzle-orm';
import type { Book, Gate, RolloutEffect } from '../domain/rollout.ts';
import { gateKey } from '../domain/rollout.ts';
import type { Run, RunStatus, RunStep, Operation } from '../domain/run.ts';
import type { Ring } from '../domain/inventory.ts';
import { rowsOf, type AppDatabase } from './client.ts';

export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

const iso = (v: unknown): string | null => (v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

export interface StoredBook extends Book {
  /** Row id by gate key. */
  ids: Record<string, number>;
}

/**
 * The release's gates, or only those named (an event about one gate need not read, or lock, the other 400).
 * A gate named but absent is simply not in the book, so the transition can create it and the insert's
 * ON CONFLICT catches a writer that created it meanwhile.
 */
export async function loadBook(db: AppDatabase, releaseId: string, lock = false, keys?: readonly string[]): Promise<StoredBook> {
  const only = keys === undefined ? sql`` : sql`and (case when ring = 'msp' then 'msp' else ring || '/' || client_id end) in (select jsonb_array_elements_text(${JSON.stringify(keys)}::jsonb))`;
  const rows = rowsOf<{ id: number; ring: Ring; client_id: string | null; state: string; state_detail: Gate; version: number }>(
    await db.execute(sql`select id, ring, client_id, state, state_detail, version from rollouts where release_id = ${releaseId} ${only}
      order by id ${lock ? sql`for update` : sql``}`),
  );
  const book: StoredBook = { releaseId, gates: {}, ids: {} };
  for (const row of rows) {
    const key = gateKey(row.ring, row.client_id);
    book.gates[key] = { ...row.state_detail, version: Number(row.version) };
    book.ids[key] = Number(row.id);
  }
  return book;
}

/** Writes the gates a transition changed; throws ConflictError when another writer got there first. */
export async function saveGates(tx: AppDatabase, before: StoredBook, after: Book, changed: readonly string[], now: Date): Promise<Record<string, number>> {
  const ids = { ...before.ids };
  for (const key of changed) {
    const gate = after.gates[key]!;
    const old = before.gates[key];
    const stamps = {
      started: gate.state === 'running' && old?.state !== 'running' ? now : null,
      finished: gate.finishedAt,
      promoted: gate.promotedAt,
      confirmed: gate.confirmation?.at ?? null,
      confirmedBy: gate.confirmation ? `${gate.confirmation.as}:${gate.confirmation.by}` : null,
    };
    if (old) {
      const updated = rowsOf<{ id: number }>(
        await tx.execute(sql`update rollouts set state = ${gate.state}, state_detail = ${JSON.stringify(gate)}::jsonb, version = ${gate.version},
          started_at = coalesce(started_at, ${stamps.started ? stamps.started.toISOString() : null}::timestamptz),
          finished_at = ${stamps.finished}::timestamptz, promoted_at = ${stamps.promoted}::timestamptz,
          confirmed_at = ${stamps.confirmed}::timestamptz, confirmed_by = ${stamps.confirmedBy}, updated_at = ${now.toISOString()}::timestamptz
          where id = ${before.ids[key]!} and version = ${old.version} returning id`),
      );
      if (updated.length === 0) throw new ConflictError(`rollout ${before.releaseId} ${key} changed underneath (version ${old.version})`);
    } else {
      const inserted = rowsOf<{ id: number }>(
        await tx.execute(sql`insert into rollouts (release_id, ring, client_id, state, state_detail, version, created_at, updated_at)
          values (${before.releaseId}, ${gate.ring}, ${gate.clientId}, ${gate.state}, ${JSON.stringify(gate)}::jsonb, ${gate.version},
            ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz)
          on conflict (release_id, ring, client_id) do nothing returning id`),
      );
      if (inserted.length === 0) throw new ConflictError(`rollout ${before.releaseId} ${key} was created by someone else`);
      ids[key] = Number(inserted[0]!.id);
    }
  }
  return ids;
}

/** The effects that are rows: audit entries and holds. Chat effects go through the outbox (see jobs/rollout). */
export async function persistRowEffects(tx: AppDatabase, releaseId: string, effects: readonly RolloutEffect[], now: Date): Promise<void> {
  for (const effect of effects) {
    if (effect.type === 'audit') {
      await tx.execute(sql`insert into audit_log (at, actor, action, subject, detail, source)
        values (${now.toISOString()}::timestamptz, ${effect.actor}, ${effect.action}, ${effect.subject}, ${JSON.stringify(effect.detail)}::jsonb, 'system')`);
    } else if (effect.type === 'hold_client') {
      await tx.execute(sql`insert into holds (scope, release_id, client_id, reason, placed_by, placed_via, placed_at)
        values ('client', ${releaseId}, ${effect.clientId}, ${effect.reason}, ${effect.by}, 'system', ${now.toISOString()}::timestamptz)`);
    }
  }
}

export interface NewRun {
  deviceId: number;
  releaseId: string;
  rolloutId: number;
  windowStart: string;
  windowEnd: string;
  updates: string[];
}

const RUNS_PER_STATEMENT = 5000;

/** Inserts runs that do not exist yet for their (device, window); returns how many were new. */
export async function insertRuns(db: AppDatabase, runs: readonly NewRun[], now: Date): Promise<number> {
  let inserted = 0;
  for (let start = 0; start < runs.length; start += RUNS_PER_STATEMENT) {
    const batch = runs.slice(start, start + RUNS_PER_STATEMENT).map((r) => ({
      device_id: r.deviceId,
      release_id: r.releaseId,
      rollout_id: r.rolloutId,
      window_start: r.windowStart,
      window_end: r.windowEnd,
      updates: r.updates,
    }));
    // One jsonb parameter per batch: binding a parameter per cell costs more than the insert (see inventory-repo).
    const result = rowsOf<{ n: number }>(
      await db.execute(sql`with added as (
          insert into runs (device_id, release_id, rollout_id, window_start, window_end, updates, scheduled_at, detail, updated_at)
          select device_id, release_id, rollout_id, window_start, window_end, updates, ${now.toISOString()}::timestamptz, '{"seq":0}'::jsonb,
            ${now.toISOString()}::timestamptz
          from jsonb_to_recordset(${JSON.stringify(batch)}::jsonb)
            as r(device_id integer, release_id text, rollout_id integer, window_start timestamptz, window_end timestamptz, updates jsonb)
          on conflict (device_id, window_start) do nothing returning 1)
        select count(*)::int as n from added`),
    );
    inserted += Number(result[0]?.n ?? 0);
  }
  return inserted;
}

/** Everything a run job needs, in one query. */
export interface RunContext {
  id: number;
  seq: number;
  run: Run;
  releaseId: string | null;
  rolloutId: number | null;
  ring: Ring;
  clientId: string | null;
  windowStart: string;
  windowEnd: string;
  device: { id: number; name: string; os: string | null; class: string; consecutiveMissedWindows: number };
  /** The device's window rule (canonical spec) and zone. */
  windowSpec: string | null;
  timezone: string;
}

interface RunDetail {
  seq?: number;
  offlineChecks?: number;
  installs?: number;
  operation?: Operation | null;
  notBefore?: string | null;
  reason?: string | null;
}

export async function loadRunContext(db: AppDatabase, runId: number): Promise<RunContext | undefined> {
  const rows = rowsOf<{
    id: number;
    state: RunStatus;
    step: string;
    attempts: number;
    reboots: number;
    updates: string[];
    error: string | null;
    detail: RunDetail;
    rolled_to: unknown;
    started_at: unknown;
    finished_at: unknown;
    window_start: unknown;
    window_end: unknown;
    release_id: string | null;
    rollout_id: number | null;
    device_id: number;
    name: string;
    os: string | null;
    class: string;
    ring: Ring;
    client_id: string | null;
    missed: number;
    spec: string | null;
    timezone: string;
  }>(
    await db.execute(sql`select r.id, r.state, r.step, r.attempts, r.reboots, r.updates, r.error, r.detail, r.rolled_to, r.started_at,
        r.finished_at, r.window_start, r.window_end, r.release_id, r.rollout_id, d.id as device_id, d.name, d.os, d.class, d.ring,
        d.client_id, d.consecutive_missed_windows as missed,
        coalesce(c.windows, m.windows) ->> d.class as spec, coalesce(c.timezone, m.timezone) as timezone
      from runs r join devices d on d.id = r.device_id left join clients c on c.id = d.client_id left join msp m on m.id = 1
      where r.id = ${runId}`),
  );
  const row = rows[0];
  if (!row) return undefined;
  const detail = row.detail ?? {};
  const step: RunStep = (['online_check', 'install', 'reboot', 'verify', 'done'] as const).find((s) => s === row.step) ?? 'online_check';
  return {
    id: Number(row.id),
    seq: detail.seq ?? 0,
    run: {
      id: `run${row.id}`,
      status: row.state,
      step,
      updates: row.updates,
      attempts: row.attempts,
      reboots: row.reboots,
      offlineChecks: detail.offlineChecks ?? 0,
      installs: detail.installs ?? 0,
      operation: detail.operation ?? null,
      notBefore: detail.notBefore ?? null,
      error: row.error,
      reason: detail.reason ?? null,
      rolledTo: iso(row.rolled_to),
      startedAt: iso(row.started_at),
      finishedAt: iso(row.finished_at),
    },
    releaseId: row.release_id,
    rolloutId: row.rollout_id === null ? null : Number(row.rollout_id),
    ring: row.ring,
    clientId: row.client_id,
    windowStart: iso(row.window_start)!,
    windowEnd: iso(row.window_end)!,
    device: { id: Number(row.device_id), name: row.name, os: row.os, class: row.class, consecutiveMissedWindows: row.missed },
    windowSpec: row.spec,
    timezone: row.timezone,
  };
}

/**
 * Stores a run's new state if nobody else stored one since `seq`; returns the new seq, or undefined when this
 * writer lost (another processor has the run: stop touching the device).
 */
export async function saveRun(db: AppDatabase, runId: number, seq: number, run: Run, now: Date): Promise<number | undefined> {
  const detail: RunDetail = {
    seq: seq + 1,
    offlineChecks: run.offlineChecks,
    installs: run.installs,
    operation: run.operation,
    notBefore: run.notBefore,
    reason: run.reason,
  };
  const rows = rowsOf<{ id: number }>(
    await db.execute(sql`update runs set state = ${run.status}, step = ${run.step}, attempts = ${run.attempts}, reboots = ${run.reboots},
        error = ${run.error}, result = ${run.reason}, detail = ${JSON.stringify(detail)}::jsonb, rolled_to = ${run.rolledTo}::timestamptz,
        started_at = ${run.startedAt}::timestamptz, finished_at = ${run.finishedAt}::timestamptz,
        step_started_at = ${run.operation?.startedAt ?? null}::timestamptz, updated_at = ${now.toISOString()}::timestamptz
      where id = ${runId} and coalesce((detail ->> 'seq')::int, 0) = ${seq} returning id`),
  );
  return rows.length === 0 ? undefined : seq + 1;
}

export async function updateDeviceMisses(db: AppDatabase, deviceId: number, consecutiveMissed: number, flag: boolean, now: Date): Promise<void> {
  await db.execute(sql`update devices set consecutive_missed_windows = ${consecutiveMissed},
      flagged_at = case when ${flag} then coalesce(flagged_at, ${now.toISOString()}::timestamptz) when ${consecutiveMissed} = 0 then null else flagged_at end,
      updated_at = ${now.toISOString()}::timestamptz
    where id = ${deviceId}`);
}

export interface GateRow {
  id: number;
  releaseId: string;
  ring: Ring;
  clientId: string | null;
  state: string;
}

/** Gates whose devices may get runs now: scheduled or running. */
export async function openGates(db: AppDatabase): Promise<GateRow[]> {
  const rows = rowsOf<{ id: number; release_id: string; ring: Ring; client_id: string | null; state: string }>(
    await db.execute(sql`select id, release_id, ring, client_id, state from rollouts where state in ('scheduled', 'running') order by id`),
  );
  return rows.map((r) => ({ id: Number(r.id), releaseId: r.release_id, ring: r.ring, clientId: r.client_id, state: r.state }));
}

export interface GateDevice {
  id: number;
  name: string;
  clientId: string | null;
  os: string | null;
  class: string;
}

/** The gate's live devices, with the windows of whoever owns them. */
export async function gateDevices(db: AppDatabase, gate: GateRow): Promise<{ devices: GateDevice[]; timezone: string; windows: Record<string, string> } | undefined> {
  const owner = rowsOf<{ timezone: string; windows: Record<string, string> }>(
    gate.clientId === null
      ? await db.execute(sql`select timezone, windows from msp where id = 1`)
      : await db.execute(sql`select timezone, windows from clients where id = ${gate.clientId} and retired_at is null`),
  )[0];
  if (!owner) return undefined;
  const devices = rowsOf<{ id: number; name: string; client_id: string | null; os: string | null; class: string }>(
    await db.execute(sql`select id, name, client_id, os, class from devices
      where retired_at is null and ring = ${gate.ring} and client_id is not distinct from ${gate.clientId} order by id`),
  );
  return {
    devices: devices.map((d) => ({ id: Number(d.id), name: d.name, clientId: d.client_id, os: d.os, class: d.class })),
    timezone: owner.timezone,
    windows: owner.windows,
  };
}

/** Devices of a gate already patched for the release, or already holding a run in this window. */
export async function devicesSettled(db: AppDatabase, releaseId: string, deviceIds: readonly number[], windowStart: string): Promise<{ done: Set<number>; planned: Set<number> }> {
  if (deviceIds.length === 0) return { done: new Set(), planned: new Set() };
  const rows = rowsOf<{ device_id: number; done: boolean; planned: boolean }>(
    await db.execute(sql`select device_id, bool_or(state = 'succeeded' and release_id = ${releaseId}) as done,
        bool_or(window_start = ${windowStart}::timestamptz) as planned
      from runs where device_id in (select jsonb_array_elements_text(${JSON.stringify(deviceIds)}::jsonb)::int)
      group by device_id`),
  );
  const done = new Set<number>();
  const planned = new Set<number>();
  for (const row of rows) {
    if (row.done) done.add(Number(row.device_id));
    if (row.planned) planned.add(Number(row.device_id));
  }
  return { done, planned };
}

export interface UnfinishedRun {
  id: number;
  clientId: string | null;
  windowEnd: string;
}

/** Runs not yet ended, oldest first: what Redis should be carrying. */
export async function unfinishedRuns(db: AppDatabase): Promise<UnfinishedRun[]> {
  const rows = rowsOf<{ id: number; client_id: string | null; window_end: unknown }>(
    await db.execute(sql`select r.id, d.client_id, r.window_end from runs r join devices d on d.id = r.device_id
      where r.state in ('scheduled', 'running') order by r.id`),
  );
  return rows.map((r) => ({ id: Number(r.id), clientId: r.client_id, windowEnd: iso(r.window_end)! }));
}

/**
 * Gates running whose every device is settled for the release: patched, failed for good, or flagged after
 * missing too many windows, with nothing left in flight.
 */
export async function finishedGates(db: AppDatabase): Promise<GateRow[]> {
  const rows = rowsOf<{ id: number; release_id: string; ring: Ring; client_id: string | null; state: string }>(
    await db.execute(sql`select g.id, g.release_id, g.ring, g.client_id, g.state from rollouts g
      where g.state = 'running'
        and not exists (select 1 from runs r where r.rollout_id = g.id and r.state in ('scheduled', 'running'))
        and not exists (
          select 1 from devices d
          where d.retired_at is null and d.ring = g.ring and d.client_id is not distinct from g.client_id and d.flagged_at is null
            and exists (select 1 from runs r where r.rollout_id = g.id and r.device_id = d.id)
            and not exists (select 1 from runs r where r.device_id = d.id and r.rollout_id = g.id and r.state in ('succeeded', 'failed')))`),
  );
  return rows.map((r) => ({ id: Number(r.id), releaseId: r.release_id, ring: r.ring, clientId: r.client_id, state: r.state }));
}

export interface RunCounts {
  [state: string]: number;
}

export async function runCounts(db: AppDatabase, rolloutId?: number): Promise<RunCounts> {
  const rows = rowsOf<{ state: string; n: number }>(
    await db.execute(sql`select state, count(*)::int as n from runs ${rolloutId === undefined ? sql`` : sql`where rollout_id = ${rolloutId}`} group by state`),
  );
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}
