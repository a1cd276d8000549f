import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { patchTuesday, releaseIdFor } from '../../src/domain/calendar.ts';
import { DEFAULT_WATCH_SETTINGS, planWatch, type WatchState } from '../../src/domain/release-watch.ts';

const LA = 'America/Los_Angeles';
const empty = (): WatchState => ({ stored: [], lastAttemptAt: new Map(), kevRefreshedAt: undefined, kevLastAttemptAt: undefined });
const at = (iso: string) => DateTime.fromISO(iso, { zone: 'utc' });

/** An independent oracle for the publication instant: walk the days of the month in LA with Intl, not luxon. */
function oraclePublication(year: number, month: number): number {
  let tuesdays = 0;
  for (let day = 1; day <= 14; day++) {
    // Noon UTC on that date is the same calendar date in Los Angeles.
    const weekday = new Intl.DateTimeFormat('en-US', { timeZone: LA, weekday: 'short' }).format(new Date(Date.UTC(year, month - 1, day, 12)));
    if (weekday === 'Tue' && ++tuesdays === 2) {
      // 10:00 in LA is 17:00 UTC in daylight time and 18:00 in standard time; find which by asking Intl.
      for (const utcHour of [17, 18]) {
        const candidate = Date.UTC(year, month - 1, day, utcHour);
        const hour = new Intl.DateTimeFormat('en-US', { timeZone: LA, hour: 'numeric', hourCycle: 'h23' }).format(new Date(candidate));
        if (Number(hour) === 10) return candidate;
      }
    }
  }
  throw new Error('unreachable');
}

const yearMonth = fc.record({ year: fc.integer({ min: 2000, max: 2099 }), month: fc.integer({ min: 1, max: 12 }) });
// Instants near the interesting edges: publication, and the DST changes in March and November.
const instant = fc.oneof(
  fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true }).map((d) => DateTime.fromJSDate(d, { zone: 'utc' })),
  fc
    .tuple(yearMonth, fc.integer({ min: -36 * 60, max: 36 * 60 }))
    .map(([{ year, month }, minutes]) => patchTuesday(year, month).plus({ minutes }).toUTC()),
);

