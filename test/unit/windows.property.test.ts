/**
 * Property tests for maintenance windows over random zones, rules and years 2000-2040.
 *
 * The windows are checked against an oracle written a different way: it reads wall clocks through Intl
 * (not luxon), splits time into stretches of constant offset, and applies the rules in their "first time
 * the clock reads >= start / last time it reads < end" form. Times are biased towards clock-change nights,
 * which random instants would rarely hit.
 */
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { parseWindowSpec, type IsoWeekday, type WindowRule } from '../../src/domain/window-spec.ts';
import {
  canStartStep,
  isCollapsed,
  nextWindow,
  windowContaining,
  windowsFrom,
  type MaintenanceWindow,
} from '../../src/domain/windows.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// ---- wall clocks through Intl ------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterFor(zone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(zone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, formatter);
  }
  return formatter;
}

/** The zone's wall clock at an instant, written as if it were a UTC epoch (so wall times compare as numbers). */
function wallClock(zone: string, instant: number): number {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(zone).formatToParts(new Date(instant))) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  const wholeSecond = Math.floor(instant / 1000) * 1000;
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!) + (instant - wholeSecond);
}

const offsetAt = (zone: string, instant: number) => wallClock(zone, instant) - instant;

interface Stretch {
  from: number;
  to: number;
  offset: number;
}

/**
 * Splits [from, to) into stretches of constant offset, probing every `step` (zones never change offset
 * twice within an hour, so hourly probes see every change).
 */
function stretches(zone: string, from: number, to: number, step = HOUR): Stretch[] {
  const result: Stretch[] = [];
  let stretchStart = from;
  let offset = offsetAt(zone, from);
  for (let probe = from + step; ; probe = Math.min(probe + step, to)) {
    const probeOffset = offsetAt(zone, probe);
    if (probeOffset !== offset) {
      let low = probe - step;
      let high = probe;
      while (high - low > 1) {
        const middle = Math.floor((low + high) / 2);
        if (offsetAt(zone, middle) === offset) low = middle;
        else high = middle;
      }
      result.push({ from: stretchStart, to: high, offset });
      stretchStart = high;
      offset = probeOffset;
    }
    if (probe >= to) break;
  }
  result.push({ from: stretchStart, to, offset });
  return result;
}

interface LocalDay {
  year: number;
  month: number;
  day: number;
}

const dayMs = (day: LocalDay) => Date.UTC(day.year, day.month - 1, day.day);
const addDays = (day: LocalDay, days: number): LocalDay => {
  const date = new Date(dayMs(day) + days * DAY);
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
};
const weekdayOf = (day: LocalDay) => (((new Date(dayMs(day)).getUTCDay() + 6) % 7) + 1) as IsoWeekday;
const isoOf = (day: LocalDay) => new Date(dayMs(day)).toISOString().slice(0, 10);
const parseIso = (iso: string): LocalDay => {
  const [year, month, day] = iso.split('-').map(Number);
  return { year: year!, month: month!, day: day! };
};

function nominalBounds(rule: WindowRule, day: LocalDay): { wallStart: number; wallEnd: number } {
  const endDay = rule.endMinute > rule.startMinute ? day : addDays(day, 1);
  return { wallStart: dayMs(day) + rule.startMinute * MINUTE, wallEnd: dayMs(endDay) + rule.endMinute * MINUTE };
}

interface OracleWindow {
  start: number;
  /** Where the window would end were it not cut at the next window's start. */
  uncutEnd: number;
  end: number;
  /** Whether any instant at all shows a wall time inside [wallStart, wallEnd). */
  wallTimesExist: boolean;
}

/**
 * The rules in terms of the clock alone: a window opens the first time the clock reads its start time and
 * closes the last time the clock reads its end time; a time the clock never reads is replaced by the first
 * instant it reads something later (the gap's end).
 */
