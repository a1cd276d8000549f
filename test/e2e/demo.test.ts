/**
 * `patchbay demo` end to end, in-process: the demo's own sandbox (embedded PGlite, a private redis-server, the
 * Slack and Teams emulators, the simulated fleet) plays a whole month, and the story is checked against what the
 * database, the emulators and the fleet's ledger say happened, not against what the script believes it did.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { DateTime } from 'luxon';
import type { RunningApp } from '../../src/app.ts';
import { DEMO_TICK_MS, readCvrfRelease, startDemoApp } from '../../src/commands/demo.ts';
import { rowsOf } from '../../src/db/client.ts';
import { loadRelease } from '../../src/db/release-repo.ts';
import { loadReleaseFacts } from '../../src/db/rollout-repo.ts';
import { passedUpdates } from '../../src/domain/eligibility.ts';
import { matchOsToProducts } from '../../src/domain/product-match.ts';
import { DEFAULT_RUN_POLICY } from '../../src/domain/run.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { windowContaining } from '../../src/domain/windows.ts';
import { createLogger } from '../../src/log.ts';
import { DEFAULT_PROBLEM_TEXT, digestOf, runDemoScript, type DemoProgress, type DemoSummary } from '../../src/sandbox/demo-script.ts';
import { startSampleMsrc } from '../../src/sandbox/sample-msrc.ts';
import { sandboxClockFile } from '../../src/sandbox/clock.ts';
import type { SandboxState } from '../../src/sandbox/api-types.ts';
import { PAGE_TOKEN_HEADER } from '../../src/sandbox/page-guard.ts';

// A fixed month: the fleet is seeded and its offline draws follow the clock's dates, so the story is the same each run.
const RELEASE = '2026-Dec';

let app: RunningApp;
let dataDir: string;
let summary: DemoSummary;
const progress: DemoProgress[] = [];

const q = async <T>(statement: ReturnType<typeof sql>): Promise<T[]> => rowsOf<T>(await app.database.db.execute(statement));

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-demo-test-'));
  app = await startDemoApp({ dataDir, port: 0, release: { id: RELEASE }, log: createLogger('silent') });
  summary = await runDemoScript(
    { baseUrl: `http://127.0.0.1:${app.port}`, db: app.database.db, sandbox: app.sandbox!, releaseId: RELEASE, tickMs: DEMO_TICK_MS },
    // A loaded two-core machine may take several times longer than a quiet one; only a stuck step should fail.
    { timeoutScale: 3, onProgress: (p) => progress.push(p) },
  );
}, 1_200_000);

afterAll(async () => {
  await app?.stop();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
}, 120_000);

async function pageState(): Promise<SandboxState> {
  return (await (await fetch(`http://127.0.0.1:${app.port}/sandbox/api/state`, { headers: { [PAGE_TOKEN_HEADER]: app.sandbox!.pageToken } })).json()) as SandboxState;
}

describe('patchbay demo: a month in minutes', () => {
  it('reports every step, in order', () => {
    const done = progress.filter((p) => p.state === 'done').map((p) => p.step);
    expect(done).toEqual(['digest', 'approve', 'msp', 'promote', 'pilot', 'broad', 'summary']);
    expect(summary.steps.map((s) => s.step)).toEqual(done);
  });

  it("posts the digest in the engineers' channel, and an engineer's click approves the release", async () => {
    const state = await pageState();
    const digest = digestOf(state, state.msp.channel, RELEASE);
    expect(digest, 'the digest').toBeDefined();
    expect(digest!.edits).toBeGreaterThan(0);
    const approvals = await q<{ actor: string; source: string }>(sql`select actor, source from decisions where kind = 'approve' and release_id = ${RELEASE}`);
    expect(approvals).toEqual([{ actor: 'U0ENG1', source: 'slack' }]);
  });

  it('finishes ring msp, soaks it and promotes it to pilot, each update once it installed on ring msp and soaked', async () => {
    const [msp] = await q<{ state: string; detail: { promotedBy: string; promotions: Array<{ at: string; by: string; updates: string[] }> } }>(
      sql`select state, state_detail as detail from rollouts where release_id = ${RELEASE} and ring = 'msp'`,
    );
    expect(msp!.state).toBe('promoted');
    expect(msp!.detail.promotedBy).toBe('U0ENG1');
    const [settings] = await q<{ soak: number | null }>(sql`select (settings ->> 'soakHours')::float as soak from msp where id = 1`);
    const soakMs = (settings?.soak ?? 24) * 3_600_000;
    expect(msp!.detail.promotions.length).toBeGreaterThan(0);
    for (const promotion of msp!.detail.promotions) {
      for (const update of promotion.updates) {
        // Tested means installed: each promoted update installed on an MSP machine and soaked before its promotion.
        const [installed] = await q<{ at: unknown }>(sql`select max(r.finished_at) as at from runs r join devices d on d.id = r.device_id
          where d.client_id is null and r.release_id = ${RELEASE} and r.state = 'succeeded' and r.updates ? ${update}`);
        expect(installed?.at, `${update} installed on ring msp`).not.toBeNull();
        expect(Date.parse(promotion.at)).toBeGreaterThanOrEqual(new Date(String(installed!.at)).getTime() + soakMs);
      }
    }
    const unsettled = await q<{ name: string }>(sql`select d.name from devices d where d.client_id is null and d.retired_at is null and d.flagged_at is null
      and not exists (select 1 from runs r where r.device_id = d.id and r.release_id = ${RELEASE} and r.state in ('succeeded', 'failed', 'skipped'))`);
    expect(unsettled).toEqual([]);
  });

  it("holds the one client whose champion reported a problem, and puts the champion's words in the engineers' thread", async () => {
    const holds = await q<{ client_id: string; reason: string }>(sql`select client_id, reason from holds where released_at is null`);
    expect(holds).toHaveLength(1);
    const held = holds[0]!.client_id;
    expect(holds[0]!.reason).toContain(DEFAULT_PROBLEM_TEXT);
    const pilots = await q<{ client_id: string; state: string }>(sql`select client_id, state from rollouts where release_id = ${RELEASE} and ring = 'pilot' order by client_id`);
    expect(pilots.filter((g) => g.state === 'problem').map((g) => g.client_id)).toEqual([held]);
    const state = await pageState();
    const thread = digestOf(state, state.msp.channel, RELEASE)!.replies;
    expect(thread.some((r) => r.text.includes(DEFAULT_PROBLEM_TEXT) || JSON.stringify(r.blocks).includes(DEFAULT_PROBLEM_TEXT))).toBe(true);
    // Nothing of the held client's went past its pilot.
    const broad = await q<{ n: number }>(sql`select count(*)::int as n from runs r join devices d on d.id = r.device_id where d.client_id = ${held} and d.ring = 'broad'`);
    expect(Number(broad[0]!.n)).toBe(0);
    expect(summary.held).toEqual([expect.objectContaining({ client: held, reason: holds[0]!.reason })]);
  });

  it("finishes every other client's broad ring after its champion confirmed the pilot", async () => {
    const gates = await q<{ ring: string; client_id: string; state: string; confirmed_by: string | null }>(
      sql`select ring, client_id, state, confirmed_by from rollouts where release_id = ${RELEASE} and client_id is not null order by client_id, ring`,
    );
    const confirmed = gates.filter((g) => g.ring === 'pilot' && g.state === 'confirmed');
    expect(confirmed.length).toBeGreaterThanOrEqual(2);
    for (const pilot of confirmed) {
      expect(pilot.confirmed_by, pilot.client_id).toMatch(/^(champion|engineer):/);
      expect(gates.find((g) => g.ring === 'broad' && g.client_id === pilot.client_id)?.state, pilot.client_id).toBe('finished');
    }
  });

  it('has exactly one user defer, and patches that machine in a later window', async () => {
    const answers = await q<{ answer: string; n: number }>(sql`select answer, count(*)::int as n from user_dms where kind = 'tonight' and answer is not null group by answer`);
    expect(answers.find((a) => a.answer === 'defer')?.n).toBe(1);
    expect(summary.dms.deferred).toBe(1);
    const deferred = await q<{ device_id: number; window_start: unknown }>(sql`select device_id, window_start from runs where result = 'deferred'`);
    expect(deferred.length).toBeGreaterThan(0);
    for (const run of deferred) {
      const later = await q<{ n: number }>(sql`select count(*)::int as n from runs where device_id = ${run.device_id} and state = 'succeeded'
        and window_start > ${new Date(String(run.window_start)).toISOString()}::timestamptz`);
      expect(Number(later[0]!.n), `device ${run.device_id} after its deferral`).toBe(1);
    }
  });

  it('never starts an install or a reboot outside its window', async () => {
    const devices = new Map(
      (
        await q<{ name: string; spec: string; tz: string }>(sql`select d.name, coalesce(c.windows, m.windows) ->> d.class as spec, coalesce(c.timezone, m.timezone) as tz
          from devices d left join clients c on c.id = d.client_id join msp m on m.id = 1`)
      ).map((d) => [d.name, d]),
    );
    const runWindows = new Set(
      (await q<{ name: string; ms: string }>(sql`select d.name, (extract(epoch from r.window_start) * 1000)::bigint::text as ms from runs r join devices d on d.id = r.device_id`)).map(
        (r) => `${r.name} ${r.ms}`,
      ),
    );
    const ledger = app.sandbox!.deployer.ledger;
    expect(ledger.length).toBeGreaterThan(0);
    for (const entry of ledger) {
      const device = devices.get(entry.device)!;
      const rule = parseWindowSpec(device.spec);
      if (!rule.ok) throw new Error(rule.error);
      const at = DateTime.fromISO(entry.at, { zone: 'utc' });
      const window = windowContaining(rule.value, device.tz, at);
      expect(window, `${entry.kind} on ${entry.device} at ${entry.at}`).toBeDefined();
      // And it belongs to a run planned for that very window.
      const start = window!.start.toUTC().toISO()!;
      expect(runWindows.has(`${entry.device} ${Date.parse(start)}`), `${entry.kind} on ${entry.device} at ${entry.at}: no run for the window ${start}`).toBe(true);
    }
    // The budget is checked where it is decided: each run's first install started with a whole budget left.
    const starts = await q<{ name: string; started_at: unknown; window_end: unknown }>(sql`select d.name, r.started_at, r.window_end from runs r join devices d on d.id = r.device_id
      where r.started_at is not null and coalesce((r.detail ->> 'installs')::int, 0) > 0 and r.release_id = ${RELEASE}`);
    for (const run of starts) {
      const left = (new Date(String(run.window_end)).getTime() - new Date(String(run.started_at)).getTime()) / 60_000;
      expect(left, `${run.name} started with ${left} minutes of its window left`).toBeGreaterThanOrEqual(DEFAULT_RUN_POLICY.installBudgetMinutes);
    }
  });

  it('prints a summary whose numbers are those in the database and the emulators', async () => {
    const release = await loadRelease(app.database.db, RELEASE);
    const facts = await loadReleaseFacts(app.database.db, [RELEASE]);
    const runs = await q<{ ring: string; client: string; device: string; state: string; result: string | null; reboots: number }>(
      sql`select g.ring, coalesce(g.client_id, 'msp') as client, d.name as device, r.state, r.result, r.reboots
        from runs r join rollouts g on g.id = r.rollout_id join devices d on d.id = r.device_id where r.release_id = ${RELEASE}`,
    );
    expect(summary.runs).toBe(runs.length);
    for (const row of summary.rings) {
      const mine = runs.filter((r) => r.ring === row.ring && r.client === row.client);
      expect(row.succeeded, `${row.ring}/${row.client} succeeded`).toBe(new Set(mine.filter((r) => r.state === 'succeeded').map((r) => r.device)).size);
      expect(row.failed.length, `${row.ring}/${row.client} failed`).toBe(mine.filter((r) => r.state === 'failed').length);
      expect(row.offlineOrRolled, `${row.ring}/${row.client} offline or rolled`).toBe(mine.filter((r) => r.state === 'offline' || r.state === 'rolled').length);
      expect(row.rebootedTwice.length, `${row.ring}/${row.client} rebooted twice`).toBe(new Set(mine.filter((r) => Number(r.reboots) >= 2).map((r) => r.device)).size);
      const [devices] = await q<{ n: number }>(sql`select count(*)::int as n from devices where ring = ${row.ring} and coalesce(client_id, 'msp') = ${row.client} and retired_at is null`);
      expect(row.devices, `${row.ring}/${row.client} devices`).toBe(Number(devices!.n));
      // Every device of a finished ring is accounted for: a device with nothing to install may never have had a
      // window while the ring ran (a server on a weekday), and holds no ring up.
      const quiet = await q<{ name: string; os: string | null; flagged: boolean }>(sql`select d.name, d.os, d.flagged_at is not null as flagged from devices d
        where d.ring = ${row.ring} and coalesce(d.client_id, 'msp') = ${row.client} and d.retired_at is null
          and not exists (select 1 from runs r where r.device_id = d.id and r.release_id = ${RELEASE} and jsonb_array_length(r.updates) > 0)`);
      if (row.gate === 'finished' || row.gate === 'promoted') {
        expect(row.succeeded + row.failed.length + Math.max(row.nothingToInstall, quiet.length)).toBeGreaterThanOrEqual(row.devices);
        // ... nothing that had passed the earlier rings for it (an update no pilot of the client ran waits for a skip).
        const passed = passedUpdates(facts.get(RELEASE)!, row.ring as 'msp' | 'pilot' | 'broad', row.client === 'msp' ? null : row.client, release!.updates.map((u) => u.id));
        for (const d of quiet.filter((x) => !x.flagged && x.os !== null)) {
          const runs = new Set(matchOsToProducts(d.os!, release!.products).productIds);
          const due = release!.updates.filter((u) => passed.has(u.id) && u.productIds.some((id) => runs.has(id))).map((u) => u.id);
          expect(due, `${d.name} had nothing to install`).toEqual([]);
        }
      }
    }
    const [counts] = await q<{ decisions: number; audit: number; dms: number; answered: number }>(
      sql`select (select count(*)::int from decisions) as decisions, (select count(*)::int from audit_log) as audit,
        (select count(*)::int from user_dms where kind = 'tonight') as dms, (select count(*)::int from user_dms where kind = 'tonight' and answer is not null) as answered`,
    );
    expect(summary.decisions).toBe(Number(counts!.decisions));
    expect(summary.auditRows).toBe(Number(counts!.audit));
    expect(summary.dms.sent).toBe(Number(counts!.dms));
    expect(summary.dms.answered).toBe(Number(counts!.answered));
    expect(summary.dms.sent).toBeGreaterThan(0);
    const slack = app.sandbox!.slack;
    expect(summary.slack.posted).toBe(slack.messages().filter((m) => m.user === slack.bot.userId).length);
    expect(summary.teams.posted).toBe(app.sandbox!.connector.activities().filter((a) => !a.id.startsWith('in:')).length);
    expect(summary.ledger.installs).toBe(app.sandbox!.deployer.ledger.filter((e) => e.kind === 'install').length);
    expect(Date.parse(summary.clock.to)).toBeGreaterThan(Date.parse(summary.clock.from));
  });
});

describe("the demo's MSRC for a stored document", () => {
  it('lists the month only from its Patch Tuesday on, and serves the document given', async () => {
    let now = new Date('2024-02-13T17:55:00Z');
    const document = { DocumentTracking: { Identification: { ID: { Value: '2024-Feb' } } }, Vulnerability: [] };
    const msrc = await startSampleMsrc({ clock: () => now, release: { id: '2024-Feb', document } });
    try {
      const index = async () => ((await (await fetch(`${msrc.msrcUrl}updates`)).json()) as { value: Array<{ ID: string }> }).value.map((v) => v.ID);
      expect(await index()).toEqual([]);
      expect((await fetch(`${msrc.msrcUrl}cvrf/2024-Feb`)).status).toBe(404);
      now = new Date('2024-02-13T18:01:00Z');
      expect(await index()).toEqual(['2024-Feb']);
      expect(await (await fetch(`${msrc.msrcUrl}cvrf/2024-Feb`)).json()).toEqual(document);
      expect((await fetch(`${msrc.msrcUrl}cvrf/2024-Jan`)).status).toBe(404);
    } finally {
      await msrc.close();
    }
  });

  it("keeps its clock where a sandbox on the same data dir finds it, so a kept month does not reopen at today's date", async () => {
    app.sandbox!.clock.save();
    const saved = JSON.parse(await fs.readFile(sandboxClockFile(dataDir), 'utf8')) as { clockMs: number };
    expect(saved.clockMs).toBeGreaterThanOrEqual(Date.parse(summary.clock.to) - 60_000);
  });

  it('reads the month a CVRF file is for', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-demo-cvrf-'));
    try {
      const file = path.join(dir, 'month.json');
      await fs.writeFile(file, JSON.stringify({ DocumentTracking: { Identification: { ID: { Value: '2024-feb' } } } }));
      expect((await readCvrfRelease(file)).id).toBe('2024-Feb');
      await fs.writeFile(file, JSON.stringify({ nothing: true }));
      await expect(readCvrfRelease(file)).rejects.toThrow(/not a CVRF v3 month/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
