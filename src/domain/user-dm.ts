/**
 * "Save your work tonight": who gets a direct message, when, in which zone, naming which devices, and how many
 * times a person may put their machine off. Pure: the job loads tonight's planned runs and the directory, and
 * stores and sends what this returns.
 *
 * Send time: the latest instant, strictly before the window opens, at which the person's wall clock reads the
 * client's DM time. So a 01:00-05:00 window is announced at 15:00 the afternoon before ("tonight" from the
 * afternoon before), a 22:00 window at 15:00 the same day. Wall-clock reading is resolved by luxon in the zone,
 * so on a DST day the DM still goes at 15:00 local (a DM time inside a skipped hour goes at the end of the gap).
 */
import { DateTime } from 'luxon';

export const DEFAULT_DM_TIME = '15:00';
export const DEFAULT_MAX_DEFERRALS = 2;

export const DEFAULT_DM_TEMPLATE = [
  'Hi {name}, your computer{s} {devices} will be updated and may restart {when}.',
  'Please *save your work* before you leave and *leave the computer on* (you can log off or lock it).',
].join('\n');

/** `HH:MM`, 24-hour. */
export function parseDmTime(text: string | undefined): { hour: number; minute: number } | undefined {
  const m = /^([01]?\d|2[0-3]):([0-5]\d)$/.exec((text ?? '').trim());
  return m ? { hour: Number(m[1]), minute: Number(m[2]) } : undefined;
}

function dmTimeOrDefault(text: string | undefined): { hour: number; minute: number } {
  return parseDmTime(text) ?? parseDmTime(DEFAULT_DM_TIME)!;
}