function oracleUncut(zone: string, rule: WindowRule, day: LocalDay): Omit<OracleWindow, 'end'> {
  const { wallStart, wallEnd } = nominalBounds(rule, day);
  // Offsets lie within -12h..+14h, so only instants in this span can show these wall times.
  const span = stretches(zone, wallStart - 15 * HOUR, wallEnd + 13 * HOUR);
  const readings = (wall: number) =>
    span.filter(({ from, to, offset }) => from <= wall - offset && wall - offset < to).map(({ offset }) => wall - offset);
  const firstReadingLater = (wall: number) =>
    Math.min(...span.flatMap(({ from, to, offset }) => (Math.max(from, wall - offset) < to ? [Math.max(from, wall - offset)] : [])));
  const startReadings = readings(wallStart);
  const endReadings = readings(wallEnd);
  const start = startReadings.length > 0 ? Math.min(...startReadings) : firstReadingLater(wallStart);
  const uncutEnd = endReadings.length > 0 ? Math.max(...endReadings) : firstReadingLater(wallEnd);
  const wallTimesExist = span.some(({ from, to, offset }) => Math.max(from + offset, wallStart) < Math.min(to + offset, wallEnd));
  return { start, uncutEnd: Math.max(start, uncutEnd), wallTimesExist };
}

function nextNamedDay(rule: WindowRule, day: LocalDay, direction: 1 | -1 = 1): LocalDay {
  for (let candidate = addDays(day, direction); ; candidate = addDays(candidate, direction)) {
    if (rule.days.includes(weekdayOf(candidate))) return candidate;
  }
}

function oracle(zone: string, rule: WindowRule, day: LocalDay): OracleWindow {
  const uncut = oracleUncut(zone, rule, day);
  const following = oracleUncut(zone, rule, nextNamedDay(rule, day));
  return { ...uncut, end: Math.max(uncut.start, Math.min(uncut.uncutEnd, following.start)) };
}

// ---- generators --------------------------------------------------------------------------------------

const ALL_ZONES = Intl.supportedValuesOf('timeZone');
const AWKWARD_ZONES = [
  'America/Chicago',
  'America/New_York',
  'Europe/London',
  'Australia/Sydney',
  'Australia/Lord_Howe',
  'America/Santiago',
  'America/Havana',
  'Asia/Beirut',
  'America/Asuncion',
  'Antarctica/Troll',
  'Pacific/Apia',
  'Africa/Casablanca',
  'Asia/Tokyo',
];

const zoneArbitrary = fc.oneof(fc.constantFrom(...ALL_ZONES), fc.constantFrom(...AWKWARD_ZONES));

// Times near midnight and the usual change hours are where gaps and repeats live.
const minuteArbitrary = fc.oneof(
  fc.integer({ min: 0, max: 24 * 60 - 1 }),
  fc.constantFrom(0, 15, 30, 60, 90, 120, 130, 150, 180, 210, 22 * 60, 23 * 60, 23 * 60 + 30),
);

