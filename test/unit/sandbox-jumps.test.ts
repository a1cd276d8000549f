import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { jumpTarget, ownersWithWorkIn, type JumpOwner } from '../../src/domain/sandbox-jumps.ts';
import { dmSendTime } from '../../src/domain/user-dm.ts';
import { nextWindow } from '../../src/domain/windows.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';

const CHICAGO = 'America/Chicago';
const msp: JumpOwner = { name: 'Example IT', zone: CHICAGO, windows: { desktop: 'daily 01:00-05:00' }, dmTime: '15:00' };
const at = (iso: string) => DateTime.fromISO(iso, { zone: CHICAGO });

describe('the sandbox clock\u2019s Next window', () => {
  it('stops at the users\u2019 DM time first when it is still ahead, then opens the window', () => {
    const first = jumpTarget('next-window', at('2026-12-08T12:50'), [msp], CHICAGO)!;
    expect(first.at.toISO()).toBe(at('2026-12-08T15:00').toISO());
    expect(first.detail).toContain('hear about the desktop window of Wed 9 Dec 01:00');
    const second = jumpTarget('next-window', first.at, [msp], CHICAGO)!;
    expect(second.at.toISO()).toBe(at('2026-12-09T01:00').toISO());
    expect(second.detail).toBe('Example IT desktop window opens, Wed 9 Dec 01:00 CST');
  });

  it('goes straight to the window when the DM time has passed, or the owner has no DM time', () => {
    expect(jumpTarget('next-window', at('2026-12-08T16:00'), [msp], CHICAGO)!.at.toISO()).toBe(at('2026-12-09T01:00').toISO());
    const { dmTime: _none, ...silent } = msp;
    expect(jumpTarget('next-window', at('2026-12-08T12:50'), [silent], CHICAGO)!.at.toISO()).toBe(at('2026-12-09T01:00').toISO());
  });

  it('counts the client\u2019s notice hours: a DM time too close to the window is moved earlier, and the stop with it', () => {
    const evening: JumpOwner = { name: 'Acme', zone: CHICAGO, windows: { desktop: 'daily 18:00-20:00' }, dmTime: '15:00', noticeHours: 6 };
    const stop = jumpTarget('next-window', at('2026-12-08T08:00'), [evening], CHICAGO)!;
    expect(stop.at.toJSDate()).toEqual(dmSendTime(at('2026-12-08T18:00').toJSDate(), CHICAGO, '15:00', 6));
    expect(stop.at < at('2026-12-08T12:00').plus({ minutes: 1 })).toBe(true);
  });

  it('never jumps over a DM time still ahead of the window it opens', () => {
    const rule = parseWindowSpec(msp.windows.desktop!);
    if (!rule.ok) throw new Error('bad spec');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 * 24 * 30 }), (minutes) => {
        const now = at('2026-11-01T00:00').plus({ minutes });
        const target = jumpTarget('next-window', now, [msp], CHICAGO)!;
        expect(target.at > now).toBe(true);
        const window = nextWindow(rule.value, CHICAGO, now)!;
        if (target.at.toMillis() === window.start.toMillis()) {
          expect(dmSendTime(window.start.toJSDate(), CHICAGO, msp.dmTime).getTime()).toBeLessThanOrEqual(now.toMillis());
        } else {
          expect(target.at.toJSDate()).toEqual(dmSendTime(window.start.toJSDate(), CHICAGO, msp.dmTime));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('names zones as people read them (NZDT, not GMT+13)', () => {
    const kiwi: JumpOwner = { name: 'Kiwi Physio', zone: 'Pacific/Auckland', windows: { desktop: 'daily 01:00-05:00' } };
    expect(jumpTarget('next-window', at('2026-12-08T12:00'), [kiwi], CHICAGO)!.detail).toMatch(/01:00 NZDT$/);
  });

  it('goes to the window of a class with work: ring msp done on the desktops, waiting on a server, opens the server window', () => {
    const owners: Array<JumpOwner & { id: string | null }> = [
      { ...msp, id: null, windows: { desktop: 'daily 01:00-05:00', server: 'sun 01:00-05:00' } },
      { id: 'acme', name: 'Acme', zone: CHICAGO, windows: { desktop: 'daily 02:00-04:00' } },
    ];
    const now = at('2026-12-09T16:00');
    const serverOnly = ownersWithWorkIn(owners, [{ clientId: null, deviceClass: 'server' }]);
    expect(jumpTarget('next-window', now, serverOnly, CHICAGO)!.detail).toContain('hear about the server window of Sun 13 Dec 01:00 CST');
    // Every owner's windows when nothing is under way; a class with no window of its own keeps the owner's.
    expect(jumpTarget('next-window', now, ownersWithWorkIn(owners, []), CHICAGO)!.detail).toBe('Example IT desktop window opens, Thu 10 Dec 01:00 CST');
    expect(ownersWithWorkIn(owners, [{ clientId: 'acme', deviceClass: 'laptop' }])).toEqual([owners[1]]);
  });
});
