/**
 * The Patch Tuesday calendar. Microsoft publishes each month's security release on the second Tuesday at
 * 10:00 Pacific time (America/Los_Angeles, so 17:00 or 18:00 UTC depending on US DST), and names it
 * `YYYY-Mon` with a three-letter English month ("2024-Feb"), which is how MSRC's CVRF API spells its ids.
 */
import { DateTime } from 'luxon';
import type { ParseResult } from './window-spec.ts';

export const PATCH_TUESDAY_ZONE = 'America/Los_Angeles';
export const PATCH_TUESDAY_HOUR = 10;

// Spelled out rather than taken from Intl so the ids never depend on the runtime's locale data.
const MONTH_ABBREVIATIONS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

export interface ReleaseMonth {
  year: number;
  /** 1 = January … 12 = December. */
  month: number;
  /** MSRC's id, e.g. `2024-Feb`. */
  id: string;
  /** When Microsoft publishes it: the second Tuesday, 10:00 America/Los_Angeles. */
  publishedAt: DateTime;
}

function assertYearMonth(year: number, month: number): void {
  if (!Number.isInteger(year) || year < 1000 || year > 9999) throw new RangeError(`year ${year} is not a four-digit year`);
  if (!Number.isInteger(month) || month < 1 || month > 12) throw new RangeError(`month ${month} is not 1..12`);
}

/** The second Tuesday of the month at 10:00 America/Los_Angeles (10:00 is never inside a US DST change). */
export function patchTuesday(year: number, month: number): DateTime {
  assertYearMonth(year, month);
  const first = DateTime.fromObject({ year, month, day: 1, hour: PATCH_TUESDAY_HOUR }, { zone: PATCH_TUESDAY_ZONE });
  const TUESDAY = 2;
  const daysToFirstTuesday = (TUESDAY - first.weekday + 7) % 7;
  return first.plus({ days: daysToFirstTuesday + 7 });
}

export function releaseIdFor(year: number, month: number): string {
  assertYearMonth(year, month);
  return `${year}-${MONTH_ABBREVIATIONS[month - 1]}`;
}

export function releaseMonth(year: number, month: number): ReleaseMonth {
  return { year, month, id: releaseIdFor(year, month), publishedAt: patchTuesday(year, month) };
}

/** Reads `2024-Feb` (any letter case, as people type it); the value carries the canonical spelling. */
export function parseReleaseId(text: string): ParseResult<ReleaseMonth> {
  const match = /^(\d{4})-([A-Za-z]{3})$/.exec(text.trim());
  if (!match) return { ok: false, error: `"${text}" is not a release id (expected e.g. "2024-Feb")` };
  const abbreviation = match[2]!.toLowerCase();
  const index = MONTH_ABBREVIATIONS.findIndex((name) => name.toLowerCase() === abbreviation);
  if (index < 0) return { ok: false, error: `"${match[2]}" is not a month (Jan, Feb, … Dec)` };
  return { ok: true, value: releaseMonth(Number(match[1]), index + 1) };
}

/** The latest release already published at `now` (its publication instant is at or before `now`). */
export function currentRelease(now: DateTime): ReleaseMonth {
  const pacific = now.setZone(PATCH_TUESDAY_ZONE);
  const thisMonth = releaseMonth(pacific.year, pacific.month);
  if (thisMonth.publishedAt.toMillis() <= now.toMillis()) return thisMonth;
  const previous = pacific.startOf('month').minus({ months: 1 });
  return releaseMonth(previous.year, previous.month);
}

/** The first release published strictly after `now`. */
export function nextRelease(now: DateTime): ReleaseMonth {
  const pacific = now.setZone(PATCH_TUESDAY_ZONE);
  const thisMonth = releaseMonth(pacific.year, pacific.month);
  if (thisMonth.publishedAt.toMillis() > now.toMillis()) return thisMonth;
  const following = pacific.startOf('month').plus({ months: 1 });
  return releaseMonth(following.year, following.month);
}

/** The next Patch Tuesday publication instant strictly after `now`. */
export function nextPatchTuesday(now: DateTime): DateTime {
  return nextRelease(now).publishedAt;
}
