/**
 * Maintenance windows worked out here, apart from src/domain/windows.ts: the invariants must not ask the code
 * they check whether a device was inside its window. Only the spec forms the model's world uses are understood
 * (`daily HH:MM-HH:MM`, `sun HH:MM-HH:MM`); anything else throws, so a changed world cannot slip through.
 * Wall-clock times are resolved by luxon in the owner's zone; the world's windows avoid the hours a DST change
 * skips or repeats, so there is one reading of each.
 */
import { DateTime } from 'luxon';

export interface Span {
  start: Date;
  end: Date;
}

interface Spec {
  days: number[];
  start: { hour: number; minute: number };
  end: { hour: number; minute: number };
}

function parse(spec: string): Spec {
  const m = /^(daily|sun) (\d\d):(\d\d)-(\d\d):(\d\d)$/.exec(spec.trim());
  if (!m) throw new Error(`the model understands only "daily HH:MM-HH:MM" and "sun HH:MM-HH:MM" windows, not "${spec}"`);
  return {
    days: m[1] === 'daily' ? [1, 2, 3, 4, 5, 6, 7] : [7],
    start: { hour: Number(m[2]), minute: Number(m[3]) },
    end: { hour: Number(m[4]), minute: Number(m[5]) },
  };
}

/** The window that starts on this local date, if the spec has one that day. */
function windowOnDay(spec: Spec, day: DateTime, zone: string): Span | undefined {
  if (!spec.days.includes(day.weekday)) return undefined;
  const start = DateTime.fromObject({ year: day.year, month: day.month, day: day.day, ...spec.start }, { zone });
  const crosses = spec.end.hour * 60 + spec.end.minute <= spec.start.hour * 60 + spec.start.minute;
  const endDay = crosses ? day.plus({ days: 1 }) : day;
  const end = DateTime.fromObject({ year: endDay.year, month: endDay.month, day: endDay.day, ...spec.end }, { zone });
  return { start: start.toJSDate(), end: end.toJSDate() };
}

/** The window (start inclusive, end exclusive) containing `at`, or undefined. */
export function windowAt(specText: string, zone: string, at: Date): Span | undefined {
  const spec = parse(specText);
  const local = DateTime.fromJSDate(at, { zone }).startOf('day');
  for (const day of [local.minus({ days: 1 }), local]) {
    const w = windowOnDay(spec, day, zone);
    if (w && w.start.getTime() <= at.getTime() && at.getTime() < w.end.getTime()) return w;
  }
  return undefined;
}

/** Windows starting after `from` (exclusive), in order, up to `count`. */
export function windowsAfter(specText: string, zone: string, from: Date, count: number): Span[] {
  const spec = parse(specText);
  const out: Span[] = [];
  let day = DateTime.fromJSDate(from, { zone }).startOf('day').minus({ days: 1 });
  for (let i = 0; i < 30 && out.length < count; i++, day = day.plus({ days: 1 })) {
    const w = windowOnDay(spec, day, zone);
    if (w && w.start.getTime() > from.getTime()) out.push(w);
  }
  return out;
}
