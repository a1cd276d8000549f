/**
 * Button clicks (and the Hold modal's client search): ack at once, hand the click to a use-case, or open the
 * modal that asks for the rest. The digest's Approve/Hold/Note, the rollout's Promote/Hold client/Retry failed,
 * the pilot's Reply to champion, the end user's DM buttons.
 */
import type { App } from '@slack/bolt';
import { approve, checkEngineer, findEngineer } from '../../../use-cases/decisions.ts';
import { PILOT_REPLY_CHAMPION_ACTION } from '../../../use-cases/pilot.ts';
import { promoteRelease, retryFailed } from '../../../use-cases/rollout-actions.ts';
import { clientIds, searchClients } from '../../../use-cases/status.ts';
import { registerUserDmActions } from '../user-dm-actions.ts';
import { CLIENTS_ACTION, HOLD_CALLBACK, MAX_CLIENT_OPTIONS, clientOption, holdModal, noteModal, type ModalTarget } from '../../../chat/slack/views.ts';
import { HOLD_CLIENT_ACTION, holdClientModal, PROMOTE_ACTION, RETRY_FAILED_ACTION, type HoldClientTarget } from '../../../chat/slack/window-blocks.ts';
import { actionValue, channelOf, jsonValue, parseValue, reply, slackActor, triggerOf, type ListenerDeps } from './deps.ts';

export function register(app: App, deps: ListenerDeps): void {
  registerDigestButtons(app, deps);
  registerClientSearch(app, deps);
  registerRolloutButtons(app, deps);
  registerUserDmActions(app, deps.ctx, deps.log);
}

/** The digest's Approve and Hold (per update and for the release) and Add note. */
function registerDigestButtons(app: App, { ctx, db }: ListenerDeps): void {
  for (const [pattern, kind] of [
    [/^update\.approve$/, 'update'],
    [/^release\.approve$/, 'release'],
  ] as const) {
    app.action(pattern, async ({ ack, body, action, respond }) => {
      await ack();
      const value = parseValue(actionValue(action));
      if (!value) return;
      const result = await approve(ctx, { actor: slackActor(body.user.id), releaseId: value.release, updateKey: kind === 'release' ? null : (value.kb ?? null) });
      await reply(respond, result);
    });
  }

  for (const [pattern, kind] of [
    [/^update\.hold$/, 'update'],
    [/^release\.hold$/, 'release'],
  ] as const) {
    app.action(pattern, async ({ ack, body, action, client, respond }) => {
      await ack();
      const value = parseValue(actionValue(action));
      if (!value) return;
      const refused = await checkEngineer(ctx, slackActor(body.user.id));
      if (refused) return reply(respond, refused);
      const target: ModalTarget = { release: value.release, kb: kind === 'release' ? null : (value.kb ?? null), channel: channelOf(body) };
      await client.views.open({ trigger_id: triggerOf(body), view: holdModal(target, await clientIds(db)) as never });
    });
  }

  app.action('update.note', async ({ ack, body, action, client, respond }) => {
    await ack();
    const value = parseValue(actionValue(action));
    if (!value?.kb) return;
    const refused = await checkEngineer(ctx, slackActor(body.user.id));
    if (refused) return reply(respond, refused);
    const target = { release: value.release, kb: value.kb, channel: channelOf(body) };
    await client.views.open({ trigger_id: triggerOf(body), view: noteModal(target) as never });
  });
}

/**
 * The Hold modal's client picker when the MSP has more clients than a static select can list. Client names are
 * the MSP's business: only an engineer gets any back.
 */
function registerClientSearch(app: App, { db }: ListenerDeps): void {
  app.options({ type: 'block_suggestion', action_id: CLIENTS_ACTION, block_id: CLIENTS_ACTION }, async ({ ack, body }) => {
    const suggestion = body as { user?: { id?: string }; value?: string; view?: { callback_id?: string } };
    const user = suggestion.user?.id;
    if (suggestion.view?.callback_id !== HOLD_CALLBACK || !user || !(await findEngineer(db, slackActor(user)))) {
      await ack({ options: [] });
      return;
    }
    const found = await searchClients(db, (suggestion.value ?? '').slice(0, 100), MAX_CLIENT_OPTIONS);
    await ack({ options: found.map(clientOption) as never });
  });
}

/** The rollout's buttons: Promote to pilot (the release's thread), Hold this client and Retry failed (window summaries). */
function registerRolloutButtons(app: App, { ctx, db, log }: ListenerDeps): void {
  app.action(PROMOTE_ACTION, async ({ ack, body, action, respond }) => {
    await ack();
    const value = jsonValue(action);
    if (typeof value?.release !== 'string') return;
    await reply(respond, await promoteRelease(ctx, { actor: slackActor(body.user.id), releaseId: value.release }));
  });

  app.action(HOLD_CLIENT_ACTION, async ({ ack, body, action, client, respond }) => {
    await ack();
    const value = jsonValue(action);
    if (typeof value?.clientId !== 'string' || typeof value.windowStart !== 'string') return;
    const refused = await checkEngineer(ctx, slackActor(body.user.id));
    if (refused) return reply(respond, refused);
    const target: HoldClientTarget = { clientId: value.clientId, windowStart: value.windowStart, channel: channelOf(body) };
    const name = (await clientIds(db)).find((c) => c.id === value.clientId)?.name;
    await client.views.open({ trigger_id: triggerOf(body), view: holdClientModal({ ...target, ...(name ? { clientName: name } : {}) }) as never });
  });

  app.action(RETRY_FAILED_ACTION, async ({ ack, body, action, respond }) => {
    await ack();
    const value = jsonValue(action);
    if (typeof value?.who !== 'string' || typeof value.windowStart !== 'string') return;
    await reply(respond, await retryFailed(ctx, { actor: slackActor(body.user.id), who: value.who, windowStart: value.windowStart }));
  });

  // "Reply to champion" is a link button (a Teams chat opens in the engineer's browser). Slack still sends the
  // click here and shows the engineer a warning unless it is acked within 3 s; there is nothing else to do.
  app.action(PILOT_REPLY_CHAMPION_ACTION, async ({ ack, body, action }) => {
    await ack();
    const value = jsonValue(action);
    log.info({ user: body.user.id, release: value?.release, client: value?.client }, 'engineer opened a chat with the champion who reported a pilot problem');
  });
}
