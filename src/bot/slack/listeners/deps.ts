/**
 * What every Slack listener family is handed, and the small helpers they share: who clicked, the button's value,
 * how to answer only the person who clicked.
 */
import type { RespondFn } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import type { AppDatabase } from '../../../db/client.ts';
import type { Logger } from '../../../log.ts';
import type { Actor, DecisionResult, UseCaseContext } from '../../../use-cases/decisions.ts';
import { resultText } from '../../../chat/slack/views.ts';

export interface ListenerDeps {
  db: AppDatabase;
  /** What the use-cases are called with: the database, the clock and the after-commit hook. */
  ctx: UseCaseContext;
  log: Logger;
  now: () => Date;
  /** Signs the Teams download links of a report's files (patchbay's HTTP route); unset: champions get no links. */
  reportLinks?: (archiveId: number, expiresAt: Date) => string;
}

export const slackActor = (user: string): Actor => ({ platform: 'slack', id: user });

/** The channel a click or a modal came from, and the trigger a modal opens with. */
export const channelOf = (body: unknown): string | undefined => (body as { channel?: { id: string } }).channel?.id;
export const triggerOf = (body: unknown): string => (body as { trigger_id: string }).trigger_id;

/** Tells the clicker what happened, unless it simply worked (the changed message says so). */
export async function reply(respond: RespondFn, result: DecisionResult, quietWhenApplied = true): Promise<void> {
  if (result.outcome === 'applied' && quietWhenApplied) return;
  await respond({ response_type: 'ephemeral', replace_original: false, text: resultText(result) });
}

/** A line only `user` sees in `channel` (after a modal, which has no respond URL); a failure is only logged. */
export async function ephemeral(log: Logger, client: WebClient, channel: string | undefined, user: string, text: string): Promise<void> {
  if (!channel) return;
  try {
    await client.chat.postEphemeral({ channel, user, text });
  } catch (error) {
    log.warn({ err: error, channel, user }, 'could not show an ephemeral reply');
  }
}

/** A digest button's value: the release, and the update for a per-update button. */
export interface ButtonValue {
  release: string;
  kb?: string;
}

export function parseValue(value: unknown): ButtonValue | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<ButtonValue>;
    return typeof parsed.release === 'string' ? { release: parsed.release, ...(typeof parsed.kb === 'string' ? { kb: parsed.kb } : {}) } : undefined;
  } catch {
    return undefined;
  }
}

/** A rollout button's value: a JSON object, or undefined. */
export function jsonValue(action: unknown): Record<string, unknown> | undefined {
  try {
    const parsed = JSON.parse(String((action as { value?: unknown }).value)) as unknown;
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export const actionValue = (action: unknown): unknown => (action as { value?: unknown }).value;
