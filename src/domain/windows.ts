/**
 * Maintenance windows as real instants: a WindowRule (wall-clock times on named weekdays) expanded in an
 * IANA zone. This is where "no reboot outside a window" gets its instants, so clock changes are resolved
 * explicitly rather than left to luxon's defaults:
 *
 * - a start in a skipped stretch (spring forward) begins at the instant the gap ends;
 * - a start in a repeated stretch (fall back) takes the first occurrence;
 * - an end in a repeated stretch takes the second occurrence;
 * - an end in a skipped stretch is the instant the gap ends.
 *
 * Equivalently: a window opens the first time the clock reads its start time and closes the last time the
 * clock reads its end time; a time the clock never reads is replaced by the instant the gap ends. So
 * 01:00-05:00 America/Chicago is 3 real hours on spring-forward night and 5 on fall-back night.
 *
 * Two consequences, both decided here:
 * - A window wholly inside a skipped stretch (02:00-02:30 on Chicago's spring-forward night) collapses to a
 *   zero-length window at the gap's end. It is still listed (never skipped silently) but it contains no
 *   instant, so nothing may start in it; `nextWindow` passes over it.
 * - A window of nearly 24 hours can, by the "end takes the second occurrence" rule, run past the start of
 *   the next day's window on fall-back night (e.g. `daily 01:30-01:00`). Windows never overlap: the earlier
 *   one is cut short at the next one's start.
 */
import { DateTime, IANAZone } from 'luxon';
import { nominalMinutes, type IsoWeekday, type WindowRule } from './window-spec.ts';

export interface MaintenanceWindow {
  /** The first instant of the window, in the window's zone. */
  start: DateTime;
  /** The instant the window closes (exclusive), in the window's zone. Equal to start when it collapsed. */
  end: DateTime;
  /** The local calendar date the rule named (the wall-clock day the window starts on), `yyyy-MM-dd`. */
  day: string;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/**
 * An IANA region zone such as America/Chicago (or UTC). The runtime also accepts legacy abbreviations like
 * "CST", "IST" or "EST"; they are refused because people mean different things by them ("IST" is India to
 * the runtime, Ireland or Israel to others, and "EST" never observes DST).
 */
export function isValidZone(zone: string): boolean {
  if (typeof zone !== 'string' || !/^(?:UTC|GMT|[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)+)$/.test(zone)) return false;
  // Luxon asks Intl each time (a DateTimeFormat built per call, ~0.1 ms): 25,000 people's zones checked per DM tick.
  let valid = checkedZones.get(zone);
  if (valid === undefined) {
    valid = IANAZone.isValidZone(zone);
    // Zones come from files and directories people edit: bounded, so odd spellings cannot grow it without end.
    if (checkedZones.size >= CHECKED_ZONES_MAX) checkedZones.clear();
    checkedZones.set(zone, valid);
  }
  return valid;
}

const CHECKED_ZONES_MAX = 2000;
const checkedZones = new Map<string, boolean>();

/** The runtime's canonical spelling of a valid zone (letter case fixed: "america/chicago" -> "America/Chicago"). */
export function canonicalZoneName(zone: string): string | undefined {
  if (!isValidZone(zone)) return undefined;
  return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
}

function zoneOrThrow(zone: string): IANAZone {
  if (!isValidZone(zone)) throw new RangeError(`"${zone}" is not an IANA time zone (e.g. America/Chicago)`);
  return IANAZone.create(zone);
}

/** The zone's offset from UTC at an instant, in milliseconds. */
function offsetMs(zone: IANAZone, epochMs: number): number {
  return zone.offset(epochMs) * MINUTE_MS;
}

/**
 * The instants at which the wall clock reads `wallMs` (a local date-time written as if it were UTC millis):
 * one normally, two in a repeated stretch (ascending), none in a skipped one. Any transition near the wall
 * time shows up in the offsets a day either side of it (zones do not change offset twice within two days).
 */
function instantsAtWallTime(zone: IANAZone, wallMs: number): { occurrences: number[]; offsetBefore: number; offsetAfter: number } {
  const offsetBefore = offsetMs(zone, wallMs - DAY_MS);
  const offsetAfter = offsetMs(zone, wallMs + DAY_MS);
  const candidates = [...new Set([wallMs - offsetBefore, wallMs - offsetAfter])].sort((a, b) => a - b);
  const occurrences = candidates.filter((instant) => instant + offsetMs(zone, instant) === wallMs);
  return { occurrences, offsetBefore, offsetAfter };
}

/** The first instant at which the zone's offset is no longer `offsetBefore`, searching in (low, high]. */
function transitionInstant(zone: IANAZone, offsetBefore: number, low: number, high: number): number {
  // Invariant: offset(low) is still the old one, offset(high) is not.
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (offsetMs(zone, middle) === offsetBefore) low = middle;
    else high = middle;
  }
  return high;
}

