/**
 * The outbox payload of an end-user DM for the platform its client uses. Use-cases and jobs call this and stay
 * unaware of Block Kit or Adaptive Cards.
 */
import type { OutboxPayload } from '../db/outbox-repo.ts';
import { OFFLINE_TEXT } from '../domain/user-dm.ts';
import { boundText, escapeMrkdwn } from './slack/block-kit.ts';
import { userDmSlackMessage } from './slack/user-dm-blocks.ts';
import { escapeCardText } from './teams/digest-card.ts';
import { cardMarkdown, userDmCard } from './teams/user-dm-card.ts';

/** The template's Slack-style `*bold*` as the words alone, for text Teams shows unformatted (a notification). */
function withoutEmphasis(text: string): string {
  return text.replace(/\*([^*\n]+)\*/g, '$1');
}

/**
 * The client's template is written once with Slack's `*bold*`. Slack reads it as is; Teams gets its own markdown
 * (`**bold**`, the rest escaped) where it formats text, and the plain words where it does not.
 */
export function userDmPayload(platform: 'slack' | 'teams', view: { dmId: number; text: string; answerLine?: string | undefined; buttons?: boolean }): OutboxPayload {
  if (view.buttons === false) return { text: platform === 'teams' ? cardMarkdown(view.text) : view.text };
  if (platform === 'slack') return { ...userDmSlackMessage(view) };
  // The card carries the words; the text is only the notification's summary (cardOnly), or Teams shows it twice.
  const words = withoutEmphasis(view.text);
  return { text: view.answerLine ? `${words}\n${view.answerLine}` : words, card: userDmCard(view), cardOnly: true };
}

/** "Your computer was off last night (NAMES)": the names come from the inventory, so they are shown as written. */
export function offlineNoticePayload(platform: 'slack' | 'teams', deviceNames: string): OutboxPayload {
  const text = `${OFFLINE_TEXT} (${deviceNames})`;
  return { text: platform === 'slack' ? boundText(escapeMrkdwn(text)) : escapeCardText(text) };
}
