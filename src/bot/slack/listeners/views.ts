/**
 * Modal submissions: Hold (digest), Hold this client (window summary), Add note. Each checks its fields before
 * the ack, so a problem shows next to the field and the modal stays open to fix it; then the use-case runs and
 * only a refusal is told (ephemerally: a modal has no respond URL).
 */
import type { App } from '@slack/bolt';
import { validateNote, validateReason } from '../../../domain/approval.ts';
import { addResearchNote, hold } from '../../../use-cases/decisions.ts';
import { holdClientFromWindow } from '../../../use-cases/rollout-actions.ts';
import { HOLD_CALLBACK, NOTE_CALLBACK, holdModalErrors, resultText, type ModalTarget } from '../../../chat/slack/views.ts';
import { HOLD_CLIENT_CALLBACK, type HoldClientTarget } from '../../../chat/slack/window-blocks.ts';
import { ephemeral, slackActor, type ListenerDeps } from './deps.ts';

type Values = Record<string, Record<string, { value?: string | null; selected_option?: { value: string } | null; selected_options?: Array<{ value: string }> }>>;

export function register(app: App, deps: ListenerDeps): void {
  const { ctx, log } = deps;

  app.view(HOLD_CALLBACK, async ({ ack, body, view, client }) => {
    const values = view.state.values as Values;
    const target = JSON.parse(view.private_metadata) as ModalTarget;
    const reason = values.reason?.reason?.value ?? '';
    const scope = values.scope?.scope?.selected_option?.value ?? 'all';
    const chosen = (values.clients?.clients?.selected_options ?? []).map((o) => o.value);
    const errors = holdModalErrors({ reason, scope, chosen, hasPicker: values.clients !== undefined });
    if (Object.keys(errors).length > 0) {
      await ack({ response_action: 'errors', errors });
      return;
    }
    await ack();
    const result = await hold(ctx, {
      actor: slackActor(body.user.id),
      releaseId: target.release,
      updateKey: target.kb,
      clients: scope === 'chosen' ? chosen : 'all',
      reason,
      requestId: view.id,
    });
    if (result.outcome !== 'applied') await ephemeral(log, client, target.channel, body.user.id, resultText(result));
  });

  app.view(HOLD_CLIENT_CALLBACK, async ({ ack, body, view, client }) => {
    const values = view.state.values as Values;
    const target = JSON.parse(view.private_metadata) as HoldClientTarget;
    const reason = values.reason?.reason?.value ?? '';
    const problem = validateReason(reason);
    if (problem) {
      await ack({ response_action: 'errors', errors: { reason: problem.message } });
      return;
    }
    await ack();
    const result = await holdClientFromWindow(ctx, { actor: slackActor(body.user.id), clientId: target.clientId, windowStart: target.windowStart, reason, requestId: view.id });
    if (result.outcome !== 'applied') await ephemeral(log, client, target.channel, body.user.id, resultText(result));
  });

  app.view(NOTE_CALLBACK, async ({ ack, body, view, client }) => {
    const values = view.state.values as Values;
    const target = JSON.parse(view.private_metadata) as ModalTarget & { kb: string };
    const text = values.text?.text?.value ?? '';
    const tags = (values.tags?.tags?.selected_options ?? []).map((o) => o.value);
    const problem = validateNote(text, tags);
    if (problem) {
      await ack({ response_action: 'errors', errors: { text: problem.message } });
      return;
    }
    await ack();
    const result = await addResearchNote(ctx, { actor: slackActor(body.user.id), releaseId: target.release, updateKey: target.kb, text, tags, requestId: view.id });
    if (result.outcome !== 'applied') await ephemeral(log, client, target.channel, body.user.id, resultText(result));
  });
}