type Boundary = 'start' | 'end';

/** The instant a window boundary at `wallMs` resolves to, by the rules at the top of this file. */
function resolveWallTime(zone: IANAZone, wallMs: number, boundary: Boundary): number {
  const { occurrences, offsetBefore, offsetAfter } = instantsAtWallTime(zone, wallMs);
  if (occurrences.length > 0) {
    return boundary === 'start' ? occurrences[0]! : occurrences[occurrences.length - 1]!;
  }
  // Skipped: the clock jumped from before wallMs to after it. The gap ends at the transition, which lies
  // between the instant the clock would have read wallMs on the old offset and the one on the new.
  return transitionInstant(zone, offsetBefore, wallMs - offsetAfter, wallMs - offsetBefore);
}

interface LocalDate {
  year: number;
  month: number;
  day: number;
}

function wallMsOf(date: LocalDate, minuteOfDay: number): number {
  return Date.UTC(date.year, date.month - 1, date.day) + minuteOfDay * MINUTE_MS;
}

function addDays(date: LocalDate, days: number): LocalDate {
  const shifted = new Date(Date.UTC(date.year, date.month - 1, date.day + days));
  return { year: shifted.getUTCFullYear(), month: shifted.getUTCMonth() + 1, day: shifted.getUTCDate() };
}

function isoWeekday(date: LocalDate): IsoWeekday {
  const sundayZero = new Date(Date.UTC(date.year, date.month - 1, date.day)).getUTCDay();
  return (sundayZero === 0 ? 7 : sundayZero) as IsoWeekday;
}

