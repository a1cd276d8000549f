/**
 * Proactive Teams messages for the outbox deliverer: the stored conversation reference, the bot's app id, and
 * botbuilder's continueConversationAsync. Throttling and service trouble (429, 412, 502, 504, other 5xx,
 * network errors) come back as ChatSendError('retry') with Teams' Retry-After when it sent one; a refusal no
 * retry can fix (the bot was removed, the card rejected) as ChatSendError('refused').
 */
import { CardFactory, MessageFactory, type ConversationReference } from 'botbuilder';
import type { TeamsAdapter } from '@microsoft/teams-ai';
import type { AppDatabase } from '../../db/client.ts';
import { liveConversationReference } from '../../db/teams-conversations-repo.ts';
import { ChatSendError, type ChatDelivery, type ChatSender } from '../../chat/port.ts';

const RETRYABLE = new Set([408, 412, 429, 500, 502, 503, 504]);

function retryAfterMs(error: unknown): number | undefined {
  const headers = (error as { response?: { headers?: { get?: (name: string) => string | undefined } } }).response?.headers;
  const raw = headers?.get?.('retry-after');
  if (raw === undefined || raw === null) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export function classifyTeamsError(error: unknown): ChatSendError {
  if (error instanceof ChatSendError) return error;
  const status = (error as { statusCode?: number }).statusCode;
  const message = error instanceof Error ? error.message : String(error);
  if (status === undefined) return new ChatSendError('retry', `teams unreachable: ${message}`);
  if (RETRYABLE.has(status)) return new ChatSendError('retry', `teams answered ${status}: ${message}`, status, retryAfterMs(error));
  return new ChatSendError('refused', `teams refused (${status}): ${message}`, status);
}

export class TeamsSender implements ChatSender {
  readonly platform = 'teams' as const;

  constructor(
    private readonly adapter: TeamsAdapter,
    private readonly appId: string,
    private readonly db: AppDatabase,
  ) {}

  private async reference(conversationId: string): Promise<{ reference: Partial<ConversationReference>; tenantId: string | null } | undefined> {
    const row = await liveConversationReference(this.db, conversationId);
    if (!row) return undefined;
    const reference = (typeof row.reference === 'string' ? JSON.parse(row.reference) : row.reference) as Partial<ConversationReference>;
    return { reference, tenantId: row.tenantId };
  }

  async scopeOf(channel: string): Promise<string | undefined> {
    return (await this.reference(channel))?.tenantId ?? undefined;
  }

  async send(delivery: ChatDelivery): Promise<{ messageId: string | undefined }> {
    const stored = await this.reference(delivery.channel);
    if (!stored) throw new ChatSendError('refused', `no Teams conversation ${delivery.channel} is linked (or the bot was removed)`);
    const { text, card, cardOnly } = delivery.payload;
    // cardOnly: the card says it all; the text would show above it a second time, so it is only the summary.
    const activity = card ? MessageFactory.attachment(CardFactory.adaptiveCard(card), cardOnly === true ? undefined : text) : MessageFactory.text(text);
    // Notifications and screen readers use the summary; cards alone show "sent a card".
    activity.summary = text.slice(0, 200);
    let messageId: string | undefined;
    try {
      await this.adapter.continueConversationAsync(this.appId, stored.reference, async (context) => {
        if (delivery.action === 'update') {
          activity.id = delivery.messageId;
          await context.updateActivity(activity);
          messageId = delivery.messageId;
        } else {
          messageId = (await context.sendActivity(activity))?.id;
        }
      });
    } catch (error) {
      throw classifyTeamsError(error);
    }
    return { messageId };
  }
}
