/**
 * The end user's "save your work" DM as an Adaptive Card 1.5 for a Teams personal chat: the client's wording and
 * two Action.Execute buttons until answered, then the answer in their place. The wording is written once for
 * Slack and Teams with Slack's `*bold*`; a TextBlock's markdown wants `**bold**`, and everything else in it (names
 * from the inventory, the directory) is escaped so it shows as written.
 */
import { CARD_VERSION, escapeCardText } from './digest-card.ts';
import { executeAction } from './card-actions.ts';

export const VERB_DM_OK = 'userdm.ok';
export const VERB_DM_DEFER = 'userdm.defer';

/** Slack-style `*x*` becomes the card's `**x**`; every other markdown character is escaped. */
export function cardMarkdown(text: string): string {
  return text
    .split(/(\*[^*\n]+\*)/)
    .map((part) => (/^\*[^*\n]+\*$/.test(part) ? `**${escapeCardText(part.slice(1, -1))}**` : escapeCardText(part)))
    .join('');
}

export function userDmCard(view: { dmId: number; text: string; answerLine?: string | undefined }): Record<string, unknown> {
  const data = { dmId: view.dmId };
  const execute = (verb: string, title: string, style?: string) => executeAction(data, verb, title, style);
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: CARD_VERSION,
    body: [
      { type: 'TextBlock', text: 'Save your work', size: 'Large', weight: 'Bolder', wrap: true },
      { type: 'TextBlock', text: cardMarkdown(view.text), wrap: true },
      ...(view.answerLine ? [{ type: 'TextBlock', text: escapeCardText(view.answerLine), wrap: true, isSubtle: true }] : []),
    ],
    ...(view.answerLine ? {} : { actions: [execute(VERB_DM_OK, 'OK, I\u2019ll leave it on', 'positive'), execute(VERB_DM_DEFER, 'I need it then')] }),
  };
}
