// Which reports are due (src/domain/report-schedule.ts): never twice, never skipped across a restart gap, never
// early, whatever the ticks and however long the scheduler was away (within the horizon).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { dueReports, reportKey, type BroadClosed, type DueReport, type ScheduleClient } from '../../src/domain/report-schedule.ts';

const ZONES = ['America/Chicago', 'Europe/London', 'Australia/Sydney', 'UTC', 'America/St_Johns'];
const DAY = 86_400_000;
const START = Date.parse('2026-01-20T00:00:00Z');

const clientArb = fc.record({
  id: fc.constantFrom('acme', 'bolt', 'cedar'),
  timezone: fc.constantFrom(...ZONES),
  reportDay: fc.option(fc.integer({ min: 1, max: 28 }), { nil: undefined }),
});
const clientsArb = fc.uniqueArray(clientArb, { selector: (c) => c.id, maxLength: 3 });
const closedArb = fc.array(
  fc.record({ clientId: fc.constantFrom('acme', 'bolt'), releaseId: fc.constantFrom('2026-Jan', '2026-Feb', '2026-Mar'), offset: fc.integer({ min: 0, max: 80 * DAY }) }),
  { maxLength: 4 },
).map((list) => {
  const seen = new Set<string>();
  return list.filter((c) => !seen.has(`${c.clientId}${c.releaseId}`) && seen.add(`${c.clientId}${c.releaseId}`)).map((c): BroadClosed => ({ clientId: c.clientId, releaseId: c.releaseId, closedAt: new Date(START + c.offset).toISOString() }));
});
/**
 * Gaps between ticks: a minute to 3.4 days (a scheduler down for days), and never two crashed ticks in a row, so
 * the next tick that commits is always within the 7-day horizon of anything that fell due.
 */
const gapsArb = fc.array(fc.integer({ min: 60_000, max: 3.4 * DAY }), { minLength: 1, maxLength: 40 });
const crashesArb = fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }).map((c) => c.map((crash, i) => crash && !c[i - 1]));

/** The oracle, counted differently: walk every local day and ask whether a report falls on it. */
function expected(clients: ScheduleClient[], closed: BroadClosed[], mspZone: string, from: number, to: number): Set<string> {
  const keys = new Set<string>();
  for (const c of closed) if (Date.parse(c.closedAt) > from && Date.parse(c.closedAt) <= to) keys.add(reportKey('release', c.clientId, c.releaseId));
  for (let t = from - 2 * DAY; t <= to + 2 * DAY; t += DAY) {
    for (const c of clients) {
      const d = DateTime.fromMillis(t, { zone: c.timezone });
      if (c.reportDay !== d.day) continue;
      const at = d.set({ hour: 8, minute: 0, second: 0, millisecond: 0 }).toMillis();
      const prev = d.minus({ months: 1 });
      if (at > from && at <= to) keys.add(reportKey('monthly', c.id, `${prev.year}-${prev.toFormat('LLL', { locale: 'en-US' })}`));
    }
    const m = DateTime.fromMillis(t, { zone: mspZone });
    const at = m.set({ hour: 9, minute: 0, second: 0, millisecond: 0 }).toMillis();
    if (m.weekday === 1 && at > from && at <= to) keys.add(reportKey('kev_weekly', null, `${m.weekYear}-W${String(m.weekNumber).padStart(2, '0')}`));
  }
  return keys;
}

