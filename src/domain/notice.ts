/**
 * No unwarned reboot. A device with a user may be installed and rebooted in a window only when that user was sent
 * the "save your work" DM at least the client's notice hours before the window starts, or answered it. Devices
 * without a user (servers, kiosks) follow their window alone. Pure: the sweep loads the evidence (src/db) and
 * asks this module which devices may have a run; the DM tick asks when a DM must go out and whether it still can.
 */
import { DateTime } from 'luxon';
import { nextWindow, windowContaining, type MaintenanceWindow } from './windows.ts';
import type { WindowRule } from './window-spec.ts';

export const DEFAULT_NOTICE_HOURS = 4;
/**
 * How long before the notice deadline a DM is queued at the latest. The sweep judges the time the chat platform
 * took the DM (the outbox's sent time), not the time it was planned, so a DM queued on the deadline itself would
 * miss it by the seconds delivery takes and keep the user's machine out of the window.
 */
export const DM_DELIVERY_MARGIN_MS = 5 * 60_000;
/**
 * How long before the notice deadline a DM whose DM time is too late is planned: ten minutes before the last
 * moment it may be queued, so a tick (every minute) surely finds it due.
 */
export const DM_PLAN_LEAD_MS = 15 * 60_000;

const HOUR_MS = 3_600_000;

export function noticeHoursOf(settings: { noticeHours?: number | undefined } | undefined): number {
  const hours = settings?.noticeHours;
  return typeof hours === 'number' && Number.isFinite(hours) && hours >= 0 ? hours : DEFAULT_NOTICE_HOURS;
}

/** The last instant the user may be told for a window that opens at `windowStart`. */
export function noticeDeadline(windowStart: Date, noticeHours: number): Date {
  return new Date(windowStart.getTime() - noticeHours * HOUR_MS);
}

/** The last instant a DM for that window may be queued: the deadline less the delivery margin. */
export function latestDmQueueTime(windowStart: Date, noticeHours: number): Date {
  return new Date(noticeDeadline(windowStart, noticeHours).getTime() - DM_DELIVERY_MARGIN_MS);
}

/** The latest a DM for that window is planned: when the client's DM time would be too late for the notice. */
export function latestDmSendTime(windowStart: Date, noticeHours: number): Date {
  return new Date(noticeDeadline(windowStart, noticeHours).getTime() - DM_PLAN_LEAD_MS);
}

/** Whether a DM planned for `sendAt` is due at `now`: its time came and it can still reach the user in time. */
export function dmDue(sendAt: Date, windowStart: Date, noticeHours: number, now: Date): boolean {
  return sendAt.getTime() <= now.getTime() && now.getTime() <= latestDmQueueTime(windowStart, noticeHours).getTime();
}

/** What Postgres knows about one user's warning for one window. */
export interface NoticeEvidence {
  /** When the platform took the earliest DM naming this window for the device's user; null if none was sent. */
  sentAt: Date | null;
  /** The user answered such a DM: OK, a deferral (the device already has its window's run, rolled), or one past
   * the deferral limit (escalated: they read it, and the engineers decide whether to hold). */
  answered: boolean;
  /** An engineer waived the notice for this device, its user or its client (see waiverFor): audited, so the
   * device follows its window alone, as one without a user does. */
  waived?: boolean;
}

/** Whether the user of a device was warned in time for the window that opens at `windowStart`. */
export function warnedInTime(evidence: NoticeEvidence | undefined, windowStart: Date, noticeHours: number): boolean {
  if (!evidence) return false;
  if (evidence.answered || evidence.waived === true) return true;
  return evidence.sentAt !== null && evidence.sentAt.getTime() <= noticeDeadline(windowStart, noticeHours).getTime();
}

export type WaiverScope = 'device' | 'user' | 'client';

