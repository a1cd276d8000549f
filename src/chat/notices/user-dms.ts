/**
 * End users' "save your work" DMs (src/jobs/user-dm.ts, src/use-cases/user-dm.ts) and what the engineers hear of
 * them. A DM notice carries its own address (the platform, the DM channel) and its words as planned: a DM says what
 * was true when it was written, and its answer edits the message that was sent.
 */
import type { OutboxItem } from '../../db/outbox-repo.ts';
import { listNames } from '../../domain/user-dm.ts';
import { WAIVE_HINT } from '../notice-status.ts';
import { boundText, escapeMrkdwn } from '../slack/block-kit.ts';
import { offlineNoticePayload, userDmPayload } from '../user-dm-render.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

/** Where a DM lives: the person's DM channel on their client's platform. */
export interface DmAddress {
  platform: 'slack' | 'teams';
  channel: string;
}

export type UserDmNotice =
  /**
   * Tonight's DM, with its answer buttons; `key` is the stored DM's key (`tonight:PERSON:WINDOW`). Not sent after
   * `notAfter` (ISO; the window's notice deadline): past it the DM would promise a night its machines are not
   * admitted to.
   */
  | ({ kind: 'user_dm_sent'; dmId: number; key: string; text: string; notAfter?: string } & DmAddress)
  /** "Your computer was off last night (NAMES)", once per person per release. */
  | ({ kind: 'user_dm_offline'; key: string; deviceNames: string } & DmAddress)
  /** The DM edited to show the person's answer. */
  | ({ kind: 'user_dm_answered'; dmId: number; key: string; text: string; answerLine: string } & DmAddress)
  /** A person asked to put off past the client's deferral limit: the engineers decide. */
  | { kind: 'user_dm_escalated'; dmId: number; clientId: string | null; personName: string; devices: readonly string[]; used: number }
  /** Users a night's DMs could not reach, listed under the release's digest (the first 40 by name, all counted). */
  | {
      kind: 'user_dm_unmatched';
      releaseId: string;
      clientId: string | null;
      clientName: string;
      platform: 'slack' | 'teams';
      night: string;
      users: ReadonlyArray<{ email: string; devices: readonly string[] }>;
    }
  /**
   * Users whose DM for a night the outbox dropped because it could not be sent before the window's notice deadline
   * (a platform outage, a long Retry-After): their machines were left out of that window. Listed under the digest.
   */
  | {
      kind: 'user_dm_late';
      releaseId: string;
      clientId: string | null;
      clientName: string;
      night: string;
      /** The deadline they missed, as the engineers read it (e.g. "Tue 10 Dec 21:00 GMT"). */
      deadline: string;
      users: ReadonlyArray<{ name: string; devices: readonly string[] }>;
    };

/** The DM itself, its edit, or the engineers' post. Pure. */
export function renderUserDmNotice(notice: UserDmNotice, audiences: Audiences): OutboxItem[] {
  switch (notice.kind) {
    case 'user_dm_sent': {
      const payload = userDmPayload(notice.platform, { dmId: notice.dmId, text: notice.text });
      return [dmItem(notice, notice.key, 'post', notice.notAfter ? { ...payload, notAfter: notice.notAfter } : payload)];
    }
    case 'user_dm_offline':
      return [dmItem(notice, notice.key, 'post', offlineNoticePayload(notice.platform, notice.deviceNames))];
    case 'user_dm_answered':
      return [
        {
          ...dmItem(notice, notice.key, 'update', userDmPayload(notice.platform, { dmId: notice.dmId, text: notice.text, answerLine: notice.answerLine })),
          key: `userdm:${notice.dmId}:answered`,
        },
      ];
    case 'user_dm_escalated':
    case 'user_dm_unmatched':
    case 'user_dm_late':
      return audiences.engineers ? [engineersPost(notice, audiences.engineers.channel)] : [];
  }
}

function dmItem(address: DmAddress, dmKey: string, action: 'post' | 'update', payload: OutboxItem['payload']): OutboxItem {
  return { key: subjects.userDm(dmKey), platform: address.platform, channel: address.channel, action, subject: subjects.userDm(dmKey), payload };
}

type EngineersNotice = Extract<UserDmNotice, { kind: 'user_dm_escalated' | 'user_dm_unmatched' | 'user_dm_late' }>;

function engineersPost(notice: EngineersNotice, channel: string): OutboxItem {
  if (notice.kind === 'user_dm_escalated') {
    const subject = subjects.userDmEscalated(notice.dmId);
    return { key: subject, channel, action: 'post', subject, payload: { text: escalationText(notice) } };
  }
  if (notice.kind === 'user_dm_late') {
    const subject = subjects.userDmLate(notice.clientId, notice.night);
    return { key: subject, channel, action: 'post', subject, payload: { text: lateText(notice), threadSubject: subjects.digest(notice.releaseId) } };
  }
  const subject = subjects.userDmUnmatched(notice.clientId, notice.night);
  return { key: subject, channel, action: 'post', subject, payload: { text: unmatchedText(notice), threadSubject: subjects.digest(notice.releaseId) } };
}

function lateText(notice: Extract<UserDmNotice, { kind: 'user_dm_late' }>): string {
  const { users } = notice;
  const many = users.length !== 1;
  const lines = users.slice(0, UNMATCHED_LISTED).map((u) => `• ${escapeMrkdwn(u.name)}: ${escapeMrkdwn(listNames(u.devices))}`);
  return boundText(
    `${escapeMrkdwn(notice.clientName)}: ${users.length} \u201csave your work\u201d message${many ? 's' : ''} could not be sent by ${notice.deadline}, the latest ${many ? 'they' : 'it'} could go (held up: the chat platform, or patchbay's delivery, was down or slow), so ${many ? 'those users\u2019' : 'that user\u2019s'} machines were left out of that night\u2019s window. They wait for their next window and a message in time for it:\n${lines.join('\n')}${users.length > UNMATCHED_LISTED ? '\n\u2026' : ''}`,
  );
}

function escalationText(notice: Extract<UserDmNotice, { kind: 'user_dm_escalated' }>): string {
  const clientWord = notice.clientId ?? 'the MSP';
  return `${escapeForEngineers(notice.personName)} (${escapeForEngineers(clientWord)}) asked to put off ${escapeForEngineers(listNames(notice.devices))} tonight, past the limit of ${notice.used} deferrals this release. They stay in tonight\u2019s window unless you hold them (\`/patch hold ${escapeForEngineers(notice.clientId ?? 'KB')} REASON\`).`;
}

const UNMATCHED_LISTED = 40;

function unmatchedText(notice: Extract<UserDmNotice, { kind: 'user_dm_unmatched' }>): string {
  const { users } = notice;
  const lines = users.slice(0, UNMATCHED_LISTED).map((u) => `• ${escapeMrkdwn(u.email)}: ${escapeMrkdwn(listNames(u.devices))}`);
  return boundText(
    `${escapeMrkdwn(notice.clientName)}: ${users.length} user${users.length === 1 ? '' : 's'} with machines patched tonight could not be found in ${notice.platform === 'slack' ? 'Slack' : 'Teams'}, so they get no \u201csave your work\u201d message and those machines are not updated until they can be told:\n${lines.join('\n')}${users.length > UNMATCHED_LISTED ? '\n…' : ''}\nTo patch them without the message: ${WAIVE_HINT} (audited).`,
  );
}

/** Names and emails typed by people: escaped so a `<` cannot become a mention (not full mrkdwn escaping). */
function escapeForEngineers(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
