/**
 * What engineers' rollout actions tell the engineers (src/use-cases/rollout-actions.ts): the promotion offer and a
 * window summary edited after a click, and a ring skipped. An edit is drawn again from what is true now (the
 * offer's renderer and the promotion made; the window's tally, its holds and its retries), never by patching the
 * message as stored, so it reads the same whatever edits came before it.
 */
import type { OutboxItem } from '../../db/outbox-repo.ts';
import { formatDecisionTime } from '../../domain/approval.ts';
import type { WindowTally } from '../../domain/window-report.ts';
import { escapeMrkdwn, mrkdwn, type Block, type SlackMessage } from '../slack/block-kit.ts';
import { HOLD_CLIENT_ACTION, PROMOTE_ACTION, RETRY_FAILED_ACTION, promotionOffer, summaryMessage } from '../slack/window-blocks.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

/** Who acted, as the chat they acted from names them. */
export interface ChatActor {
  platform: string;
  id: string;
}

/** A client hold in force, as placed. */
export interface HeldBy {
  clientId: string;
  by: ChatActor;
  at: string;
  reason: string;
}

/** A "Retry failed" asked for a window: how many runs went again now, and the later windows the others went to. */
export interface RetryAsked {
  by: ChatActor;
  at: string;
  again: number;
  laterStarts: readonly string[];
}

export type RolloutActionNotice =
  /** The offer as it now reads: promoted (by whom, when, what, how many pilots), its button answered. */
  | {
      kind: 'promotion_made';
      releaseId: string;
      /** Where the offer was posted, and the promotion's event id (one edit per promotion). */
      channels: readonly string[];
      promotionId: string;
      /** Promotions made before this one: the offer it answers is that round's (absent: the first). */
      round?: number;
      by: ChatActor;
      at: string;
      updates: readonly string[];
      /** The updates as people name them (KB5036104). */
      labels: readonly string[];
      pilotsScheduled: number;
    }
  /** A window's summary as it now reads: the window's runs, the client's holds, the retries asked. */
  | {
      kind: 'window_summary_changed';
      subject: string;
      channels: readonly string[];
      /** What caused this edit (`hold:<request>`, the retry's decision key): one edit per cause. */
      cause: string;
      tally: WindowTally;
      zone: string;
      holds: readonly HeldBy[];
      retries: readonly RetryAsked[];
      /** Failed runs not retried yet: Retry failed is offered only while there are some. */
      retryable: number;
    }
  /** An engineer let one update past a ring untested; told in the release's thread. */
  | { kind: 'ring_skipped'; eventId: string; releaseId: string; where: string; kb: string; by: ChatActor; reason: string };

export function renderRolloutActionNotice(notice: RolloutActionNotice, audiences: Audiences): OutboxItem[] {
  switch (notice.kind) {
    case 'promotion_made':
      return edits(notice.channels, subjects.promote(notice.releaseId, notice.round), notice.promotionId, promotedOffer(notice, audiences.mspZone));
    case 'window_summary_changed':
      return edits(notice.channels, notice.subject, notice.cause, summaryNow(notice, audiences));
    case 'ring_skipped':
      return skipPost(notice, audiences);
  }
}

const mention = (actor: ChatActor): string => (actor.platform === 'slack' ? `<@${actor.id}>` : escapeMrkdwn(actor.id));

const context = (text: string): Block => ({ type: 'context', elements: [mrkdwn(text)] });

/** The message's buttons but those answered; an actions block left empty goes. */
function withoutButtons(blocks: readonly Block[], answered: readonly string[]): Block[] {
  return blocks
    .map((b): Block => (b.type === 'actions' ? { ...b, elements: b.elements.filter((e) => !answered.includes(e.action_id)) } : b))
    .filter((b) => b.type !== 'actions' || b.elements.length > 0);
}

function edits(channels: readonly string[], subject: string, cause: string, message: SlackMessage): OutboxItem[] {
  return channels.map((channel) => ({ key: `${subject}:${channel}:${cause}`, channel, action: 'update', subject, payload: { ...message } }));
}

function promotedOffer(notice: Extract<RolloutActionNotice, { kind: 'promotion_made' }>, zone: string): SlackMessage {
  const offer = promotionOffer(notice.releaseId, notice.updates.length > 0 ? notice.updates : undefined);
  const n = notice.pilotsScheduled;
  const line = `:rocket: *Promoted to pilot* by ${mention(notice.by)} at ${formatDecisionTime(notice.at, zone)}: ${escapeMrkdwn(notice.labels.join(', '))}; ${n} client pilot${n === 1 ? '' : 's'} scheduled for their next windows.`;
  return { text: offer.text, blocks: [...withoutButtons(offer.blocks, [PROMOTE_ACTION]), context(line)] };
}

function summaryNow(notice: Extract<RolloutActionNotice, { kind: 'window_summary_changed' }>, audiences: Audiences): SlackMessage {
  const summary = summaryMessage(notice.tally, notice.zone);
  const answered = [...(notice.holds.length > 0 ? [HOLD_CLIENT_ACTION] : []), ...(notice.retryable === 0 ? [RETRY_FAILED_ACTION] : [])];
  const lines = [
    ...notice.holds.map((h) => ({ at: h.at, text: holdLine(h, audiences) })),
    ...notice.retries.map((r) => ({ at: r.at, text: retryLine(r, audiences.mspZone) })),
  ].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  return { text: summary.text, blocks: [...withoutButtons(summary.blocks, answered), ...lines.map((l) => context(l.text))] };
}

function holdLine(hold: HeldBy, audiences: Audiences): string {
  const name = audiences.clientName(hold.clientId);
  return `:octagonal_sign: *${escapeMrkdwn(name)} held* by ${mention(hold.by)} at ${formatDecisionTime(hold.at, audiences.mspZone)}: ${escapeMrkdwn(hold.reason)}`;
}

function retryLine(retry: RetryAsked, zone: string): string {
  return `:repeat: *Retry* by ${mention(retry.by)} at ${formatDecisionTime(retry.at, zone)}: ${retryWords(retry.again, retry.laterStarts, zone)}.`;
}

/** "1 running again now, 2 in the next window (from 01:00 CST)": where a retry sent the window's failed runs. */
export function retryWords(again: number, laterStarts: readonly string[], zone: string): string {
  const next = [...laterStarts].sort()[0];
  const later = laterStarts.length;
  const parts = [
    ...(again > 0 ? [`${again} running again now`] : []),
    ...(later > 0 ? [`${later} in the next window${next ? ` (from ${formatDecisionTime(next, zone)})` : ''}`] : []),
  ];
  return parts.join(', ');
}

function skipPost(notice: Extract<RolloutActionNotice, { kind: 'ring_skipped' }>, audiences: Audiences): OutboxItem[] {
  if (!audiences.engineers) return [];
  const text = `:fast_forward: ${mention(notice.by)} skipped ${escapeMrkdwn(notice.where)} for ${escapeMrkdwn(notice.kb)} (no test machine): ${escapeMrkdwn(notice.reason)}. It goes on untested there.`;
  return [{ key: notice.eventId, channel: audiences.engineers.channel, action: 'post', subject: notice.eventId, payload: { text, threadSubject: subjects.digest(notice.releaseId) } }];
}
