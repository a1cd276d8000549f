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
import { sql } from 'drizzle-orm';
import { DateTime } from 'luxon';
import { listSlackMembers } from '../adapters/directory/slack-users.ts';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import { activeHolds, effectiveApprovals } from '../db/decisions-repo.ts';
import { DIRECTORY_MAX_AGE_MS, directorySyncedAt, loadRecipients, storeSlackDirectory } from '../db/directory-repo.ts';
import { enqueueOutbox, type OutboxItem } from '../db/outbox-repo.ts';
import { loadRelease } from '../db/release-repo.ts';
import { candidateDevices, clientSettings, engineersChannel, type CandidateDevice } from '../db/user-dm-repo.ts';
import { planWindow } from '../domain/plan.ts';
import { mspProducts, passedUpdates } from '../domain/eligibility.ts';
import { loadReleaseFacts } from '../db/rollout-repo.ts';
import type { Product } from '../domain/release.ts';
import { listNames, nightOf, offlineKey, planNight, type NightDevice, type PlannedDm } from '../domain/user-dm.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';
import { type MaintenanceWindow } from '../domain/windows.ts';
import { firstWarnableWindow, noticeHoursOf } from '../domain/notice.ts';
import { offlineNoticePayload, userDmPayload } from '../bot/user-dm-render.ts';
import { unmatchedWaived, WAIVE_HINT } from '../bot/notice-status.ts';
import { noticeWaivers } from '../db/notice-repo.ts';
import { boundText, escapeMrkdwn } from '../bot/slack/block-kit.ts';
import { OutboxNotifier } from './outbox.ts';
import type { JobContext, JobModule } from './context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';
import { WebClient } from '@slack/web-api';
import { subjects } from '../chat/subjects.ts';

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

/** Devices with work in their next window, per client. */
async function tonightsDevices(db: AppDatabase, now: Date): Promise<Map<string | null, NightDevice[]>> {
  const candidates = await candidateDevices(db);
  const out = new Map<string | null, NightDevice[]>();
  if (candidates.length === 0) return out;
  const holds = (await activeHolds(db)).map((h) => ({ scope: h.scope, releaseId: h.releaseId, updateKey: h.updateKey, clientId: h.clientId, ring: h.ring }));
  const windows = new Map<string, MaintenanceWindow | undefined>();
  // The first window its user can still be told about in time: a window too close to warn for is left to pass
  // (the sweep gives the device no run there), and with long notice the DM goes before an earlier window opens.
  const windowOf = (d: CandidateDevice) => {
    const notice = noticeHoursOf({ noticeHours: d.noticeHours });
    const key = `${d.timezone} ${d.spec} ${notice}`;
    if (!windows.has(key)) {
      const rule = d.spec ? parseWindowSpec(d.spec) : undefined;
      windows.set(key, rule?.ok ? firstWarnableWindow(rule.value, d.timezone, now, notice) : undefined);
    }
    return windows.get(key);
  };
  const byGate = new Map<number, { sample: CandidateDevice; window: MaintenanceWindow; devices: CandidateDevice[] }[]>();
  for (const d of candidates) {
    const window = windowOf(d);
    if (!window) continue;
    const groups = byGate.get(d.gateId) ?? [];
    let g = groups.find((x) => x.window.start.toMillis() === window.start.toMillis() && x.window.end.toMillis() === window.end.toMillis());
    if (!g) {
      g = { sample: d, window, devices: [] };
      groups.push(g);
    }
    g.devices.push(d);
    byGate.set(d.gateId, groups);
  }
  const releaseIds = [...new Set(candidates.map((d) => d.releaseId))];
  // The same facts the sweep plans with: an update the rings have not passed yet is no reason to warn anyone.
  const facts = await loadReleaseFacts(db, releaseIds);
  // A (device, window) that already has a run (deferred by its user, or planned by the sweep) needs no warning now.
  const starts = [...new Set([...windows.values()].filter((w) => w !== undefined).map((w) => w.start.toUTC().toISO()!))];
  const planned = new Set(
    rowsOf<{ k: string }>(
      await db.execute(sql`select device_id || '/' || to_char(window_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') as k from runs
        where window_start in (select jsonb_array_elements_text(${JSON.stringify(starts)}::jsonb)::timestamptz)`),
    ).map((r) => r.k),
  );
  const catalogs = new Map<string, { products: Product[]; updates: Array<{ key: string; productIds: string[]; restartRequired: never }> } | undefined>();
  const approvals = new Map<string, ReadonlySet<string> | 'all'>();
  for (const releaseId of releaseIds) {
    const release = await loadRelease(db, releaseId);
    catalogs.set(releaseId, release ? { products: release.products, updates: release.updates.map((u) => ({ key: u.id, productIds: u.productIds, restartRequired: u.restartRequired as never })) } : undefined);
    const list = await effectiveApprovals(db, releaseId);
    approvals.set(releaseId, list.some((a) => a.updateKey === null) ? 'all' : new Set(list.map((a) => a.updateKey!)));
  }
  for (const [gateId, groups] of byGate) {
    for (const g of groups) {
      const catalog = catalogs.get(g.sample.releaseId);
      if (!catalog) continue;
      const startKey = g.window.start.toUTC().toFormat("yyyy-MM-dd'T'HH:mm:ss");
      const plan = planWindow({
        releaseId: g.sample.releaseId,
        ring: g.sample.ring,
        clientId: g.sample.clientId,
        devices: g.devices.filter((d) => !planned.has(`${d.id}/${startKey}`)),
        products: catalog.products,
        updates: catalog.updates,
        approved: approvals.get(g.sample.releaseId)!,
        holds,
        passed: passedUpdates(facts.get(g.sample.releaseId)!, g.sample.ring, g.sample.clientId, catalog.updates.map((u) => u.key)),
        // The sweep's rule: past ring msp only for the products it installed on there (no DM for what will not come).
        ...(g.sample.ring === 'msp' ? {} : { passedProducts: mspProducts(facts.get(g.sample.releaseId)!, catalog.products, catalog.updates) }),
        done: facts.get(g.sample.releaseId)!.done,
      });
      const byId = new Map(g.devices.map((d) => [d.id, d]));
      const list = out.get(g.sample.clientId) ?? [];
      for (const run of plan.runs) {
        const d = byId.get(run.deviceId)!;
        list.push({
          deviceId: d.id,
          name: d.name,
          userEmail: d.userEmail,
          releaseId: d.releaseId,
          rolloutId: gateId,
          windowStart: g.window.start.toJSDate(),
          windowEnd: g.window.end.toJSDate(),
          updates: run.updates,
        });
      }
      out.set(g.sample.clientId, list);
    }
  }
  return out;
}