/**
 * An engineer's "patch these without the DM" (`/patch notice waive`): the way out for a user no chat directory
 * matches, or a client with no chat, whose devices would otherwise never be admitted. Who, when, why, for what.
 */
export interface NoticeWaiver {
  id: number;
  scope: WaiverScope;
  /** A device name, a user's email (lower-cased) or a client id; MSP_WAIVER_TARGET for the MSP's own machines. */
  target: string;
  reason: string;
  by: string;
  at: Date;
  revokedAt: Date | null;
}

/** The client-scope target naming the MSP's own machines (they belong to no client). */
export const MSP_WAIVER_TARGET = 'msp';

/** What a waiver is matched against: the device's name, its user and its owner. */
export interface WaiverSubject {
  name: string;
  userEmail: string | null | undefined;
  clientId: string | null;
}

/**
 * The waiver in force at `at` that covers this device, if any: one naming the device, its user (by email, any
 * case) or its client, made at or before `at` and not revoked by then. The narrowest wins, so status can say why.
 */
export function waiverFor(waivers: readonly NoticeWaiver[], subject: WaiverSubject, at: Date): NoticeWaiver | undefined {
  const t = at.getTime();
  const inForce = waivers.filter((w) => w.at.getTime() <= t && (w.revokedAt === null || w.revokedAt.getTime() > t));
  const email = subject.userEmail?.toLowerCase();
  return (
    inForce.find((w) => w.scope === 'device' && w.target === subject.name) ??
    inForce.find((w) => w.scope === 'user' && email !== undefined && w.target.toLowerCase() === email) ??
    inForce.find((w) => w.scope === 'client' && w.target === (subject.clientId ?? MSP_WAIVER_TARGET))
  );
}

export interface NoticeSubject {
  id: number;
  /** The device's user; null or undefined for a device without one. */
  userEmail?: string | null | undefined;
}

/**
 * The devices that may have a run in the window opening at `windowStart`: every device without a user, and those
 * whose user was warned in time. `evidence` is keyed by device id; `noticeHours` is the device's client's.
 */
export function admitWarned<D extends NoticeSubject>(
  devices: readonly D[],
  windowStart: Date,
  noticeHours: (device: D) => number,
  evidence: ReadonlyMap<number, NoticeEvidence>,
): D[] {
  return devices.filter((d) => !d.userEmail || warnedInTime(evidence.get(d.id), windowStart, noticeHours(d)));
}

/**
 * The first window, opening after `now`, for which a DM can still go out in time: what a user's device gets
 * when work becomes due (a confirmation or an approval) inside an open window or too close to one.
 */
export function firstWarnableWindow(rule: WindowRule, zone: string, now: Date, noticeHours: number): MaintenanceWindow {
  let window = nextWindow(rule, zone, DateTime.fromJSDate(now, { zone }));
  for (let i = 0; i < 400 && latestDmQueueTime(window.start.toJSDate(), noticeHours).getTime() < now.getTime(); i++) {
    window = nextWindow(rule, zone, window.start);
  }
  return window;
}

/**
 * The next `count` windows devices of one class will be patched in, seen at `now`: with users (`noticeHours` a
 * number) from the first window they can still be told about; without (null) from the window open now, as the
 * sweep plans them. What the champion's plan card lists.
 */
export function plannedWindows(rule: WindowRule, zone: string, now: Date, noticeHours: number | null, count: number): MaintenanceWindow[] {
  const out: MaintenanceWindow[] = [];
  if (noticeHours === null) {
    const open = windowContaining(rule, zone, DateTime.fromJSDate(now, { zone }));
    if (open && open.end.toMillis() > open.start.toMillis()) out.push(open);
  }
  let window = noticeHours === null ? nextWindow(rule, zone, DateTime.fromJSDate(now, { zone })) : firstWarnableWindow(rule, zone, now, noticeHours);
  while (out.length < count) {
    out.push(window);
    window = nextWindow(rule, zone, window.start);
  }
  return out;
}
