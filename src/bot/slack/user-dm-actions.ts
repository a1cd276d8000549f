/**
 * Bolt listeners for the end user's DM buttons: ack, hand the click to the use-case, and tell only the presser
 * when nothing changed (someone else's DM, already answered). The DM's own edit goes through the outbox.
 */
import type { App } from '@slack/bolt';
import type { Logger } from '../../log.ts';
import { answerUserDm, type DmAnswer } from '../../use-cases/user-dm.ts';
import type { UseCaseContext } from '../../use-cases/decisions.ts';
import { DM_DEFER_ACTION, DM_OK_ACTION } from '../../chat/slack/user-dm-blocks.ts';

export function registerUserDmActions(app: App, ctx: UseCaseContext, log: Logger): void {
  for (const [actionId, answer] of [
    [DM_OK_ACTION, 'ok'],
    [DM_DEFER_ACTION, 'defer'],
  ] as const satisfies ReadonlyArray<readonly [string, DmAnswer]>) {
    app.action(actionId, async ({ ack, body, action, respond }) => {
      await ack();
      const dmId = Number((action as { value?: unknown }).value);
      if (!Number.isSafeInteger(dmId)) return;
      const container = (body as { container?: { channel_id?: string; message_ts?: string } }).container;
      const messageRef = container?.channel_id && container.message_ts ? { channel: container.channel_id, ts: container.message_ts } : undefined;
      const result = await answerUserDm(ctx, { actor: { platform: 'slack', id: body.user.id }, dmId, answer, messageRef });
      if (result.outcome === 'applied') return;
      try {
        await respond({ response_type: 'ephemeral', replace_original: false, text: result.message });
      } catch (error) {
        log.warn({ err: error, dmId }, 'could not tell the presser why nothing changed');
      }
    });
  }
}
