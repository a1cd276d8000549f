// When the daily device sync runs (issue 15): once a day at the configured time in the MSP's zone, at once when an
// engineer asked since the last sync, and at once the first time.
import { describe, expect, it } from 'vitest';
import { isSyncTime, lastScheduledSync, syncDue } from '../../src/domain/device-sync.ts';

const at = (iso: string) => new Date(iso);

describe('device sync schedule', () => {
  it('takes today’s time in the MSP’s zone once it has passed, else yesterday’s', () => {
    // 06:00 in Chicago (CST, UTC-6) is 12:00Z.
    expect(lastScheduledSync(at('2024-02-14T12:30:00Z'), 'America/Chicago', '06:00').toISOString()).toBe('2024-02-14T12:00:00.000Z');
    expect(lastScheduledSync(at('2024-02-14T11:59:00Z'), 'America/Chicago', '06:00').toISOString()).toBe('2024-02-13T12:00:00.000Z');
    // Auckland is a day ahead: 06:00 NZDT on the 15th is 17:00Z on the 14th.
    expect(lastScheduledSync(at('2024-02-14T17:00:00Z'), 'Pacific/Auckland', '06:00').toISOString()).toBe('2024-02-14T17:00:00.000Z');
  });

  it('keeps the local time across a DST change, and moves a time the spring-forward gap skips past it', () => {
    // Chicago springs forward on 2024-03-10: 06:00 is CDT (UTC-5) that day.
    expect(lastScheduledSync(at('2024-03-10T12:00:00Z'), 'America/Chicago', '06:00').toISOString()).toBe('2024-03-10T11:00:00.000Z');
    // 02:30 does not exist that night: the sync runs at 03:30 CDT (08:30Z), not never.
    expect(lastScheduledSync(at('2024-03-10T09:00:00Z'), 'America/Chicago', '02:30').toISOString()).toBe('2024-03-10T08:30:00.000Z');
  });

  it('is due once per day after the time, and not again until the next day’s', () => {
    const zone = 'America/Chicago';
    expect(syncDue({}, at('2024-02-14T03:00:00Z'), zone, '06:00')).toBe('scheduled');
    expect(syncDue({ syncedAt: '2024-02-13T12:00:05Z' }, at('2024-02-14T11:59:00Z'), zone, '06:00')).toBeUndefined();
    expect(syncDue({ syncedAt: '2024-02-13T12:00:05Z' }, at('2024-02-14T12:00:00Z'), zone, '06:00')).toBe('scheduled');
    expect(syncDue({ syncedAt: '2024-02-14T12:00:05Z' }, at('2024-02-14T23:00:00Z'), zone, '06:00')).toBeUndefined();
  });

  it('is due at once for an engineer’s request made since the last sync began, not for one it already served', () => {
    const zone = 'America/Chicago';
    expect(syncDue({ syncedAt: '2024-02-14T12:00:05Z', requestedAt: '2024-02-14T15:00:00Z' }, at('2024-02-14T15:00:30Z'), zone, '06:00')).toBe('requested');
    expect(syncDue({ syncedAt: '2024-02-14T15:00:31Z', requestedAt: '2024-02-14T15:00:00Z' }, at('2024-02-14T15:01:00Z'), zone, '06:00')).toBeUndefined();
  });

  it('accepts HH:MM only', () => {
    expect(['06:00', '00:00', '23:59'].every(isSyncTime)).toBe(true);
    expect(['6:00', '24:00', '06:60', '06:00:00', ''].some(isSyncTime)).toBe(false);
  });
});
