/**
 * What a client's Teams conversations that carry champion traffic are told on the Teams tick (src/jobs/teams.ts)
 * about each window: its summary (the plan of nights is the pilot family's `broad_plan`). A notice carries its conversations and
 * what it reports as it was when decided (the plan's nights, the window's tally), so a re-delivery says the same.
 */
import type { OutboxItem } from '../../db/outbox-repo.ts';
import type { WindowTally } from '../../domain/window-report.ts';
import { renderWindowSummaryCard } from '../teams/window-card.ts';
import { subjects } from '../subjects.ts';

export type ClientChatNotice =
  /** Last night's window for the client's machines; `windowSubject` is its progress message's subject. */
  | { kind: 'client_window_summary'; windowSubject: string; tally: WindowTally; clientName: string; zone: string; conversations: readonly string[] };

/** The key of a window's summary in one conversation (`windowSubject`: the window's progress message's subject). */
export function windowSummaryKey(windowSubject: string, channel: string): string {
  return `teams:${windowSubject}:${channel}:summary`;
}

/** One Teams post per conversation, keyed by message and conversation so a tick never posts twice. Pure. */
export function renderClientChatNotice(notice: ClientChatNotice): OutboxItem[] {
  const post = (channel: string, key: string, subject: string, payload: OutboxItem['payload']): OutboxItem => ({ key, platform: 'teams', channel, action: 'post', subject, payload });
  const { tally, clientName } = notice;
  const card = renderWindowSummaryCard(tally, clientName, notice.zone);
  const text = `${clientName}: last night's updates: ${tally.counts.succeeded ?? 0} updated, ${tally.counts.failed ?? 0} did not, ${(tally.counts.offline ?? 0) + (tally.counts.rolled ?? 0)} will try again.`;
  return notice.conversations.map((channel) =>
    post(channel, windowSummaryKey(notice.windowSubject, channel), subjects.windowSummary(notice.windowSubject), { text, card }),
  );
}
