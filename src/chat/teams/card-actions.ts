/**
 * The one shape of a button on our Adaptive Cards: a Universal Action (`Action.Execute`) that carries the card's
 * data, with an `Action.Submit` fallback for clients without Universal Actions, which send a message with the same
 * data and the verb instead; the bot handles both.
 */
export type CardAction = {
  type: 'Action.Execute';
  verb: string;
  title: string;
  data: Record<string, unknown>;
  style?: string;
  fallback: { type: 'Action.Submit'; title: string; data: Record<string, unknown> };
};

export function executeAction(data: Record<string, unknown>, verb: string, title: string, style?: string): CardAction {
  return {
    type: 'Action.Execute',
    verb,
    title,
    data,
    ...(style ? { style } : {}),
    fallback: { type: 'Action.Submit', title, data: { ...data, verb } },
  };
}
