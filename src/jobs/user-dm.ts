/**
 * "Save your work tonight" on a tick. Each minute: refresh the Slack directory when it is a day old, work out for
 * every device with a user which window comes next and what it would install (the rollout's own planWindow, same
 * approvals and holds), ask the domain which DMs are due now, and write each DM row and its outbox post in ONE
 * transaction keyed user x window (ON CONFLICT DO NOTHING). A retried tick, a second scheduler or a worker killed
 * mid fan-out writes nothing twice; the outbox deliverer sends each row once and paces them to the platform.
 *
 * Also each tick: the morning after a window, one "your computer was off last night" per person per release for
 * devices whose run ended offline; and, per client and night, one reply in the release's thread listing users the
 * directory cannot reach.
 */
import { DateTime } from 'luxon';
import { listSlackMembers } from '../adapters/directory/slack-users.ts';
import type { AppDatabase } from '../db/client.ts';
import { activeHolds, effectiveApprovals } from '../db/decisions-repo.ts';
import { DIRECTORY_MAX_AGE_MS, directorySyncedAt, loadRecipients, storeSlackDirectory } from '../db/directory-repo.ts';
import { loadRelease } from '../db/release-repo.ts';
import {
  candidateDevices,
  clientSettings,
  droppedDmNights,
  droppedDms,
  insertOfflineDms,
  insertTonightDms,
  recentOfflineRuns,
  runsInWindows,
  writtenDmKeys,
  type CandidateDevice,
  type NewOfflineDm,
  type OfflineRuns,
} from '../db/user-dm-repo.ts';
import { planWindow } from '../domain/plan.ts';
import { mspProducts, passedUpdates, type ReleaseFacts } from '../domain/eligibility.ts';
import { loadReleaseFacts } from '../db/rollout-repo.ts';
import type { Product } from '../domain/release.ts';
import { nightOf, offlineKey, planNight, tonightKey, type DmRecipient, type NightDevice, type NightPlan, type PlannedDm } from '../domain/user-dm.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { type MaintenanceWindow } from '../domain/windows.ts';
import { firstWarnableWindow, noticeHoursOf } from '../domain/notice.ts';
import { unmatchedWaived } from '../chat/notice-status.ts';
import { noticeWaivers } from '../db/notice-repo.ts';
import { loadAudiences, type Audiences } from '../chat/audiences.ts';
import { notify } from '../chat/notify.ts';
import type { UserDmNotice } from '../chat/notices/user-dms.ts';
import { subjects } from '../chat/subjects.ts';
import { withUnqueuedKeys } from '../db/outbox-repo.ts';
import { zoneShort } from '../domain/zone-label.ts';
import { OutboxNotifier } from './outbox.ts';
import type { JobContext, JobModule } from './context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';
import { WebClient } from '@slack/web-api';

export const USER_DM_QUEUE = 'user-dm';
export const USER_DM_TICK_MS = 60_000;

/** The offline notice waits for the working day: not at 05:00 when the window closes. */
const OFFLINE_NOTICE_FROM_HOUR = 8;

export interface UserDmTickReport {
  dms: number;
  offline: number;
  unmatched: number;
  outboxIds: number[];
}

/** A gate's devices that share one window: planned together, as the sweep plans them. */
interface WindowGroup {
  gateId: number;
  sample: CandidateDevice;
  window: MaintenanceWindow;
  devices: CandidateDevice[];
}

/** A release as the planner needs it: its catalog and what the engineers approved. */
interface ReleasePlanInput {
  products: Product[];
  updates: Array<{ key: string; productIds: string[]; restartRequired: never }>;
  approved: ReadonlySet<string> | 'all';
  facts: ReleaseFacts;
}

type Holds = Parameters<typeof planWindow>[0]['holds'];

/** Devices with work in their next window, per client. */
async function tonightsDevices(db: AppDatabase, now: Date): Promise<Map<string | null, NightDevice[]>> {
  const candidates = await candidateDevices(db);
  const out = new Map<string | null, NightDevice[]>();
  if (candidates.length === 0) return out;
  const holds = (await activeHolds(db)).map((h) => ({ scope: h.scope, releaseId: h.releaseId, updateKey: h.updateKey, clientId: h.clientId, ring: h.ring }));
  const groups = groupByWindow(candidates, now);
  const releases = await releasePlanInputs(db, [...new Set(candidates.map((d) => d.releaseId))]);
  // A (device, window) that already has a run (deferred by its user, or planned by the sweep) needs no warning now.
  const planned = await runsInWindows(db, [...new Set(groups.map((g) => g.window.start.toUTC().toISO()!))]);
  for (const g of groups) {
    const release = releases.get(g.sample.releaseId);
    if (!release) continue;
    const list = out.get(g.sample.clientId) ?? [];
    list.push(...planGroup(g, release, holds, planned));
    out.set(g.sample.clientId, list);
  }
  return out;
}