/** Plans and writes every DM due at `now`; returns the outbox rows written (to hand to the deliverer). */
export async function queueUserDms(db: AppDatabase, now: Date): Promise<UserDmTickReport> {
  const report: UserDmTickReport = { dms: 0, offline: 0, unmatched: 0, outboxIds: [] };
  const settings = await clientSettings(db);
  const channel = await engineersChannel(db);
  for (const [clientId, devices] of await tonightsDevices(db, now)) {
    const client = settings.get(clientId);
    if (!client || devices.length === 0) continue;
    const platform = client.settings.chatPlatform ?? 'slack';
    const people = await loadRecipients(db, platform, devices.map((d) => d.userEmail));
    const plan = planNight({
      client: { id: clientId, zone: client.zone, dmTime: client.settings.dmTime, template: client.settings.dmTemplate, noticeHours: client.settings.noticeHours, platform },
      devices,
      people,
      now,
    });
    for (let i = 0; i < plan.due.length; i += DMS_PER_TRANSACTION) {
      const ids = await writeDms(db, plan.due.slice(i, i + DMS_PER_TRANSACTION), now);
      report.dms += ids.length;
      report.outboxIds.push(...ids);
    }
    // A user whose every device an engineer's waiver covers is patched anyway: listing them as waiting would be false.
    const waivers = plan.unmatched.length > 0 ? await noticeWaivers(db, now) : [];
    const waiting = plan.unmatched.filter((u) => !unmatchedWaived({ clientId, email: u.email, platform, devices: u.devices }, waivers, now));
    if (waiting.length > 0 && channel) {
      const byNight = new Map<string, typeof waiting>();
      for (const u of waiting) byNight.set(u.night, [...(byNight.get(u.night) ?? []), u]);
      for (const [night, users] of byNight) {
        const releaseId = devices[0]!.releaseId;
        const lines = users.slice(0, 40).map((u) => `• ${escapeMrkdwn(u.email)}: ${escapeMrkdwn(listNames(u.devices))}`);
        const ids = await enqueueOutbox(
          db,
          [
            {
              key: subjects.userDmUnmatched(clientId, night),
              channel,
              action: 'post',
              subject: subjects.userDmUnmatched(clientId, night),
              payload: {
                text: boundText(
                  `${escapeMrkdwn(client.name)}: ${users.length} user${users.length === 1 ? '' : 's'} with machines patched tonight could not be found in ${platform === 'slack' ? 'Slack' : 'Teams'}, so they get no \u201csave your work\u201d message and those machines are not updated until they can be told:\n${lines.join('\n')}${users.length > 40 ? '\n…' : ''}\nTo patch them without the message: ${WAIVE_HINT} (audited).`,
                ),
                threadSubject: subjects.digest(releaseId),
              },
            },
          ],
          now,
        );
        report.unmatched += users.length;
        report.outboxIds.push(...ids);
      }
    }
  }
  const offline = await queueOfflineNotices(db, now);
  report.offline = offline.length;
  report.outboxIds.push(...offline);
  report.outboxIds.sort((a, b) => a - b);
  return report;
}