describe('planWatch', () => {
  it('publication instants agree with an Intl oracle across years and DST changes', () => {
    fc.assert(
      fc.property(yearMonth, ({ year, month }) => {
        expect(patchTuesday(year, month).toMillis()).toBe(oraclePublication(year, month));
      }),
      { numRuns: 300 },
    );
  });

  it('watches the latest published month: never one whose Patch Tuesday is still ahead', () => {
    fc.assert(
      fc.property(instant, (now) => {
        const plan = planWatch(now, empty());
        const [year, mon] = [Number(plan.release.releaseId.slice(0, 4)), plan.release.releaseId.slice(5)];
        const month = DateTime.fromFormat(mon, 'LLL', { locale: 'en' }).month;
        const published = oraclePublication(year, month);
        expect(published).toBeLessThanOrEqual(now.toMillis());
        // ... and it is the latest such month: the following month's publication is still to come.
        const following = DateTime.fromObject({ year, month }, { zone: 'utc' }).plus({ months: 1 });
        expect(oraclePublication(following.year, following.month)).toBeGreaterThan(now.toMillis());
      }),
      { numRuns: 500 },
    );
  });

  it('a minute before publication nothing new is polled; at 10:00 Los Angeles time the new month is', () => {
    fc.assert(
      fc.property(yearMonth, ({ year, month }) => {
        const published = DateTime.fromMillis(oraclePublication(year, month), { zone: 'utc' });
        const previous = published.setZone(LA).minus({ months: 1 });
        const previousId = releaseIdFor(previous.year, previous.month);
        const state: WatchState = { ...empty(), stored: [{ id: previousId, checkedAt: published.minus({ hours: 2 }).toJSDate() }] };
        const before = planWatch(published.minus({ minutes: 1 }), state);
        expect(before.release).toMatchObject({ action: 'wait', releaseId: previousId, phase: 'before-patch-tuesday' });
        // The wait never outlasts the publication instant.
        expect((before.release as { until: DateTime }).until.toMillis()).toBeLessThanOrEqual(published.toMillis());
        expect(planWatch(published, state).release).toMatchObject({ action: 'poll', releaseId: releaseIdFor(year, month), phase: 'awaiting-document' });
      }),
      { numRuns: 300 },
    );
  });

  // Ticks come as the job module makes them: a heartbeat, and a delayed tick at each plan's nextCheckAt.
  it('ticking through Patch Tuesday: no poll before 10:00 LA, polls at the cadence until stored, then no re-read within the day', () => {
    fc.assert(
      fc.property(
        yearMonth,
        fc.integer({ min: 10, max: 120 }),
        fc.oneof(fc.integer({ min: 0, max: 150 }), fc.integer({ min: 0, max: 16 * 60 })),
        ({ year, month }, heartbeatSeconds, appearsAfterMinutes) => {
          const settings = DEFAULT_WATCH_SETTINGS;
          const published = DateTime.fromMillis(oraclePublication(year, month), { zone: 'utc' });
          const appears = published.plus({ minutes: appearsAfterMinutes });
          const id = releaseIdFor(year, month);
          const stored: Array<{ id: string; checkedAt: Date }> = [];
          const attempts = new Map<string, Date>();
          const polls: number[] = [];
          const rereads: number[] = [];
          const start = published.minus({ hours: 1 }).startOf('minute');
          for (let t: DateTime<boolean> = start, next: DateTime<boolean> = start; t < appears.plus({ hours: 2 }); t = DateTime.min(t.plus({ seconds: heartbeatSeconds }), next)) {
            const state = () => ({ stored, lastAttemptAt: attempts, kevRefreshedAt: t.toJSDate(), kevLastAttemptAt: undefined });
            const plan = planWatch(t, state(), settings);
            const { release } = plan;
            next = plan.nextCheckAt;
            if (release.action === 'wait') {
              expect(release.until.toMillis()).toBeGreaterThan(t.toMillis());
              continue;
            }
            if (release.releaseId !== id) {
              // Before publication only last month is touched (a fresh install stores it once).
              expect(t < published).toBe(true);
              attempts.set(release.releaseId, t.toJSDate());
              stored.push({ id: release.releaseId, checkedAt: t.toJSDate() });
              next = planWatch(t, state(), settings).nextCheckAt;
              continue;
            }
            attempts.set(id, t.toJSDate());
            if (release.action === 'poll') {
              polls.push(t.toMillis());
              if (t >= appears) stored.push({ id, checkedAt: t.toJSDate() });
            } else {
              rereads.push(t.toMillis());
            }
            next = planWatch(t, state(), settings).nextCheckAt;
          }
          expect(polls.length).toBeGreaterThan(0);
          expect(polls[0]).toBeGreaterThanOrEqual(published.toMillis());
          expect(polls[0]).toBe(published.toMillis());
          for (let i = 1; i < polls.length; i++) {
            const gap = polls[i]! - polls[i - 1]!;
            // Never more often than 30 s; never slower than the phase of the poll before says.
            expect(gap).toBeGreaterThanOrEqual(30_000);
            const inBurst = polls[i - 1]! < published.plus({ hours: 2 }).toMillis();
            const sameLaDay = DateTime.fromMillis(polls[i - 1]!, { zone: LA }).hasSame(published.setZone(LA), 'day');
            const interval = inBurst ? 30_000 : sameLaDay ? 120_000 : 300_000;
            expect(gap).toBeLessThanOrEqual(interval);
          }
          // The poll that stored the month is the first at or after it appeared.
          expect(polls.at(-1)!).toBeGreaterThanOrEqual(appears.toMillis());
          expect(polls.filter((p) => p >= appears.toMillis())).toHaveLength(1);
          expect(rereads).toEqual([]);
        },
      ),
      { numRuns: 20 },
    );
  }, 120_000);

  it('re-reads a stored month once a day, and after a failed read waits the poll interval', () => {
    const now = at('2024-02-20T12:00:00Z');
    const fresh = { ...empty(), stored: [{ id: '2024-Feb', checkedAt: at('2024-02-20T00:00:00Z').toJSDate() }] };
    expect(planWatch(now, fresh).release).toMatchObject({ action: 'wait', phase: 'published' });
    expect((planWatch(now, fresh).release as { until: DateTime }).until.toISO()).toBe('2024-02-21T00:00:00.000Z');
    const stale = { ...fresh, stored: [{ id: '2024-Feb', checkedAt: at('2024-02-19T11:00:00Z').toJSDate() }] };
    expect(planWatch(now, stale).release).toMatchObject({ action: 'reread', releaseId: '2024-Feb' });
    const failedJustNow = { ...stale, lastAttemptAt: new Map([['2024-Feb', at('2024-02-20T11:58:00Z').toJSDate()]]) };
    const plan = planWatch(now, failedJustNow).release;
    expect(plan.action).toBe('wait');
    expect((plan as { until: DateTime }).until.toISO()).toBe('2024-02-20T12:03:00.000Z');
  });

  it('refreshes KEV when never stored or a day old, not while a failed download is recent', () => {
    const now = at('2024-02-20T12:00:00Z');
    expect(planWatch(now, empty()).refreshKev).toBe(true);
    expect(planWatch(now, { ...empty(), kevRefreshedAt: at('2024-02-20T00:00:00Z').toJSDate() }).refreshKev).toBe(false);
    expect(planWatch(now, { ...empty(), kevRefreshedAt: at('2024-02-19T11:00:00Z').toJSDate() }).refreshKev).toBe(true);
    expect(planWatch(now, { ...empty(), kevLastAttemptAt: at('2024-02-20T11:59:00Z').toJSDate() }).refreshKev).toBe(false);
  });

  it('refuses nonsense settings by name', () => {
    expect(() => planWatch(at('2024-02-20T12:00:00Z'), empty(), { ...DEFAULT_WATCH_SETTINGS, pollEveryMinutes: 0 })).toThrow(/pollEveryMinutes/);
  });
});