/** Candidates grouped by gate, then by window, in the order they come. */
function groupByWindow(candidates: readonly CandidateDevice[], now: Date): WindowGroup[] {
  const windowOf = warnableWindows(now);
  const byGate = new Map<number, WindowGroup[]>();
  for (const d of candidates) {
    const window = windowOf(d);
    if (!window) continue;
    const groups = byGate.get(d.gateId) ?? [];
    let g = groups.find((x) => x.window.start.toMillis() === window.start.toMillis() && x.window.end.toMillis() === window.end.toMillis());
    if (!g) {
      g = { gateId: d.gateId, sample: d, window, devices: [] };
      groups.push(g);
    }
    g.devices.push(d);
    byGate.set(d.gateId, groups);
  }
  return [...byGate.values()].flat();
}

/**
 * The first window its user can still be told about in time: a window too close to warn for is left to pass
 * (the sweep gives the device no run there), and with long notice the DM goes before an earlier window opens.
 * Worked out once per zone, window spec and notice.
 */
function warnableWindows(now: Date): (d: CandidateDevice) => MaintenanceWindow | undefined {
  const windows = new Map<string, MaintenanceWindow | undefined>();
  return (d) => {
    const notice = noticeHoursOf({ noticeHours: d.noticeHours });
    const key = `${d.timezone} ${d.spec} ${notice}`;
    if (!windows.has(key)) {
      const rule = d.spec ? parseWindowSpec(d.spec) : undefined;
      windows.set(key, rule?.ok ? firstWarnableWindow(rule.value, d.timezone, now, notice) : undefined);
    }
    return windows.get(key);
  };
}

/** Each release's catalog, approvals and the facts the sweep plans with (none for a release no longer stored). */
async function releasePlanInputs(db: AppDatabase, releaseIds: readonly string[]): Promise<Map<string, ReleasePlanInput>> {
  // The same facts the sweep plans with: an update the rings have not passed yet is no reason to warn anyone.
  const facts = await loadReleaseFacts(db, [...releaseIds]);
  const out = new Map<string, ReleasePlanInput>();
  for (const releaseId of releaseIds) {
    const release = await loadRelease(db, releaseId);
    const list = await effectiveApprovals(db, releaseId);
    if (!release) continue;
    out.set(releaseId, {
      products: release.products,
      updates: release.updates.map((u) => ({ key: u.id, productIds: u.productIds, restartRequired: u.restartRequired as never })),
      approved: list.some((a) => a.updateKey === null) ? 'all' : new Set(list.map((a) => a.updateKey!)),
      facts: facts.get(releaseId)!,
    });
  }
  return out;
}

/** The group's devices the planner gives a run in its window, as DM devices. */
function planGroup(g: WindowGroup, release: ReleasePlanInput, holds: Holds, planned: ReadonlySet<string>): NightDevice[] {
  const { releaseId, ring, clientId } = g.sample;
  const startKey = g.window.start.toUTC().toFormat("yyyy-MM-dd'T'HH:mm:ss");
  const plan = planWindow({
    releaseId,
    ring,
    clientId,
    devices: g.devices.filter((d) => !planned.has(`${d.id}/${startKey}`)),
    products: release.products,
    updates: release.updates,
    approved: release.approved,
    holds,
    passed: passedUpdates(release.facts, ring, clientId, release.updates.map((u) => u.key)),
    // The sweep's rule: past ring msp only for the products it installed on there (no DM for what will not come).
    ...(ring === 'msp' ? {} : { passedProducts: mspProducts(release.facts, release.products, release.updates) }),
    done: release.facts.done,
  });
  const byId = new Map(g.devices.map((d) => [d.id, d]));
  return plan.runs.map((run) => {
    const d = byId.get(run.deviceId)!;
    return {
      deviceId: d.id,
      name: d.name,
      userEmail: d.userEmail,
      releaseId: d.releaseId,
      rolloutId: g.gateId,
      windowStart: g.window.start.toJSDate(),
      windowEnd: g.window.end.toJSDate(),
      updates: run.updates,
    };
  });
}

type ClientSettingsMap = Awaited<ReturnType<typeof clientSettings>>;
type ClientEntry = NonNullable<ReturnType<ClientSettingsMap['get']>>;