/** A batch of DMs per transaction: a crash loses none of a batch's rows without its posts, and none twice. */
const DMS_PER_TRANSACTION = 500;

/** DM rows and their outbox posts in one transaction, both keyed user x window; a DM already written is skipped. */
async function writeDms(db: AppDatabase, dms: readonly PlannedDm[], now: Date): Promise<number[]> {
  if (dms.length === 0) return [];
  return db.transaction(async (tx) => {
    const rows = JSON.stringify(
      dms.map((dm) => ({
        key: dm.key,
        person_id: dm.personId,
        client_id: dm.clientId,
        release_id: dm.releaseId,
        night: dm.night,
        platform: dm.platform,
        channel: dm.channel,
        recipient: dm.recipient,
        zone: dm.zone,
        devices: dm.devices.map((d) => ({ ...d, windowStart: d.windowStart.toISOString(), windowEnd: d.windowEnd.toISOString() })),
        send_at: dm.sendAt.toISOString(),
      })),
    );
    const inserted = rowsOf<{ id: number; key: string }>(
      await tx.execute(sql`insert into user_dms (key, kind, person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at, created_at)
        select key, 'tonight', person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at, ${now.toISOString()}::timestamptz
        from jsonb_to_recordset(${rows}::jsonb) as r(key text, person_id int, client_id text, release_id text, night date, platform text, channel text,
          recipient text, zone text, devices jsonb, send_at timestamptz)
        on conflict (key) do nothing returning id, key`),
    );
    const byKey = new Map(dms.map((dm) => [dm.key, dm]));
    const items: OutboxItem[] = inserted.map((row) => {
      const dm = byKey.get(row.key)!;
      return {
        key: subjects.userDm(dm.key),
        platform: dm.platform,
        channel: dm.channel,
        action: 'post',
        subject: subjects.userDm(dm.key),
        payload: userDmPayload(dm.platform, { dmId: Number(row.id), text: dm.text }),
      };
    });
    return enqueueOutbox(tx, items, now);
  });
}

/**
 * The morning after: a person whose device's run ended `offline` in a window that closed in the last 18 hours
 * hears so once per release (the key), from 08:00 their time, not every morning the machine stays off.
 */
async function queueOfflineNotices(db: AppDatabase, now: Date): Promise<number[]> {
  const settings = await clientSettings(db);
  const rows = rowsOf<{ release_id: string; client_id: string | null; email: string; window_end: unknown; name: string }>(
    await db.execute(sql`select r.release_id, d.client_id, d.user_email as email, max(r.window_end) as window_end, string_agg(d.name, ', ' order by d.name) as name
      from runs r join devices d on d.id = r.device_id
      where r.state = 'offline' and d.user_email is not null and r.release_id is not null
        and r.window_end <= ${now.toISOString()}::timestamptz and r.window_end > ${now.toISOString()}::timestamptz - interval '18 hours'
      group by r.release_id, d.client_id, d.user_email`),
  );
  const ids: number[] = [];
  for (const r of rows) {
    const client = settings.get(r.client_id);
    if (!client) continue;
    const platform = client.settings.chatPlatform ?? 'slack';
    const person = (await loadRecipients(db, platform, [r.email])).get(r.email.toLowerCase());
    if (!person?.address) continue;
    const zone = person.zone ?? client.zone;
    const windowEnd = new Date(r.window_end instanceof Date ? r.window_end.getTime() : String(r.window_end));
    const local = DateTime.fromJSDate(windowEnd, { zone });
    const from = Math.max(windowEnd.getTime(), local.startOf('day').set({ hour: OFFLINE_NOTICE_FROM_HOUR }).toMillis());
    if (now.getTime() < from) continue;
    const key = offlineKey(person.personId, r.release_id);
    const written = await db.transaction(async (tx) => {
      const [row] = rowsOf<{ id: number }>(
        await tx.execute(sql`insert into user_dms (key, kind, person_id, client_id, release_id, night, platform, channel, recipient, zone, devices, send_at, created_at)
          values (${key}, 'offline', ${person.personId}, ${r.client_id}, ${r.release_id}, ${nightOf(now, zone)}, ${person.address!.platform}, ${person.address!.channel},
            ${person.address!.recipient}, ${zone}, ${JSON.stringify([{ names: r.name }])}::jsonb, ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz)
          on conflict (key) do nothing returning id`),
      );
      if (!row) return [];
      return enqueueOutbox(tx, [{ key: subjects.userDm(key), platform: person.address!.platform, channel: person.address!.channel, action: 'post', subject: subjects.userDm(key), payload: offlineNoticePayload(person.address!.platform, r.name) }], now);
    });
    ids.push(...written);
  }
  return ids;
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
