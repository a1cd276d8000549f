// When "save your work tonight" goes out, across zones, DM times and DST days; one DM per person per window; the
// deferral limit. Windows come from the product's own window expansion (DST-exact), so these are the real
// instants the rollout will use.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { windowsFrom } from '../../src/domain/windows.ts';
import { DEFAULT_NOTICE_HOURS, latestDmQueueTime, noticeDeadline } from '../../src/domain/notice.ts';
import {
  deferral,
  dmSendTime,
  nightOf,
  planNight,
  renderDmText,
  windowPhrase,
  type DmRecipient,
  type NightDevice,
} from '../../src/domain/user-dm.ts';

const ZONES = ['America/Chicago', 'America/New_York', 'America/Los_Angeles', 'Europe/London', 'Australia/Sydney', 'Asia/Kolkata', 'Pacific/Auckland', 'America/Phoenix', 'UTC'];
const SPECS = ['daily 01:00-05:00', 'daily 22:00-02:00', 'sun 01:00-05:00', 'daily 02:00-04:00', 'mon,wed 23:30-03:00'];
const DM_TIMES = ['15:00', '09:30', '02:30', '00:00', '23:59', '12:00'];

function rule(spec: string) {
  const p = parseWindowSpec(spec);
  if (!p.ok) throw new Error(p.error);
  return p.value;
}

/** Instants spread over 2024-2027, with extra weight on the days clocks change in the zones above. */
const DST_DAYS = ['2024-03-10', '2024-11-03', '2024-03-31', '2024-10-27', '2024-04-07', '2024-10-06', '2025-03-09', '2025-11-02', '2025-09-28', '2026-04-05'];
const from = fc.oneof(
  fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2027, 0, 1) }),
  fc.tuple(fc.constantFrom(...DST_DAYS), fc.integer({ min: -36, max: 36 })).map(([d, h]) => Date.parse(`${d}T12:00:00Z`) + h * 3_600_000),
);