/** Plans and writes every DM due at `now`; returns the outbox rows written (to hand to the deliverer). */
export async function queueUserDms(db: AppDatabase, now: Date): Promise<UserDmTickReport> {
  const report: UserDmTickReport = { dms: 0, offline: 0, unmatched: 0, outboxIds: [] };
  const settings = await clientSettings(db);
  const audiences = await loadAudiences(db);
  for (const [clientId, devices] of await tonightsDevices(db, now)) {
    const client = settings.get(clientId);
    if (!client || devices.length === 0) continue;
    const platform = client.settings.chatPlatform ?? 'slack';
    const people = await loadRecipients(db, platform, devices.map((d) => d.userEmail));
    const plan = planNight({
      client: { id: clientId, zone: client.zone, dmTime: client.settings.dmTime, template: client.settings.dmTemplate, noticeHours: client.settings.noticeHours, platform },
      devices: await notYetWarned(db, devices, people),
      people,
      now,
    });
    const ids = await writeInBatches(db, plan.due, now, audiences);
    report.dms += ids.length;
    report.outboxIds.push(...ids);
    if (audiences.engineers) {
      const notices = await unmatchedNotices(db, { clientId, client, platform, releaseId: devices[0]!.releaseId }, plan.unmatched, now);
      report.unmatched += notices.reduce((n, notice) => n + notice.users.length, 0);
      report.outboxIds.push(...(await notify(db, notices, now, audiences)));
    }
  }
  const offline = await queueOfflineNotices(db, now, settings, audiences);
  report.offline = offline.length;
  report.outboxIds.push(...offline);
  report.outboxIds.push(...(await reportDroppedDms(db, now, settings, audiences)));
  report.outboxIds.sort((a, b) => a - b);
  return report;
}

/**
 * The devices whose person has no DM for that window yet. Every tick until the window opens meets the same night's
 * devices again: planning, wording and inserting 25,000 DMs that ON CONFLICT then dropped took ~1.4 s a minute.
 * A person's DM covers all their devices in a window, so a device left out here would only have been dropped with it.
 */
async function notYetWarned(db: AppDatabase, devices: readonly NightDevice[], people: ReadonlyMap<string, DmRecipient>): Promise<NightDevice[]> {
  const keyOf = (d: NightDevice) => {
    const person = people.get(d.userEmail.toLowerCase());
    return person ? tonightKey(person.personId, d.windowStart) : undefined;
  };
  const written = await writtenDmKeys(db, devices.map(keyOf).filter((k): k is string => k !== undefined));
  if (written.size === 0) return [...devices];
  return devices.filter((d) => !written.has(keyOf(d) ?? ''));
}

/** One list per night of the users tonight's DMs cannot reach, for the engineers. */
async function unmatchedNotices(
  db: AppDatabase,
  about: { clientId: string | null; client: ClientEntry; platform: 'slack' | 'teams'; releaseId: string },
  unmatched: NightPlan['unmatched'],
  now: Date,
): Promise<Array<Extract<UserDmNotice, { kind: 'user_dm_unmatched' }>>> {
  const { clientId, platform } = about;
  // A user whose every device an engineer's waiver covers is patched anyway: listing them as waiting would be false.
  const waivers = unmatched.length > 0 ? await noticeWaivers(db, now) : [];
  const waiting = unmatched.filter((u) => !unmatchedWaived({ clientId, email: u.email, platform, devices: u.devices }, waivers, now));
  const byNight = new Map<string, typeof waiting>();
  for (const u of waiting) {
    // Pushed, not copied: a night whose directory reached nobody lists all its users, and copying was quadratic.
    const list = byNight.get(u.night) ?? [];
    list.push(u);
    byNight.set(u.night, list);
  }
  return [...byNight].map(([night, users]) => ({
    kind: 'user_dm_unmatched',
    releaseId: about.releaseId,
    clientId,
    clientName: about.client.name,
    platform,
    night,
    users: users.map((u) => ({ email: u.email, devices: u.devices })),
  }));
}

/**
 * How long after a night's deadline its dropped DMs are reported: the deliverer drops a night's held-up DMs as it
 * reaches them, within a minute or two of the deadline, and the engineers get one list per client and night.
 */
const DROPPED_REPORT_AFTER_MS = 10 * 60_000;
/** How far back a tick looks for dropped DMs not yet reported (the report's key makes a second one a no-op). */
const DROPPED_LOOKBACK_MS = 2 * 24 * 3_600_000;

/**
 * The engineers hear, under the release's digest, whose DM could not be sent before its deadline: those machines
 * were left out of that night's window (no reboot without a warning), and without this they waited in silence.
 */
