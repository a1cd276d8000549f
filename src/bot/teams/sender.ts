/**
 * Proactive Teams messages for the outbox deliverer: the stored conversation reference's service URL and
 * conversation, and the Teams SDK's Bot Connector client (@microsoft/teams.api) carrying the App's bearer.
 * App.send is not used: it posts to one service URL for every conversation, where a reference names the region
 * that holds the conversation. Throttling and service trouble (429, 412, 502, 504, other 5xx, network errors)
 * come back as ChatSendError('retry') with Teams' Retry-After when it sent one; a refusal no retry can fix (the
 * bot was removed, the card rejected) as ChatSendError('refused').
 */
import { Client } from '@microsoft/teams.api';
import type { App } from '@microsoft/teams.apps';
import type { AppDatabase } from '../../db/client.ts';
import { liveConversationReference } from '../../db/teams-conversations-repo.ts';
import { ChatSendError, type ChatDelivery, type ChatSender } from '../../chat/port.ts';

const RETRYABLE = new Set([408, 412, 429, 500, 502, 503, 504]);

interface HttpFailure {
  response?: { status?: number; headers?: Record<string, unknown> & { get?: (name: string) => unknown } };
  statusCode?: number;
}

function retryAfterMs(error: unknown): number | undefined {
  const headers = (error as HttpFailure).response?.headers;
  const raw = headers?.get?.('retry-after') ?? headers?.['retry-after'];
  if (raw === undefined || raw === null) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(String(raw));
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export function classifyTeamsError(error: unknown): ChatSendError {
  if (error instanceof ChatSendError) return error;
  const status = (error as HttpFailure).response?.status ?? (error as HttpFailure).statusCode;
  const message = error instanceof Error ? error.message : String(error);
  if (status === undefined) return new ChatSendError('retry', `teams unreachable: ${message}`);
  if (RETRYABLE.has(status)) return new ChatSendError('retry', `teams answered ${status}: ${message}`, status, retryAfterMs(error));
  return new ChatSendError('refused', `teams refused (${status}): ${message}`, status);
}

/** The message activity for an outbox payload, as it goes on the wire. */
export function teamsActivity(payload: ChatDelivery['payload']): Record<string, unknown> {
  const { text, card, cardOnly } = payload;
  return {
    type: 'message',
    // cardOnly: the card says it all; the text would show above it a second time, so it is only the summary.
    ...(card && cardOnly === true ? {} : { text }),
    ...(card ? { attachmentLayout: 'list', attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: card }] } : {}),
    // Notifications and screen readers use the summary; cards alone show "sent a card".
    summary: text.slice(0, 200),
  };
}

interface StoredReference {
  serviceUrl?: string;
  bot?: Record<string, unknown>;
  conversation?: Record<string, unknown>;
}

export class TeamsSender implements ChatSender {
  readonly platform = 'teams' as const;

  constructor(
    private readonly app: App,
    private readonly db: AppDatabase,
  ) {}

  private async reference(conversationId: string): Promise<{ reference: StoredReference; tenantId: string | null } | undefined> {
    const row = await liveConversationReference(this.db, conversationId);
    if (!row) return undefined;
    const reference = (typeof row.reference === 'string' ? JSON.parse(row.reference) : row.reference) as StoredReference;
    return { reference, tenantId: row.tenantId };
  }

  async scopeOf(channel: string): Promise<string | undefined> {
    return (await this.reference(channel))?.tenantId ?? undefined;
  }

  async send(delivery: ChatDelivery): Promise<{ messageId: string | undefined }> {
    const stored = await this.reference(delivery.channel);
    if (!stored) throw new ChatSendError('refused', `no Teams conversation ${delivery.channel} is linked (or the bot was removed)`);
    const serviceUrl = (stored.reference.serviceUrl ?? '').replace(/\/+$/, '');
    if (!serviceUrl) throw new ChatSendError('refused', `Teams conversation ${delivery.channel} has no service URL in its reference`);
    // The App's client carries its bearer (from Entra ID, or the sandbox's fixed one); the URL is this conversation's.
    const api = new Client(serviceUrl, this.app.api.http);
    const activity = { ...teamsActivity(delivery.payload), ...(stored.reference.bot ? { from: stored.reference.bot } : {}), conversation: stored.reference.conversation ?? { id: delivery.channel } };
    const conversation = encodeURIComponent(delivery.channel);
    try {
      if (delivery.action === 'update') {
        const id = delivery.messageId ?? '';
        await api.conversations.updateActivity(conversation, encodeURIComponent(id), { ...activity, id } as never);
        return { messageId: delivery.messageId };
      }
      const sent = await api.conversations.createActivity(conversation, activity as never);
      return { messageId: sent?.id };
    } catch (error) {
      throw classifyTeamsError(error);
    }
  }
}
