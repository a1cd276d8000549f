/**
 * The device manager sync's notices (src/use-cases/device-sync.ts): what a sync from the device manager (Tactical RMM
 * or NinjaOne, named in the notice) changed, and that a sync could not read it. Each carries its lists as they were at the sync, so a re-delivery says what was
 * true then. Posted in the engineers' channel, not in a release thread: devices are not a release's business.
 */
import type { OutboxItem } from '../../db/outbox-repo.ts';
import { escapeMrkdwn } from '../slack/block-kit.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

export interface DeviceSyncChanges {
  /** New agents, added as ring broad: `client/hostname`. */
  added: readonly string[];
  /** Devices no longer in the device manager: retired, never deleted. */
  retired: readonly string[];
  /** Devices that came back. */
  restored: readonly string[];
  /** OS names MSRC does not name: those machines get no updates until mapped. */
  unmapped: ReadonlyArray<{ client: string; device: string; os: string }>;
  /** Logged-in names that linked a device to nobody. */
  unlinked: ReadonlyArray<{ client: string; device: string; username: string; why: 'unknown' | 'ambiguous' }>;
  problems: readonly string[];
}

/** The device manager synced from; absent in notices written before NinjaOne, which were all Tactical's. */
export type SyncedManager = 'Tactical RMM' | 'NinjaOne';

export type DeviceSyncNotice =
  | ({ kind: 'device_sync_changed'; at: string; manager?: SyncedManager } & DeviceSyncChanges)
  /** `error` is already free of secrets (the client redacts its key). */
  | { kind: 'device_sync_failed'; since: string; error: string; manager?: SyncedManager };

/** Tactical's words stay as they were posted; NinjaOne's are the same with its name (it says devices, not agents). */
function wordsFor(manager: SyncedManager | undefined) {
  if (manager === 'NinjaOne') return { full: 'NinjaOne', short: 'NinjaOne', added: 'new devices, added as ring broad' };
  return { full: 'Tactical RMM', short: 'Tactical', added: 'new agents, added as ring broad' };
}

/** Past this many names a list says how many more: a sync of a new client can add hundreds. */
const SHOWN = 15;

function listLine(label: string, items: readonly string[]): string[] {
  if (items.length === 0) return [];
  const more = items.length > SHOWN ? ` and ${items.length - SHOWN} more` : '';
  return [`• ${label} (${items.length}): ${items.slice(0, SHOWN).map(escapeMrkdwn).join(', ')}${more}`];
}

function changesText(notice: Extract<DeviceSyncNotice, { kind: 'device_sync_changed' }>): string {
  const words = wordsFor(notice.manager);
  const lines = [
    `Devices synced from ${words.full}:`,
    ...listLine(words.added, notice.added),
    ...listLine(`retired (no longer in ${words.short})`, notice.retired),
    ...listLine(`back in ${words.short}`, notice.restored),
    ...listLine(
      'OS names MSRC does not name, so nothing is planned for them',
      notice.unmapped.map((u) => `${u.client}/${u.device} "${u.os}"`),
    ),
    ...listLine(
      'logged-in users linked to nobody (no "save your work" DM until the inventory names the user)',
      notice.unlinked.map((u) => `${u.client}/${u.device} ${u.username} (${u.why === 'ambiguous' ? 'matches more than one person' : 'nobody by that Windows user name'})`),
    ),
    ...listLine('problems', notice.problems),
  ];
  // Told because the list of what was wrong changed, and it is now empty.
  if (lines.length === 1) lines.push('• everything listed before is fixed.');
  return lines.join('\n');
}

/** A notice as a post in the engineers' channel. Pure: same notice, same row. */
export function renderDeviceSyncNotice(notice: DeviceSyncNotice, audiences: Audiences): OutboxItem[] {
  const audience = audiences.engineers;
  if (!audience) return [];
  const { channel } = audience;
  if (notice.kind === 'device_sync_failed') {
    const subject = subjects.deviceSyncFailed(notice.since);
    const words = wordsFor(notice.manager);
    const text = `:warning: The device sync could not read ${words.full} (${escapeMrkdwn(notice.error)}). Devices are left as they were: none is retired while ${words.short} cannot be read. This is said once; the next sync that works carries on.`;
    return [{ key: subject, channel, action: 'post', subject, payload: { text } }];
  }
  const subject = subjects.deviceSync(notice.at);
  return [{ key: subject, channel, action: 'post', subject, payload: { text: changesText(notice) } }];
}
