/**
 * The text form of a maintenance window: `daily 01:00-05:00`, `sun 01:00-05:00`,
 * `mon,wed,fri 22:00-02:00`, `mon-fri 22:00-02:00`. Times are wall-clock in the zone of whoever owns
 * the window; an end at or before the start crosses midnight and the window belongs to its start day.
 */

/** ISO weekday numbers, as luxon uses them: 1 = Monday … 7 = Sunday. */
export type IsoWeekday = 1 | 2 | 3 | 4 | 5 | 6 | 7;

export interface WindowRule {
  /** The days a window starts on, ascending, no repeats. */
  days: IsoWeekday[];
  /** Minutes after local midnight. */
  startMinute: number;
  /** Minutes after local midnight; at or before startMinute means the window ends the next day. */
  endMinute: number;
  /** The spec in its canonical spelling. */
  spec: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export const WINDOW_EXAMPLES = '"daily 01:00-05:00" or "mon,wed 22:00-02:00"';

function dayNumber(name: string): IsoWeekday | undefined {
  const index = DAY_NAMES.indexOf(name.slice(0, 3) as (typeof DAY_NAMES)[number]);
  // Accept the three-letter form and full names (monday, tuesday…), nothing looser.
  if (index < 0) return undefined;
  const full = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'][index];
  if (name !== DAY_NAMES[index] && name !== full) return undefined;
  return (index + 1) as IsoWeekday;
}

function parseTime(text: string, boundary: 'start' | 'end'): number | undefined {
  // People write "22:00-24:00" for "until midnight"; it is the same window as "22:00-00:00".
  if (text === '24:00' && boundary === 'end') return 0;
  const match = /^([01]?\d|2[0-3]):([0-5]\d)$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * 60 + Number(match[2]);
}

function parseDays(text: string): IsoWeekday[] | string {
  if (text === 'daily') return [1, 2, 3, 4, 5, 6, 7];
  if (text === 'weekdays') return [1, 2, 3, 4, 5];
  if (text === 'weekends') return [6, 7];
  const days = new Set<IsoWeekday>();
  for (const part of text.split(',')) {
    const range = part.split('-');
    if (range.length === 1) {
      const day = dayNumber(part);
      if (day === undefined) return `"${part}" is not a day (use mon, tue, wed, thu, fri, sat, sun or daily)`;
      days.add(day);
    } else if (range.length === 2) {
      const from = dayNumber(range[0]!);
      const to = dayNumber(range[1]!);
      if (from === undefined || to === undefined) return `"${part}" is not a day range (e.g. mon-fri)`;
      // A range may wrap the week: fri-mon is fri, sat, sun, mon.
      for (let d = from; ; d = ((d % 7) + 1) as IsoWeekday) {
        days.add(d);
        if (d === to) break;
      }
    } else {
      return `"${part}" is not a day range (e.g. mon-fri)`;
    }
  }
  return [...days].sort((a, b) => a - b);
}

function canonical(days: IsoWeekday[], startMinute: number, endMinute: number): string {
  const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
  const dayText = days.length === 7 ? 'daily' : days.map((d) => DAY_NAMES[d - 1]).join(',');
  return `${dayText} ${hhmm(startMinute)}-${hhmm(endMinute)}`;
}

export function parseWindowSpec(input: string): ParseResult<WindowRule> {
  // Spaces around the commas between days and the dash between times are forgiven ("mon, wed 22:00 - 02:00").
  const text = input
    .trim()
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .replace(/ ?, ?/g, ',')
    .replace(/(\d) ?- ?(\d)/g, '$1-$2');
  const match = /^(\S+) (\S+)-(\S+)$/.exec(text);
  if (!match) return { ok: false, error: `expected e.g. ${WINDOW_EXAMPLES}` };
  const days = parseDays(match[1]!);
  if (typeof days === 'string') return { ok: false, error: days };
  const startMinute = parseTime(match[2]!, 'start');
  const endMinute = parseTime(match[3]!, 'end');
  if (startMinute === undefined) return { ok: false, error: `"${match[2]}" is not a time (HH:MM, 00:00 to 23:59)` };
  if (endMinute === undefined) return { ok: false, error: `"${match[3]}" is not a time (HH:MM, 00:00 to 23:59)` };
  return { ok: true, value: { days, startMinute, endMinute, spec: canonical(days, startMinute, endMinute) } };
}

/** Length of the window on the wall clock, in minutes (the real length differs on DST nights). */
export function nominalMinutes(rule: WindowRule): number {
  const span = rule.endMinute - rule.startMinute;
  return span > 0 ? span : span + 24 * 60;
}
