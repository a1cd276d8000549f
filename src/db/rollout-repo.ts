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
import { rollReason, type WindowTally } from '../domain/window-report.ts';
import { releaseFacts, type MspDevice, type ReleaseFacts, type UpdateOutcome } from '../domain/eligibility.ts';
import { rowsOf, type AppDatabase } from './client.ts';
import { perReleaseSinceStamp } from './outcome-cache.ts';

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
  return (await loadBooks(db, [releaseId], lock, keys)).get(releaseId)!;
}

/** The same for several releases in one statement (their gates locked in release, then id order); every one named has a book. */
export async function loadBooks(db: AppDatabase, releaseIds: readonly string[], lock = false, keys?: readonly string[]): Promise<Map<string, StoredBook>> {
  const only = keys === undefined ? sql`` : sql`and (case when ring = 'msp' then 'msp' else ring || '/' || client_id end) in (select jsonb_array_elements_text(${JSON.stringify(keys)}::jsonb))`;
  const rows = rowsOf<{ id: number; release_id: string; ring: Ring; client_id: string | null; state: string; state_detail: Gate; version: number }>(
    await db.execute(sql`select id, release_id, ring, client_id, state, state_detail, version from rollouts
      where release_id in (select jsonb_array_elements_text(${JSON.stringify(releaseIds)}::jsonb)) ${only}
      order by release_id, id ${lock ? sql`for update` : sql``}`),
  );
  const books = new Map(releaseIds.map((id): [string, StoredBook] => [id, { releaseId: id, gates: {}, ids: {} }]));
  for (const row of rows) {
    const book = books.get(row.release_id)!;
    const key = gateKey(row.ring, row.client_id);
    book.gates[key] = { ...row.state_detail, version: Number(row.version) };
    book.ids[key] = Number(row.id);
  }
  return books;
}

/**
 * Writes the gates a transition changed; throws ConflictError when another writer got there first. Changed
 * gates go in one statement (a window opening for 400 clients is one round trip), each compared on its version.
 */
export async function saveGates(tx: AppDatabase, before: StoredBook, after: Book, changed: readonly string[], now: Date): Promise<Record<string, number>> {
  return (await saveGatesOfReleases(tx, [{ before, after, changed }], now))[0]!;
}

export interface GatesWrite {
  before: StoredBook;
  after: Book;
  changed: readonly string[];
}

/**
 * The same for several releases' books at once: the new gates of all of them in one insert, the changed ones in
 * one update. Returns each book's row ids by gate key, in the order given.
 */
