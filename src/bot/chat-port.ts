/**
 * What the outbox deliverer needs from a chat platform, and nothing more: post a message, edit one it posted.
 * The Teams side implements it in src/bot/teams/ (teams-ai and botbuilder stay in that folder), so moving to
 * Microsoft's Teams SDK v2 changes one implementation, not the deliverer.
 */
export interface ChatDelivery {
  action: 'post' | 'update';
  /** Teams: the conversation id. */
  channel: string;
  /** For `update`: the platform's id of the message to edit. */
  messageId?: string;
  payload: { text: string; card?: unknown; [key: string]: unknown };
}

export interface ChatSender {
  readonly platform: 'slack' | 'teams';
  /** Sends; resolves with the platform's message id. Throws ChatSendError for answers the deliverer must act on. */
  send(delivery: ChatDelivery): Promise<{ messageId: string | undefined }>;
  /** The tenant (or workspace) a channel belongs to, for limits shared across conversations. */
  scopeOf?(channel: string): Promise<string | undefined>;
}

/**
 * `retry`: try again later (throttled, or the service is having trouble), after `retryAfterMs` when the service
 * said. `refused`: no retry can fix it (the conversation is gone, the card was rejected); the row is dead.
 */
export class ChatSendError extends Error {
  constructor(
    readonly kind: 'retry' | 'refused',
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ChatSendError';
  }
}
