/**
 * Slack's side of the ChatSender port: chat.postMessage, chat.update and chat.postEphemeral through a WebClient
 * that throws 429s to us instead of retrying inside the call, so the deliverer can hand Retry-After to BullMQ.
 * Slack's answers come back as ChatSendError: `ratelimited` (HTTP 429) as a retry with its Retry-After, errors
 * that mean "try again later" as a retry, any other refusal (channel gone, blocks refused) as final.
 */
import { ErrorCode, WebClient, type WebAPIPlatformError, type WebAPIRateLimitedError } from '@slack/web-api';
import { ChatSendError, type ChatDelivery, type ChatSender, type ChatSent, type ReportFileSource } from './port.ts';

/** Slack errors that say "try again later"; any other refusal is final for that row. */
const TRANSIENT_SLACK_ERRORS = new Set(['internal_error', 'fatal_error', 'service_unavailable', 'request_timeout', 'ratelimited', 'team_added_to_org']);

export function classifySlackError(error: unknown): ChatSendError {
  if (error instanceof ChatSendError) return error;
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === ErrorCode.RateLimitedError) {
    const seconds = (error as WebAPIRateLimitedError).retryAfter;
    return new ChatSendError('retry', message, 429, seconds * 1000);
  }
  if (code === ErrorCode.PlatformError) {
    const slackError = (error as WebAPIPlatformError).data.error;
    if (!TRANSIENT_SLACK_ERRORS.has(slackError)) return new ChatSendError('refused', `slack refused: ${slackError}`);
  }
  return new ChatSendError('retry', message);
}

export class SlackSender implements ChatSender {
  readonly platform = 'slack' as const;

  /** `files`: where a report's bytes are read from (the report archive); unset, a post with files is refused. */
  constructor(
    readonly client: WebClient,
    private readonly files?: ReportFileSource,
  ) {}

  async send(delivery: ChatDelivery): Promise<ChatSent> {
    try {
      return { messageId: await this.call(delivery), ...(delivery.threadId ? { threadId: delivery.threadId } : {}) };
    } catch (error) {
      throw classifySlackError(error);
    }
  }

  private async call({ action, channel, messageId, threadId, payload }: ChatDelivery): Promise<string | undefined> {
    if (action === 'post' && typeof payload.reportFiles === 'string') return this.upload(channel, threadId, payload.text, payload.reportFiles);
    const blocks = payload.blocks as never;
    const content = { channel, text: payload.text, ...(blocks ? { blocks } : {}) };
    if (action === 'post') return (await this.client.chat.postMessage({ ...content, ...(threadId ? { thread_ts: threadId } : {}) })).ts;
    if (action === 'update') return (await this.client.chat.update({ ...content, ts: messageId! })).ts ?? messageId;
    const user = typeof payload.user === 'string' ? payload.user : '';
    return (await this.client.chat.postEphemeral({ ...content, user })).message_ts;
  }

  private upload(channel: string, threadId: string | undefined, text: string, deliveryKey: string): Promise<string> {
    if (!this.files) throw new ChatSendError('refused', 'this Slack sender has no report archive to read files from');
    return uploadFiles(this.client, this.files, { channel, text, deliveryKey, ...(threadId ? { threadId } : {}) });
  }
}

/**
 * Slack's external upload flow, done by WebClient's filesUploadV2: files.getUploadURLExternal per file, the bytes
 * POSTed to each upload URL, then one files.completeUploadExternal sharing them all into the channel (or thread)
 * with `text` as the initial comment. A retry after a failure uploads afresh; Slack discards uploads never
 * completed. Resolves with the shared files' ids (completeUploadExternal answers no message ts).
 */
export async function uploadFiles(client: WebClient, files: ReportFileSource, target: { channel: string; threadId?: string; text: string; deliveryKey: string }): Promise<string> {
  const found = await files(target.deliveryKey);
  if (found.length === 0) throw new ChatSendError('refused', `no archived files for ${target.deliveryKey}`);
  const res = await client.filesUploadV2({
    channel_id: target.channel,
    initial_comment: target.text,
    ...(target.threadId ? { thread_ts: target.threadId } : {}),
    file_uploads: found.map((f) => ({ file: Buffer.from(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength), filename: f.name, title: f.name })),
  } as never);
  const completed = (res as unknown as { files?: Array<{ files?: Array<{ id?: string }> }> }).files ?? [];
  return completed.flatMap((c) => c.files ?? []).map((f) => f.id ?? '').join(',');
}

/** A sender for the deliverer: 429s are thrown to us (BullMQ waits), not retried inside the call. */
export function deliveryClient(token: string, apiUrl: string, files?: ReportFileSource): SlackSender {
  return new SlackSender(new WebClient(token, { slackApiUrl: apiUrl, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } }), files);
}
