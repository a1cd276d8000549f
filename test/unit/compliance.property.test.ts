/**
 * The compliance model under random facts: percentages stay within 0–100, each device is counted once whatever
 * the loader hands in, and a report of a past period does not change when time moves on and the tables grow
 * (runs finish, holds are placed and released, approvals are withdrawn after the period ends).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { complianceReport, DEFAULT_POLICY, type ComplianceInput, type HoldFact, type RunFact } from '../../src/domain/compliance.ts';

const W11 = 'Windows 11 Version 23H2 for x64-based Systems';
const S22 = 'Windows Server 2022';
const PRODUCTS = [
  { id: 'P11', name: W11, family: 'Windows' },
  { id: 'S22', name: S22, family: 'Windows' },
];
const KEYS = ['KB1', 'KB2', 'KB3', 'KB4'];
const START = Date.parse('2026-09-01T00:00:00Z');
const PERIOD_END = Date.parse('2026-12-01T00:00:00Z');
const AS_OF = new Date(PERIOD_END - 1).toISOString();
const DAY = 86_400_000;

/** An instant from three months before the period's end to two months after it. */
const instant = fc.integer({ min: 0, max: 150 * DAY }).map((offset) => new Date(START + offset).toISOString());

const devices = fc.array(
  fc.record({ id: fc.integer({ min: 1, max: 6 }), os: fc.constantFrom(W11, S22, null), ring: fc.constantFrom('pilot', 'broad') }),
  { maxLength: 10 },
);

const run: fc.Arbitrary<RunFact> = fc.record({
  deviceId: fc.integer({ min: 1, max: 6 }),
  releaseId: fc.constantFrom('R1', 'R2'),
  updates: fc.subarray(KEYS),
  state: fc.constantFrom('succeeded', 'failed', 'offline', 'rolled', 'skipped', 'running'),
  result: fc.constantFrom('verified', 'failed', 'reboot_limit', null),
  error: fc.constantFrom(null, '0x80070005'),
  startedAt: fc.option(instant),
  finishedAt: fc.option(instant),
});

const hold: fc.Arbitrary<HoldFact> = fc.record({
  scope: fc.constantFrom('update', 'client', 'ring', 'all'),
  releaseId: fc.constantFrom('R1', 'R2', null),
  updateKey: fc.constantFrom(...KEYS),
  clientId: fc.constantFrom('acme', 'other', null),
  ring: fc.constantFrom('pilot', 'broad'),
  reason: fc.constant('a reason'),
  placedBy: fc.constant('U_ENG'),
  placedAt: instant,
  releasedAt: fc.option(instant),
});

const world = fc.record({
  devices,
  updates: fc.array(
    fc.record({
      releaseId: fc.constantFrom('R1', 'R2'),
      key: fc.constantFrom(...KEYS),
      severity: fc.constantFrom('Critical', 'Important', 'Moderate', 'Low', 'Unknown' as const),
      releasedAt: instant,
      productIds: fc.subarray(['P11', 'S22']),
      kev: fc.boolean(),
      supersedes: fc.subarray(KEYS),
    }),
    { maxLength: 6 },
  ),
  approvals: fc.array(
    fc.record({ releaseId: fc.constantFrom('R1', 'R2'), updateKey: fc.constantFrom(...KEYS, null), kind: fc.constantFrom('approve' as const, 'withdraw' as const), actor: fc.constant('U_ENG'), at: instant }),
    { maxLength: 6 },
  ),
  runs: fc.array(run, { maxLength: 25 }),
  holds: fc.array(hold, { maxLength: 4 }),
  deferrals: fc.array(fc.record({ deviceId: fc.integer({ min: 1, max: 6 }), releaseId: fc.constantFrom('R1', 'R2', null), by: fc.constant('U_USER'), at: instant, until: fc.option(instant) }), { maxLength: 3 }),
});

type World = typeof world extends fc.Arbitrary<infer T> ? T : never;

function inputOf(w: World, asOf = AS_OF): ComplianceInput {
  return {
    client: { id: 'acme', name: 'Acme' },
    period: { id: '2026-Nov', from: '2026-11-01T00:00:00.000Z', to: new Date(PERIOD_END).toISOString() },
    asOf,
    policy: DEFAULT_POLICY,
    devices: w.devices.map((d) => ({ ...d, name: `PC-${d.id}`, class: 'desktop' })),
    updates: w.updates.map((u) => ({ ...u, kb: u.key, title: null, cves: [], products: PRODUCTS.filter((p) => u.productIds.includes(p.id)) })),
    approvals: w.approvals,
    runs: w.runs,
    holds: w.holds,
    deferrals: w.deferrals,
  };
}

/** What a reader of the tables would see as of `asOf`: every fact stamped later has not happened yet. */
function asOfThen(w: World): World {
  const before = (iso: string | null) => iso !== null && Date.parse(iso) <= Date.parse(AS_OF);
  return {
    ...w,
    approvals: w.approvals.filter((a) => before(a.at)),
    runs: w.runs
      .filter((r) => before(r.startedAt) || before(r.finishedAt))
      .map((r) => (before(r.finishedAt) ? r : { ...r, state: 'running', finishedAt: null })),
    holds: w.holds.filter((h) => before(h.placedAt)).map((h) => (before(h.releasedAt) ? h : { ...h, releasedAt: null })),
    deferrals: w.deferrals.filter((d) => before(d.at)),
  };
}

describe('compliance properties', () => {
  it('percentages are within 0–100 and every device is counted once', () => {
    fc.assert(
      fc.property(world, (w) => {
        const report = complianceReport(inputOf(w));
        for (const pct of [report.summary.deviceCompliancePct, report.summary.patchInstallationPct]) {
          if (pct !== null) expect(pct >= 0 && pct <= 100).toBe(true);
        }
        const ids = new Set(w.devices.map((d) => d.id));
        expect(report.devices).toHaveLength(ids.size);
        expect(new Set(report.devices.map((d) => d.device)).size).toBe(ids.size);
        expect(report.summary.devicesInScope + report.summary.devicesExcluded).toBe(ids.size);
        expect(report.summary.compliantDevices).toBeLessThanOrEqual(report.summary.devicesInScope);
        const counted = Object.values(report.summary.statusCounts).reduce((a, b) => a + b, 0);
        expect(counted).toBe(report.updates.length);
        expect(new Set(report.updates.map((u) => `${u.device}/${u.releaseId}/${u.updateKey}`)).size).toBe(report.updates.length);
      }),
      { numRuns: 300 },
    );
  });

  it('a past period reads the same whatever happened after it', () => {
    fc.assert(
      fc.property(world, (w) => {
        // Today's tables hold everything (later runs, holds, withdrawals); the tables as they were then hold less.
        expect(complianceReport(inputOf(w))).toEqual(complianceReport(inputOf(asOfThen(w))));
      }),
      { numRuns: 300 },
    );
  });
});
