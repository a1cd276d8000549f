/**
 * A Slack user id (U…/W…) standing where a person's name should be: the use-cases fall back to the actor's chat id
 * when the directory has no name for them (engineers are listed by Slack id). Slack shows a mention of it as the
 * name; anywhere else (a client's Teams card) it means nothing and must not be shown.
 */
export const isSlackUserId = (text: string): boolean => /^[UW][A-Z0-9]{2,20}$/.test(text);