describe('send time', () => {
  it('is the last instant before the window at which the local clock reads the DM time, on the night it belongs to', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ZONES), fc.constantFrom(...SPECS), fc.constantFrom(...DM_TIMES), from, (zone, spec, dmTime, fromMs) => {
        const [window] = windowsFrom(rule(spec), zone, DateTime.fromMillis(fromMs, { zone }), 1).filter((w) => w.end > w.start);
        if (!window) return;
        const start = window.start.toJSDate();
        // No notice hours: the DM-time rule alone (the notice rule has its own properties below).
        const sendAt = dmSendTime(start, zone, dmTime, 0);
        const local = DateTime.fromJSDate(sendAt, { zone });
        const [h, m] = dmTime.split(':').map(Number) as [number, number];
        // Before the window, within a day (plus an hour for a clock change).
        expect(sendAt.getTime()).toBeLessThan(start.getTime());
        expect(start.getTime() - sendAt.getTime()).toBeLessThanOrEqual(25 * 3_600_000);
        // The local clock reads the DM time, unless that time did not exist that day (spring forward): then the
        // DM goes the moment the gap ends, which is the first instant of the day past the DM time.
        const wanted = DateTime.fromObject({ year: local.year, month: local.month, day: local.day, hour: h, minute: m }, { zone });
        if (wanted.hour === h && wanted.minute === m) {
          expect([local.hour, local.minute]).toEqual([h, m]);
        } else {
          expect(local.hour * 60 + local.minute).toBeGreaterThan(h * 60 + m);
          expect(local.minus({ hours: 1 }).offset).not.toBe(local.offset);
        }
        // Nothing later qualifies: the same DM time a day later is at or past the window's start.
        const dayLater = DateTime.fromObject({ year: local.year, month: local.month, day: local.day, hour: h, minute: m }, { zone }).plus({ days: 1 });
        expect(dayLater.toMillis()).toBeGreaterThanOrEqual(start.getTime());
        expect(nightOf(sendAt, zone)).toBe(local.toISODate());
      }),
      { numRuns: 3000 },
    );
  });

  it('a 01:00-05:00 window is announced at 15:00 local the afternoon before, on both DST nights and the days around them', () => {
    for (const [zone, days] of [
      ['America/Chicago', ['2024-03-09', '2024-03-10', '2024-03-11', '2024-11-02', '2024-11-03', '2024-11-04']],
      ['Europe/London', ['2024-03-30', '2024-03-31', '2024-10-26', '2024-10-27']],
      ['Australia/Sydney', ['2024-04-06', '2024-04-07', '2024-10-05', '2024-10-06']],
    ] as const) {
      for (const day of days) {
        const [window] = windowsFrom(rule('daily 01:00-05:00'), zone, DateTime.fromISO(`${day}T00:00`, { zone }), 1);
        const sendAt = DateTime.fromJSDate(dmSendTime(window!.start.toJSDate(), zone), { zone });
        expect(sendAt.toFormat('yyyy-MM-dd HH:mm'), `${zone} ${day}`).toBe(`${DateTime.fromISO(day).minus({ days: 1 }).toISODate()} 15:00`);
      }
    }
    // Chicago's spring-forward night is 3 real hours, fall-back 5: the DM says the wall-clock window with each end's zone.
    const spring = windowsFrom(rule('daily 01:00-05:00'), 'America/Chicago', DateTime.fromISO('2024-03-10T00:00', { zone: 'America/Chicago' }), 1)[0]!;
    const sent = dmSendTime(spring.start.toJSDate(), 'America/Chicago');
    expect(windowPhrase(spring.start.toJSDate(), spring.end.toJSDate(), 'America/Chicago', sent)).toBe('tonight between 1:00 AM CST and 5:00 AM CDT');
  });

  it('a DM time after the window start on the same day goes the day before, and a late-evening window the same day', () => {
    const zone = 'America/Chicago';
    const late = DateTime.fromISO('2024-06-12T22:00', { zone }).toJSDate();
    expect(DateTime.fromJSDate(dmSendTime(late, zone), { zone }).toFormat('yyyy-MM-dd HH:mm')).toBe('2024-06-12 15:00');
    const early = DateTime.fromISO('2024-06-12T01:00', { zone }).toJSDate();
    expect(DateTime.fromJSDate(dmSendTime(early, zone, '00:30', 0), { zone }).toFormat('yyyy-MM-dd HH:mm')).toBe('2024-06-12 00:30');
    // With the default four hours' notice, 00:30 is too late: the DM goes at the deadline less the delivery margin.
    expect(DateTime.fromJSDate(dmSendTime(early, zone, '00:30'), { zone }).toFormat('yyyy-MM-dd HH:mm')).toBe('2024-06-11 20:45');
  });
});

const device = (id: number, email: string, startIso: string, name = `PC-${id}`): NightDevice => ({
  deviceId: id,
  name,
  userEmail: email,
  releaseId: '2024-Feb',
  rolloutId: 1,
  windowStart: new Date(startIso),
  windowEnd: new Date(new Date(startIso).getTime() + 4 * 3_600_000),
  updates: ['5034765'],
});

