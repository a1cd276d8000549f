/**
 * Where the sandbox's clock controls jump to: the next instant something happens in the patch cycle, computed
 * from the same window rules, DM times and Patch Tuesday calendar the product runs on.
 */
import { DateTime } from 'luxon';
import { nextPatchTuesday } from './calendar.ts';
import { dmSendTime, parseDmTime, DEFAULT_DM_TIME } from './user-dm.ts';
import { DEFAULT_NOTICE_HOURS } from './notice.ts';
import { zoneShort } from './zone-label.ts';
import { nextWindow, windowContaining } from './windows.ts';
import { parseWindowSpec } from './window-spec.ts';

export type Jump = 'next-window' | 'window-end' | 'next-dm' | 'next-patch-tuesday' | 'plus-hour' | 'next-morning';

export const JUMPS: ReadonlyArray<{ jump: Jump; label: string }> = [
  { jump: 'next-window', label: 'Next window' },
  { jump: 'window-end', label: 'End of window' },
  { jump: 'next-dm', label: 'Next DM time' },
  { jump: 'next-morning', label: 'Next morning' },
  { jump: 'next-patch-tuesday', label: 'Next Patch Tuesday' },
  { jump: 'plus-hour', label: '+1 hour' },
];

/** The MSP or a client: whose windows and afternoon DMs the clock can jump to. */
export interface JumpOwner {
  name: string;
  zone: string;
  /** Window rule per device class, e.g. { desktop: "daily 01:00-05:00" }. */
  windows: Record<string, string>;
  /** When its users hear about tonight, `HH:MM` in the zone (the MSP's own users get DMs too). */
  dmTime?: string;
  /** How long before a window its users must have been told (the client's notice_hours). */
  noticeHours?: number;
}

export interface JumpTarget {
  at: DateTime;
  /** For the person who pressed it, e.g. "Acme Dental desktop window opens, Wed 9 Dec 01:00 CST". */
  detail: string;
}

// Zones as people read them: NZDT, not en-US's "GMT+13".
const show = (at: DateTime) => `${at.toFormat('ccc d LLL HH:mm')} ${zoneShort(at)}`;

/**
 * The owners whose windows "Next window" looks at: those with a ring under way (the MSP for ring msp, a client for
 * its pilot or broad ring), each with only the windows of the device classes that still have a machine to update
 * (ring msp done on the desktops but waiting on a server: the server window, not a desktop window where nothing would
 * happen). A class with work but no window of its own keeps the owner's windows. With no work anywhere, every owner.
 */
export function ownersWithWorkIn<O extends JumpOwner & { id: string | null }>(owners: readonly O[], work: ReadonlyArray<{ clientId: string | null; deviceClass: string }>): O[] {
  const busy = owners.flatMap((owner) => {
    const classes = new Set(work.filter((w) => w.clientId === owner.id).map((w) => w.deviceClass));
    if (classes.size === 0) return [];
    const windows = Object.fromEntries(Object.entries(owner.windows).filter(([deviceClass]) => classes.has(deviceClass)));
    return [{ ...owner, windows: Object.keys(windows).length > 0 ? windows : owner.windows }];
  });
  return busy.length > 0 ? busy : [...owners];
}

/** Where `jump` lands from `now`; undefined when nothing qualifies (no windows, or none open for window-end). */
export function jumpTarget(jump: Jump, now: DateTime, owners: readonly JumpOwner[], mspZone: string): JumpTarget | undefined {
  switch (jump) {
    case 'plus-hour':
      return { at: now.plus({ hours: 1 }), detail: 'one hour later' };
    case 'next-patch-tuesday': {
      const at = nextPatchTuesday(now);
      // Microsoft publishes at 10:00 Pacific; a minute after, the watcher's first poll finds the month.
      return { at: at.plus({ minutes: 1 }), detail: `Patch Tuesday, ${show(at)} (MSRC publishes at 10:00 Pacific)` };
    }
    case 'next-morning': {
      const local = now.setZone(mspZone);
      let at = local.set({ hour: 8, minute: 0, second: 0, millisecond: 0 });
      if (at <= local) at = at.plus({ days: 1 }).set({ hour: 8, minute: 0 });
      return { at, detail: `08:00 in the MSP's zone, ${show(at)}` };
    }
    case 'next-window':
    case 'window-end': {
      let best: JumpTarget | undefined;
      for (const owner of owners) {
        for (const [deviceClass, spec] of Object.entries(owner.windows)) {
          const parsed = parseWindowSpec(spec);
          if (!parsed.ok) continue;
          const window = jump === 'next-window' ? nextWindow(parsed.value, owner.zone, now) : windowContaining(parsed.value, owner.zone, now);
          if (!window) continue;
          const at = jump === 'next-window' ? window.start : window.end;
          const candidate = jump === 'next-window' ? tellFirst(owner, deviceClass, window.start, now) : undefined;
          const target = candidate ?? { at, detail: `${owner.name} ${deviceClass} window ${jump === 'next-window' ? 'opens' : 'closes'}, ${show(at)}` };
          if (best === undefined || target.at < best.at) best = target;
        }
      }
      return best;
    }
    case 'next-dm': {
      let best: JumpTarget | undefined;
      for (const owner of owners) {
        if (owner.dmTime === undefined) continue;
        const { hour, minute } = parseDmTime(owner.dmTime) ?? parseDmTime(DEFAULT_DM_TIME)!;
        const local = now.setZone(owner.zone);
        let at = local.set({ hour, minute, second: 0, millisecond: 0 });
        if (at <= local) at = local.plus({ days: 1 }).set({ hour, minute, second: 0, millisecond: 0 });
        if (best === undefined || at < best.at) best = { at, detail: `${owner.name} users' DM time, ${show(at)}` };
      }
      return best;
    }
  }
}

/**
 * A machine with a user runs only once its user was told in time (the notice rule), and the DM goes at the
 * owner's DM time. A jump straight over that time would warn nobody, so the window would pass with nothing run,
 * every time: "Next window" stops at the DM time first when it is still ahead, and the next press opens the window.
 */
function tellFirst(owner: JumpOwner, deviceClass: string, windowStart: DateTime, now: DateTime): JumpTarget | undefined {
  if (owner.dmTime === undefined) return undefined;
  const sendAt = DateTime.fromJSDate(dmSendTime(windowStart.toJSDate(), owner.zone, owner.dmTime, owner.noticeHours ?? DEFAULT_NOTICE_HOURS)).setZone(owner.zone);
  if (sendAt <= now) return undefined;
  return { at: sendAt, detail: `${owner.name} users hear about the ${deviceClass} window of ${show(windowStart)} (their DM time), ${show(sendAt)}; press again to open the window` };
}
