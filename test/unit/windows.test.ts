import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { parseWindowSpec, type WindowRule } from '../../src/domain/window-spec.ts';
import {
  canStartStep,
  canonicalZoneName,
  clockChangeMinutes,
  isCollapsed,
  isValidZone,
  nextWindow,
  remainingMinutes,
  windowContaining,
  windowMinutes,
  windowsFrom,
  type MaintenanceWindow,
} from '../../src/domain/windows.ts';

function rule(spec: string): WindowRule {
  const parsed = parseWindowSpec(spec);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

/** The window the rule gives on a local date (looked up from the start of that day, so it is that day's). */
function windowOn(spec: string, zone: string, isoDate: string): MaintenanceWindow {
  const from = DateTime.fromISO(`${isoDate}T00:00`, { zone });
  const found = windowsFrom(rule(spec), zone, from, 3).find((window) => window.day === isoDate);
  if (!found) throw new Error(`no window on ${isoDate}`);
  return found;
}

const at = (iso: string) => DateTime.fromISO(iso, { setZone: true });

describe('daily 01:00-05:00 on the DST nights of 2025 and 2026', () => {
  // Hand-worked from each zone's published rules, not from the code under test.
  const nights: Array<[zone: string, date: string, start: string, end: string, realMinutes: number]> = [
    ['America/Chicago', '2025-03-09', '2025-03-09T01:00:00.000-06:00', '2025-03-09T05:00:00.000-05:00', 180],
    ['America/Chicago', '2025-11-02', '2025-11-02T01:00:00.000-05:00', '2025-11-02T05:00:00.000-06:00', 300],
    ['America/Chicago', '2026-03-08', '2026-03-08T01:00:00.000-06:00', '2026-03-08T05:00:00.000-05:00', 180],
    ['America/Chicago', '2026-11-01', '2026-11-01T01:00:00.000-05:00', '2026-11-01T05:00:00.000-06:00', 300],
    ['America/New_York', '2025-03-09', '2025-03-09T01:00:00.000-05:00', '2025-03-09T05:00:00.000-04:00', 180],
    ['America/New_York', '2025-11-02', '2025-11-02T01:00:00.000-04:00', '2025-11-02T05:00:00.000-05:00', 300],
    ['America/New_York', '2026-03-08', '2026-03-08T01:00:00.000-05:00', '2026-03-08T05:00:00.000-04:00', 180],
    ['America/New_York', '2026-11-01', '2026-11-01T01:00:00.000-04:00', '2026-11-01T05:00:00.000-05:00', 300],
    // London springs forward at 01:00 GMT, so the window's own start is skipped and it opens at 02:00 BST.
    ['Europe/London', '2025-03-30', '2025-03-30T02:00:00.000+01:00', '2025-03-30T05:00:00.000+01:00', 180],
    ['Europe/London', '2025-10-26', '2025-10-26T01:00:00.000+01:00', '2025-10-26T05:00:00.000+00:00', 300],
    ['Europe/London', '2026-03-29', '2026-03-29T02:00:00.000+01:00', '2026-03-29T05:00:00.000+01:00', 180],
    ['Europe/London', '2026-10-25', '2026-10-25T01:00:00.000+01:00', '2026-10-25T05:00:00.000+00:00', 300],
    // Southern hemisphere: clocks go back in April and forward in October.
    ['Australia/Sydney', '2025-04-06', '2025-04-06T01:00:00.000+11:00', '2025-04-06T05:00:00.000+10:00', 300],
    ['Australia/Sydney', '2025-10-05', '2025-10-05T01:00:00.000+10:00', '2025-10-05T05:00:00.000+11:00', 180],
    ['Australia/Sydney', '2026-04-05', '2026-04-05T01:00:00.000+11:00', '2026-04-05T05:00:00.000+10:00', 300],
    ['Australia/Sydney', '2026-10-04', '2026-10-04T01:00:00.000+10:00', '2026-10-04T05:00:00.000+11:00', 180],
    // No DST: the US change nights are ordinary nights here.
    ['Asia/Tokyo', '2026-03-08', '2026-03-08T01:00:00.000+09:00', '2026-03-08T05:00:00.000+09:00', 240],
    ['Asia/Tokyo', '2025-11-02', '2025-11-02T01:00:00.000+09:00', '2025-11-02T05:00:00.000+09:00', 240],
    ['America/Phoenix', '2026-03-08', '2026-03-08T01:00:00.000-07:00', '2026-03-08T05:00:00.000-07:00', 240],
    ['America/Phoenix', '2026-11-01', '2026-11-01T01:00:00.000-07:00', '2026-11-01T05:00:00.000-07:00', 240],
  ];

  it.each(nights)('%s %s', (zone, date, start, end, realMinutes) => {
    const window = windowOn('daily 01:00-05:00', zone, date);
    expect(window.start.toISO()).toBe(start);
    expect(window.end.toISO()).toBe(end);
    expect(windowMinutes(window)).toBe(realMinutes);
    expect(window.start.zoneName).toBe(zone);
    expect(window.end.zoneName).toBe(zone);
  });

  it('lists the spring-forward night once, between two ordinary nights', () => {
    const windows = windowsFrom(rule('daily 01:00-05:00'), 'America/Chicago', at('2026-03-07T12:00:00-06:00'), 3);
    expect(windows.map((window) => [window.day, windowMinutes(window)])).toEqual([
      ['2026-03-08', 180],
      ['2026-03-09', 240],
      ['2026-03-10', 240],
    ]);
  });

  it('gives the Sunday server window its short night', () => {
    const windows = windowsFrom(rule('sun 01:00-05:00'), 'America/Chicago', at('2026-03-01T00:00:00-06:00'), 3);
    expect(windows.map((window) => [window.start.toISO(), windowMinutes(window)])).toEqual([
      ['2026-03-01T01:00:00.000-06:00', 240],
      ['2026-03-08T01:00:00.000-06:00', 180],
      ['2026-03-15T01:00:00.000-05:00', 240],
    ]);
  });
});

describe('each DST rule, America/Chicago 2026', () => {
  it('a start in the skipped hour begins when the gap ends (not where luxon would shift it)', () => {
    const window = windowOn('daily 02:30-05:00', 'America/Chicago', '2026-03-08');
    expect(window.start.toISO()).toBe('2026-03-08T03:00:00.000-05:00');
    expect(windowMinutes(window)).toBe(120);
    // luxon alone would move 02:30 forward by the gap's length, to 03:30.
    const naive = DateTime.fromObject({ year: 2026, month: 3, day: 8, hour: 2, minute: 30 }, { zone: 'America/Chicago' });
    expect(naive.toISO()).toBe('2026-03-08T03:30:00.000-05:00');
  });

  it('an end in the skipped hour is the instant the gap ends', () => {
    const window = windowOn('daily 00:00-02:30', 'America/Chicago', '2026-03-08');
    expect(window.start.toISO()).toBe('2026-03-08T00:00:00.000-06:00');
    expect(window.end.toISO()).toBe('2026-03-08T03:00:00.000-05:00');
    expect(windowMinutes(window)).toBe(120);
  });

  it('a start in the repeated hour takes the first occurrence', () => {
    const window = windowOn('daily 01:30-05:00', 'America/Chicago', '2026-11-01');
    expect(window.start.toISO()).toBe('2026-11-01T01:30:00.000-05:00');
    expect(window.end.toISO()).toBe('2026-11-01T05:00:00.000-06:00');
    expect(windowMinutes(window)).toBe(270);
  });

  it('an end in the repeated hour takes the second occurrence', () => {
    const window = windowOn('daily 00:00-01:30', 'America/Chicago', '2026-11-01');
    expect(window.start.toISO()).toBe('2026-11-01T00:00:00.000-05:00');
    expect(window.end.toISO()).toBe('2026-11-01T01:30:00.000-06:00');
    expect(windowMinutes(window)).toBe(150);
  });

  it('an end exactly where the repeated hour begins is still its second occurrence', () => {
    const window = windowOn('daily 00:00-01:00', 'America/Chicago', '2026-11-01');
    expect(window.end.toISO()).toBe('2026-11-01T01:00:00.000-06:00');
    expect(windowMinutes(window)).toBe(120);
  });

  it('a start exactly where the skipped hour begins opens when it ends', () => {
    const window = windowOn('daily 02:00-04:00', 'America/Chicago', '2026-03-08');
    expect(window.start.toISO()).toBe('2026-03-08T03:00:00.000-05:00');
    expect(windowMinutes(window)).toBe(60);
  });

  it('a window crossing midnight into the change night ends by the new clock', () => {
    const window = windowOn('sat 22:00-03:00', 'America/Chicago', '2026-03-07');
    expect(window.start.toISO()).toBe('2026-03-07T22:00:00.000-06:00');
    expect(window.end.toISO()).toBe('2026-03-08T03:00:00.000-05:00');
    expect(clockChangeMinutes(window, rule('sat 22:00-03:00'))).toBe(-60);
  });

  it('a window wholly inside the skipped hour collapses to zero length at the gap end, is listed, and holds nothing', () => {
    const spec = 'daily 02:00-02:30';
    const windows = windowsFrom(rule(spec), 'America/Chicago', at('2026-03-07T12:00:00-06:00'), 3);
    expect(windows.map((window) => window.day)).toEqual(['2026-03-08', '2026-03-09', '2026-03-10']);
    const [collapsed] = windows;
    expect(collapsed!.start.toISO()).toBe('2026-03-08T03:00:00.000-05:00');
    expect(collapsed!.end.toISO()).toBe('2026-03-08T03:00:00.000-05:00');
    expect(isCollapsed(collapsed!)).toBe(true);
    expect(isCollapsed(windows[1]!)).toBe(false);
    expect(canStartStep(collapsed!, collapsed!.start, 0)).toBe(false);
    expect(windowContaining(rule(spec), 'America/Chicago', collapsed!.start)).toBeUndefined();
    // The next usable window is the following night's.
    expect(nextWindow(rule(spec), 'America/Chicago', at('2026-03-08T00:00:00-06:00')).start.toISO()).toBe(
      '2026-03-09T02:00:00.000-05:00',
    );
  });

  it('a nearly-24-hour window is cut at the next one\'s start on fall-back night, so none overlap', () => {
    const windows = windowsFrom(rule('daily 01:30-01:00'), 'America/Chicago', at('2026-10-31T12:00:00-05:00'), 2);
    // By "end takes the second occurrence" Saturday's window would end at 01:00 CST (07:00Z), after Sunday's
    // starts at 01:30 CDT (06:30Z); it stops there instead.
    expect(windows[0]!.end.toISO()).toBe('2026-11-01T01:30:00.000-05:00');
    expect(windows[1]!.start.toISO()).toBe('2026-11-01T01:30:00.000-05:00');
    expect(windows[1]!.end.toISO()).toBe('2026-11-02T01:00:00.000-06:00');
  });
});

describe('zones with unusual changes', () => {
  it('Lord Howe moves its clocks by 30 minutes', () => {
    const spring = windowOn('daily 01:00-05:00', 'Australia/Lord_Howe', '2025-10-05');
    expect([spring.start.toISO(), spring.end.toISO(), windowMinutes(spring)]).toEqual([
      '2025-10-05T01:00:00.000+10:30',
      '2025-10-05T05:00:00.000+11:00',
      210,
    ]);
    const autumn = windowOn('daily 01:00-05:00', 'Australia/Lord_Howe', '2025-04-06');
    expect(windowMinutes(autumn)).toBe(270);
    // Its gap is 02:00-02:30, so a 02:15 start opens at 02:30.
    expect(windowOn('daily 02:15-04:00', 'Australia/Lord_Howe', '2025-10-05').start.toISO()).toBe(
      '2025-10-05T02:30:00.000+11:00',
    );
  });

  it('Santiago skips midnight: a 00:00 start opens at 01:00', () => {
    const window = windowOn('daily 00:00-05:00', 'America/Santiago', '2025-09-07');
    expect([window.start.toISO(), window.end.toISO(), windowMinutes(window)]).toEqual([
      '2025-09-07T01:00:00.000-03:00',
      '2025-09-07T05:00:00.000-03:00',
      240,
    ]);
  });

  it('Santiago repeats 23:00-24:00 on Saturday night: the window takes both', () => {
    const window = windowOn('daily 23:00-01:00', 'America/Santiago', '2025-04-05');
    expect([window.start.toISO(), window.end.toISO(), windowMinutes(window)]).toEqual([
      '2025-04-05T23:00:00.000-03:00',
      '2025-04-06T01:00:00.000-04:00',
      180,
    ]);
  });

  it('Havana and Beirut skip midnight too', () => {
    const havana = windowOn('daily 00:00-05:00', 'America/Havana', '2025-03-09');
    expect([havana.start.toISO(), windowMinutes(havana)]).toEqual(['2025-03-09T01:00:00.000-04:00', 240]);
    const beirut = windowOn('daily 00:00-02:00', 'Asia/Beirut', '2025-03-30');
    expect([beirut.start.toISO(), beirut.end.toISO(), windowMinutes(beirut)]).toEqual([
      '2025-03-30T01:00:00.000+03:00',
      '2025-03-30T02:00:00.000+03:00',
      60,
    ]);
  });

  it('Samoa skipped 2011-12-30 entirely: that day\'s window collapses, neighbours are whole', () => {
    const windows = windowsFrom(rule('daily 01:00-05:00'), 'Pacific/Apia', at('2011-12-29T00:00:00-10:00'), 3);
    expect(windows.map((window) => [window.day, window.start.toISO(), windowMinutes(window)])).toEqual([
      ['2011-12-29', '2011-12-29T01:00:00.000-10:00', 240],
      ['2011-12-30', '2011-12-31T00:00:00.000+14:00', 0],
      ['2011-12-31', '2011-12-31T01:00:00.000+14:00', 240],
    ]);
  });
});

describe('windowsFrom', () => {
  const daily = rule('daily 01:00-05:00');

  it('puts a window in progress first, with its real start', () => {
    const windows = windowsFrom(daily, 'America/Chicago', at('2026-03-08T04:30:00-05:00'), 2);
    expect(windows[0]!.start.toISO()).toBe('2026-03-08T01:00:00.000-06:00');
    expect(windows[1]!.day).toBe('2026-03-09');
  });

  it('does not list a window that ends exactly at from', () => {
    const windows = windowsFrom(daily, 'America/Chicago', at('2026-03-08T05:00:00-05:00'), 1);
    expect(windows[0]!.day).toBe('2026-03-09');
  });

  it('answers in the window zone whatever zone from is in', () => {
    const windows = windowsFrom(daily, 'Asia/Tokyo', at('2026-03-07T16:30:00Z'), 1);
    // 16:30Z is 01:30 in Tokyo on the 8th: that window is in progress.
    expect(windows[0]!.start.toISO()).toBe('2026-03-08T01:00:00.000+09:00');
  });

  it('crosses midnight and belongs to its start day', () => {
    const windows = windowsFrom(rule('mon-fri 22:00-02:00'), 'America/New_York', at('2026-03-06T12:00:00-05:00'), 2);
    expect(windows.map((window) => [window.day, window.start.toISO(), window.end.toISO()])).toEqual([
      ['2026-03-06', '2026-03-06T22:00:00.000-05:00', '2026-03-07T02:00:00.000-05:00'],
      ['2026-03-09', '2026-03-09T22:00:00.000-04:00', '2026-03-10T02:00:00.000-04:00'],
    ]);
  });

  it('rejects a zone that does not exist, an invalid from, a bad count', () => {
    const from = at('2026-03-08T00:00:00Z');
    expect(() => windowsFrom(daily, 'America/Chicgo', from, 1)).toThrow(/not an IANA time zone/);
    expect(() => windowsFrom(daily, 'America/Chicago', DateTime.fromISO('not a date'), 1)).toThrow(RangeError);
    expect(() => windowsFrom(daily, 'America/Chicago', from, -1)).toThrow(RangeError);
    expect(windowsFrom(daily, 'America/Chicago', from, 0)).toEqual([]);
  });
});

describe('windowContaining and nextWindow', () => {
  const daily = rule('daily 01:00-05:00');
  const zone = 'America/Chicago';

  it('contains its start, not its end', () => {
    const window = windowOn('daily 01:00-05:00', zone, '2026-11-01');
    expect(windowContaining(daily, zone, window.start)?.day).toBe('2026-11-01');
    expect(windowContaining(daily, zone, window.end.minus({ milliseconds: 1 }))?.day).toBe('2026-11-01');
    expect(windowContaining(daily, zone, window.end)).toBeUndefined();
    expect(windowContaining(daily, zone, window.start.minus({ milliseconds: 1 }))).toBeUndefined();
  });

  it('knows both 01:30s of fall-back night are inside', () => {
    expect(windowContaining(daily, zone, at('2026-11-01T01:30:00-05:00'))?.day).toBe('2026-11-01');
    expect(windowContaining(daily, zone, at('2026-11-01T01:30:00-06:00'))?.day).toBe('2026-11-01');
    expect(windowContaining(daily, zone, at('2026-11-01T04:59:00-06:00'))?.day).toBe('2026-11-01');
  });

  it('nextWindow is the next one to open strictly after the instant', () => {
    expect(nextWindow(daily, zone, at('2026-03-08T01:00:00-06:00')).day).toBe('2026-03-09');
    expect(nextWindow(daily, zone, at('2026-03-08T00:59:59-06:00')).day).toBe('2026-03-08');
  });
});

describe('remainingMinutes and canStartStep', () => {
  const window = windowOn('daily 01:00-05:00', 'America/Chicago', '2026-03-08');

  it('counts real minutes, not wall-clock ones', () => {
    // At 01:30 CST the clock says 3h30m are left, but 02:00-03:00 never happens.
    expect(remainingMinutes(window, at('2026-03-08T01:30:00-06:00'))).toBe(150);
    expect(remainingMinutes(window, at('2026-03-08T04:00:00-05:00'))).toBe(60);
    expect(remainingMinutes(window, at('2026-03-07T00:00:00-06:00'))).toBe(180);
    expect(remainingMinutes(window, at('2026-03-08T05:00:00-05:00'))).toBe(0);
  });

  it('allows a step only inside the window with the budget left', () => {
    expect(canStartStep(window, at('2026-03-08T04:00:00-05:00'), 60)).toBe(true);
    expect(canStartStep(window, at('2026-03-08T04:00:00-05:00'), 61)).toBe(false);
    expect(canStartStep(window, at('2026-03-08T01:30:00-06:00'), 151)).toBe(false);
    expect(canStartStep(window, at('2026-03-08T00:59:59-06:00'), 1)).toBe(false);
    expect(canStartStep(window, window.start, 180)).toBe(true);
    expect(canStartStep(window, window.end, 0)).toBe(false);
  });

  it('gives fall-back night its extra hour', () => {
    const long = windowOn('daily 01:00-05:00', 'America/Chicago', '2026-11-01');
    expect(remainingMinutes(long, at('2026-11-01T01:30:00-06:00'))).toBe(210);
    expect(canStartStep(long, at('2026-11-01T01:30:00-05:00'), 270)).toBe(true);
  });
});

describe('isValidZone', () => {
  it.each(['America/Chicago', 'Europe/London', 'Australia/Lord_Howe', 'UTC'])('accepts %s', (zone) => {
    expect(isValidZone(zone)).toBe(true);
  });
  it.each(['CST', 'IST', 'EST', 'EST5EDT', 'America/Chicgo', 'Mars/Olympus', '', ' ', '+05:00'])('rejects %j', (zone) => {
    expect(isValidZone(zone)).toBe(false);
  });
});

describe('canonicalZoneName', () => {
  it('fixes letter case and refuses what isValidZone refuses', () => {
    expect(canonicalZoneName('america/chicago')).toBe('America/Chicago');
    expect(canonicalZoneName('Australia/Lord_Howe')).toBe('Australia/Lord_Howe');
    expect(canonicalZoneName('CST')).toBeUndefined();
  });

  it('accepts every zone the runtime lists', () => {
    const rejected = Intl.supportedValuesOf('timeZone').filter((zone) => !isValidZone(zone));
    expect(rejected).toEqual([]);
  });
});