describe('planNight', () => {
  const person = (id: number, email: string, zone: string | null, matched = true): [string, DmRecipient] => [
    email,
    { personId: id, email, displayName: null, zone, address: matched ? { platform: 'slack', channel: `U${id}`, recipient: `U${id}` } : undefined },
  ];

  it('gives each person ONE DM per window however many devices, nothing to devices with nothing to install, and lists the unmatched', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 6 }), fc.boolean()), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 0, max: 10 * 60 }),
        (devs, minutesAfter) => {
          const people = new Map([person(1, 'a@x.com', null), person(2, 'b@x.com', 'Europe/London'), person(3, 'c@x.com', null, false), person(4, 'd@x.com', 'America/New_York')]);
          const emails = ['a@x.com', 'b@x.com', 'c@x.com', 'd@x.com', 'e@x.com', 'f@x.com'];
          // Tonight's window opens 2024-03-10 01:00 Chicago (DST night); now is 15:00 the day before in Chicago or later.
          const devices = devs.map(([u, hasWork], i) => ({ ...device(i + 1, emails[u - 1]!, '2024-03-10T07:00:00Z'), updates: hasWork ? ['5034765'] : [] }));
          const now = new Date(Date.parse('2024-03-09T21:00:00Z') + minutesAfter * 60_000);
          const plan = planNight({ client: { id: 'acme', zone: 'America/Chicago', platform: 'slack' }, devices, people, now });
          const keys = plan.due.map((d) => d.key);
          expect(new Set(keys).size).toBe(keys.length);
          for (const dm of plan.due) {
            expect(dm.devices.every((d) => d.updates.length > 0)).toBe(true);
            expect(dm.sendAt.getTime()).toBeLessThanOrEqual(now.getTime());
            // Not sent after the notice deadline the sweep judges it by; planned with the delivery margin before it.
            expect(dm.notAfter).toEqual(noticeDeadline(new Date('2024-03-10T07:00:00Z'), DEFAULT_NOTICE_HOURS));
            expect(now.getTime()).toBeLessThan(dm.notAfter.getTime());
            const mine = devices.filter((d) => people.get(d.userEmail)?.personId === dm.personId && d.updates.length > 0);
            expect(dm.devices.map((d) => d.deviceId).sort()).toEqual(mine.map((d) => d.deviceId).sort());
          }
          // Everyone with work whose send time has come is either messaged or listed, never dropped.
          const withWork = new Set(devices.filter((d) => d.updates.length > 0).map((d) => d.userEmail));
          const reached = new Set([...plan.due.map((d) => emails[d.personId - 1]!), ...plan.unmatched.map((u) => u.email)]);
          for (const email of withWork) {
            const zone = people.get(email)?.zone ?? 'America/Chicago';
            const start = new Date('2024-03-10T07:00:00Z');
            const due = dmSendTime(start, zone).getTime() <= now.getTime() && now.getTime() <= latestDmQueueTime(start, DEFAULT_NOTICE_HOURS).getTime();
            expect(reached.has(email)).toBe(due);
          }
          expect(plan.unmatched.every((u) => !people.get(u.email)?.address)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('uses the person\u2019s own zone when the directory knows it, else the client\u2019s', () => {
    const people = new Map([person(1, 'a@x.com', null), person(2, 'b@x.com', 'America/Los_Angeles')]);
    const devices = [device(1, 'a@x.com', '2024-06-12T06:00:00Z'), device(2, 'b@x.com', '2024-06-12T06:00:00Z')];
    // 15:00 Chicago = 20:00Z: a is due, b (15:00 Los Angeles = 22:00Z) is not yet.
    const at20 = planNight({ client: { id: 'acme', zone: 'America/Chicago', platform: 'slack' }, devices, people, now: new Date('2024-06-11T20:00:00Z') });
    expect(at20.due.map((d) => d.personId)).toEqual([1]);
    const at22 = planNight({ client: { id: 'acme', zone: 'America/Chicago', platform: 'slack' }, devices, people, now: new Date('2024-06-11T22:00:00Z') });
    expect(at22.due.map((d) => d.personId)).toEqual([1, 2]);
    expect(at22.due[1]!.text).toContain('tonight between 11:00 PM and 3:00 AM PDT');
    expect(at22.due[0]!.text).toContain('tonight between 1:00 and 5:00 AM CDT');
    // Once the window has opened it is too late to warn: nothing is due.
    expect(planNight({ client: { id: 'acme', zone: 'America/Chicago', platform: 'slack' }, devices, people, now: new Date('2024-06-12T06:00:00Z') }).due).toEqual([]);
  });

  it('a second window on the same local date gets its own DM: the key is per person and window, not per date (issue 13)', () => {
    const people = new Map([person(1, 'a@x.com', null)]);
    const client = { id: 'acme', zone: 'America/Chicago', platform: 'slack' as const };
    // Ann's desktop is patched in Tuesday's 22:00-02:00 window (03:00Z), her laptop in Wednesday's 12:00-14:00
    // (17:00Z); both DMs go at 15:00 CDT on Tuesday 11 June. At 15:00 only the desktop has work; the laptop's
    // update comes due at 16:00 (a late approval), when its DM is still in time.
    const desktop = { ...device(1, 'a@x.com', '2024-06-12T03:00:00Z', 'ANN-PC'), windowEnd: new Date('2024-06-12T07:00:00Z') };
    const laptop = { ...device(2, 'a@x.com', '2024-06-12T17:00:00Z', 'ANN-LAPTOP'), windowEnd: new Date('2024-06-12T19:00:00Z') };
    const first = planNight({ client, devices: [desktop], people, now: new Date('2024-06-11T20:00:00Z') });
    const second = planNight({ client, devices: [desktop, laptop], people, now: new Date('2024-06-11T21:00:00Z') });
    expect(first.due.map((d) => d.night)).toEqual(['2024-06-11']);
    // The tick writes each key once (ON CONFLICT DO NOTHING): the laptop's DM must not share the desktop's key.
    const laptopDm = second.due.find((d) => d.devices.some((x) => x.name === 'ANN-LAPTOP'));
    expect(laptopDm?.night).toBe('2024-06-11');
    expect(laptopDm?.key).not.toBe(first.due[0]!.key);
    expect(laptopDm?.devices.map((d) => d.name)).toEqual(['ANN-LAPTOP']);
    expect(laptopDm?.text).toContain('tomorrow between 12:00 and 2:00 PM CDT');
    // Re-planning the desktop's window gives the same key as before: still one DM for that window.
    expect(second.due.map((d) => d.key)).toContain(first.due[0]!.key);
  });

  it('a DM that goes out after midnight (work due late, e.g. a pilot confirmed at 01:30) speaks from when it is sent', () => {
    const people = new Map([person(1, 'a@x.com', null)]);
    // Ann's laptop window is Wednesday 12:00-14:00 CDT; its DM time was Tuesday 15:00, but the work only came due at
    // 01:30 on Wednesday, still more than the notice hours ahead: for Ann, reading it then, the window is "today".
    const laptop = { ...device(1, 'a@x.com', '2024-06-12T17:00:00Z', 'ANN-LAPTOP'), windowEnd: new Date('2024-06-12T19:00:00Z') };
    const plan = planNight({ client: { id: 'acme', zone: 'America/Chicago', platform: 'slack' }, devices: [laptop], people, now: new Date('2024-06-12T06:30:00Z') });
    expect(plan.due.map((d) => d.text)).toEqual([expect.stringContaining('today between 12:00 and 2:00 PM CDT')]);
  });

  it('one window with several devices of one person is one DM; two windows are two, each naming its own', () => {
    const people = new Map([person(1, 'a@x.com', null)]);
    const devices = [
      device(1, 'a@x.com', '2024-06-12T03:00:00Z', 'ANN-PC'),
      device(2, 'a@x.com', '2024-06-12T03:00:00Z', 'ANN-PC2'),
      { ...device(3, 'a@x.com', '2024-06-12T17:00:00Z', 'ANN-LAPTOP'), windowEnd: new Date('2024-06-12T19:00:00Z') },
    ];
    const plan = planNight({ client: { id: 'acme', zone: 'America/Chicago', platform: 'slack' }, devices, people, now: new Date('2024-06-11T20:00:00Z') });
    expect(plan.due.map((d) => d.devices.map((x) => x.name))).toEqual([['ANN-PC', 'ANN-PC2'], ['ANN-LAPTOP']]);
    expect(plan.due.map((d) => d.key)).toEqual(['tonight:1:2024-06-12T03:00:00.000Z', 'tonight:1:2024-06-12T17:00:00.000Z']);
    // An unreachable person is listed once for the night, with every device.
    const unmatched = planNight({ client: { id: 'acme', zone: 'America/Chicago', platform: 'slack' }, devices, people: new Map([person(1, 'a@x.com', null, false)]), now: new Date('2024-06-11T20:00:00Z') });
    expect(unmatched.unmatched).toEqual([{ email: 'a@x.com', devices: ['ANN-PC', 'ANN-PC2', 'ANN-LAPTOP'], night: '2024-06-11' }]);
  });

  it('words each DM as if it were the only one: the send times and window words shared across a night are each person’s own', () => {
    // Two windows a few hours apart and people in many zones, planned together: every DM must say what planning
    // that person alone says (its send time, night and text), whatever the others' zones and windows were.
    // Start and length: two windows share a start and differ only in their end.
    const windows: Array<[string, number]> = [['2024-03-10T07:00:00Z', 4], ['2024-03-10T07:00:00Z', 2], ['2024-03-10T03:00:00Z', 4], ['2024-03-09T22:00:00Z', 3]];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...ZONES, null), fc.array(fc.integer({ min: 0, max: windows.length - 1 }), { minLength: 1, maxLength: 3 })), { minLength: 1, maxLength: 12 }),
        fc.constantFrom('America/Chicago', 'Pacific/Auckland'),
        (crowd, clientZone) => {
          const client = { id: 'acme', zone: clientZone, platform: 'slack' as const, noticeHours: 0, dmTime: '15:00' };
          const now = new Date('2024-03-09T21:00:00Z');
          const people = new Map(crowd.map(([zone], i) => person(i + 1, `p${i}@x.com`, zone)));
          const devices = crowd.flatMap(([, theirs], i) =>
            theirs.map((w, j) => {
              const [start, hours] = windows[w]!;
              return { ...device(i * 10 + j + 1, `p${i}@x.com`, start, `P${i}-PC${j}`), windowEnd: new Date(Date.parse(start) + hours * 3_600_000) };
            }),
          );
          const together = planNight({ client, devices, people, now }).due;
          const alone = crowd.flatMap((_, i) =>
            planNight({ client, devices: devices.filter((d) => d.userEmail === `p${i}@x.com`), people: new Map([[...people][i]!]), now }).due,
          );
          const said = (dms: typeof together) => dms.map((dm) => [dm.key, dm.sendAt.toISOString(), dm.night, dm.zone, dm.text]).sort();
          expect(said(together)).toEqual(said(alone));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('fills a client template and leaves unknown fields visible', () => {
    const text = renderDmText('{name}: {devices} {when}. {oops}', { name: 'Ann', devices: [device(1, 'a@x.com', '2024-01-16T07:00:00Z', 'FRONT-1'), device(2, 'a@x.com', '2024-01-16T07:00:00Z', 'FRONT-2')], zone: 'America/Chicago', sendAt: new Date('2024-01-15T21:00:00Z') });
    expect(text).toBe('Ann: FRONT-1 and FRONT-2 tonight between 1:00 and 5:00 AM CST. {oops}');
  });

  it('the default message speaks of two computers as two, to the end', () => {
    const two = [device(1, 'a@x.com', '2024-01-16T07:00:00Z', 'FRONT-1'), device(2, 'a@x.com', '2024-01-16T07:00:00Z', 'FRONT-2')];
    const text = renderDmText(undefined, { name: 'Ann', devices: two, zone: 'America/Chicago', sendAt: new Date('2024-01-15T21:00:00Z') });
    expect(text).toContain('your computers FRONT-1 and FRONT-2 will be updated');
    expect(text).toContain('*leave the computers on*');
    expect(renderDmText(undefined, { name: 'Ann', devices: two.slice(0, 1), zone: 'America/Chicago', sendAt: new Date('2024-01-15T21:00:00Z') })).toContain('*leave the computer on*');
  });
});

describe('deferral limit', () => {
  it('allows max deferrals per release, then hands the decision to the engineers', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 8 }), (max, used) => {
        const v = deferral(used, max);
        expect(v.allowed).toBe(used < max);
        if (v.allowed) expect(v.left).toBe(max - used - 1);
      }),
    );
    expect(deferral(0, undefined).allowed).toBe(true);
    expect(deferral(2, undefined).allowed).toBe(false);
  });
});
