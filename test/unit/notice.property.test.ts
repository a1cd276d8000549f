// No unwarned reboot, as pure rules: when the "save your work" DM is planned, which devices the sweep's filter
// lets into a window, and what the DM says for a daytime window. Windows come from the product's own window
// expansion (DST-exact); the DM planning is the tick's own planNight.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';
import { nextWindow, windowsFrom, type MaintenanceWindow } from '../../src/domain/windows.ts';
import {
  admitWarned,
  DM_DELIVERY_MARGIN_MS,
  DM_PLAN_LEAD_MS,
  firstWarnableWindow,
  latestDmQueueTime,
  latestDmSendTime,
  noticeDeadline,
  noticeHoursOf,
  plannedWindows,
  waiverFor,
  warnedInTime,
  type NoticeEvidence,
  type NoticeWaiver,
} from '../../src/domain/notice.ts';
import { answerLine, dmSendTime, planNight, renderDmText, type DmRecipient, type NightDevice } from '../../src/domain/user-dm.ts';

const ZONES = ['America/Chicago', 'America/New_York', 'Europe/London', 'Australia/Sydney', 'Asia/Kolkata', 'Pacific/Auckland', 'UTC'];
const SPECS = ['daily 01:00-05:00', 'daily 22:00-02:00', 'daily 12:00-14:00', 'mon-fri 16:00-18:00', 'sun 01:00-05:00', 'mon,wed 23:30-03:00', 'daily 06:00-07:00'];
const DM_TIMES = ['15:00', '09:30', '02:30', '00:00', '23:59', '12:00', '21:00'];
const HOUR = 3_600_000;

function rule(spec: string) {
  const p = parseWindowSpec(spec);
  if (!p.ok) throw new Error(p.error);
  return p.value;
}

const instant = fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2027, 0, 1) });

const device = (window: MaintenanceWindow, email = 'ann@x.example'): NightDevice => ({
  deviceId: 1,
  name: 'PC-1',
  userEmail: email,
  releaseId: '2024-Feb',
  rolloutId: 1,
  windowStart: window.start.toJSDate(),
  windowEnd: window.end.toJSDate(),
  updates: ['5034765'],
});

const ann = (zone: string | null): Map<string, DmRecipient> =>
  new Map([['ann@x.example', { personId: 1, email: 'ann@x.example', displayName: 'Ann', zone, address: { platform: 'slack' as const, channel: 'U1', recipient: 'U1' } }]]);

describe('when the DM goes out', () => {
  it('is never after the window start less the notice hours (and a quarter of an hour to deliver it), and at the DM time whenever that leaves enough notice', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ZONES), fc.constantFrom(...SPECS), fc.constantFrom(...DM_TIMES), fc.integer({ min: 0, max: 30 }), instant, (zone, spec, dmTime, notice, fromMs) => {
        const [window] = windowsFrom(rule(spec), zone, DateTime.fromMillis(fromMs, { zone }), 1).filter((w) => w.end > w.start);
        if (!window) return;
        const start = window.start.toJSDate();
        const sendAt = dmSendTime(start, zone, dmTime, notice);
        // Planned early enough that a tick a few minutes late still queues it before the deadline's margin.
        expect(sendAt.getTime()).toBeLessThanOrEqual(start.getTime() - notice * HOUR - DM_PLAN_LEAD_MS);
        expect(DM_PLAN_LEAD_MS - DM_DELIVERY_MARGIN_MS).toBeGreaterThanOrEqual(5 * 60_000);
        const atDmTime = dmSendTime(start, zone, dmTime, 0);
        if (atDmTime.getTime() <= latestDmSendTime(start, notice).getTime()) expect(sendAt).toEqual(atDmTime);
        else expect(sendAt).toEqual(latestDmSendTime(start, notice));
      }),
      { numRuns: 2000 },
    );
  });

  it('from work due at any instant, the first window the filter admits is the first a DM could reach in time (the plan card\u2019s first night); none before it; its DM went out in time', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ZONES),
        fc.constantFrom(...ZONES, null),
        fc.constantFrom(...SPECS),
        fc.constantFrom(...DM_TIMES),
        fc.integer({ min: 0, max: 30 }),
        instant,
        fc.integer({ min: 0, max: 2 * DM_DELIVERY_MARGIN_MS }),
        (zone, personZone, spec, dmTime, notice, dueMs, deliveryMs) => {
          const r = rule(spec);
          const due = new Date(dueMs);
          const client = { id: 'acme', zone, dmTime, noticeHours: notice, platform: 'slack' as const };
          let lower = due;
          let window = nextWindow(r, zone, DateTime.fromJSDate(due, { zone }));
          for (let k = 0; k < 400; k++) {
            const start = window.start.toJSDate();
            const sendAt = dmSendTime(start, personZone ?? zone, dmTime, notice);
            // The tick (every minute from `due` on) plans the first window a DM can still reach in time, once its
            // send time has come: the first such moment is when this window's DM is written, if it is at all.
            const tick = new Date(Math.max(lower.getTime(), sendAt.getTime()));
            const considered = firstWarnableWindow(r, zone, tick, notice).start.toMillis() === window.start.toMillis();
            const planned = considered ? planNight({ client, devices: [device(window)], people: ann(personZone), now: tick }).due : [];
            const evidence = new Map<number, NoticeEvidence>();
            if (planned.length > 0) {
              expect(planned[0]!.sendAt.getTime()).toBeLessThanOrEqual(noticeDeadline(start, notice).getTime());
              evidence.set(1, { sentAt: new Date(tick.getTime() + deliveryMs), answered: false });
            }
            const admitted = admitWarned([{ id: 1, userEmail: 'ann@x.example' }, { id: 2, userEmail: null }], start, () => notice, evidence);
            // A device without a user follows its window alone.
            expect(admitted.some((d) => d.id === 2)).toBe(true);
            const userAdmitted = admitted.some((d) => d.id === 1);
            if (userAdmitted) {
              // I3: admitted only with a DM the platform took at least notice hours before the start.
              expect(evidence.get(1)!.sentAt!.getTime()).toBeLessThanOrEqual(start.getTime() - notice * HOUR);
            }
            if (planned.length > 0) {
              // The first window a DM was planned for is the plan card's first night; delivered within the
              // margin, it is admitted.
              expect(window.start.toMillis()).toBe(plannedWindows(r, zone, due, notice, 1)[0]!.start.toMillis());
              if (deliveryMs <= DM_DELIVERY_MARGIN_MS) expect(userAdmitted).toBe(true);
              return;
            }
            expect(userAdmitted).toBe(false);
            lower = new Date(Math.max(lower.getTime(), latestDmQueueTime(start, notice).getTime() + 1));
            window = nextWindow(r, zone, window.start);
          }
          throw new Error('no window in 400 could be announced');
        },
      ),
      { numRuns: 1500 },
    );
  });
});

