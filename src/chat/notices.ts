/**
 * Notices as data: what somebody is to be told, as a typed value a writer (a use-case, a job) hands to `notify`
 * in its own transaction. Writers never build subjects, keys or Slack/Teams markup; the renderers here are the one
 * place that says how a notice reads and where it goes.
 *
 * Each family of notices lives in `notices/<family>.ts`: its types (a notice carries a snapshot of what it
 * reports where history matters, so a re-delivery says what was true then) and its pure renderer
 * `(notice, audiences) => OutboxItem[]`. A new family adds one member to `Notice` and one line to `renderNotice`.
 */
import type { OutboxItem } from '../db/outbox-repo.ts';
import type { Audiences } from './audiences.ts';
import { renderDeviceSyncNotice, type DeviceSyncNotice } from './notices/device-sync.ts';
import { renderGateNotice, type GateNotice } from './notices/gates.ts';

export type Notice = GateNotice | DeviceSyncNotice;

/** The outbox rows one notice becomes; none when its audience is not configured. Pure. */
export function renderNotice(notice: Notice, audiences: Audiences): OutboxItem[] {
  switch (notice.kind) {
    case 'promotion_offered':
    case 'pilot_problem_held':
    case 'pilot_waiting':
    case 'pilot_finished':
      return renderGateNotice(notice, audiences);
    case 'device_sync_changed':
    case 'device_sync_failed':
      return renderDeviceSyncNotice(notice, audiences);
  }
}
