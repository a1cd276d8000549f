/**
 * A client's pilot, told (src/use-cases/pilot.ts, src/jobs/teams.ts): the champions' sign-off card and the broad
 * ring's plan card in the client's Teams conversations, and a reported problem in the engineers' thread. Each
 * notice carries what it shows (the sign-off view, the plan's nights, the champion's words) and where it goes in
 * the client's conversations, which the audiences do not hold.
 */
import type { OutboxItem } from '../../db/outbox-repo.ts';
import type { SignoffView } from '../../domain/signoff-view.ts';
import { BLOCK_KIT_LIMITS, escapeMrkdwn, truncateMrkdwn } from '../slack/block-kit.ts';
import { renderPlanCard, renderSignoffCard, signoffText, type PlanCardInput } from '../teams/signoff-card.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

/** A link button; the Slack app only acks its click (Slack sends one even for a `url` button). */
export const PILOT_REPLY_CHAMPION_ACTION = 'pilot_reply_champion';

export type PilotNotice =
  /** The sign-off card: posted when the pilot finished, edited after an answer (`version`: what the edit is for). */
  | { kind: 'signoff_card'; view: SignoffView; action: 'post' | 'update'; version: string; conversations: readonly string[] }
  /** "Your machines will be patched on these nights": the broad ring's next windows per device class. */
  | { kind: 'broad_plan'; plan: PlanCardInput; clientId: string; conversations: readonly string[] }
  /** A champion reported a problem: their words, as written, with a way to reply to them (their Teams contact). */
  | { kind: 'pilot_problem_reported'; releaseId: string; clientId: string; clientName: string; reporter: string; contact: string | undefined; text: string };

export function renderPilotNotice(notice: PilotNotice, audiences: Audiences): OutboxItem[] {
  switch (notice.kind) {
    case 'signoff_card':
    case 'broad_plan':
      return renderClientCards(notice);
    case 'pilot_problem_reported':
      return audiences.engineers ? [problemPost(notice, audiences.engineers.channel)] : [];
  }
}

/** The cards in the client's conversations: they need no audience but the conversations they carry. */
export function renderClientCards(notice: Extract<PilotNotice, { kind: 'signoff_card' | 'broad_plan' }>): OutboxItem[] {
  return notice.kind === 'signoff_card' ? signoffCards(notice) : planCards(notice);
}

/**
 * The key of a sign-off card's post in one conversation: one per round of the sign-off (`round`, '' for the first),
 * so the Teams tick can tell a card already posted without building it.
 */
export function signoffPostKey(releaseId: string, clientId: string, channel: string, round: string): string {
  return `teams:${subjects.signoff(releaseId, clientId)}:${channel}:post${round ? `:${round}` : ''}`;
}

/** The key of the broad plan card's post in one conversation: one per release and client. */
export function planPostKey(releaseId: string, clientId: string, channel: string): string {
  return `teams:plan:${releaseId}:${clientId}:${channel}`;
}

function signoffCards(notice: Extract<PilotNotice, { kind: 'signoff_card' }>): OutboxItem[] {
  const { view, action } = notice;
  const subject = subjects.signoff(view.releaseId, view.clientId);
  const payload = { text: signoffText(view), card: renderSignoffCard(view) };
  const round = view.round ? `:${view.round}` : '';
  return notice.conversations.map((channel) => ({
    key: action === 'post' ? signoffPostKey(view.releaseId, view.clientId, channel, view.round) : `teams:${subject}:${channel}:${notice.version}${round}`,
    platform: 'teams' as const,
    channel,
    action,
    subject,
    payload,
  }));
}

function planCards(notice: Extract<PilotNotice, { kind: 'broad_plan' }>): OutboxItem[] {
  const { releaseId } = notice.plan;
  const payload = { text: `${releaseId}: your machines will be patched on these nights. Save your work and leave your computer on.`, card: renderPlanCard(notice.plan) };
  return notice.conversations.map((channel) => ({
    key: planPostKey(releaseId, notice.clientId, channel),
    platform: 'teams' as const,
    channel,
    action: 'post' as const,
    subject: subjects.plan(releaseId, notice.clientId),
    payload,
  }));
}

/** The engineers' thread for the release gets the problem, as written, with a way to reply to the champion. */
function problemPost(notice: Extract<PilotNotice, { kind: 'pilot_problem_reported' }>, channel: string): OutboxItem {
  const { releaseId, clientId, reporter, contact, text } = notice;
  const headline = `:warning: ${escapeMrkdwn(notice.clientName)} reported a pilot problem with ${escapeMrkdwn(releaseId)}; the client is on hold.`;
  const quote = `*${escapeMrkdwn(reporter)}* wrote:\n>${escapeMrkdwn(text).replace(/\n/g, '\n>')}`;
  const reply = {
    type: 'actions',
    elements: [
      {
        type: 'button',
        action_id: PILOT_REPLY_CHAMPION_ACTION,
        text: { type: 'plain_text', text: `Reply to ${reporter}`.slice(0, 75) },
        // A Teams deep link opens a chat with the champion: the reply is a person's, not the bot's.
        url: `https://teams.microsoft.com/l/chat/0/0?users=${encodeURIComponent(contact ?? '')}`,
        value: JSON.stringify({ release: releaseId, client: clientId }),
      },
    ],
  };
  // A `url` button is outside the Block type the renderers share: the payload takes blocks as they are.
  const blocks: unknown[] = [
    // Cut after escaping and quoting: both lengthen the text, and it is the result that must fit the section.
    { type: 'section', text: { type: 'mrkdwn', text: truncateMrkdwn(`${headline}\n${quote}`, BLOCK_KIT_LIMITS.sectionText) } },
    ...(contact ? [reply] : []),
  ];
  return {
    key: subjects.pilotProblem(releaseId, clientId),
    platform: 'slack',
    channel,
    action: 'post',
    subject: subjects.pilotProblem(releaseId, clientId),
    payload: { text: escapeMrkdwn(`${notice.clientName} reported a pilot problem with ${releaseId}: ${text.slice(0, 500)}`), blocks, threadSubject: subjects.digest(releaseId) },
  };
}