describe('the sweep\u2019s filter', () => {
  it('never admits a user\u2019s device whose DM was not sent in time or answered, and always admits devices without a user', () => {
    const evidence = fc.option(fc.record({ sentAt: fc.option(fc.integer({ min: -48, max: 48 }), { nil: null }), answered: fc.boolean() }), { nil: undefined });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), evidence), { maxLength: 30 }), fc.integer({ min: 0, max: 24 }), instant, (devices, notice, startMs) => {
        const start = new Date(startMs);
        const subjects = devices.map(([user], i) => ({ id: i + 1, userEmail: user ? `u${i}@x.example` : null }));
        const told = new Map<number, NoticeEvidence>();
        devices.forEach(([, e], i) => {
          if (e) told.set(i + 1, { sentAt: e.sentAt === null ? null : new Date(startMs + e.sentAt * HOUR), answered: e.answered });
        });
        const admitted = new Set(admitWarned(subjects, start, () => notice, told).map((d) => d.id));
        for (const d of subjects) {
          const e = told.get(d.id);
          const inTime = e !== undefined && (e.answered || (e.sentAt !== null && e.sentAt.getTime() <= start.getTime() - notice * HOUR));
          expect(admitted.has(d.id), `device ${d.id}`).toBe(d.userEmail === null || inTime);
          expect(warnedInTime(e, start, notice)).toBe(inTime);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('an engineer\u2019s waiver (issue 13: users no chat can reach)', () => {
  const waiver = (id: number, scope: NoticeWaiver['scope'], target: string, at: string, revokedAt: string | null = null): NoticeWaiver => ({
    id,
    scope,
    target,
    reason: 'not in Slack',
    by: 'U0PAT',
    at: new Date(at),
    revokedAt: revokedAt === null ? null : new Date(revokedAt),
  });
  const dan = { name: 'DAN-PC', userEmail: 'Dan@Acme.example', clientId: 'acme' };

  it('covers the device it names, its user (any case) or its client, only while in force; the narrowest is named', () => {
    const at = new Date('2024-03-13T12:00:00Z');
    expect(waiverFor([], dan, at)).toBeUndefined();
    expect(waiverFor([waiver(1, 'user', 'dan@acme.example', '2024-03-13T11:00:00Z')], dan, at)?.id).toBe(1);
    expect(waiverFor([waiver(1, 'client', 'acme', '2024-03-13T11:00:00Z'), waiver(2, 'device', 'DAN-PC', '2024-03-13T11:00:00Z')], dan, at)?.id).toBe(2);
    // Made after the moment judged, revoked by it, or naming something else: not in force for this device.
    expect(waiverFor([waiver(1, 'user', 'dan@acme.example', '2024-03-13T13:00:00Z')], dan, at)).toBeUndefined();
    expect(waiverFor([waiver(1, 'user', 'dan@acme.example', '2024-03-12T11:00:00Z', '2024-03-13T11:00:00Z')], dan, at)).toBeUndefined();
    expect(waiverFor([waiver(1, 'client', 'globex', '2024-03-13T11:00:00Z'), waiver(2, 'device', 'ANN-PC', '2024-03-13T11:00:00Z')], dan, at)).toBeUndefined();
    // The MSP's own machines belong to no client: `msp` names them.
    expect(waiverFor([waiver(1, 'client', 'msp', '2024-03-13T11:00:00Z')], { ...dan, clientId: null }, at)?.id).toBe(1);
    expect(waiverFor([waiver(1, 'client', 'msp', '2024-03-13T11:00:00Z')], dan, at)).toBeUndefined();
  });

  it('is evidence the filter admits a user\u2019s device on, with no DM sent; without it the device waits', () => {
    const start = new Date('2024-03-14T03:00:00Z');
    const subjects = [{ id: 1, userEmail: 'dan@acme.example' }];
    expect(admitWarned(subjects, start, () => 4, new Map())).toEqual([]);
    expect(admitWarned(subjects, start, () => 4, new Map([[1, { sentAt: null, answered: false, waived: true }]]))).toEqual(subjects);
    expect(warnedInTime({ sentAt: null, answered: false, waived: false }, start, 4)).toBe(false);
  });

  it('notice_hours 0 does not turn the notice off: a DM must still have gone before the window opens (a client that must not wait is waived)', () => {
    const start = new Date('2024-03-14T03:00:00Z');
    expect(noticeHoursOf({ noticeHours: 0 })).toBe(0);
    expect(admitWarned([{ id: 1, userEmail: 'dan@acme.example' }], start, () => 0, new Map())).toEqual([]);
    expect(warnedInTime({ sentAt: new Date(start.getTime() + 60_000), answered: false }, start, 0)).toBe(false);
    expect(warnedInTime({ sentAt: start, answered: false }, start, 0)).toBe(true);
  });
});

describe('the words', () => {
  const zone = 'Europe/London';
  const lunch = { start: DateTime.fromISO('2024-03-13T12:00', { zone }), end: DateTime.fromISO('2024-03-13T14:00', { zone }) } as MaintenanceWindow;

  it('a 12:00-14:00 window is "today" or "tomorrow", with "before that" and no "before you leave \u2026 tonight"', () => {
    const sameMorning = renderDmText(undefined, { name: 'Ann', devices: [device(lunch)], zone, sendAt: DateTime.fromISO('2024-03-13T07:00', { zone }).toJSDate() });
    expect(sameMorning).toContain('may restart today between 12:00 and 2:00 PM GMT');
    expect(sameMorning).toContain('Before that, please *save your work*');
    expect(sameMorning).not.toMatch(/tonight|before you leave/);
    const dayBefore = renderDmText(undefined, { name: 'Ann', devices: [device(lunch)], zone, sendAt: DateTime.fromISO('2024-03-12T15:00', { zone }).toJSDate() });
    expect(dayBefore).toContain('may restart tomorrow between 12:00 and 2:00 PM GMT');
    expect(dayBefore).not.toMatch(/tonight|before you leave/);
    // A night window keeps its words.
    const night = { start: DateTime.fromISO('2024-03-14T01:00', { zone }), end: DateTime.fromISO('2024-03-14T05:00', { zone }) } as MaintenanceWindow;
    const nightText = renderDmText(undefined, { name: 'Ann', devices: [device(night)], zone, sendAt: DateTime.fromISO('2024-03-13T15:00', { zone }).toJSDate() });
    expect(nightText).toContain('tonight between 1:00 and 5:00 AM GMT');
    expect(nightText).toContain('before you leave');
  });

  it('a DM is not sent inside the notice hours of a window: an hour before a 12:00 window nothing is due, and the next day\u2019s window is told instead', () => {
    const client = { id: 'acme', zone, dmTime: '15:00', platform: 'slack' as const };
    const hourBefore = DateTime.fromISO('2024-03-13T11:00', { zone }).toJSDate();
    expect(planNight({ client, devices: [device(lunch)], people: ann(null), now: hourBefore }).due).toEqual([]);
    const next = { start: lunch.start.plus({ days: 1 }), end: lunch.end.plus({ days: 1 }) } as MaintenanceWindow;
    const afternoon = DateTime.fromISO('2024-03-13T15:00', { zone }).toJSDate();
    const [dm] = planNight({ client, devices: [device(next)], people: ann(null), now: afternoon }).due;
    expect(dm!.text).toContain('tomorrow between 12:00 and 2:00 PM GMT');
  });

  it('a deferral states the new window, dated, with its zone, and no second time', () => {
    const answeredAt = DateTime.fromISO('2024-03-12T00:04', { zone }).toJSDate();
    const line = answerLine('defer', answeredAt, zone, DateTime.fromISO('2024-03-13T12:00', { zone }).toJSDate());
    expect(line).toBe('Done: it will not be updated then. It moves to Wednesday 13 March at 12:00 PM GMT.');
    expect(answerLine('ok', answeredAt, zone)).toContain('answered at 12:04 AM GMT');
  });
});
