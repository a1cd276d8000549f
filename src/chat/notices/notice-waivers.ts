/**
 * An engineer waived or restored the "save your work" notice (src/use-cases/notice-waiver.ts): a note in the
 * current release's thread, so the override is never silent.
 */
import type { OutboxItem } from '../../db/outbox-repo.ts';
import type { WaiverScope } from '../../domain/notice.ts';
import { escapeMrkdwn } from '../slack/block-kit.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

export interface NoticeWaiverNotice {
  kind: 'notice_waived' | 'notice_waiver_revoked';
  /** Who changed it; a Slack user is mentioned, anyone else is named by id. */
  actor: { platform: 'slack' | 'teams' | 'cli'; id: string };
  scope: WaiverScope;
  /** The waiver's stored target (an email, a client id or `msp`, a device name). */
  target: string;
  /** How people read the target: `client Acme Dental`, `user ana@acme.test`. */
  name: string;
  /** Waived: the machines with a user it covers, and the reason given. */
  devices?: number;
  reason?: string;
  /** The release whose thread the note goes in; none yet: a post of its own. */
  releaseId: string | undefined;
  at: string;
}

export function machinesWithUser(devices: number): string {
  return `${devices} machine${devices === 1 ? '' : 's'} with a user`;
}

/** One post in the engineers' channel, under the release's digest when there is one. Pure. */
export function renderNoticeWaiverNotice(notice: NoticeWaiverNotice, audiences: Audiences): OutboxItem[] {
  const audience = audiences.engineers;
  if (!audience) return [];
  const change = notice.kind === 'notice_waived' ? 'waive' : 'revoke';
  // A key per change and moment: waiving, revoking and waiving again are three notes.
  const key = `notice-${change}:${notice.scope}:${notice.target}:${notice.at}`;
  const thread = notice.releaseId ? { threadSubject: subjects.digest(notice.releaseId) } : {};
  return [{ key, channel: audience.channel, action: 'post', subject: key, payload: { text: waiverText(notice), ...thread } }];
}

function waiverText(notice: NoticeWaiverNotice): string {
  const who = notice.actor.platform === 'slack' ? `<@${notice.actor.id}>` : escapeMrkdwn(notice.actor.id);
  const name = escapeMrkdwn(notice.name);
  if (notice.kind === 'notice_waiver_revoked') {
    return `${who} revoked the notice waiver for ${name}: its users\u2019 machines wait for their \u201csave your work\u201d message again.`;
  }
  return `:warning: ${who} waived the \u201csave your work\u201d notice for ${name} (${machinesWithUser(notice.devices ?? 0)}): ${escapeMrkdwn(notice.reason ?? '')}. Those machines may install and restart in their windows unwarned.`;
}