export async function saveGatesOfReleases(tx: AppDatabase, writes: readonly GatesWrite[], now: Date): Promise<Array<Record<string, number>>> {
  const ids = writes.map((w) => ({ ...w.before.ids }));
  const updates: Array<Record<string, unknown>> = [];
  const inserts: Array<Record<string, unknown>> = [];
  writes.forEach(({ before, after, changed }, book) => {
    for (const key of changed) {
      const gate = after.gates[key]!;
      const old = before.gates[key];
      const stamps = {
        started_at: gate.state === 'running' && old?.state !== 'running' ? now.toISOString() : null,
        finished_at: gate.finishedAt,
        promoted_at: gate.promotedAt,
        confirmed_at: gate.confirmation?.at ?? null,
        confirmed_by: gate.confirmation ? `${gate.confirmation.as}:${gate.confirmation.by}` : null,
      };
      if (old) updates.push({ id: before.ids[key]!, old_version: old.version, version: gate.version, state: gate.state, detail: gate, ...stamps });
      else inserts.push({ ord: inserts.length, book, key, release_id: before.releaseId, ring: gate.ring, client_id: gate.clientId, state: gate.state, detail: gate, version: gate.version });
    }
  });
  if (inserts.length > 0) {
    const inserted = rowsOf<{ id: number; ord: number }>(
      await tx.execute(sql`with x as (
          select * from jsonb_to_recordset(${JSON.stringify(inserts)}::jsonb) as x(ord int, release_id text, ring text, client_id text, state text, detail jsonb, version int)),
        inserted as (
          insert into rollouts (release_id, ring, client_id, state, state_detail, version, created_at, updated_at)
          select release_id, ring, client_id, state, detail, version, ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz from x order by ord
          on conflict (release_id, ring, client_id) do nothing returning id, release_id, ring, client_id)
        select i.id, x.ord from inserted i join x on x.release_id = i.release_id and x.ring = i.ring and x.client_id is not distinct from i.client_id`),
    );
    if (inserted.length < inserts.length) {
      const made = new Set(inserted.map((r) => Number(r.ord)));
      const lost = inserts.find((g) => !made.has(Number(g.ord)))!;
      throw new ConflictError(`rollout ${String(lost.release_id)} ${String(lost.key)} was created by someone else`);
    }
    for (const row of inserted) {
      const gate = inserts[Number(row.ord)]!;
      ids[gate.book as number]![gate.key as string] = Number(row.id);
    }
  }
  if (updates.length > 0) {
    const updated = rowsOf<{ id: number }>(
      await tx.execute(sql`update rollouts r set state = x.state, state_detail = x.detail, version = x.version,
          started_at = coalesce(r.started_at, x.started_at), finished_at = x.finished_at, promoted_at = x.promoted_at,
          confirmed_at = x.confirmed_at, confirmed_by = x.confirmed_by, updated_at = ${now.toISOString()}::timestamptz
        from jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) as x(id integer, old_version integer, version integer, state text,
          detail jsonb, started_at timestamptz, finished_at timestamptz, promoted_at timestamptz, confirmed_at timestamptz, confirmed_by text)
        where r.id = x.id and r.version = x.old_version returning r.id`),
    );
    if (updated.length !== updates.length) {
      const releases = [...new Set(writes.map((w) => w.before.releaseId))].join(', ');
      throw new ConflictError(`rollout ${releases}: ${updates.length - updated.length} gate(s) changed underneath`);
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
  /** Set for a device the plan passed over (`nothing_applies`, `no_os`): stored as a skipped run, so the ring knows it is settled. */
  skipped?: string;
}

export const RUNS_PER_STATEMENT = 1000;

/**
 * Inserts runs that do not exist yet for their (device, window); returns the ids of the new ones, in the order
 * given (plan order: `admit` takes a client's first runs by id). Give it at most RUNS_PER_STATEMENT at a time (the
 * caller batches, so it can enqueue one batch while the next inserts).
 */
export async function insertRuns(db: AppDatabase, runs: readonly NewRun[], now: Date): Promise<number[]> {
  const ids: number[] = [];
  for (let start = 0; start < runs.length; start += RUNS_PER_STATEMENT) {
    const batch = runColumns(runs.slice(start, start + RUNS_PER_STATEMENT));
    // A 100,000-run sweep is this insert 100 times: per row it sends a device id and two small indexes (a page's runs
    // share a few windows and update lists, sent once each), and gets back one string, not a row per run.
    const [row] = rowsOf<{ ids: string | null }>(
      await db.execute(sql`with inserted as (
          insert into runs (device_id, release_id, rollout_id, window_start, window_end, updates, scheduled_at, detail, updated_at, state, step, result, finished_at)
          select r.device_id, w.release_id, w.rollout_id, w.window_start, w.window_end, c.updates, ${now.toISOString()}::timestamptz, '{"seq":0}'::jsonb,
            ${now.toISOString()}::timestamptz, case when c.result is null then 'scheduled' else 'skipped' end,
            case when c.result is null then 'online_check' else 'done' end, c.result,
            case when c.result is null then null else ${now.toISOString()}::timestamptz end
          from unnest(${batch.devices}::int[], ${batch.windowOf}::int[], ${batch.contentOf}::int[]) with ordinality as r(device_id, w, c, n)
            join rows from (jsonb_to_recordset(${batch.windows}::jsonb)
              as (release_id text, rollout_id integer, window_start timestamptz, window_end timestamptz)) with ordinality as w(release_id, rollout_id, window_start, window_end, n)
              on w.n = r.w
            join rows from (jsonb_to_recordset(${batch.contents}::jsonb) as (updates jsonb, result text)) with ordinality as c(updates, result, n) on c.n = r.c
          order by r.n
          on conflict (device_id, window_start) do nothing returning id)
        select string_agg(id::text, ',' order by id) as ids from inserted`),
    );
    if (row?.ids) for (const id of row.ids.split(',')) ids.push(Number(id));
  }
  return ids;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Runs as columns: device ids, and per run the (1-based) index of its window and of its content (updates and
 * skip reason) in two short lists. Array literals of integers, so no value needs quoting.
 */
function runColumns(runs: readonly NewRun[]): { devices: string; windowOf: string; contentOf: string; windows: string; contents: string } {
  const windows: Array<{ release_id: string; rollout_id: number; window_start: string; window_end: string }> = [];
  const windowIndex = new Map<string, number>();
  const contents: Array<{ updates: string[]; result: string | null }> = [];
  const contentIndex = new Map<string, number>();
  // Runs come a window at a time, and most of a window's devices get the same updates: most rows look nothing up.
  let last: NewRun | undefined;
  let w = 0;
  let c = 0;
  const devices: number[] = [];
  const windowOf: number[] = [];
  const contentOf: number[] = [];
  for (const run of runs) {
    if (!last || run.rolloutId !== last.rolloutId || run.windowStart !== last.windowStart || run.windowEnd !== last.windowEnd || run.releaseId !== last.releaseId) {
      const key = `${run.releaseId} ${run.rolloutId} ${run.windowStart} ${run.windowEnd}`;
      w = windowIndex.get(key) ?? 0;
      if (w === 0) {
        w = windows.push({ release_id: run.releaseId, rollout_id: run.rolloutId, window_start: run.windowStart, window_end: run.windowEnd });
        windowIndex.set(key, w);
      }
    }
    if (!last || run.skipped !== last.skipped || !sameKeys(run.updates, last.updates)) {
      const content = { updates: run.updates, result: run.skipped ?? null };
      const key = JSON.stringify(content);
      c = contentIndex.get(key) ?? 0;
      if (c === 0) {
        c = contents.push(content);
        contentIndex.set(key, c);
      }
    }
    last = run;
    devices.push(run.deviceId);
    windowOf.push(w);
    contentOf.push(c);
  }
  return { devices: `{${devices.join(',')}}`, windowOf: `{${windowOf.join(',')}}`, contentOf: `{${contentOf.join(',')}}`, windows: JSON.stringify(windows), contents: JSON.stringify(contents) };
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
  /** The MSP's `missedWindowLimit` setting; null: the engine's default. */
  missedWindowLimit: number | null;
}

interface RunDetail {
  seq?: number;
  offlineChecks?: number;
  installs?: number;
  operation?: Operation | null;
  notBefore?: string | null;
  reason?: string | null;
  /** Set by Retry failed: the run started over, and its device calls carry new keys. */
  retry?: number;
  /** Set for a user's deferral (issue 7): a run pre-inserted as `rolled`, not a missed window. */
  deferred?: boolean;
}

/** A run row joined with its device and the owner's window, as loadRunContext reads it. */
interface RunContextRow {
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
  missed_limit: number | null;
}

export async function loadRunContext(db: AppDatabase, runId: number): Promise<RunContext | undefined> {
  const rows = rowsOf<RunContextRow>(
    await db.execute(sql`select r.id, r.state, r.step, r.attempts, r.reboots, r.updates, r.error, r.detail, r.rolled_to, r.started_at,
        r.finished_at, r.window_start, r.window_end, r.release_id, r.rollout_id, d.id as device_id, d.name, d.os, d.class, d.ring,
        d.client_id, d.consecutive_missed_windows as missed,
        coalesce(c.windows, m.windows) ->> d.class as spec, coalesce(d.timezone, c.timezone, m.timezone) as timezone,
        (m.settings ->> 'missedWindowLimit')::int as missed_limit
      from runs r join devices d on d.id = r.device_id left join clients c on c.id = d.client_id left join msp m on m.id = 1
      where r.id = ${runId}`),
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    id: Number(row.id),
    seq: row.detail?.seq ?? 0,
    run: storedRun(row),
    releaseId: row.release_id,
    rolloutId: row.rollout_id === null ? null : Number(row.rollout_id),
    ring: row.ring,
    clientId: row.client_id,
    windowStart: iso(row.window_start)!,
    windowEnd: iso(row.window_end)!,
    device: { id: Number(row.device_id), name: row.name, os: row.os, class: row.class, consecutiveMissedWindows: row.missed },
    windowSpec: row.spec,
    timezone: row.timezone,
    missedWindowLimit: row.missed_limit === null ? null : Number(row.missed_limit),
  };
}

function storedRun(row: RunContextRow): Run {
  const detail = row.detail ?? {};
  const step: RunStep = (['online_check', 'install', 'reboot', 'verify', 'done'] as const).find((s) => s === row.step) ?? 'online_check';
  return {
    // A retried run is a new identity for the device manager: its install and reboot keys must not repeat.
    id: detail.retry ? `run${row.id}-r${detail.retry}` : `run${row.id}`,
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
    reason: detail.reason ?? (detail.deferred ? 'deferred' : null),
    rolledTo: iso(row.rolled_to),
    startedAt: iso(row.started_at),
    finishedAt: iso(row.finished_at),
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
        updates = ${JSON.stringify(run.updates)}::jsonb,
        error = ${run.error}, result = ${run.reason}, detail = coalesce(detail, '{}'::jsonb) || ${JSON.stringify(detail)}::jsonb, rolled_to = ${run.rolledTo}::timestamptz,
        started_at = ${run.startedAt}::timestamptz, finished_at = ${run.finishedAt}::timestamptz,
        step_started_at = ${run.operation?.startedAt ?? null}::timestamptz, updated_at = ${now.toISOString()}::timestamptz
      where id = ${runId} and coalesce((detail ->> 'seq')::int, 0) = ${seq} returning id`),
  );
  return rows.length === 0 ? undefined : seq + 1;
}

/** Stores a device's missed-window count; true when this call is what flagged it for the engineers. */
export async function updateDeviceMisses(db: AppDatabase, deviceId: number, consecutiveMissed: number, flag: boolean, now: Date): Promise<boolean> {
  const rows = rowsOf<{ newly: boolean }>(
    await db.execute(sql`update devices d set consecutive_missed_windows = ${consecutiveMissed},
        flagged_at = case when ${flag} then coalesce(d.flagged_at, ${now.toISOString()}::timestamptz) when ${consecutiveMissed} = 0 then null else d.flagged_at end,
        updated_at = ${now.toISOString()}::timestamptz
      from devices old where d.id = ${deviceId} and old.id = d.id
      returning (old.flagged_at is null and d.flagged_at is not null) as newly`),
  );
  return rows[0]?.newly ?? false;
}

export interface GateRow {
  id: number;
  releaseId: string;
  ring: Ring;
  clientId: string | null;
  state: string;
}

export interface OpenGateDevice {
  gateId: number;
  releaseId: string;
  ring: Ring;
  clientId: string | null;
  gateState: string;
  id: number;
  name: string;
  os: string | null;
  /** The owner's window spec for the device's class, and the owner's zone. */
  spec: string | null;
  timezone: string;
  /** Missed too many windows in a row: it no longer holds its ring up. */
  flagged: boolean;
  /** Has a user, who must be warned before it reboots: the notice rule reads users only for these. */
  hasUser: boolean;
}

/** Where a page of a sweep's devices ends: the next page starts after this (gate, device). */
export interface DeviceCursor {
  gateId: number;
  deviceId: number;
}

/**
 * Which devices to read: some gates only, and for a page of a sweep, those after a cursor, at most `limit` of
 * them. Without one, every live device of every gate that may get runs now.
 */
export interface DeviceScope {
  gateIds: readonly number[];
  after?: DeviceCursor;
  limit?: number;
  /**
   * Of these gates, leave out the devices that have a run in a window open at `at`: a window plans a device once,
   * so the planner has nothing for them now (and a device is not patched by two runs at once).
   */
  skipPlanned?: { gateIds: readonly number[]; at: Date };
}

/**
 * The live devices of the gates that may get runs now (scheduled or running), with their owner's window, in
 * (gate, device) order: a whole sweep's at once, or those of some gates (`scope`), a page at a time.
 */
export async function openGateDevices(db: AppDatabase, scope?: DeviceScope): Promise<OpenGateDevice[]> {
  const gates = scope ? sql` and id in (select jsonb_array_elements_text(${JSON.stringify(scope.gateIds)}::jsonb)::int)` : sql``;
  const after = scope?.after ? sql` and (g.id, d.id) > (${scope.after.gateId}::int, ${scope.after.deviceId}::int)` : sql``;
  const limit = scope?.limit !== undefined ? sql` limit ${scope.limit}` : sql``;
  const skip = scope?.skipPlanned?.gateIds.length
    ? sql` and (g.id not in (select jsonb_array_elements_text(${JSON.stringify(scope.skipPlanned.gateIds)}::jsonb)::int)
        or not exists (select 1 from runs r where r.device_id = d.id and r.window_start <= ${scope.skipPlanned.at.toISOString()}::timestamptz
          and r.window_end > ${scope.skipPlanned.at.toISOString()}::timestamptz))`
    : sql``;
  const rows = rowsOf<{
    gate_id: number;
    release_id: string;
    ring: Ring;
    client_id: string | null;
    gate_state: string;
    id: number;
    name: string;
    os: string | null;
    spec: string | null;
    timezone: string;
    flagged: boolean;
    has_user: boolean;
  }>(
    // Client gates and the MSP's gate joined separately, each on an equality devices_client_idx answers: one
    // join with IS NOT DISTINCT FROM (or an OR) leaves the planner a nested loop over every device per gate.
    await db.execute(sql`with g as (select id, release_id, ring, client_id, state from rollouts where state in ('scheduled', 'running')${gates})
      select g.id as gate_id, g.release_id, g.ring, g.client_id, g.state as gate_state, d.id, d.name, d.os,
          c.windows ->> d.class as spec, coalesce(d.timezone, c.timezone) as timezone, d.flagged_at is not null as flagged,
          d.user_email is not null as has_user
        from g join clients c on c.id = g.client_id and c.retired_at is null
          join devices d on d.client_id = g.client_id and d.ring = g.ring and d.retired_at is null
        where true${after}${skip}
      union all
      select g.id, g.release_id, g.ring, g.client_id, g.state, d.id, d.name, d.os, m.windows ->> d.class, coalesce(d.timezone, m.timezone), d.flagged_at is not null,
          d.user_email is not null
        from g join msp m on m.id = 1
          join devices d on d.client_id is null and d.ring = g.ring and d.retired_at is null
        where g.client_id is null${after}${skip}
      order by 1, 6${limit}`),
  );
  return rows.map((r) => ({
    gateId: Number(r.gate_id),
    releaseId: r.release_id,
    ring: r.ring,
    clientId: r.client_id,
    gateState: r.gate_state,
    id: Number(r.id),
    name: r.name,
    os: r.os,
    spec: r.spec,
    timezone: r.timezone,
    flagged: Boolean(r.flagged),
    hasUser: Boolean(r.has_user),
  }));
}

/**
 * Live devices per owner ('' for the MSP) and ring, counted in one pass: a count per gate with IS NOT DISTINCT
 * FROM on client_id scans every device once per gate (2,000 gates over 100,000 devices).
 */
const liveDeviceCounts = sql`select coalesce(client_id, '') as owner, ring, count(*) as n from devices where retired_at is null group by 1, 2`;

/** A gate that may get runs now (scheduled or running), with how many live devices it has: what a sweep pages over. */
export interface SweepGateCount {
  id: number;
  releaseId: string;
  ring: Ring;
  clientId: string | null;
  state: string;
  devices: number;
}

/** The gates that may get runs now, in id order, each with its live device count (to cut the sweep into pages). */
export async function sweepGates(db: AppDatabase): Promise<SweepGateCount[]> {
  const rows = rowsOf<{ id: number; release_id: string; ring: Ring; client_id: string | null; state: string; devices: number }>(
    await db.execute(sql`with live as (${liveDeviceCounts})
      select g.id, g.release_id, g.ring, g.client_id, g.state, coalesce(live.n, 0)::int as devices
      from rollouts g left join live on live.owner = coalesce(g.client_id, '') and live.ring = g.ring
      where g.state in ('scheduled', 'running') order by g.id`),
  );
  return rows.map((r) => ({ id: Number(r.id), releaseId: r.release_id, ring: r.ring, clientId: r.client_id, state: r.state, devices: Number(r.devices) }));
}

/**
 * Which of these devices already have a run in these windows, as `deviceId/windowStart`: a window plans each device
 * once. One probe of runs_device_window_key per (device, window), forced by the lateral LIMIT: matching the runs of
 * the windows instead scans every run of the window so far (a sweep's later pages read the runs its earlier pages
 * wrote, 100,000 at the end of a large one) and every dead one a table with history keeps.
 */
export async function plannedDevices(db: AppDatabase, windowStarts: readonly string[], deviceIds: readonly number[]): Promise<Set<string>> {
  const planned = new Set<string>();
  if (windowStarts.length === 0 || deviceIds.length === 0) return planned;
  // The window starts come back as given: the caller's keys use the same strings.
  const rows = rowsOf<{ device_id: number; window_start: string }>(
    await db.execute(sql`select p.id::int as device_id, w.s as window_start
      from jsonb_array_elements_text(${JSON.stringify(deviceIds)}::jsonb) as p(id)
        cross join jsonb_array_elements_text(${JSON.stringify(windowStarts)}::jsonb) as w(s)
        cross join lateral (select 1 from runs r where r.device_id = p.id::int and r.window_start = w.s::timestamptz limit 1) as run`),
  );
  for (const r of rows) planned.add(`${r.device_id}/${r.window_start}`);
  return planned;
}

/** Whether any run is in the window starting then (one probe of runs_window_idx). */
export async function anyRunInWindow(db: AppDatabase, windowStart: string): Promise<boolean> {
  const [row] = rowsOf<{ found: boolean }>(await db.execute(sql`select exists (select 1 from runs where window_start = ${windowStart}::timestamptz) as found`));
  return Boolean(row?.found);
}

/**
 * Per (device, update) of the releases: installed when a run carrying it succeeded, else failed when the latest
 * run carrying it failed (a Retry moves that run on, so the failure no longer counts). The ring is the gate's.
 */
export async function updateOutcomes(db: AppDatabase, releaseIds: readonly string[], only?: 'msp-tested'): Promise<Map<string, readonly UpdateOutcome[]>> {
  // Read again only for a release whose runs (or devices' OS) changed since the last read (src/db/outcome-cache.ts).
  return perReleaseSinceStamp(db, releaseIds, only ?? 'all', (stale) => readUpdateOutcomes(db, stale, only));
}

async function readUpdateOutcomes(db: AppDatabase, releaseIds: readonly string[], only?: 'msp-tested'): Promise<Map<string, UpdateOutcome[]>> {
  const out = new Map<string, UpdateOutcome[]>(releaseIds.map((id) => [id, []]));
  if (releaseIds.length === 0) return out;
  // Only the machines that ran under a ring msp gate, every run of theirs: each machine's outcome is picked as for all.
  const scope =
    only === 'msp-tested'
      ? sql`and r.device_id in (select m.device_id from runs m join rollouts mg on mg.id = m.rollout_id where mg.ring = 'msp'
          and mg.release_id in (select jsonb_array_elements_text(${JSON.stringify(releaseIds)}::jsonb)))`
      : sql``;
  const rows = rowsOf<{ release_id: string; device_id: number; ring: Ring; client_id: string | null; update_key: string; outcome: 'installed' | 'failed'; at: unknown; os: string | null }>(
    await db.execute(sql`select distinct on (r.release_id, r.device_id, u.key) r.release_id, r.device_id, g.ring, g.client_id, u.key as update_key,
        case when r.state = 'succeeded' then 'installed' else 'failed' end as outcome, coalesce(r.finished_at, r.updated_at) as at, d.os
      from runs r join rollouts g on g.id = r.rollout_id join devices d on d.id = r.device_id
        cross join lateral jsonb_array_elements_text(r.updates) as u(key)
      where r.state in ('succeeded', 'failed') and r.release_id in (select jsonb_array_elements_text(${JSON.stringify(releaseIds)}::jsonb)) ${scope}
      order by r.release_id, r.device_id, u.key, (r.state = 'succeeded') desc, r.window_start desc, r.id desc`),
  );
  for (const r of rows) {
    out.get(r.release_id)?.push({ deviceId: Number(r.device_id), ring: r.ring, clientId: r.client_id, updateKey: r.update_key, outcome: r.outcome, at: iso(r.at)!, os: r.os });
  }
  return out;
}

/** The facts src/domain/eligibility.ts reads, per release: its gates and what its runs installed. */
export async function loadReleaseFacts(db: AppDatabase, releaseIds: readonly string[]): Promise<Map<string, ReleaseFacts>> {
  const states = await loadReleaseStates(db, releaseIds);
  return new Map([...states].map(([releaseId, state]) => [releaseId, state.facts]));
}

/**
 * The facts ring msp's standings read: the release's gates and the outcomes on the machines that ran under ring msp.
 * What other rings' machines did is left out (the day after a night of 100,000 runs, reading them took 2 s on
 * every sweep), so these facts answer nothing about other rings.
 */
export async function loadMspFacts(db: AppDatabase, releaseId: string): Promise<ReleaseFacts> {
  const [outcomes, book] = await Promise.all([updateOutcomes(db, [releaseId], 'msp-tested'), loadBook(db, releaseId)]);
  return releaseFacts(book, outcomes.get(releaseId) ?? []);
}

/** Per release, its gates as stored and the facts folded from them and its runs: the gates are read once for both. */
export async function loadReleaseStates(db: AppDatabase, releaseIds: readonly string[]): Promise<Map<string, { book: StoredBook; facts: ReleaseFacts }>> {
  const outcomes = await updateOutcomes(db, releaseIds);
  const states = new Map<string, { book: StoredBook; facts: ReleaseFacts }>();
  for (const releaseId of releaseIds) {
    const book = await loadBook(db, releaseId);
    states.set(releaseId, { book, facts: releaseFacts(book, outcomes.get(releaseId) ?? []) });
  }
  return states;
}

/** The MSP's own live ring-msp devices: where each update is tested first. */
export async function mspDevices(db: AppDatabase): Promise<MspDevice[]> {
  const rows = rowsOf<{ id: number; os: string | null; flagged: boolean }>(
    await db.execute(sql`select id, os, flagged_at is not null as flagged from devices where client_id is null and ring = 'msp' and retired_at is null order by id`),
  );
  return rows.map((r) => ({ id: Number(r.id), os: r.os, flagged: Boolean(r.flagged) }));
}

/** Running gates with no run still in flight: candidates for ring_finished, once the planner finds nothing left. */
export async function idleRunningGates(db: AppDatabase): Promise<GateRow[]> {
  const rows = rowsOf<{ id: number; release_id: string; ring: Ring; client_id: string | null; state: string }>(
    await db.execute(sql`select g.id, g.release_id, g.ring, g.client_id, g.state from rollouts g
      where g.state = 'running' and not exists (select 1 from runs r where r.rollout_id = g.id and r.state in ('scheduled', 'running'))`),
  );
  return rows.map((r) => ({ id: Number(r.id), releaseId: r.release_id, ring: r.ring, clientId: r.client_id, state: r.state }));
}

/** Gates back in `scheduled` after resting once (a later promotion, confirmation or approval reopened them). */
export async function reopenedScheduledGates(db: AppDatabase): Promise<GateRow[]> {
  const rows = rowsOf<{ id: number; release_id: string; ring: Ring; client_id: string | null; state: string }>(
    await db.execute(sql`select id, release_id, ring, client_id, state from rollouts where state = 'scheduled' and finished_at is not null`),
  );
  return rows.map((r) => ({ id: Number(r.id), releaseId: r.release_id, ring: r.ring, clientId: r.client_id, state: r.state }));
}

/** Gates still in `scheduled` that never opened a window (started_at is set by the first one) nor ever rested. */
export async function unopenedScheduledGates(db: AppDatabase): Promise<Array<GateRow & { liveDevices: number }>> {
  // liveDevices is counted now, after the gate exists: a gate created after the sweep read its devices is not
  // mistaken for one with none.
  // Counted per gate found, each on an equality devices_client_idx answers: most sweeps find none, and counting the
  // whole fleet for them cost ~80 ms at 100,000 devices on every sweep.
  const rows = rowsOf<{ id: number; release_id: string; ring: Ring; client_id: string | null; state: string; live: number }>(
    await db.execute(sql`select g.id, g.release_id, g.ring, g.client_id, g.state,
        (case when g.client_id is null then (select count(*) from devices d where d.client_id is null and d.ring = g.ring and d.retired_at is null)
          else (select count(*) from devices d where d.client_id = g.client_id and d.ring = g.ring and d.retired_at is null) end)::int as live
      from rollouts g
      where g.state = 'scheduled' and g.started_at is null and g.finished_at is null`),
  );
  return rows.map((r) => ({ id: Number(r.id), releaseId: r.release_id, ring: r.ring, clientId: r.client_id, state: r.state, liveDevices: Number(r.live) }));
}

/**
 * What a resting gate's work depends on besides the gates themselves: the live, unflagged devices (a re-import adds
 * one to a ring that already finished), the holds (a release), the decisions (approvals) and the ring skips. The
 * sweep looks for resting gates with eligible work only when this changes.
 */
export async function reopenStamp(db: AppDatabase): Promise<string> {
  const [row] = rowsOf<{ stamp: string }>(
    await db.execute(sql`select concat_ws('|',
        (select count(*) || ':' || coalesce(md5(string_agg(id || ring || coalesce(client_id, '') || coalesce(os, ''), ',' order by id)), '')
          from devices where retired_at is null and flagged_at is null),
        (select count(*) filter (where released_at is null) || ':' || coalesce(max(released_at)::text, '') from holds),
        (select count(*) from decisions),
        (select coalesce(sum(jsonb_array_length(coalesce(state_detail -> 'skips', '[]'::jsonb))), 0) from rollouts)) as stamp`),
  );
  return row?.stamp ?? '';
}

/** Releases with a gate at rest that changed in the last 60 days: where a reopen could apply. */
export async function restingReleaseIds(db: AppDatabase, now: Date): Promise<string[]> {
  const rows = rowsOf<{ release_id: string }>(
    await db.execute(sql`select distinct release_id from rollouts
      where state in ('soaking', 'ready', 'promoted', 'confirmed', 'waiting', 'finished', 'awaiting_confirmation', 'problem')
        and updated_at > ${now.toISOString()}::timestamptz - interval '60 days' order by 1`),
  );
  return rows.map((r) => r.release_id);
}

/** One release's gates with their live, unflagged devices (any gate state): what a reopen decision plans over. */
export async function releaseGateDevices(db: AppDatabase, releaseId: string): Promise<Array<{ gateKey: string; id: number; name: string; clientId: string | null; os: string | null }>> {
  const rows = rowsOf<{ ring: Ring; client_id: string | null; id: number; name: string; os: string | null }>(
    await db.execute(sql`select g.ring, g.client_id, d.id, d.name, d.os from rollouts g
        join devices d on d.client_id is not distinct from g.client_id and d.ring = g.ring and d.retired_at is null and d.flagged_at is null
        left join clients c on c.id = g.client_id
      where g.release_id = ${releaseId} and (g.client_id is null or c.retired_at is null)
      order by d.id`),
  );
  return rows.map((r) => ({ gateKey: gateKey(r.ring, r.client_id), id: Number(r.id), name: r.name, clientId: r.client_id, os: r.os }));
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

/** Whether the device left the inventory: read as stored, just before a run starts something on it. */
export async function deviceRetired(db: AppDatabase, deviceId: number): Promise<boolean> {
  const rows = rowsOf<{ retired: boolean }>(await db.execute(sql`select retired_at is not null as retired from devices where id = ${deviceId}`));
  return rows[0]?.retired ?? true;
}

/**
 * Ids of runs not yet ended, oldest first, a page at a time: those after `after` up to `upTo` (a sweep leaves out
 * the runs it has just enqueued itself), at most `limit`.
 */
export async function unfinishedRunIds(db: AppDatabase, page: { after: number; upTo?: number; limit: number }): Promise<number[]> {
  const upTo = page.upTo !== undefined ? sql` and id <= ${page.upTo}` : sql``;
  const rows = rowsOf<{ id: number }>(
    await db.execute(sql`select id from runs where state in ('scheduled', 'running') and id > ${page.after}${upTo} order by id limit ${page.limit}`),
  );
  return rows.map((r) => Number(r.id));
}

/** The highest run id so far (0 with none): runs a sweep inserts after reading it have higher ids. */
export async function lastRunId(db: AppDatabase): Promise<number> {
  const [row] = rowsOf<{ id: number | null }>(await db.execute(sql`select max(id) as id from runs`));
  return Number(row?.id ?? 0);
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

/** A window by its owner (client id or `msp`) and start (ISO). */
export interface WindowRef {
  who: string;
  windowStart: string;
}

/** A window `windowTallies` reads by default, and whether it has ended by the `now` asked about. */
export interface RecentWindow extends WindowRef {
  ended: boolean;
}

/**
 * The windows `windowTallies` reads by default (running, or ended within the last day) that have runs of their
 * work: one pass over the runs' window and owner, without the tallies' counts and lists, so a tick can leave out
 * the windows everyone was told about before tallying the rest.
 */
export async function recentWindows(db: AppDatabase, now: Date): Promise<RecentWindow[]> {
  const at = now.toISOString();
  const rows = rowsOf<{ who: string; window_start: unknown; ended: boolean }>(
    // Ended as the tally counts it: by the latest end among the window's runs.
    await db.execute(sql`select coalesce(d.client_id, 'msp') as who, r.window_start, max(r.window_end) <= ${at}::timestamptz as ended
      from runs r join devices d on d.id = r.device_id
      where r.window_end > ${at}::timestamptz - interval '1 day' and r.window_start <= ${at}::timestamptz
        and (r.result is null or r.result not in ('nothing_applies', 'no_os'))
      group by 1, 2`),
  );
  return rows.map((r) => ({ who: r.who, windowStart: iso(r.window_start)!, ended: r.ended }));
}

/**
 * Runs grouped by owner (client id or `msp`) and window, for windows still running or ended within the last day:
 * counts by state and the first few failed, rolled and twice-rebooted devices. Devices the plan passed over are
 * left out; they were never part of the window's work.
 */
export async function windowTallies(db: AppDatabase, now: Date, only?: WindowRef | readonly WindowRef[]): Promise<WindowTally[]> {
  // Windows named (a summary re-rendered after a click, those a tick has yet to tell) are read whatever their age;
  // the sweep reads the recent ones.
  const which = !only
    ? sql`r.window_end > ${now.toISOString()}::timestamptz - interval '1 day' and r.window_start <= ${now.toISOString()}::timestamptz`
    : 'who' in only
      ? sql`coalesce(d.client_id, 'msp') = ${only.who} and r.window_start = ${only.windowStart}::timestamptz`
      : sql`r.window_start in (select distinct (x ->> 'windowStart')::timestamptz from jsonb_array_elements(${JSON.stringify(only)}::jsonb) x)
          and (coalesce(d.client_id, 'msp'), r.window_start) in
            (select x ->> 'who', (x ->> 'windowStart')::timestamptz from jsonb_array_elements(${JSON.stringify(only)}::jsonb) x)`;
  if (Array.isArray(only) && only.length === 0) return [];
  const rows = rowsOf<{
    who: string;
    window_start: unknown;
    window_end: unknown;
    counts: Record<string, number>;
    updated: Array<{ device: string; updates: string[] }> | null;
    failed: Array<{ device: string; error: string | null; updates: string[] }> | null;
    rolled: Array<{ device: string; rolledTo: string | null; offline: boolean; state: string; result: string | null }> | null;
    roll_results: Array<{ state: string; result: string | null; n: number }> | null;
    twice: string[] | null;
    held: boolean;
  }>(
    await db.execute(sql`with w as (
        select coalesce(d.client_id, 'msp') as who, r.window_start, r.window_end, r.state, r.result, r.error, r.rolled_to, r.reboots, r.updates, d.name, r.release_id
        from runs r join devices d on d.id = r.device_id
        where ${which}
          and (r.result is null or r.result not in ('nothing_applies', 'no_os'))),
      -- Counts grouped once over all windows: a subquery per window scanned every window's runs (1,000 owners
      -- over 100,000 runs took a minute).
      counts as (select who, window_start, jsonb_object_agg(state, n) as counts
        from (select who, window_start, state, count(*) as n from w group by 1, 2, 3) s group by 1, 2),
      rolls as (select who, window_start, jsonb_agg(jsonb_build_object('state', state, 'result', result, 'n', n)) as roll_results
        from (select who, window_start, state, result, count(*) as n from w where state in ('rolled', 'offline') group by 1, 2, 3, 4) x group by 1, 2),
      lists as (select who, window_start, max(window_end) as window_end,
        (array_agg(jsonb_build_object('device', name, 'updates', updates) order by name) filter (where state = 'succeeded'))[1:20] as updated,
        (array_agg(jsonb_build_object('device', name, 'error', error, 'updates', updates) order by name) filter (where state = 'failed'))[1:20] as failed,
        (array_agg(jsonb_build_object('device', name, 'rolledTo', rolled_to, 'offline', state = 'offline', 'state', state, 'result', result) order by name)
          filter (where state in ('rolled', 'offline')))[1:20] as rolled,
        (array_agg(name order by name) filter (where reboots >= 2))[1:20] as twice
        from w group by who, window_start),
      -- Held now (the client, or the whole release, for a release this window ran): what rolled waits for the hold.
      held as (select distinct o.who, o.window_start from (select distinct who, window_start, release_id from w) o
        where exists (select 1 from holds h where h.released_at is null and (h.release_id is null or h.release_id = o.release_id)
          and (h.scope = 'all' or (h.scope = 'client' and h.client_id = o.who))))
      select lists.who, lists.window_start, lists.window_end, counts.counts, lists.updated, lists.failed, lists.rolled, rolls.roll_results, lists.twice,
        held.who is not null as held
      from lists join counts on counts.who = lists.who and counts.window_start = lists.window_start
        left join rolls on rolls.who = lists.who and rolls.window_start = lists.window_start
        left join held on held.who = lists.who and held.window_start = lists.window_start
      order by lists.window_start, lists.who`),
  );
  return rows.map((r) => {
    const rollReasons: WindowTally['rollReasons'] = {};
    for (const x of r.roll_results ?? []) {
      const reason = rollReason(x.state, x.result);
      rollReasons[reason] = (rollReasons[reason] ?? 0) + Number(x.n);
    }
    return {
      who: r.who,
      windowStart: iso(r.window_start)!,
      windowEnd: iso(r.window_end)!,
      counts: Object.fromEntries(Object.entries(r.counts ?? {}).map(([k, v]) => [k, Number(v)])),
      updated: r.updated ?? [],
      failed: r.failed ?? [],
      rolled: (r.rolled ?? []).map((x) => ({ device: x.device, offline: x.offline, reason: rollReason(x.state, x.result), rolledTo: x.rolledTo === null ? null : iso(x.rolledTo) })),
      rollReasons,
      rebootedTwice: r.twice ?? [],
      ...(r.held ? { held: true } : {}),
    };
  });
}

/** When each window message was last queued (post or edit), by `channel subject`. */
export async function lastWindowMessages(db: AppDatabase, now: Date): Promise<Map<string, { at: number; key: string }>> {
  const rows = rowsOf<{ channel: string; subject: string; at: unknown; key: string }>(
    await db.execute(sql`select distinct on (channel, subject) channel, subject, created_at as at, idempotency_key as key from chat_outbox
      where subject like 'window:%' and created_at > ${now.toISOString()}::timestamptz - interval '2 days'
      order by channel, subject, created_at desc, id desc`),
  );
  return new Map(rows.map((r) => [`${r.channel} ${r.subject}`, { at: Date.parse(iso(r.at)!), key: r.key }]));
}

export interface WindowOwner {
  name: string;
  timezone: string;
  /** Where the owner's window messages go besides the engineers' channel (a client's own Slack channel). */
  channel: string | null;
}

/** The owners a window report can name, by id (`msp` for the MSP's own machines): live clients and the MSP. */
export async function windowOwners(db: AppDatabase): Promise<Map<string, WindowOwner>> {
  const rows = rowsOf<{ id: string; name: string; timezone: string; channel: string | null }>(
    await db.execute(sql`select 'msp' as id, name, timezone, channel from msp where id = 1
      union all select id, name, timezone, settings ->> 'slackChannel' from clients where retired_at is null`),
  );
  return new Map(rows.map((o) => [o.id, { name: o.name, timezone: o.timezone, channel: o.channel }]));
}

/** Run concurrency limits by client id (null: the MSP's own machines), and the MSP's overall one under `overallKey`. */
export async function runConcurrencyLimits(db: AppDatabase, overallKey: string): Promise<Map<string | null, number>> {
  const rows = rowsOf<{ id: string | null; limit: number | null }>(
    await db.execute(sql`select id, (settings ->> 'runConcurrency')::int as limit from clients where settings ? 'runConcurrency'
      union all select ${overallKey}::text, (settings ->> 'runConcurrency')::int from msp where settings ? 'runConcurrency'`),
  );
  return new Map(rows.filter((r) => r.limit !== null).map((r) => [r.id, Number(r.limit)]));
}

export interface TickableGate {
  releaseId: string;
  ring: Ring;
  state: string;
  /** The updates ring msp has offered for promotion already. */
  offered: string[] | null;
}

/** Gates with a deadline to watch (soak, auto-confirm) and recent ring msp gates that may have updates to offer. */
export async function tickableGates(db: AppDatabase, now: Date): Promise<TickableGate[]> {
  const rows = rowsOf<{ release_id: string; ring: Ring; state: string; offered: string[] | null }>(
    await db.execute(sql`select release_id, ring, state, state_detail -> 'offered' as offered from rollouts
      where state in ('soaking', 'awaiting_confirmation')
        or (ring = 'msp' and state in ('running', 'ready', 'promoted', 'scheduled') and updated_at > ${now.toISOString()}::timestamptz - interval '60 days')`),
  );
  return rows.map((r) => ({ releaseId: r.release_id, ring: r.ring, state: r.state, offered: r.offered }));
}

/** What finishing rings decide on, for several owners at once: by client id (null: the MSP's own gate). */
export async function gateSettingsFor(db: AppDatabase, clientIds: ReadonlyArray<string | null>): Promise<Map<string | null, { soakHours?: number; autoConfirmHours?: number }>> {
  const msp = rowsOf<{ settings: { soakHours?: number } }>(await db.execute(sql`select settings from msp where id = 1`))[0];
  const ids = [...new Set(clientIds.filter((id): id is string => id !== null))];
  const clients = ids.length === 0 ? [] : rowsOf<{ id: string; settings: { autoConfirmHours?: number } }>(
    await db.execute(sql`select id, settings from clients where id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`),
  );
  const byClient = new Map(clients.map((c) => [c.id, c.settings]));
  return new Map(clientIds.map((id) => [id, id === null ? { soakHours: msp?.settings.soakHours } : { soakHours: msp?.settings.soakHours, autoConfirmHours: byClient.get(id)?.autoConfirmHours }]));
}
