/**
 * "Save your work tonight": who gets a direct message, when, in which zone, naming which devices, and how many
 * times a person may put their machine off. Pure: the job loads tonight's planned runs and the directory, and
 * stores and sends what this returns.
 *
 * Send time: the latest instant, strictly before the window opens, at which the person's wall clock reads the
 * client's DM time, as long as that leaves the client's notice hours (src/domain/notice.ts); otherwise earlier,
 * a quarter of an hour before the notice deadline. So a 01:00-05:00 window is announced at 15:00 the afternoon
 * before ("tonight" from the afternoon before), a 22:00 window at 15:00 the same day, and a 16:00 window with 4
 * hours' notice at 11:45. Wall-clock reading is resolved by luxon in the zone, so on a DST day the DM still goes
 * at 15:00 local (a DM time inside a skipped hour goes at the end of the gap).
 */
import { DateTime } from 'luxon';
import { zoneShort } from './zone-label.ts';
import { DEFAULT_NOTICE_HOURS, dmDue, latestDmSendTime, noticeDeadline } from './notice.ts';

export const DEFAULT_DM_TIME = '15:00';
export const DEFAULT_MAX_DEFERRALS = 2;

export const DEFAULT_DM_TEMPLATE = [
  'Hi {name}, your computer{s} {devices} will be updated and may restart {when}.',
  'Please *save your work* before you leave and *leave the computer{s} on* (you can log off or lock it).',
].join('\n');

/** For a window in working hours: people are at their desks, so there is no "before you leave". */
export const DEFAULT_DAY_DM_TEMPLATE = [
  'Hi {name}, your computer{s} {devices} will be updated and may restart {when}.',
  'Before that, please *save your work* and *leave the computer{s} on* (you can log off or lock it).',
].join('\n');

/** Local hours at which a window counts as daytime: it starts after people arrive and before they leave. */
const DAY_FROM_HOUR = 6;
const EVENING_FROM_HOUR = 17;

/** `HH:MM`, 24-hour. */
export function parseDmTime(text: string | undefined): { hour: number; minute: number } | undefined {
  const m = /^([01]?\d|2[0-3]):([0-5]\d)$/.exec((text ?? '').trim());
  return m ? { hour: Number(m[1]), minute: Number(m[2]) } : undefined;
}

function dmTimeOrDefault(text: string | undefined): { hour: number; minute: number } {
  return parseDmTime(text) ?? parseDmTime(DEFAULT_DM_TIME)!;
}

/**
 * When the DM for a window that opens at `windowStart` goes out, for a person in `zone`: at the DM time if that
 * leaves `noticeHours` (plus a quarter of an hour to deliver it), else at that latest instant. Never later.
 */
export function dmSendTime(windowStart: Date, zone: string, dmTime: string | undefined = DEFAULT_DM_TIME, noticeHours: number = DEFAULT_NOTICE_HOURS): Date {
  const atDmTime = lastDmTimeBefore(windowStart, zone, dmTime);
  const latest = latestDmSendTime(windowStart, noticeHours);
  return atDmTime.getTime() <= latest.getTime() ? atDmTime : latest;
}

function lastDmTimeBefore(windowStart: Date, zone: string, dmTime: string | undefined): Date {
  const { hour, minute } = dmTimeOrDefault(dmTime);
  const start = DateTime.fromJSDate(windowStart, { zone });
  let day = start.startOf('day');
  for (let i = 0; i < 3; i++) {
    const at = DateTime.fromObject({ year: day.year, month: day.month, day: day.day, hour, minute }, { zone });
    if (at.toMillis() < start.toMillis()) return at.toJSDate();
    day = day.minus({ days: 1 });
  }
  throw new Error('unreachable: a DM time within the three days before any window exists');
}

/** The night a DM belongs to: the person's local date of the afternoon it is sent (the idempotency key's day). */
export function nightOf(sendAt: Date, zone: string): string {
  return DateTime.fromJSDate(sendAt, { zone }).toISODate()!;
}

function clock(t: DateTime): string {
  return t.toFormat('h:mm');
}

/** A window that opens in working hours, in the person's zone: the DM speaks of "today", not "tonight". */
export function isDaytime(start: Date, zone: string): boolean {
  const hour = DateTime.fromJSDate(start, { zone }).hour;
  return hour >= DAY_FROM_HOUR && hour < EVENING_FROM_HOUR;
}

/**
 * "today", "tonight", "tomorrow" or "on Tuesday 12 March", seen from the moment the DM is sent: a window in the
 * small hours after the DM's day is still "tonight"; one in working hours is "today" or "tomorrow".
 */
