/**
 * Which compliance reports are due at `now` (issue 17): per client after the broad ring's last window of a release
 * closed, per client monthly on its `report_day` at REPORT_HOUR local time (the month before), and weekly for the
 * engineers (devices still exposed to KEV-listed CVEs) on Mondays at KEV_HOUR in the MSP's zone.
 *
 * Exactly once comes from the key, not from remembering when the scheduler last looked: every occurrence due
 * within the last `horizonDays` and not yet in `sent` (the keys in the report archive) is due. So a scheduler that
 * was down for a day sends what fell in the gap when it is back (never skipped), and one that ticks twice, or a
 * tick that crashed before its archive row committed, finds the key or not and acts once (never twice). An
 * occurrence older than the horizon is left alone: a weekly KEV list a month late helps nobody, and a first start
 * must not send every report of the past year.
 */
import { DateTime } from 'luxon';
import type { ReportPeriod } from './compliance.ts';
import { monthPeriod } from './report-period.ts';

export const REPORT_KINDS = ['on_demand', 'release', 'monthly', 'kev_weekly'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];

/** Local hour a monthly report goes out: the start of the client's working day. */
export const REPORT_HOUR = 8;
/** Monday, in the MSP's zone: the engineers' week starts with what is still exposed. */
export const KEV_WEEKDAY = 1;
export const KEV_HOUR = 9;
export const DEFAULT_HORIZON_DAYS = 7;

export interface ScheduleClient {
  id: string;
  timezone: string;
  /** When the client was first imported (ISO): no monthly report falls due before it. */
  since?: string;
  /** 1–28; unset: no monthly report. */
  reportDay?: number;
}

/** A client's broad ring of a release that has closed: its last window ended at `closedAt` (ISO). */
export interface BroadClosed {
  clientId: string;
  releaseId: string;
  closedAt: string;
}

export interface ScheduleInput {
  now: Date;
  clients: readonly ScheduleClient[];
  broadClosed: readonly BroadClosed[];
  mspZone: string;
  /** Keys of reports already archived (sent). */
  sent: ReadonlySet<string>;
  horizonDays?: number;
  /**
   * When the MSP was first imported: nothing scheduled falls due before patchbay was looking after it, so a first
   * start does not open with last Monday's KEV list or a monthly report for a day it never saw.
   */
  since?: Date;
}

export interface DueReport {
  kind: Exclude<ReportKind, 'on_demand'>;
  /** Null for the MSP-wide weekly KEV report. */
  clientId: string | null;
  periodId: string;
  /** The period the compliance model judges; the KEV list is judged as of now and has none. */
  period: ReportPeriod | null;
  dueAt: string;
  key: string;
}

/** The report's idempotency key; `request` sets apart on-demand reports of the same client and period. */
export function reportKey(kind: ReportKind, clientId: string | null, periodId: string, request?: string): string {
  return ['report', kind, clientId ?? 'msp', periodId, ...(request !== undefined ? [request] : [])].join(':');
}

/** Every report due at `now` and not yet sent, oldest first. Pure. */
export function dueReports(input: ScheduleInput): DueReport[] {
  const now = DateTime.fromJSDate(input.now, { zone: 'utc' });
  const from = now.minus({ days: input.horizonDays ?? DEFAULT_HORIZON_DAYS });
  const inRange = (at: DateTime): boolean => at > from && at <= now;
  // A broad ring cannot close before the MSP was imported; the calendar's reports can fall due before it.
  const start = input.since ? DateTime.max(from, DateTime.fromJSDate(input.since, { zone: 'utc' })) : from;
  const inCalendarRange = (at: DateTime): boolean => at > start && at <= now;
  const due: DueReport[] = [];
  for (const closed of input.broadClosed) {
    const at = DateTime.fromISO(closed.closedAt, { zone: 'utc' });
    const month = monthPeriod(closed.releaseId);
    if (!at.isValid || !inRange(at)) continue;
    due.push({ kind: 'release', clientId: closed.clientId, periodId: closed.releaseId, period: month.ok ? month.period : null, dueAt: at.toISO()!, key: reportKey('release', closed.clientId, closed.releaseId) });
  }
  for (const client of input.clients) {
    if (client.reportDay === undefined) continue;
    for (const at of monthlyInstants(client, from, now)) {
      const period = previousMonth(at);
      if (inCalendarRange(at) && !(client.since !== undefined && at.toMillis() <= Date.parse(client.since))) due.push({ kind: 'monthly', clientId: client.id, periodId: period.id, period, dueAt: at.toUTC().toISO()!, key: reportKey('monthly', client.id, period.id) });
    }
  }
  for (const at of weeklyInstants(input.mspZone, from, now)) {
    if (!inCalendarRange(at)) continue;
    const week = `${at.weekYear}-W${String(at.weekNumber).padStart(2, '0')}`;
    due.push({ kind: 'kev_weekly', clientId: null, periodId: week, period: null, dueAt: at.toUTC().toISO()!, key: reportKey('kev_weekly', null, week) });
  }
  return due.filter((d) => !input.sent.has(d.key)).sort((a, b) => a.dueAt.localeCompare(b.dueAt) || a.key.localeCompare(b.key));
}

/** The client's report day at REPORT_HOUR local, in each month touching [from, now]. */
function monthlyInstants(client: ScheduleClient, from: DateTime, now: DateTime): DateTime[] {
  const out: DateTime[] = [];
  let month = from.setZone(client.timezone).startOf('month');
  const last = now.setZone(client.timezone).startOf('month');
  while (month <= last) {
    out.push(month.set({ day: client.reportDay!, hour: REPORT_HOUR }));
    month = month.plus({ months: 1 });
  }
  return out;
}

function weeklyInstants(zone: string, from: DateTime, now: DateTime): DateTime[] {
  const out: DateTime[] = [];
  let day = from.setZone(zone).startOf('day');
  const last = now.setZone(zone).startOf('day');
  while (day <= last) {
    if (day.weekday === KEV_WEEKDAY) out.push(day.set({ hour: KEV_HOUR }));
    day = day.plus({ days: 1 });
  }
  return out;
}

/** The calendar month before the one the report goes out in (the client's local date), as monthPeriod names it. */
function previousMonth(at: DateTime): ReportPeriod {
  const before = at.minus({ months: 1 });
  const result = monthPeriod(`${before.year}-${before.toFormat('LLL', { locale: 'en-US' })}`);
  if (!result.ok) throw new Error(result.error);
  return result.period;
}
