/**
 * Patch compliance for one client over one period (issue 17): per device × approved update, per device, and the
 * client's summary. Pure: the repository loads the facts, this judges them as of `asOf` (the period's end, or now
 * for a period still running), so a report for a past period reads the same tomorrow.
 *
 * Why facts after `asOf` are dropped here as well as in the query: the property "history is reproducible" must hold
 * for any facts handed in, not only for a careful caller.
 *
 * "Installed" is the device manager's verify as the run stored it: a run ends `succeeded` only after verify found
 * every update it carried installed and no reboot pending (src/domain/run.ts), so its `updates` are the verified
 * set. A run that merely ran is never an install.
 */
import { matchOsToProducts } from './product-match.ts';
import type { Product } from './release.ts';

export const SEVERITIES = ['Critical', 'Important', 'Moderate', 'Low', 'Unknown'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const AGE_BUCKETS = ['0-14', '15-30', '31-60', '61-90', '>90'] as const;
export type AgeBucket = (typeof AGE_BUCKETS)[number];
export type UpdateStatus = 'installed' | 'missing' | 'failed' | 'held' | 'deferred' | 'superseded' | 'not applicable';

export interface CompliancePolicy {
  slaCriticalDays: number;
  slaImportantDays: number;
  /** Days after its Patch Tuesday before a missing update makes a device non-compliant. */
  graceDays: number;
  /** A device no run has found online for longer than this is stale. */
  staleDays: number;
}

/** The clocks HHS proposed (not final): the defaults a client's own policy replaces. */
export const DEFAULT_POLICY: CompliancePolicy = { slaCriticalDays: 15, slaImportantDays: 30, graceDays: 14, staleDays: 30 };
export const POLICY_NOTE = "SLA days are this client's patch policy (defaults follow HHS's proposed 15/30-day clocks, which are not law).";

export interface ReportPeriod {
  /** `2026-Dec`, or `from..to` for a custom range. */
  id: string;
  from: string;
  /** Exclusive. */
  to: string;
}

export interface ComplianceDevice {
  id: number;
  name: string;
  ring: string;
  class: string;
  os: string | null;
}

export interface ComplianceUpdate {
  releaseId: string;
  key: string;
  kb: string | null;
  title: string | null;
  /** Microsoft's release date (the release's initial date, its Patch Tuesday), ISO. */
  releasedAt: string;
  products: readonly Product[];
  severity: Severity;
  cves: readonly string[];
  kev: boolean;
  /** KBs this update replaces. */
  supersedes: readonly string[];
}

export interface ApprovalFact {
  releaseId: string;
  /** Null: the whole release. */
  updateKey: string | null;
  kind: 'approve' | 'withdraw';
  actor: string;
  at: string;
}

export interface RunFact {
  deviceId: number;
  releaseId: string | null;
  updates: readonly string[];
  state: string;
  result: string | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface HoldFact {
  scope: 'update' | 'client' | 'ring' | 'all';
  releaseId: string | null;
  updateKey: string | null;
  clientId: string | null;
  ring: string | null;
  reason: string;
  placedBy: string;
  placedAt: string;
  releasedAt: string | null;
}

export interface DeferralFact {
  deviceId: number;
  releaseId: string | null;
  by: string;
  at: string;
  /** The window the device was moved to. */
  until: string | null;
}

export interface ComplianceInput {
  client: { id: string; name: string };
  period: ReportPeriod;
  asOf: string;
  policy: CompliancePolicy;
  devices: readonly ComplianceDevice[];
  updates: readonly ComplianceUpdate[];
  approvals: readonly ApprovalFact[];
  runs: readonly RunFact[];
  holds: readonly HoldFact[];
  deferrals: readonly DeferralFact[];
}

export interface DeviceUpdateRow {
  device: string;
  releaseId: string;
  updateKey: string;
  kb: string | null;
  title: string | null;
  severity: Severity;
  cves: readonly string[];
  kev: boolean;
  releasedAt: string;
  approvedAt: string;
  approvedBy: string;
  status: UpdateStatus;
  installedAt: string | null;
  attempts: number;
  lastError: string | null;
  /** When the run that left `lastError` ended. */
  lastErrorAt: string | null;
  /** Days since its Patch Tuesday, to the install or to `asOf`. */
  ageDays: number;
}

export interface DeviceSummary {
  device: string;
  ring: string;
  class: string;
  os: string | null;
  excluded: string | null;
  compliant: boolean;
  missingBySeverity: Record<Severity, number>;
  kevMissing: number;
  failed: number;
  oldestMissingDays: number | null;
  lastSeen: string | null;
  lastInstall: string | null;
  rebootPending: boolean;
  stale: boolean;
}

export interface SlaBreach {
  device: string;
  updateKey: string;
  kb: string | null;
  severity: Severity;
  ageDays: number;
  limitDays: number;
}

export interface ExceptionInForce {
  kind: 'held' | 'deferred' | 'excluded';
  subject: string;
  reason: string;
  by: string | null;
  since: string | null;
  until: string | null;
}

export interface ComplianceSummary {
  devicesInScope: number;
  devicesExcluded: number;
  compliantDevices: number;
  /** Null when no device is in scope (nothing to be compliant about is not 100%). */
  deviceCompliancePct: number | null;
  statusCounts: Record<UpdateStatus, number>;
  /** installed ÷ (installed + missing + failed). */
  patchInstallationPct: number | null;
  missingBySeverity: Record<Severity, number>;
  kevMissing: number;
  missingByAge: Record<AgeBucket, number>;
  slaBreaches: number;
  rebootPending: number;
  staleDevices: number;
}

export interface ComplianceReport {
  client: { id: string; name: string };
  period: ReportPeriod;
  asOf: string;
  policy: CompliancePolicy & { note: string };
  summary: ComplianceSummary;
  devices: DeviceSummary[];
  updates: DeviceUpdateRow[];
  slaBreaches: SlaBreach[];
  failedInstalls: Array<{ device: string; updateKey: string; kb: string | null; error: string | null; at: string | null }>;
  staleDevices: Array<{ device: string; lastSeen: string | null }>;
  exceptions: ExceptionInForce[];
}

const DAY_MS = 86_400_000;
/** Not installed, and not excused by supersedence or inapplicability: the device is still exposed. */
export const OUTSTANDING_STATUSES: ReadonlySet<UpdateStatus> = new Set(['missing', 'failed', 'held', 'deferred']);

const ms = (iso: string | null): number => (iso === null ? Number.NaN : Date.parse(iso));
const onOrBefore = (iso: string | null, limit: number): boolean => iso !== null && ms(iso) <= limit;
const stillOpen = (iso: string | null, limit: number): boolean => iso === null || ms(iso) > limit;

export function ageBucket(days: number): AgeBucket {
  if (days <= 14) return '0-14';
  if (days <= 30) return '15-30';
  if (days <= 60) return '31-60';
  if (days <= 90) return '61-90';
  return '>90';
}

export function percent(part: number, whole: number): number | null {
  if (whole === 0) return null;
  return Math.round((part / whole) * 1000) / 10;
}

const zeroSeverities = (): Record<Severity, number> => Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;

/** Each update approved as of `asOf`: its own latest approve/withdraw, else the release's. */
export function approvedAsOf(approvals: readonly ApprovalFact[], asOf: number): Map<string, ApprovalFact> {
  const latest = new Map<string, ApprovalFact>();
  for (const a of approvals) {
    if (!onOrBefore(a.at, asOf)) continue;
    const key = `${a.releaseId}\u0000${a.updateKey ?? ''}`;
    const seen = latest.get(key);
    if (!seen || ms(a.at) >= ms(seen.at)) latest.set(key, a);
  }
  return latest;
}

function approvalOf(latest: Map<string, ApprovalFact>, update: ComplianceUpdate): ApprovalFact | undefined {
  const own = latest.get(`${update.releaseId}\u0000${update.key}`) ?? latest.get(`${update.releaseId}\u0000`);
  return own?.kind === 'approve' ? own : undefined;
}

function holdCovers(hold: HoldFact, clientId: string, device: ComplianceDevice, update: ComplianceUpdate): boolean {
  if (hold.releaseId !== null && hold.releaseId !== update.releaseId) return false;
  switch (hold.scope) {
    case 'update':
      return hold.updateKey === update.key;
    case 'client':
      return hold.clientId === clientId;
    case 'ring':
      return hold.ring === device.ring && (hold.clientId === null || hold.clientId === clientId);
    case 'all':
      return true;
  }
}

interface Judged {
  status: UpdateStatus;
  installedAt: string | null;
  attempts: number;
  lastError: string | null;
  lastErrorAt: string | null;
}

const NOTHING_RAN = { installedAt: null, attempts: 0, lastError: null, lastErrorAt: null };

/** One device's runs of one update, as of `asOf`: installed (verified), failed (its latest settled run), or neither. */
function runsVerdict(runs: readonly RunFact[], update: ComplianceUpdate, asOf: number): Judged {
  let installedAt: string | null = null;
  let attempts = 0;
  let latest: RunFact | undefined;
  for (const run of runs) {
    if (run.releaseId !== update.releaseId || !run.updates.includes(update.key)) continue;
    if (onOrBefore(run.startedAt, asOf)) attempts += 1;
    if (!onOrBefore(run.finishedAt, asOf)) continue;
    if (run.state === 'succeeded' && (installedAt === null || ms(run.finishedAt) < ms(installedAt))) installedAt = run.finishedAt;
    if (run.state !== 'skipped' && (!latest || ms(run.finishedAt) >= ms(latest.finishedAt))) latest = run;
  }
  if (installedAt !== null) return { ...NOTHING_RAN, status: 'installed', installedAt, attempts };
  if (latest?.state !== 'failed') return { ...NOTHING_RAN, status: 'missing', attempts };
  return { status: 'failed', installedAt: null, attempts, lastError: latest.error, lastErrorAt: latest.finishedAt };
}

interface DeviceFacts {
  runs: RunFact[];
  holds: readonly HoldFact[];
  deferrals: readonly DeferralFact[];
}

function judge(input: ComplianceInput, device: ComplianceDevice, update: ComplianceUpdate, facts: DeviceFacts, asOf: number): Judged {
  const applies = device.os !== null && matchOsToProducts(device.os, update.products).productIds.length > 0;
  if (!applies) return { ...NOTHING_RAN, status: 'not applicable' };
  const verdict = runsVerdict(facts.runs, update, asOf);
  if (verdict.status !== 'missing') return verdict;
  if (facts.holds.some((h) => holdCovers(h, input.client.id, device, update))) return { ...verdict, status: 'held' };
  if (facts.deferrals.some((d) => d.releaseId === null || d.releaseId === update.releaseId)) return { ...verdict, status: 'deferred' };
  return verdict;
}

/** A missing update that an approved update installed on the same device replaces is superseded, not missing. */
function markSuperseded(rows: DeviceUpdateRow[], updates: ReadonlyMap<string, ComplianceUpdate>): void {
  const replaced = new Set<string>();
  for (const row of rows) {
    if (row.status !== 'installed') continue;
    for (const kb of updates.get(`${row.releaseId}\u0000${row.updateKey}`)?.supersedes ?? []) replaced.add(kb);
  }
  for (const row of rows) if (row.status === 'missing' && row.kb !== null && replaced.has(row.kb)) row.status = 'superseded';
}

function deviceRows(input: ComplianceInput, device: ComplianceDevice, approved: ReadonlyArray<[ComplianceUpdate, ApprovalFact]>, facts: DeviceFacts, asOf: number): DeviceUpdateRow[] {
  const rows = approved.map(([update, approval]): DeviceUpdateRow => {
    const judged = judge(input, device, update, facts, asOf);
    const until = judged.installedAt === null ? asOf : ms(judged.installedAt);
    return {
      device: device.name,
      releaseId: update.releaseId,
      updateKey: update.key,
      kb: update.kb,
      title: update.title,
      severity: update.severity,
      cves: update.cves,
      kev: update.kev,
      releasedAt: update.releasedAt,
      approvedAt: approval.at,
      approvedBy: approval.actor,
      ...judged,
      ageDays: Math.max(0, Math.floor((until - ms(update.releasedAt)) / DAY_MS)),
    };
  });
  markSuperseded(rows, new Map(approved.map(([u]) => [`${u.releaseId}\u0000${u.key}`, u])));
  return rows;
}

/** Last seen: the latest run that found the device online (a run starts only after its online check answered yes). */
function lastSeenOf(runs: readonly RunFact[], asOf: number): string | null {
  let seen: string | null = null;
  for (const run of runs) {
    if (!onOrBefore(run.startedAt, asOf)) continue;
    const at = onOrBefore(run.finishedAt, asOf) ? run.finishedAt : run.startedAt;
    if (seen === null || ms(at) > ms(seen)) seen = at;
  }
  return seen;
}

/** A reboot is pending when the device's latest settled run gave up still asking for one. */
function rebootPendingOf(runs: readonly RunFact[], asOf: number): boolean {
  let latest: RunFact | undefined;
  for (const run of runs) {
    if (!onOrBefore(run.finishedAt, asOf) || run.state === 'skipped') continue;
    if (!latest || ms(run.finishedAt) >= ms(latest.finishedAt)) latest = run;
  }
  return latest?.result === 'reboot_limit';
}

function summariseDevice(device: ComplianceDevice, rows: readonly DeviceUpdateRow[], runs: readonly RunFact[], input: ComplianceInput, asOf: number): DeviceSummary {
  const missingBySeverity = zeroSeverities();
  let kevMissing = 0;
  let oldest: number | null = null;
  let pastGraceOutstanding = false;
  let lastInstall: string | null = null;
  for (const row of rows) {
    if (row.installedAt !== null && (lastInstall === null || ms(row.installedAt) > ms(lastInstall))) lastInstall = row.installedAt;
    if (!OUTSTANDING_STATUSES.has(row.status)) continue;
    missingBySeverity[row.severity] += 1;
    if (row.kev) kevMissing += 1;
    oldest = Math.max(oldest ?? 0, row.ageDays);
    if (row.ageDays > input.policy.graceDays) pastGraceOutstanding = true;
  }
  const lastSeen = lastSeenOf(runs, asOf);
  const rebootPending = rebootPendingOf(runs, asOf);
  const excluded = device.os === null ? 'OS unknown: patchbay cannot match updates to it' : null;
  return {
    device: device.name,
    ring: device.ring,
    class: device.class,
    os: device.os,
    excluded,
    compliant: excluded === null && !pastGraceOutstanding && !rebootPending,
    missingBySeverity,
    kevMissing,
    failed: rows.filter((r) => r.status === 'failed').length,
    oldestMissingDays: oldest,
    lastSeen,
    lastInstall,
    rebootPending,
    stale: lastSeen === null || asOf - ms(lastSeen) > input.policy.staleDays * DAY_MS,
  };
}

function slaLimit(policy: CompliancePolicy, severity: Severity): number | undefined {
  if (severity === 'Critical') return policy.slaCriticalDays;
  if (severity === 'Important') return policy.slaImportantDays;
  return undefined;
}

function slaBreaches(rows: readonly DeviceUpdateRow[], policy: CompliancePolicy): SlaBreach[] {
  const breaches: SlaBreach[] = [];
  for (const row of rows) {
    const limitDays = slaLimit(policy, row.severity);
    if (limitDays === undefined || !OUTSTANDING_STATUSES.has(row.status) || row.ageDays <= limitDays) continue;
    breaches.push({ device: row.device, updateKey: row.updateKey, kb: row.kb, severity: row.severity, ageDays: row.ageDays, limitDays });
  }
  return breaches;
}

function summarise(devices: readonly DeviceSummary[], rows: readonly DeviceUpdateRow[], breaches: number): ComplianceSummary {
  const statusCounts: Record<UpdateStatus, number> = { installed: 0, missing: 0, failed: 0, held: 0, deferred: 0, superseded: 0, 'not applicable': 0 };
  const missingBySeverity = zeroSeverities();
  const missingByAge = Object.fromEntries(AGE_BUCKETS.map((b) => [b, 0])) as Record<AgeBucket, number>;
  let kevMissing = 0;
  for (const row of rows) {
    statusCounts[row.status] += 1;
    if (!OUTSTANDING_STATUSES.has(row.status)) continue;
    missingBySeverity[row.severity] += 1;
    missingByAge[ageBucket(row.ageDays)] += 1;
    if (row.kev) kevMissing += 1;
  }
  const inScope = devices.filter((d) => d.excluded === null);
  const compliantDevices = inScope.filter((d) => d.compliant).length;
  const attempted = statusCounts.installed + statusCounts.missing + statusCounts.failed;
  return {
    devicesInScope: inScope.length,
    devicesExcluded: devices.length - inScope.length,
    compliantDevices,
    deviceCompliancePct: percent(compliantDevices, inScope.length),
    statusCounts,
    patchInstallationPct: percent(statusCounts.installed, attempted),
    missingBySeverity,
    kevMissing,
    missingByAge,
    slaBreaches: breaches,
    rebootPending: inScope.filter((d) => d.rebootPending).length,
    staleDevices: inScope.filter((d) => d.stale).length,
  };
}

function exceptionsInForce(input: ComplianceInput, devices: readonly DeviceSummary[], holds: readonly HoldFact[], deferrals: readonly DeferralFact[]): ExceptionInForce[] {
  const names = new Map(input.devices.map((d) => [d.id, d.name]));
  const held = holds.map((h): ExceptionInForce => ({
    kind: 'held',
    subject: [h.scope, h.releaseId, h.updateKey ?? h.ring ?? h.clientId].filter((part) => part !== null).join(' '),
    reason: h.reason,
    by: h.placedBy,
    since: h.placedAt,
    until: null,
  }));
  const deferred = deferrals.map((d): ExceptionInForce => ({
    kind: 'deferred',
    subject: `${names.get(d.deviceId) ?? d.deviceId}${d.releaseId ? ` ${d.releaseId}` : ''}`,
    reason: "the device's user deferred it",
    by: d.by,
    since: d.at,
    until: d.until,
  }));
  const excluded = devices
    .filter((d) => d.excluded !== null)
    .map((d): ExceptionInForce => ({ kind: 'excluded', subject: d.device, reason: d.excluded!, by: null, since: null, until: null }));
  return [...held, ...deferred, ...excluded];
}

/** Facts in force at `asOf`: holds placed and not yet released, deferrals made whose window is still ahead. */
function factsInForce(input: ComplianceInput, asOf: number): { holds: HoldFact[]; deferrals: DeferralFact[] } {
  const holds = input.holds.filter((h) => onOrBefore(h.placedAt, asOf) && stillOpen(h.releasedAt, asOf) && (h.clientId === null || h.clientId === input.client.id));
  const deferrals = input.deferrals.filter((d) => onOrBefore(d.at, asOf) && stillOpen(d.until, asOf));
  return { holds, deferrals };
}

/** One row per device id: a device listed twice by a careless loader is still one device. */
function uniqueDevices(devices: readonly ComplianceDevice[]): ComplianceDevice[] {
  const byId = new Map<number, ComplianceDevice>();
  for (const device of devices) if (!byId.has(device.id)) byId.set(device.id, device);
  return [...byId.values()];
}

export function complianceReport(input: ComplianceInput): ComplianceReport {
  const asOf = ms(input.asOf);
  const latest = approvedAsOf(input.approvals, asOf);
  const approved = new Map<string, [ComplianceUpdate, ApprovalFact]>();
  for (const update of input.updates) {
    const approval = ms(update.releasedAt) <= asOf ? approvalOf(latest, update) : undefined;
    const key = `${update.releaseId}\u0000${update.key}`;
    // One row per (release, update), as the updates table's key makes it; the first seen wins.
    if (approval && !approved.has(key)) approved.set(key, [update, approval]);
  }
  const { holds, deferrals } = factsInForce(input, asOf);
  const runsByDevice = new Map<number, RunFact[]>();
  for (const run of input.runs) {
    const list = runsByDevice.get(run.deviceId);
    if (list) list.push(run);
    else runsByDevice.set(run.deviceId, [run]);
  }
  const devices: DeviceSummary[] = [];
  const rows: DeviceUpdateRow[] = [];
  for (const device of uniqueDevices(input.devices)) {
    const runs = runsByDevice.get(device.id) ?? [];
    const mine = deviceRows(input, device, [...approved.values()], { runs, holds, deferrals: deferrals.filter((d) => d.deviceId === device.id) }, asOf);
    rows.push(...mine);
    devices.push(summariseDevice(device, mine, runs, input, asOf));
  }
  const breaches = slaBreaches(rows, input.policy);
  return {
    client: input.client,
    period: input.period,
    asOf: input.asOf,
    policy: { ...input.policy, note: POLICY_NOTE },
    summary: summarise(devices, rows, breaches.length),
    devices,
    updates: rows,
    slaBreaches: breaches,
    failedInstalls: rows.filter((r) => r.status === 'failed').map((r) => ({ device: r.device, updateKey: r.updateKey, kb: r.kb, error: r.lastError, at: r.lastErrorAt })),
    staleDevices: devices.filter((d) => d.excluded === null && d.stale).map((d) => ({ device: d.device, lastSeen: d.lastSeen })),
    exceptions: exceptionsInForce(input, devices, holds, deferrals),
  };
}