describe('dueReports', () => {
  it('across any ticks (a crashed tick sends nothing), each due report is sent exactly once and never early', () => {
    fc.assert(
      fc.property(clientsArb, closedArb, fc.constantFrom(...ZONES), gapsArb, crashesArb, (clients, closed, mspZone, gaps, crashes) => {
        const sent = new Set<string>();
        const sentAt: DueReport[] = [];
        let now = START;
        // The first committed tick's horizon reaches back 7 days: what fell due there counts too.
        const firstCommitted = crashes[0] && gaps.length > 1 ? START + gaps[0]! + gaps[1]! : START + gaps[0]!;
        const from = firstCommitted - 7 * DAY;
        gaps.forEach((gap, i) => {
          now += gap;
          const due = dueReports({ now: new Date(now), clients, broadClosed: closed, mspZone, sent });
          for (const d of due) expect(Date.parse(d.dueAt)).toBeLessThanOrEqual(now);
          // A crash before commit: the archive never got the keys, so the next tick must offer them again.
          if (crashes[i]) return;
          for (const d of due) {
            expect(sent.has(d.key)).toBe(false);
            sent.add(d.key);
            sentAt.push(d);
          }
        });
        // The last tick is never a crash, so nothing is left hanging.
        for (const d of dueReports({ now: new Date(now), clients, broadClosed: closed, mspZone, sent })) {
          sent.add(d.key);
          sentAt.push(d);
        }
        expect(new Set(sentAt.map((d) => d.key)).size).toBe(sentAt.length);
        expect(sent).toEqual(expected(clients, closed, mspZone, from, now));
      }),
      { numRuns: 150 },
    );
  });

  it('a monthly report covers the month before, judged in the client zone; a report day every month has', () => {
    const clients = [{ id: 'acme', timezone: 'Australia/Sydney', reportDay: 1 }];
    // 1 March 08:00 in Sydney is 28 Feb 21:00 UTC: the report is February's.
    const due = dueReports({ now: new Date('2026-02-28T21:00:00Z'), clients, broadClosed: [], mspZone: 'UTC', sent: new Set() });
    expect(due.filter((d) => d.kind === 'monthly').map((d) => [d.key, d.dueAt, d.period?.from])).toEqual([
      ['report:monthly:acme:2026-Feb', '2026-02-28T21:00:00.000Z', '2026-02-01T00:00:00.000Z'],
    ]);
    expect(dueReports({ now: new Date('2026-02-28T20:59:59Z'), clients, broadClosed: [], mspZone: 'UTC', sent: new Set() }).filter((d) => d.kind === 'monthly')).toEqual([]);
  });

  it('leaves alone what fell due before the horizon (a first start sends no backlog)', () => {
    const closed = [{ clientId: 'acme', releaseId: '2026-Jan', closedAt: '2026-01-20T05:00:00Z' }];
    expect(dueReports({ now: new Date('2026-01-28T05:00:01Z'), clients: [], broadClosed: closed, mspZone: 'UTC', sent: new Set() }).filter((d) => d.kind === 'release')).toEqual([]);
    expect(dueReports({ now: new Date('2026-01-27T04:59:59Z'), clients: [], broadClosed: closed, mspZone: 'UTC', sent: new Set() }).map((d) => d.key)).toContain('report:release:acme:2026-Jan');
  });

  it('a first start sends nothing that fell due before the MSP or the client was imported (found in the sandbox: last Monday\u2019s KEV list opened the channel)', () => {
    // Tuesday 8 Dec 2026 12:00 Chicago; the KEV list's Monday 09:00 was yesterday, acme's report day the 7th.
    const now = new Date('2026-12-08T18:00:00Z');
    const clients = [{ id: 'acme', timezone: 'America/Chicago', reportDay: 7, since: '2026-12-08T17:59:00Z' }];
    const input = { now, clients, broadClosed: [], mspZone: 'America/Chicago', sent: new Set<string>() };
    expect(dueReports({ ...input, since: new Date('2026-12-08T17:59:00Z') })).toEqual([]);
    // Imported the week before: both are due, as the horizon alone would have it.
    const earlier = { ...input, clients: [{ ...clients[0]!, since: '2026-12-01T00:00:00Z' }], since: new Date('2026-12-01T00:00:00Z') };
    expect(dueReports(earlier).map((d) => d.key).sort()).toEqual(['report:kev_weekly:msp:2026-W50', 'report:monthly:acme:2026-Nov']);
    // The next Monday after the import is due as usual.
    expect(dueReports({ ...input, now: new Date('2026-12-14T15:00:01Z'), since: new Date('2026-12-08T17:59:00Z') }).map((d) => d.key)).toContain('report:kev_weekly:msp:2026-W51');
  });
});