function dayWord(s: DateTime, sent: DateTime): string {
  const sameDay = s.toISODate() === sent.toISODate();
  const nextDay = s.toISODate() === sent.plus({ days: 1 }).toISODate();
  if (sameDay) return s.hour >= DAY_FROM_HOUR && s.hour < EVENING_FROM_HOUR ? 'today' : 'tonight';
  if (nextDay) return s.hour < DAY_FROM_HOUR ? 'tonight' : 'tomorrow';
  return `on ${s.toFormat('cccc d LLLL')}`;
}

/**
 * "tonight between 1:00 and 5:00 AM CST", "today between 12:00 and 2:00 PM GMT", in the person's zone. The
 * zone's abbreviation is shown at each end when they differ (across a clock change: "between 1:00 AM CST and
 * 5:00 AM CDT").
 */
export function windowPhrase(start: Date, end: Date, zone: string, sendAt: Date): string {
  const s = DateTime.fromJSDate(start, { zone }).setLocale('en-US');
  const e = DateTime.fromJSDate(end, { zone }).setLocale('en-US');
  const when = dayWord(s, DateTime.fromJSDate(sendAt, { zone }));
  const [sz, ez] = [zoneShort(s), zoneShort(e)];
  const [sm, em] = [s.toFormat('a'), e.toFormat('a')];
  if (sz !== ez) return `${when} between ${clock(s)} ${sm} ${sz} and ${clock(e)} ${em} ${ez}`;
  if (sm !== em) return `${when} between ${clock(s)} ${sm} and ${clock(e)} ${em} ${ez}`;
  return `${when} between ${clock(s)} and ${clock(e)} ${em} ${ez}`;
}

export interface DmDevice {
  deviceId: number;
  name: string;
  releaseId: string;
  rolloutId: number;
  windowStart: Date;
  windowEnd: Date;
  updates: readonly string[];
}

export interface DmRecipient {
  personId: number;
  email: string;
  displayName: string | null;
  /** The person's own zone when the directory knows it. */
  zone: string | null;
  /** Where to reach them; undefined when the directory has no match (they are listed for the engineers). */
  address: { platform: 'slack' | 'teams'; channel: string; recipient: string } | undefined;
}

export interface DmClient {
  id: string | null;
  zone: string;
  dmTime?: string | undefined;
  template?: string | undefined;
  /** Hours before a window its users must have been told; default DEFAULT_NOTICE_HOURS. */
  noticeHours?: number | undefined;
  platform: 'slack' | 'teams';
}

export interface NightDevice extends DmDevice {
  userEmail: string;
}

export interface PlannedDm {
  key: string;
  personId: number;
  clientId: string | null;
  releaseId: string;
  night: string;
  sendAt: Date;
  zone: string;
  platform: 'slack' | 'teams';
  channel: string;
  recipient: string;
  devices: DmDevice[];
  text: string;
  /**
   * The window's notice deadline: delivered after it, the DM would promise a night the sweep no longer admits its
   * machines to (src/domain/notice.ts), so the deliverer drops it instead, and the next window's DM goes in time.
   */
  notAfter: Date;
}

export interface NightPlan {
  due: PlannedDm[];
  /** Users with devices to patch whom the directory cannot reach, by email, with those devices' names. */
  unmatched: Array<{ email: string; devices: string[]; night: string }>;
}

/**
 * One DM per person per window: the key names the window's start (UTC ISO), not the local date. Keyed by date, a
 * second window whose DM fell on the same date (a 12:00 window and a 22:00 one, or work that became due after the
 * first DM went) was deduplicated away, and that window's devices, never warned, were never admitted.
 */
export const tonightKey = (personId: number, windowStart: Date): string => `tonight:${personId}:${windowStart.toISOString()}`;
export const offlineKey = (personId: number, releaseId: string): string => `offline:${personId}:${releaseId}`;

/**
 * The DMs due at `now` for one client: one per person per window, for devices whose run in it will install (a
 * planned run always carries updates; a device with nothing to install is not passed in or is dropped here).
 * Due means the send time has come and the DM can still reach the person the client's notice hours before the
 * window; a window too close for that is left to pass (its devices get no run there) and the next one is told.
 */