const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const hhmm = (minute: number) => `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;

function ruleFrom(days: readonly number[], start: number, end: number): WindowRule {
  const text = `${[...days].map((day) => DAY_NAMES[day - 1]).join(',')} ${hhmm(start)}-${hhmm(end)}`;
  const parsed = parseWindowSpec(text);
  if (!parsed.ok) throw new Error(`generator wrote a bad spec ${text}: ${parsed.error}`);
  return parsed.value;
}

const minuteOfDay = (minutes: number) => (((minutes % 1440) + 1440) % 1440);

// Rules go through the parser from text, as they do in production.
const ruleArbitrary = fc
  .record({
    days: fc.oneof(fc.constant([1, 2, 3, 4, 5, 6, 7]), fc.subarray([1, 2, 3, 4, 5, 6, 7], { minLength: 1 })),
    start: minuteArbitrary,
    end: minuteArbitrary,
    // Windows of nearly a day are the ones a repeated hour can push into the next day's window.
    nearlyFullDay: fc.boolean(),
    shortfall: fc.integer({ min: 0, max: 120 }),
  })
  .map(({ days, start, end, nearlyFullDay, shortfall }) =>
    ruleFrom(days, start, nearlyFullDay ? minuteOfDay(start - shortfall) : end),
  );

const transitionCache = new Map<string, number[]>();
/** The instants in a year at which the zone's offset changes (coarse probes: this only aims the tests). */
function transitionsIn(zone: string, year: number): number[] {
  const key = `${zone} ${year}`;
  let found = transitionCache.get(key);
  if (!found) {
    const from = Date.UTC(year, 0, 1);
    found = stretches(zone, from, Date.UTC(year + 1, 0, 1), 12 * HOUR)
      .slice(1)
      .map((stretch) => stretch.from);
    transitionCache.set(key, found);
  }
  return found;
}

const scenarioArbitrary = fc
  .record({
    zone: zoneArbitrary,
    rule: ruleArbitrary,
    year: fc.integer({ min: 2000, max: 2040 }),
    nearTransition: fc.boolean(),
    // Put the rule's times around the wall time of the change, where every DST rule comes into play.
    aimAtChange: fc.boolean(),
    startAim: fc.integer({ min: -90, max: 90 }),
    endAim: fc.integer({ min: -90, max: 150 }),
    pick: fc.nat(),
    instantInYear: fc.integer({ min: 0, max: 365 * DAY - 1 }),
    hoursBefore: fc.integer({ min: 0, max: 60 }),
    sample: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
  })
  .map((scenario) => {
    const { zone, year, pick, instantInYear, hoursBefore, sample } = scenario;
    let rule = scenario.rule;
    const transitions = scenario.nearTransition ? transitionsIn(zone, year) : [];
    const transition = transitions[pick % Math.max(1, transitions.length)];
    if (transition === undefined) {
      return { zone, rule, from: DateTime.fromMillis(Date.UTC(year, 0, 1) + instantInYear, { zone: 'UTC' }), sample };
    }
    if (scenario.aimAtChange) {
      // The change as the old clock saw it: its local date and minute of day.
      const oldClock = wallClock(zone, transition - 1) + 1;
      const changeMinute = Math.floor((oldClock % DAY) / MINUTE);
      const changeWeekday = weekdayOf(parseIso(new Date(oldClock).toISOString().slice(0, 10)));
      const days = [...new Set([...rule.days, changeWeekday])];
      const start = minuteOfDay(changeMinute + scenario.startAim);
      const nearlyFullDay = rule.endMinute <= rule.startMinute && rule.startMinute - rule.endMinute <= 120;
      const end = nearlyFullDay ? minuteOfDay(start - scenario.endAim / 2) : minuteOfDay(changeMinute + scenario.endAim);
      rule = ruleFrom(days, start, Math.floor(end));
    }
    const from = transition - hoursBefore * HOUR + (instantInYear % HOUR);
    return { zone, rule, from: DateTime.fromMillis(from, { zone: 'UTC' }), sample };
  });

// ---- properties --------------------------------------------------------------------------------------

const instants = (window: MaintenanceWindow) => [window.start.toMillis(), window.end.toMillis()];

describe('windows over random zones, rules and years', () => {
  it('match the oracle, follow one another day by day, and are ordered and disjoint', () => {
    fc.assert(
      fc.property(scenarioArbitrary, ({ zone, rule, from }) => {
        const windows = windowsFrom(rule, zone, from, 5);
        expect(windows).toHaveLength(5);

        // The named day before the first window has ended by `from`: none is missed at the front.
        const firstDay = parseIso(windows[0]!.day);
        expect(oracle(zone, rule, nextNamedDay(rule, firstDay, -1)).end).toBeLessThanOrEqual(from.toMillis());
        expect(windows[0]!.end.toMillis()).toBeGreaterThan(from.toMillis());

        windows.forEach((window, index) => {
          const day = parseIso(window.day);
          expect(rule.days).toContain(weekdayOf(day));
          const expected = oracle(zone, rule, day);
          expect(instants(window)).toEqual([expected.start, expected.end]);
          expect(window.start.zoneName).toBe(zone);
          // Empty only when no instant ever shows a wall time inside the rule: the window sits in a gap.
          expect(isCollapsed(window)).toBe(!expected.wallTimesExist);

          const next = windows[index + 1];
          if (next) {
            // No named day skipped or doubled.
            expect(next.day).toBe(isoOf(nextNamedDay(rule, day)));
            expect(next.start.toMillis()).toBeGreaterThan(window.start.toMillis());
            expect(window.end.toMillis()).toBeLessThanOrEqual(next.start.toMillis());
          }
        });
      }),
      { numRuns: 120 },
    );
  });

  it('hold only instants whose wall clock is inside the rule, allowing for clocks set back', () => {
    fc.assert(
      fc.property(scenarioArbitrary, ({ zone, rule, from, sample }) => {
        for (const window of windowsFrom(rule, zone, from, 3)) {
          if (isCollapsed(window)) continue;
          const day = parseIso(window.day);
          const { wallStart, wallEnd } = nominalBounds(rule, day);
          const { uncutEnd } = oracle(zone, rule, day);
          const [start, end] = instants(window) as [number, number];
          const startOffset = offsetAt(zone, start);
          const offsetAtClose = offsetAt(zone, uncutEnd);
          for (const instant of [start, end - 1, start + Math.floor(sample * (end - start))]) {
            const wall = wallClock(zone, instant);
            const offset = wall - instant;
            // A clock set back after the window opened shows times before its start again; one that will be
            // set back before it closes shows times past its end first. Nothing else is allowed.
            const lowest = wallStart - Math.max(0, startOffset - offset);
            const highest = wallEnd + Math.max(0, offset - offsetAtClose);
            expect(wall).toBeGreaterThanOrEqual(lowest);
            expect(wall).toBeLessThan(highest);

            const containing = windowContaining(rule, zone, DateTime.fromMillis(instant));
            expect(containing && instants(containing)).toEqual([start, end]);
            expect(canStartStep(window, DateTime.fromMillis(instant), 0)).toBe(true);
          }
        }
      }),
      { numRuns: 80 },
    );
  });

  it('nextWindow is the first non-empty window opening after the instant', () => {
    fc.assert(
      fc.property(scenarioArbitrary, ({ zone, rule, from }) => {
        const expected = windowsFrom(rule, zone, from, 4).find(
          (window) => window.start.toMillis() > from.toMillis() && !isCollapsed(window),
        );
        fc.pre(expected !== undefined);
        expect(instants(nextWindow(rule, zone, from))).toEqual(instants(expected!));
      }),
      { numRuns: 80 },
    );
  });

  it('each day the rule names in a year yields exactly one window', () => {
    const yearScenario = fc.record({ zone: zoneArbitrary, rule: ruleArbitrary, year: fc.integer({ min: 2000, max: 2040 }) });
    fc.assert(
      fc.property(yearScenario, ({ zone, rule, year }) => {
        const from = DateTime.fromObject({ year, month: 1, day: 1 }, { zone });
        const windows = windowsFrom(rule, zone, from, 380).filter((window) => window.day.startsWith(`${year}-`));
        const perDay = new Map<string, number>();
        for (const window of windows) perDay.set(window.day, (perDay.get(window.day) ?? 0) + 1);

        const namedDays: string[] = [];
        for (let day: LocalDay = { year, month: 1, day: 1 }; day.year === year; day = addDays(day, 1)) {
          if (rule.days.includes(weekdayOf(day))) namedDays.push(isoOf(day));
        }
        expect([...perDay.keys()]).toEqual(namedDays);
        expect([...perDay.values()].every((count) => count === 1)).toBe(true);
        for (let index = 1; index < windows.length; index += 1) {
          expect(windows[index - 1]!.end.toMillis()).toBeLessThanOrEqual(windows[index]!.start.toMillis());
        }
      }),
      { numRuns: 15 },
    );
  });
});
