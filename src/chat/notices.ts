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
import { renderDeployerNotice, type DeployerNotice } from './notices/deployers.ts';
import { renderDeviceSyncNotice, type DeviceSyncNotice } from './notices/device-sync.ts';
import { renderGateNotice, type GateNotice } from './notices/gates.ts';
import { renderRolloutActionNotice, type RolloutActionNotice } from './notices/rollout-actions.ts';
import { renderPilotNotice, type PilotNotice } from './notices/pilot.ts';
import { renderDigestNotice, type DigestNotice } from './notices/digest.ts';
import { renderRolloutNotice, type RolloutNotice } from './notices/rollout.ts';
import { renderNoticeWaiverNotice, type NoticeWaiverNotice } from './notices/notice-waivers.ts';
import { renderUserDmNotice, type UserDmNotice } from './notices/user-dms.ts';
import { renderClientChatNotice, type ClientChatNotice } from './notices/client-chats.ts';
import { renderReleaseNotice, type ReleaseNotice } from './notices/release.ts';
import { renderReportNotice, type ReportNotice } from './notices/reports.ts';

export type Notice =
  | GateNotice
  | RolloutActionNotice
  | PilotNotice
  | DigestNotice
  | DeployerNotice
  | RolloutNotice
  | NoticeWaiverNotice
  | UserDmNotice
  | ClientChatNotice
  | DeviceSyncNotice
  | ReleaseNotice
  | ReportNotice;

/** The outbox rows one notice becomes; none when its audience is not configured. Pure. */
export function renderNotice(notice: Notice, audiences: Audiences): OutboxItem[] {
  switch (notice.kind) {
    case 'promotion_offered':
    case 'pilot_problem_held':
    case 'pilot_waiting':
    case 'pilot_finished':
      return renderGateNotice(notice, audiences);
    case 'promotion_made':
    case 'window_summary_changed':
    case 'ring_skipped':
      return renderRolloutActionNotice(notice, audiences);
    case 'signoff_card':
    case 'broad_plan':
    case 'pilot_problem_reported':
      return renderPilotNotice(notice, audiences);
    case 'digest_changed':
    case 'pilot_confirmed':
      return renderDigestNotice(notice, audiences);
    case 'deployer_unavailable':
    case 'deployer_answering':
    case 'device_refused':
      return renderDeployerNotice(notice, audiences);
    case 'window_progress':
    case 'window_summary':
    case 'updates_untested':
    case 'device_flagged':
      return renderRolloutNotice(notice, audiences);
    case 'notice_waived':
    case 'notice_waiver_revoked':
      return renderNoticeWaiverNotice(notice, audiences);
    case 'user_dm_sent':
    case 'user_dm_offline':
    case 'user_dm_answered':
    case 'user_dm_escalated':
    case 'user_dm_unmatched':
    case 'user_dm_late':
      return renderUserDmNotice(notice, audiences);
    case 'client_window_summary':
      return renderClientChatNotice(notice);
    case 'device_sync_changed':
    case 'device_sync_failed':
      return renderDeviceSyncNotice(notice, audiences);
    case 'release_stored':
    case 'release_revised':
      return renderReleaseNotice(notice, audiences);
    case 'report_sent':
    case 'kev_exposure_weekly':
      return renderReportNotice(notice, audiences);
  }
}