export function planNight(input: { client: DmClient; devices: readonly NightDevice[]; people: ReadonlyMap<string, DmRecipient>; now: Date }): NightPlan {
  const { client, now } = input;
  const groups = new Map<string, { person: DmRecipient | undefined; email: string; zone: string; night: string; sendAt: Date; windowStart: Date; devices: DmDevice[] }>();
  const notice = client.noticeHours ?? DEFAULT_NOTICE_HOURS;
  const whenSent = sendTimes(client.dmTime, notice);
  const words = dmWording();
  for (const device of input.devices) {
    if (device.updates.length === 0) continue;
    const person = input.people.get(device.userEmail.toLowerCase());
    const zone = person?.zone ?? client.zone;
    const { sendAt, night } = whenSent(device.windowStart, zone);
    if (!dmDue(sendAt, device.windowStart, notice, now)) continue;
    // Per window, not per date: each window's devices need a warning naming that window (see tonightKey).
    const key = `${device.userEmail.toLowerCase()}|${device.windowStart.getTime()}`;
    let group = groups.get(key);
    if (!group) {
      group = { person, email: device.userEmail.toLowerCase(), zone, night, sendAt, windowStart: device.windowStart, devices: [] };
      groups.set(key, group);
    }
    group.devices.push(device);
    if (sendAt < group.sendAt) group.sendAt = sendAt;
  }
  const plan: NightPlan = { due: [], unmatched: [] };
  const unmatched = new Map<string, NightPlan['unmatched'][number]>();
  for (const g of groups.values()) {
    g.devices.sort((a, b) => a.windowStart.getTime() - b.windowStart.getTime() || a.name.localeCompare(b.name));
    if (!g.person?.address) {
      // Listed once per person and night for the engineers, whatever windows their devices are in (looked up by
      // key: a night the directory reaches nobody lists every user, and a search per user was quadratic).
      const unmatchedKey = `${g.email}|${g.night}`;
      const listed = unmatched.get(unmatchedKey);
      if (listed) listed.devices.push(...g.devices.map((d) => d.name).filter((n) => !listed.devices.includes(n)));
      else unmatched.set(unmatchedKey, { email: g.email, devices: g.devices.map((d) => d.name), night: g.night });
      continue;
    }
    const { address } = g.person;
    plan.due.push({
      key: tonightKey(g.person.personId, g.windowStart),
      personId: g.person.personId,
      clientId: client.id,
      releaseId: g.devices[0]!.releaseId,
      night: g.night,
      sendAt: g.sendAt,
      zone: g.zone,
      platform: address.platform,
      channel: address.channel,
      recipient: address.recipient,
      devices: g.devices,
      notAfter: noticeDeadline(g.windowStart, notice),
      // Worded from now, when it goes, not from its DM time: work that came due after midnight is "today", not "tomorrow".
      text: renderDmText(client.template, { name: g.person.displayName ?? firstName(g.email), devices: g.devices, zone: g.zone, sendAt: now }, words),
    });
  }
  // One collator for the sort: the same order as localeCompare, without setting one up per comparison.
  const byLocale = new Intl.Collator().compare;
  plan.due.sort((a, b) => byLocale(a.key, b.key));
  plan.unmatched = [...unmatched.values()].sort((a, b) => byLocale(a.email, b.email));
  return plan;
}

/**
 * dmSendTime and nightOf per window start and zone, worked out once: a night's thousands of devices share a handful
 * of windows and zones, and each luxon zone computation costs far more than the lookup.
 */
function sendTimes(dmTime: string | undefined, noticeHours: number): (windowStart: Date, zone: string) => { sendAt: Date; night: string } {
  const known = new Map<string, { sendAt: Date; night: string }>();
  return (windowStart, zone) => {
    const key = `${windowStart.getTime()}|${zone}`;
    let hit = known.get(key);
    if (!hit) {
      const sendAt = dmSendTime(windowStart, zone, dmTime, noticeHours);
      hit = { sendAt, night: nightOf(sendAt, zone) };
      known.set(key, hit);
    }
    return hit;
  };
}

function firstName(email: string): string {
  const local = email.split('@')[0] ?? email;
  const first = local.split(/[._-]/)[0] ?? local;
  return first.charAt(0).toUpperCase() + first.slice(1);
}