async function reportDroppedDms(db: AppDatabase, now: Date, settings: ClientSettingsMap, audiences: Audiences): Promise<number[]> {
  if (!audiences.engineers) return [];
  const since = new Date(now.getTime() - DROPPED_LOOKBACK_MS);
  const prefix = subjects.userDm('');
  const settled = (await droppedDmNights(db, since, prefix)).filter((n) => now.getTime() >= n.deadline.getTime() + DROPPED_REPORT_AFTER_MS);
  // A night reported is not read again: an outage can drop a whole client's DMs, and the tick runs every minute.
  const unreported = await withUnqueuedKeys(db, settled, (n) => [subjects.userDmLate(n.clientId, n.night)]);
  const notices: UserDmNotice[] = [];
  for (const night of unreported) {
    const client = settings.get(night.clientId);
    const at = DateTime.fromJSDate(night.deadline, { zone: client?.zone ?? 'UTC' }).setLocale('en-US');
    notices.push({
      kind: 'user_dm_late',
      releaseId: night.releaseId,
      clientId: night.clientId,
      clientName: client?.name ?? night.clientId ?? 'the MSP',
      night: night.night,
      deadline: `${at.toFormat('ccc d LLL HH:mm')} ${zoneShort(at)}`,
      users: (await droppedDms(db, since, prefix, night)).map((d) => ({ name: d.personName, devices: d.devices })),
    });
  }
  return notices.length > 0 ? notify(db, notices, now, audiences) : [];
}

/** A batch of DMs per transaction: a crash loses none of a batch's rows without its posts, and none twice. */
const DMS_PER_TRANSACTION = 500;

/**
 * Two batches in flight at once: the database does the writing (each batch's rows, indexes and foreign keys), one
 * core per connection, so a second connection keeps a second core busy while the first commits. Each batch is
 * its own transaction keyed user x window, so batches need no order; after a failure no new batch starts, the
 * ones in flight finish, and the tick fails (its re-run writes what is missing, once).
 */
const WRITERS = 2;

