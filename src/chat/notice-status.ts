/**
 * What `/patch status` says about the notice to end users: who no chat can reach (their machines wait, and the
 * command that lets them be patched anyway) and which waivers stand (who, when, why). Pure: the listener loads
 * the users and waivers and shows this mrkdwn.
 */
import { formatDecisionTime } from '../domain/approval.ts';
import { waiverFor, type NoticeWaiver } from '../domain/notice.ts';
import type { UnmatchedUser } from '../db/directory-repo.ts';
import { escapeMrkdwn } from './slack/block-kit.ts';
import { who } from './slack/decision-blocks.ts';

export const WAIVE_HINT = '`/patch notice waive USER-EMAIL|DEVICE|CLIENT [REASON]`';

/** Whether standing waivers at `now` cover every device of this user (then the user's machines do not wait). */
export function unmatchedWaived(user: UnmatchedUser, waivers: readonly NoticeWaiver[], now: Date): boolean {
  return user.devices.length > 0 && user.devices.every((name) => waiverFor(waivers, { name, userEmail: user.email, clientId: user.clientId }, now) !== undefined);
}

export function noticeStatusText(users: readonly UnmatchedUser[], waivers: readonly NoticeWaiver[], zone: string, now: Date, first = 10): string | undefined {
  const lines: string[] = [];
  const waiting = users.filter((u) => !unmatchedWaived(u, waivers, now));
  if (waiting.length > 0) {
    const names = waiting.slice(0, first).map((u) => `${escapeMrkdwn(u.email)} (${escapeMrkdwn(u.clientId ?? 'MSP')}, ${u.platform})`);
    lines.push(
      `Not in the chat directory, so no \u201csave your work\u201d DM reaches them and their machines wait (${waiting.length}): ${names.join(', ')}${waiting.length > first ? ', \u2026' : ''}. ` +
        `To patch them without it: ${WAIVE_HINT} (audited).`,
    );
  }
  const standing = waivers.filter((w) => w.revokedAt === null || w.revokedAt.getTime() > now.getTime());
  if (standing.length > 0) {
    const items = standing.slice(0, first).map((w) => `${w.scope} ${escapeMrkdwn(w.target)} by ${who(w.by)} ${formatDecisionTime(w.at, zone, now)}: ${escapeMrkdwn(w.reason)}`);
    lines.push(`Notice waived, patched unwarned in their windows (${standing.length}): ${items.join('; ')}${standing.length > first ? '; \u2026' : ''}`);
  }
  return lines.length > 0 ? lines.join('\n') : undefined;
}
