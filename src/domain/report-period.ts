/**
 * The period a compliance report covers: a month as the CVRF ids spell it (`2026-Dec`) or a `from`/`to` range of
 * dates, read in UTC so every client's report of one period covers the same instants. A period still running is
 * judged as of `now`; one that has ended, as of its last instant, which is what keeps it the same tomorrow.
 */
import { DateTime } from 'luxon';
import type { ReportPeriod } from './compliance.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export type PeriodResult = { ok: true; period: ReportPeriod } | { ok: false; error: string };

export function monthPeriod(spec: string): PeriodResult {
  const match = /^(\d{4})-([A-Za-z]{3})$/.exec(spec);
  const month = match ? MONTHS.findIndex((m) => m.toLowerCase() === match[2]!.toLowerCase()) : -1;
  if (!match || month === -1) return { ok: false, error: `"${spec}" is not a month like 2026-Dec` };
  const from = DateTime.utc(Number(match[1]), month + 1, 1);
  return { ok: true, period: { id: `${match[1]}-${MONTHS[month]}`, from: from.toISO()!, to: from.plus({ months: 1 }).toISO()! } };
}

/** `--from 2026-11-01 --to 2026-11-30`: both days included. */
export function rangePeriod(fromSpec: string, toSpec: string): PeriodResult {
  const from = DateTime.fromISO(fromSpec, { zone: 'utc' }).startOf('day');
  const last = DateTime.fromISO(toSpec, { zone: 'utc' }).startOf('day');
  if (!from.isValid) return { ok: false, error: `--from: "${fromSpec}" is not a date like 2026-11-01` };
  if (!last.isValid) return { ok: false, error: `--to: "${toSpec}" is not a date like 2026-11-30` };
  if (last < from) return { ok: false, error: '--to is before --from' };
  return { ok: true, period: { id: `${from.toISODate()}..${last.toISODate()}`, from: from.toISO()!, to: last.plus({ days: 1 }).toISO()! } };
}

export function currentMonth(now: Date): ReportPeriod {
  const start = DateTime.fromJSDate(now, { zone: 'utc' }).startOf('month');
  return { id: `${start.year}-${MONTHS[start.month - 1]}`, from: start.toISO()!, to: start.plus({ months: 1 }).toISO()! };
}

/** The instant a period is judged at: its last millisecond once over, else now. */
export function judgedAt(period: ReportPeriod, now: Date): Date {
  const last = Date.parse(period.to) - 1;
  return new Date(Math.min(last, now.getTime()));
}