async function writeInBatches(db: AppDatabase, dms: readonly PlannedDm[], now: Date, audiences: Audiences): Promise<number[]> {
  const batches: PlannedDm[][] = [];
  for (let i = 0; i < dms.length; i += DMS_PER_TRANSACTION) batches.push(dms.slice(i, i + DMS_PER_TRANSACTION));
  const ids: number[] = [];
  let failed = false;
  const writer = async (): Promise<void> => {
    for (let batch = batches.shift(); batch && !failed; batch = batches.shift()) {
      try {
        ids.push(...(await writeDms(db, batch, now, audiences)));
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const outcomes = await Promise.allSettled(Array.from({ length: Math.min(WRITERS, batches.length) }, writer));
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure) throw failure.reason;
  return ids;
}

/** DM rows and their outbox posts in one transaction, both keyed user x window; a DM already written is skipped. */
async function writeDms(db: AppDatabase, dms: readonly PlannedDm[], now: Date, audiences: Audiences): Promise<number[]> {
  if (dms.length === 0) return [];
  return db.transaction(async (tx) => {
    const inserted = await insertTonightDms(tx, dms, now);
    const byKey = new Map(dms.map((dm) => [dm.key, dm]));
    const notices = inserted.map(({ id, key }): UserDmNotice => {
      const dm = byKey.get(key)!;
      return { kind: 'user_dm_sent', dmId: id, key: dm.key, platform: dm.platform, channel: dm.channel, text: dm.text, notAfter: dm.notAfter.toISOString() };
    });
    return notify(tx, notices, now, audiences);
  });
}

/**
 * The morning after: a person whose device's run ended `offline` in a window that closed in the last 18 hours
 * hears so once per release (the key), from 08:00 their time, not every morning the machine stays off. The people
 * are looked up together, and their rows and posts written a batch per transaction, as tonight's DMs are.
 */
async function queueOfflineNotices(db: AppDatabase, now: Date, settings: ClientSettingsMap, audiences: Audiences): Promise<number[]> {
  const due = await offlineDmsDue(db, await recentOfflineRuns(db, now), settings, now);
  const ids: number[] = [];
  for (let i = 0; i < due.length; i += DMS_PER_TRANSACTION) ids.push(...(await writeOfflineDms(db, due.slice(i, i + DMS_PER_TRANSACTION), now, audiences)));
  return ids;
}

async function writeOfflineDms(db: AppDatabase, dms: readonly NewOfflineDm[], now: Date, audiences: Audiences): Promise<number[]> {
  return db.transaction(async (tx) => {
    const inserted = await insertOfflineDms(tx, dms, now);
    // One notice per key: a user with machines at two clients is in the answer twice, and is told once.
    const notices = [...new Map(dms.filter((dm) => inserted.has(dm.key)).map((dm) => [dm.key, dm])).values()].map(
      (dm): UserDmNotice => ({ kind: 'user_dm_offline', key: dm.key, platform: dm.platform, channel: dm.channel, deviceNames: dm.names }),
    );
    return notify(tx, notices, now, audiences);
  });
}

/** The offline notices due now; none for a user who cannot be reached or for whom it is not 08:00 yet. */
async function offlineDmsDue(db: AppDatabase, runs: readonly OfflineRuns[], settings: ClientSettingsMap, now: Date): Promise<NewOfflineDm[]> {
  const platformOf = (r: OfflineRuns) => settings.get(r.clientId)?.settings.chatPlatform ?? 'slack';
  const recipients = new Map<'slack' | 'teams', Map<string, DmRecipient>>();
  for (const platform of ['slack', 'teams'] as const) {
    const emails = runs.filter((r) => settings.has(r.clientId) && platformOf(r) === platform).map((r) => r.email);
    if (emails.length > 0) recipients.set(platform, await loadRecipients(db, platform, emails));
  }
  return runs.flatMap((r) => {
    const client = settings.get(r.clientId);
    const person = recipients.get(platformOf(r))?.get(r.email.toLowerCase());
    const dm = client && person ? offlineDmFor(r, client.zone, person, now) : undefined;
    return dm ? [dm] : [];
  });
}

/** The user's offline notice, once it is 08:00 their time the morning after; none when they cannot be reached. */
function offlineDmFor(runs: OfflineRuns, clientZone: string, person: DmRecipient, now: Date): NewOfflineDm | undefined {
  if (!person.address) return undefined;
  const zone = person.zone ?? clientZone;
  const local = DateTime.fromJSDate(runs.windowEnd, { zone });
  const from = Math.max(runs.windowEnd.getTime(), local.startOf('day').set({ hour: OFFLINE_NOTICE_FROM_HOUR }).toMillis());
  if (now.getTime() < from) return undefined;
  return {
    key: offlineKey(person.personId, runs.releaseId),
    personId: person.personId,
    clientId: runs.clientId,
    releaseId: runs.releaseId,
    night: nightOf(now, zone),
    ...person.address,
    zone,
    names: runs.names,
  };
}

/** Refreshes the Slack directory when the cached one is older than a day; returns whether it ran. */
export async function refreshDirectoryIfStale(db: AppDatabase, web: WebClient, now: Date, maxAgeMs = DIRECTORY_MAX_AGE_MS): Promise<boolean> {
  const at = await directorySyncedAt(db);
  if (at && now.getTime() - at.getTime() < maxAgeMs) return false;
  const { members } = await listSlackMembers(web);
  await storeSlackDirectory(db, members, now);
  return true;
}

export const userDm: JobModule = async (context: JobContext) => {
  const { config } = context;
  const enabled = Boolean(config.slack.botToken || config.teams.appId);
  if (!enabled || (!context.roles.has('worker') && !context.roles.has('scheduler'))) return { close: async () => {} };
  const queue = createQueue(context, USER_DM_QUEUE, { ...KEEP_FEW, attempts: 1 });
  if (context.roles.has('scheduler')) {
    await queue.upsertJobScheduler('user-dm-tick', { every: context.pace?.tickMs ?? USER_DM_TICK_MS }, { name: 'tick', opts: { ...KEEP_FEW, attempts: 1 } });
  }
  const notifier = new OutboxNotifier(context.redis, context.prefix);
  // The directory read may wait on users.list's Retry-After (Tier 2): a client that retries 429s as told.
  const directory = config.slack.botToken ? new WebClient(config.slack.botToken, { slackApiUrl: config.slack.apiUrl }) : undefined;
  const workers = context.roles.has('worker')
    ? [
        createWorker(context, USER_DM_QUEUE, async () => {
          const db = context.database.db;
          if (directory) {
            await refreshDirectoryIfStale(db, directory, context.now()).catch((error: unknown) => context.log.warn({ err: error }, 'slack directory refresh failed; using the cached one'));
          }
          const report = await queueUserDms(db, context.now());
          await notifier.notify(report.outboxIds);
          return { dms: report.dms, offline: report.offline, unmatched: report.unmatched };
        }, { concurrency: 1 }),
      ]
    : [];
  return {
    async close() {
      await closeAll(workers, [queue]);
      await notifier.close();
    },
  };
};