function isoDate(date: LocalDate): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.year, 4)}-${pad(date.month)}-${pad(date.day)}`;
}

interface RawWindow {
  startMs: number;
  endMs: number;
  day: LocalDate;
}

/** The window the rule gives on a local date, before it is cut to the next window's start. */
function rawWindowOn(rule: WindowRule, zone: IANAZone, day: LocalDate): RawWindow {
  const endDay = rule.endMinute > rule.startMinute ? day : addDays(day, 1);
  const startMs = resolveWallTime(zone, wallMsOf(day, rule.startMinute), 'start');
  const endMs = resolveWallTime(zone, wallMsOf(endDay, rule.endMinute), 'end');
  // Only a window wholly inside a skipped stretch could come out backwards; it collapses at the gap's end.
  return { startMs, endMs: Math.max(startMs, endMs), day };
}

function* rawWindowsFromDay(rule: WindowRule, zone: IANAZone, firstDay: LocalDate): Generator<RawWindow> {
  if (rule.days.length === 0) throw new RangeError(`window rule "${rule.spec}" names no days`);
  const named = new Set<number>(rule.days);
  for (let day = firstDay; ; day = addDays(day, 1)) {
    if (named.has(isoWeekday(day))) yield rawWindowOn(rule, zone, day);
  }
}

/** Every window that ends after `from`, in order, without end. */
function* windowsEndingAfter(rule: WindowRule, zoneName: string, from: DateTime): Generator<MaintenanceWindow> {
  const zone = zoneOrThrow(zoneName);
  if (!from.isValid) throw new RangeError(`from is not a valid instant: ${from.invalidExplanation ?? from.invalidReason}`);
  const fromMs = from.toMillis();
  const localFrom = from.setZone(zone);
  // A window belongs to the day it starts and lasts at most about a day, so one that began two local days
  // before `from` has ended by then.
  const raw = rawWindowsFromDay(rule, zone, addDays({ year: localFrom.year, month: localFrom.month, day: localFrom.day }, -2));
  let current = raw.next().value as RawWindow;
  for (;;) {
    const next = raw.next().value as RawWindow;
    const endMs = Math.max(current.startMs, Math.min(current.endMs, next.startMs));
    if (endMs > fromMs) {
      yield {
        start: DateTime.fromMillis(current.startMs, { zone }),
        end: DateTime.fromMillis(endMs, { zone }),
        day: isoDate(current.day),
      };
    }
    current = next;
  }
}

/**
 * The first `count` windows that end after `from`. A window in progress at `from` comes first, with its
 * real start. Collapsed (zero-length) windows are included so a caller can report them.
 */
export function windowsFrom(rule: WindowRule, zone: string, from: DateTime, count: number): MaintenanceWindow[] {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a whole number >= 0, not ${count}`);
  const windows: MaintenanceWindow[] = [];
  if (count === 0) return windows;
  for (const window of windowsEndingAfter(rule, zone, from)) {
    windows.push(window);
    if (windows.length === count) break;
  }
  return windows;
}

/** The window open at `instant` (start <= instant < end), if any. */
export function windowContaining(rule: WindowRule, zone: string, instant: DateTime): MaintenanceWindow | undefined {
  // Windows are ordered and disjoint, so only the first one still open at `instant` can contain it.
  const [first] = windowsFrom(rule, zone, instant, 1);
  return first !== undefined && first.start.toMillis() <= instant.toMillis() ? first : undefined;
}

/** The next window that opens strictly after `instant` and can hold work (collapsed ones are passed over). */
export function nextWindow(rule: WindowRule, zone: string, instant: DateTime): MaintenanceWindow {
  const instantMs = instant.toMillis();
  for (const window of windowsEndingAfter(rule, zone, instant)) {
    if (window.start.toMillis() > instantMs && window.end.toMillis() > window.start.toMillis()) return window;
  }
  throw new Error('unreachable: the window sequence has no end');
}

/** Real length of the window in minutes (differs from the rule's on clock-change nights). */
export function windowMinutes(window: MaintenanceWindow): number {
  return (window.end.toMillis() - window.start.toMillis()) / MINUTE_MS;
}

/** Real length minus the wall-clock length the rule asks for: negative when clocks sprang forward. */
export function clockChangeMinutes(window: MaintenanceWindow, rule: WindowRule): number {
  return windowMinutes(window) - nominalMinutes(rule);
}

export function isCollapsed(window: MaintenanceWindow): boolean {
  return window.end.toMillis() <= window.start.toMillis();
}

/**
 * Minutes of the window still ahead at `now`: all of it before it opens, none once it has closed. Real
 * minutes, possibly fractional, so a budget check is exact.
 */
export function remainingMinutes(window: MaintenanceWindow, now: DateTime): number {
  const from = Math.max(now.toMillis(), window.start.toMillis());
  return Math.max(0, window.end.toMillis() - from) / MINUTE_MS;
}

/** True only when `now` is inside the window and at least `budgetMinutes` of it are left. */
export function canStartStep(window: MaintenanceWindow, now: DateTime, budgetMinutes: number): boolean {
  const nowMs = now.toMillis();
  if (nowMs < window.start.toMillis() || nowMs >= window.end.toMillis()) return false;
  return remainingMinutes(window, now) >= budgetMinutes;
}