/** "A, B and C" */
export function listNames(names: readonly string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

/**
 * Fills a client's template. Fields: {name} {devices} {when} {s} (plural "s" for devices), {start} {end} {zone}.
 * Devices in different windows get each window named after them. Unknown fields are left as written, so a typo
 * shows in the message rather than silently vanishing. Values are plain text; the Slack/Teams renderer escapes.
 */
export function renderDmText(
  template: string | undefined,
  v: { name: string; devices: readonly DmDevice[]; zone: string; sendAt: Date },
  words: DmWording = dmWording(),
): string {
  const byWindow = new Map<string, DmDevice[]>();
  for (const d of v.devices) {
    const k = `${d.windowStart.getTime()}|${d.windowEnd.getTime()}`;
    byWindow.set(k, [...(byWindow.get(k) ?? []), d]);
  }
  const first = v.devices[0]!;
  const windows = [...byWindow.values()].map((ds) => words(ds[0]!.windowStart, ds[0]!.windowEnd, v.zone, v.sendAt));
  const oneWindow = byWindow.size === 1;
  const devices = oneWindow
    ? listNames(v.devices.map((d) => d.name))
    : listNames([...byWindow.values()].map((ds, i) => `${listNames(ds.map((d) => d.name))} (${windows[i]!.phrase})`));
  const firstWindow = words(first.windowStart, first.windowEnd, v.zone, v.sendAt);
  const fields: Record<string, string> = {
    name: v.name,
    devices,
    s: v.devices.length === 1 ? '' : 's',
    when: oneWindow ? windows[0]!.phrase : 'at the times shown',
    start: firstWindow.start,
    end: firstWindow.end,
    zone: firstWindow.zone,
  };
  const daytime = v.devices.every((d) => words(d.windowStart, d.windowEnd, v.zone, v.sendAt).daytime);
  return (template ?? (daytime ? DEFAULT_DAY_DM_TEMPLATE : DEFAULT_DM_TEMPLATE)).replace(/\{(\w+)\}/g, (whole, field: string) => fields[field] ?? whole);
}

/** What a DM says about one window in one zone, seen from when it is sent: the same for everyone who shares them. */
export interface WindowWords {
  phrase: string;
  start: string;
  end: string;
  zone: string;
  daytime: boolean;
}

export type DmWording = (start: Date, end: Date, zone: string, sendAt: Date) => WindowWords;

/**
 * A window's words, worked out once per window, zone and send time and then looked up: luxon's zone names and
 * formats cost a millisecond each, and 25,000 people in a few windows and zones need only a handful of them.
 */
export function dmWording(): DmWording {
  const known = new Map<string, WindowWords>();
  return (start, end, zone, sendAt) => {
    const key = `${start.getTime()}|${end.getTime()}|${zone}|${sendAt.getTime()}`;
    let hit = known.get(key);
    if (!hit) {
      const s = DateTime.fromJSDate(start, { zone }).setLocale('en-US');
      const e = DateTime.fromJSDate(end, { zone }).setLocale('en-US');
      hit = { phrase: windowPhrase(start, end, zone, sendAt), start: s.toFormat('h:mm a'), end: e.toFormat('h:mm a'), zone: zoneShort(s), daytime: isDaytime(start, zone) };
      known.set(key, hit);
    }
    return hit;
  };
}

export type DeferralVerdict = { allowed: true; used: number; left: number } | { allowed: false; used: number };

/** A person may put their machines off `max` times per release; past that the engineers decide. */
export function deferral(usedThisRelease: number, max: number | undefined): DeferralVerdict {
  const limit = Math.max(0, max ?? DEFAULT_MAX_DEFERRALS);
  return usedThisRelease < limit ? { allowed: true, used: usedThisRelease + 1, left: limit - usedThisRelease - 1 } : { allowed: false, used: usedThisRelease };
}

/**
 * The answer line a DM shows once answered (the buttons are replaced by it). A deferral names the new window's
 * start, dated and with its zone, and no other time: the moment of answering next to it read as a second window.
 */
export function answerLine(answer: 'ok' | 'defer' | 'escalated', at: Date, zone: string, deferredTo?: Date, computers = 1): string {
  const answered = DateTime.fromJSDate(at, { zone }).setLocale('en-US');
  const when = `${answered.toFormat('h:mm a')} ${zoneShort(answered)}`;
  // The DM named one computer or several: the answer speaks of them as the DM did.
  const many = computers > 1;
  switch (answer) {
    case 'ok':
      return `Thanks: you said you will leave ${many ? 'them' : 'it'} on (answered at ${when}).`;
    case 'defer':
      return `Done: ${many ? 'they' : 'it'} will not be updated then. ${many ? 'They move' : 'It moves'} to ${deferredTo ? withZone(DateTime.fromJSDate(deferredTo, { zone }).setLocale('en-US'), "cccc d LLLL 'at' h:mm a") : 'the next window'}.`;
    case 'escalated':
      return `You have already put this month's updates off the most times allowed, so your IT team has been asked to decide; they will be in touch (answered at ${when}).`;
  }
}

export const OFFLINE_TEXT = 'Your computer was off last night, so it could not be updated. Please leave it on tonight (you can log off or lock it).';

/** `format` (luxon tokens, no zone token) and the zone as people read it: "NZDT", not en-US's "GMT+13". */
function withZone(at: DateTime, format: string): string {
  return `${at.toFormat(format)} ${zoneShort(at)}`;
}