/** When the DM for a window that opens at `windowStart` goes out, for a person in `zone`. */
export function dmSendTime(windowStart: Date, zone: string, dmTime: string | undefined = DEFAULT_DM_TIME): Date {
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

/**
 * "tonight between 1:00 and 5:00 AM CST", in the person's zone. The zone's abbreviation is shown at each end when
 * they differ (a window across a clock change: "between 1:00 AM CST and 5:00 AM CDT").
 */
export function windowPhrase(start: Date, end: Date, zone: string, sendAt: Date): string {
  const s = DateTime.fromJSDate(start, { zone }).setLocale('en-US');
  const e = DateTime.fromJSDate(end, { zone }).setLocale('en-US');
  const sent = DateTime.fromJSDate(sendAt, { zone });
  const sameDay = s.toISODate() === sent.toISODate();
  const nextMorning = s.toISODate() === sent.plus({ days: 1 }).toISODate() && s.hour < 12;
  const when = sameDay || nextMorning ? 'tonight' : `on ${s.toFormat('cccc d LLLL')}`;
  const [sz, ez] = [s.toFormat('ZZZZ'), e.toFormat('ZZZZ')];
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
}

export interface NightPlan {
  due: PlannedDm[];
  /** Users with devices to patch whom the directory cannot reach, by email, with those devices' names. */
  unmatched: Array<{ email: string; devices: string[]; night: string }>;
}

export const tonightKey = (personId: number, night: string): string => `tonight:${personId}:${night}`;
export const offlineKey = (personId: number, releaseId: string): string => `offline:${personId}:${releaseId}`;

/**
 * The DMs due at `now` for one client: one per person per night, for devices whose run tonight will install (a
 * planned run always carries updates; a device with nothing to install is not passed in or is dropped here).
 * Due means the send time has come and the earliest of the person's windows has not opened yet.
 */
export function planNight(input: { client: DmClient; devices: readonly NightDevice[]; people: ReadonlyMap<string, DmRecipient>; now: Date }): NightPlan {
  const { client, now } = input;
  const groups = new Map<string, { person: DmRecipient | undefined; email: string; zone: string; night: string; sendAt: Date; devices: DmDevice[] }>();
  for (const device of input.devices) {
    if (device.updates.length === 0) continue;
    const person = input.people.get(device.userEmail.toLowerCase());
    const zone = person?.zone ?? client.zone;
    const sendAt = dmSendTime(device.windowStart, zone, client.dmTime);
    if (sendAt.getTime() > now.getTime() || device.windowStart.getTime() <= now.getTime()) continue;
    const night = nightOf(sendAt, zone);
    const key = `${device.userEmail.toLowerCase()}|${night}`;
    let group = groups.get(key);
    if (!group) {
      group = { person, email: device.userEmail.toLowerCase(), zone, night, sendAt, devices: [] };
      groups.set(key, group);
    }
    group.devices.push(device);
    if (sendAt < group.sendAt) group.sendAt = sendAt;
  }
  const plan: NightPlan = { due: [], unmatched: [] };
  for (const g of groups.values()) {
    g.devices.sort((a, b) => a.windowStart.getTime() - b.windowStart.getTime() || a.name.localeCompare(b.name));
    if (!g.person?.address) {
      plan.unmatched.push({ email: g.email, devices: g.devices.map((d) => d.name), night: g.night });
      continue;
    }
    const { address } = g.person;
    plan.due.push({
      key: tonightKey(g.person.personId, g.night),
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
      text: renderDmText(client.template, { name: g.person.displayName ?? firstName(g.email), devices: g.devices, zone: g.zone, sendAt: g.sendAt }),
    });
  }
  plan.due.sort((a, b) => a.key.localeCompare(b.key));
  plan.unmatched.sort((a, b) => a.email.localeCompare(b.email));
  return plan;
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
export function renderDmText(template: string | undefined, v: { name: string; devices: readonly DmDevice[]; zone: string; sendAt: Date }): string {
  const byWindow = new Map<string, DmDevice[]>();
  for (const d of v.devices) {
    const k = `${d.windowStart.getTime()}|${d.windowEnd.getTime()}`;
    byWindow.set(k, [...(byWindow.get(k) ?? []), d]);
  }
  const first = v.devices[0]!;
  const phrases = [...byWindow.values()].map((ds) => windowPhrase(ds[0]!.windowStart, ds[0]!.windowEnd, v.zone, v.sendAt));
  const oneWindow = byWindow.size === 1;
  const devices = oneWindow
    ? listNames(v.devices.map((d) => d.name))
    : listNames([...byWindow.values()].map((ds, i) => `${listNames(ds.map((d) => d.name))} (${phrases[i]})`));
  const s = DateTime.fromJSDate(first.windowStart, { zone: v.zone }).setLocale('en-US');
  const e = DateTime.fromJSDate(first.windowEnd, { zone: v.zone }).setLocale('en-US');
  const fields: Record<string, string> = {
    name: v.name,
    devices,
    s: v.devices.length === 1 ? '' : 's',
    when: oneWindow ? phrases[0]! : 'tonight',
    start: s.toFormat('h:mm a'),
    end: e.toFormat('h:mm a'),
    zone: s.toFormat('ZZZZ'),
  };
  return (template ?? DEFAULT_DM_TEMPLATE).replace(/\{(\w+)\}/g, (whole, field: string) => fields[field] ?? whole);
}

export type DeferralVerdict = { allowed: true; used: number; left: number } | { allowed: false; used: number };

/** A person may put their machines off `max` times per release; past that the engineers decide. */
export function deferral(usedThisRelease: number, max: number | undefined): DeferralVerdict {
  const limit = Math.max(0, max ?? DEFAULT_MAX_DEFERRALS);
  return usedThisRelease < limit ? { allowed: true, used: usedThisRelease + 1, left: limit - usedThisRelease - 1 } : { allowed: false, used: usedThisRelease };
}

/** The answer line a DM shows once answered (the buttons are replaced by it). */
export function answerLine(answer: 'ok' | 'defer' | 'escalated', at: Date, zone: string, deferredTo?: Date): string {
  const when = DateTime.fromJSDate(at, { zone }).setLocale('en-US').toFormat('h:mm a');
  switch (answer) {
    case 'ok':
      return `Thanks: you said you will leave it on (${when}).`;
    case 'defer':
      return `Done: nothing will happen tonight. It moves to ${deferredTo ? DateTime.fromJSDate(deferredTo, { zone }).setLocale('en-US').toFormat("cccc 'at' h:mm a ZZZZ") : 'the next window'} (${when}).`;
    case 'escalated':
      return `You have already put this month's updates off the most times allowed, so your IT team has been asked to decide; they will be in touch (${when}).`;
  }
}

export const OFFLINE_TEXT = 'Your computer was off last night, so it could not be updated. Please leave it on tonight (you can log off or lock it).';
