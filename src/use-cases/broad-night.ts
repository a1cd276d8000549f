/**
 * "Which night": once a client's pilot is confirmed, the release thread says when its broad machines start (in
 * the confirmation's own note, thread-notices.ts). A class of machines with users starts only in the first
 * window its users can still be warned about (no unwarned reboot), so a confirmation inside an open window, or
 * too close to one, names the next night; one without users (servers, kiosks) starts in its window as the sweep
 * plans it.
 */
import { zoneShort } from '../domain/zone-label.ts';
import type { AppDatabase } from '../db/client.ts';
import { broadDeviceOsCounts, clientSchedule } from '../db/clients-repo.ts';
import { loadRelease } from '../db/release-repo.ts';
import { broadClassesRunning } from '../domain/eligibility.ts';
import { noticeHoursOf, plannedWindows } from '../domain/notice.ts';
import { parseWindowSpec } from '../domain/window-spec.ts';

/**
 * Per device class of the client's broad ring that runs one of the `covered` updates (all of them when none are
 * named): how many, whether any has a user the notice rule waits for (an engineer's waiver lifts that), and the first
 * window it gets.
 */
export async function broadFirstNights(
  db: AppDatabase,
  target: { releaseId: string; clientId: string; covered: readonly string[] },
  now: Date,
): Promise<Array<{ deviceClass: string; count: number; users: boolean; night: string }>> {
  const [client, groups, release] = await Promise.all([clientSchedule(db, target.clientId), broadDeviceOsCounts(db, target.clientId, now), loadRelease(db, target.releaseId)]);
  if (!client) return [];
  const notice = noticeHoursOf({ noticeHours: client.noticeHours });
  const catalog = { products: release?.products ?? [], updates: (release?.updates ?? []).map((u) => ({ key: u.id, productIds: u.productIds })) };
  const classes = broadClassesRunning(groups, catalog, release ? target.covered : []);
  return classes.flatMap((c) => {
    const parsed = client.windows[c.deviceClass] ? parseWindowSpec(client.windows[c.deviceClass]!) : undefined;
    if (!parsed?.ok) return [];
    const [first] = plannedWindows(parsed.value, client.timezone, now, c.users ? notice : null, 1);
    const night = `${first!.start.setZone(client.timezone).toFormat('ccc d LLL, HH:mm')}–${first!.end.setZone(client.timezone).toFormat('HH:mm')} ${zoneShort(first!.end.setZone(client.timezone))}`;
    return [{ deviceClass: c.deviceClass, count: c.count, users: c.users, night }];
  });
}
