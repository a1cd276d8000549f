/**
 * The end user's "save your work tonight" DM in Block Kit: the client's wording, and two buttons until it is
 * answered, then the answer in their place. The wording is a template whose `*save your work*` is meant to be
 * bold, filled with names from the inventory and the directory: only the control sequences are escaped (no
 * pings, no links), so a device name's stars would format too. The button value is the DM's id; who may press
 * it is checked against the stored recipient, never taken from the payload.
 */
import { BLOCK_KIT_LIMITS, boundText, escapeMrkdwnControls, plain, type Block } from './block-kit.ts';

export const DM_OK_ACTION = 'userdm.ok';
export const DM_DEFER_ACTION = 'userdm.defer';

export function userDmSlackMessage(view: { dmId: number; text: string; answerLine?: string | undefined }): { text: string; blocks: Block[] } {
  // A person with many machines gets a long list of names: the section and the fallback each say so with an ellipsis.
  const body = boundText(escapeMrkdwnControls(view.text), BLOCK_KIT_LIMITS.sectionText);
  const blocks: Block[] = [{ type: 'section', text: { type: 'mrkdwn', text: body } } as Block];
  if (view.answerLine) {
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: escapeMrkdwnControls(view.answerLine) }] } as Block);
  } else {
    blocks.push({
      type: 'actions',
      block_id: `userdm:${view.dmId}`,
      elements: [
        { type: 'button', text: plain('OK, I\u2019ll leave it on'), action_id: DM_OK_ACTION, value: String(view.dmId), style: 'primary' },
        { type: 'button', text: plain('I need it then'), action_id: DM_DEFER_ACTION, value: String(view.dmId) },
      ],
    } as Block);
  }
  if (!view.answerLine) return { text: boundText(escapeMrkdwnControls(view.text)), blocks };
  // The answer is cut last: a long list of machines must not push it out of the fallback.
  const answer = boundText(escapeMrkdwnControls(view.answerLine), 500);
  return { text: `${boundText(escapeMrkdwnControls(view.text), BLOCK_KIT_LIMITS.fallbackText - answer.length - 1)}\n${answer}`, blocks };
}
