/**
 * What the outbox deliverer needs from a chat platform, and nothing more: post a message (in a thread when
 * asked), edit one it posted, show one to a single user. Slack implements it in ./slack-sender.ts, Teams in
 * src/bot/teams/sender.ts (the Teams SDK stays in that folder), so the deliverer holds no platform's API.
 */
export type ChatAction = 'post' | 'update' | 'ephemeral';

export interface ChatDelivery {
  action: ChatAction;
  /** Slack: the channel id; Teams: the conversation id. */
  channel: string;
  /** For `update`: the platform's id of the message to edit. */
  messageId?: string;
  /** For a `post` in a thread: the platform's id of the thread's parent. */
  threadId?: string;
  payload: { text: string; card?: unknown; blocks?: unknown; user?: unknown; [key: string]: unknown };
}

/**
 * A post whose payload names `reportFiles` (a report archive delivery key) carries files: the platform's sender
 * reads their bytes through this source when it sends, so the bytes never ride in the outbox row.
 */
export type ReportFileSource = (deliveryKey: string) => Promise<ReadonlyArray<{ name: string; mimeType: string; bytes: Uint8Array }>>;

export interface ChatSent {
  messageId: string | undefined;
  /** The thread the message went into, when the platform threads it (stored so replies can find it). */
  threadId?: string;
}

export interface ChatSender {
  readonly platform: 'slack' | 'teams';
  /** Sends; resolves with the platform's message id. Throws ChatSendError for answers the deliverer must act on. */
  send(delivery: ChatDelivery): Promise<ChatSent>;
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

/** Any error from a send as the deliverer acts on it: what a sender did not classify is worth a retry. */
export function asSendError(error: unknown): ChatSendError {
  return error instanceof ChatSendError ? error : new ChatSendError('retry', error instanceof Error ? error.message : String(error));
}
