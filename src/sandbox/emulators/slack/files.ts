/**
 * files.*: Slack's external upload flow, the only way left to upload (files.upload was retired on 2025-11-12):
 *
 *   1. `files.getUploadURLExternal` (filename, length in bytes) answers `upload_url` and `file_id`;
 *   2. the bytes are POSTed to `upload_url`, raw or multipart-encoded; HTTP 200 is success, anything else failure;
 *   3. `files.completeUploadExternal` (files: [{id, title}], channel_id, thread_ts, initial_comment) shares them.
 *
 * From Slack's method pages (docs.slack.dev/reference/methods/files.getUploadURLExternal and
 * files.completeUploadExternal; both Tier 4): `filename` and `length` are required, `alt_txt` at most 1000
 * characters (`alt_txt_too_large`), a zero `length` answers `missing_argument`; a file never completed is discarded,
 * and completing "can only be called once"; without a channel the file stays private; `thread_ts` must be a
 * parent's ts. Where the pages name no error or number, the emulator picks one and says so here:
 *   - a file over Slack's 1 GB file limit answers `file_upload_size_restricted` (the page's "too large" error);
 *   - the bytes POSTed must be exactly `length` (else HTTP 400), and an upload URL takes one POST and expires
 *     (`uploadTtlMs`, default 10 minutes: Slack publishes no lifetime) — a second or late POST is HTTP 404;
 *   - completing an id that was never uploaded, or twice, answers `file_not_found`;
 *   - `files` holds at most `maxFilesPerComplete` (default 10, what a Slack message shows; the pages give no
 *     limit, and slackapi/python-slack-sdk#1653 reports `internal_error` past 14), else `invalid_arguments`;
 *   - a channel the bot is not a member of answers `not_in_channel`.
 */
import { randomBytes } from 'node:crypto';
import { jsonArg, SlackError, str, type Answer, type Args, type Methods } from './protocol.ts';
import type { StoredFile } from './types.ts';
import type { Workspace } from './workspace.ts';

export const MAX_FILE_BYTES = 1024 * 1024 * 1024;
const MAX_ALT_TEXT = 1000;

export interface FileLimits {
  uploadTtlMs: number;
  maxFilesPerComplete: number;
}

interface PendingUpload {
  fileId: string;
  filename: string;
  length: number;
  altText?: string;
  issuedAt: number;
  /** Set once the bytes arrived (the URL is then spent). */
  bytes?: Buffer;
  completed: boolean;
}

/** The uploads in flight, by upload token and by file id, and the files shared or kept private. */
export class FileStore {
  readonly byToken = new Map<string, PendingUpload>();
  readonly byId = new Map<string, PendingUpload>();
  readonly files: StoredFile[] = [];
  constructor(readonly limits: FileLimits) {}
}

const invalid = (message: string): SlackError => new SlackError('invalid_arguments', { response_metadata: { messages: [`[ERROR] ${message}`] } });

/**
 * Slack types a file from its name (the upload carries no content type): its file object's `mimetype`. The
 * extensions a bot here sends; anything else is `application/octet-stream`.
 */
const MIMETYPES: Record<string, string> = { pdf: 'application/pdf', csv: 'text/csv', png: 'image/png', json: 'application/json', txt: 'text/plain' };

export function mimetypeOf(filename: string): string {
  const ext = /\.([A-Za-z0-9]+)$/.exec(filename)?.[1]?.toLowerCase();
  return (ext !== undefined ? MIMETYPES[ext] : undefined) ?? 'application/octet-stream';
}

function wholeNumber(v: unknown): number | undefined {
  const s = str(v);
  return s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined;
}

export function filesMethods(ws: Workspace, store: FileStore, origin: () => string): Methods {
  return {
    'files.getUploadURLExternal': (args, at) => {
      const filename = str(args.filename);
      if (filename === undefined || filename === '') throw invalid('missing required field: filename');
      if (args.length === undefined || args.length === '') throw invalid('missing required field: length');
      const length = wholeNumber(args.length);
      if (length === undefined) throw invalid('invalid type for field: length (expected an integer)');
      if (length === 0) throw new SlackError('missing_argument');
      if (length > MAX_FILE_BYTES) throw new SlackError('file_upload_size_restricted');
      const altText = str(args.alt_txt) ?? str(args.alt_text);
      if (altText !== undefined && altText.length > MAX_ALT_TEXT) throw new SlackError('alt_txt_too_large');
      const fileId = `F${randomBytes(6).toString('hex').toUpperCase().slice(0, 10)}`;
      const token = randomBytes(18).toString('base64url');
      const pending: PendingUpload = { fileId, filename, length, issuedAt: at, completed: false, ...(altText !== undefined ? { altText } : {}) };
      store.byToken.set(token, pending);
      store.byId.set(fileId, pending);
      return { upload_url: `${origin()}/upload/v1/${token}`, file_id: fileId };
    },

    'files.completeUploadExternal': (args, at) => complete(ws, store, args, at),
  };
}

function complete(ws: Workspace, store: FileStore, args: Args, at: number): Record<string, unknown> {
  const list = jsonArg(args, 'files', 'invalid_arguments');
  if (!Array.isArray(list) || list.length === 0) throw invalid('missing required field: files');
  if (list.length > store.limits.maxFilesPerComplete) throw invalid(`too many files: at most ${store.limits.maxFilesPerComplete} per call`);
  const entries = list.map((f) => {
    const id = typeof f === 'object' && f !== null ? str((f as Record<string, unknown>).id) : undefined;
    if (id === undefined) throw invalid('each of files needs an id');
    return { id, title: str((f as Record<string, unknown>).title) };
  });
  const uploads = entries.map(({ id }) => {
    const pending = store.byId.get(id);
    if (pending?.bytes === undefined || pending.completed) throw new SlackError('file_not_found');
    return pending;
  });
  const channelArg = str(args.channel_id) ?? str(args.channels);
  const channel = channelArg === undefined ? undefined : ws.resolveChannel(channelArg);
  if (channel !== undefined && ws.channels.get(channel)?.member === false) throw new SlackError('not_in_channel');
  const threadTs = str(args.thread_ts);
  if (threadTs !== undefined && channel === undefined) throw invalid('thread_ts needs channel_id');
  const stored: StoredFile[] = uploads.map((u, i) => ({
    id: u.fileId,
    name: u.filename,
    title: entries[i]!.title ?? u.filename,
    size: u.length,
    mimetype: mimetypeOf(u.filename),
    bytes: u.bytes!,
    at,
    ...(u.altText !== undefined ? { altText: u.altText } : {}),
  }));
  if (channel !== undefined) {
    const comment = str(args.initial_comment);
    const { message } = ws.postMessage(channel, { ...(comment !== undefined ? { text: comment } : {}), ...(threadTs !== undefined ? { thread_ts: threadTs } : {}) }, at, { allowEmpty: true });
    message.files = stored.map((f) => f.id);
    for (const f of stored) Object.assign(f, { channel, ts: message.ts, ...(message.thread_ts !== undefined ? { thread_ts: message.thread_ts } : {}) });
  }
  for (const u of uploads) u.completed = true;
  store.files.push(...stored);
  return { files: stored.map((f) => ({ id: f.id, name: f.name, title: f.title, size: f.size, mimetype: f.mimetype })) };
}

/** `POST /upload/v1/<token>`: the bytes, raw or as the one file part of a multipart form. */
export async function receiveUpload(store: FileStore, token: string, raw: Buffer, contentType: string | undefined, now: number): Promise<Answer> {
  const pending = store.byToken.get(token);
  if (pending === undefined || pending.bytes !== undefined) return { status: 404, body: 'upload url unknown or already used' };
  if (now - pending.issuedAt > store.limits.uploadTtlMs) {
    store.byToken.delete(token);
    return { status: 404, body: 'upload url expired' };
  }
  const bytes = contentType?.startsWith('multipart/form-data') ? await filePart(raw, contentType) : raw;
  if (bytes === undefined) return { status: 400, body: 'no file in the form' };
  if (bytes.length !== pending.length) return { status: 400, body: `length mismatch: ${bytes.length} bytes sent, ${pending.length} declared` };
  pending.bytes = bytes;
  return { status: 200, body: `OK - ${bytes.length}` };
}

async function filePart(raw: Buffer, contentType: string): Promise<Buffer | undefined> {
  try {
    const form = await new Request('http://upload.local/', { method: 'POST', headers: { 'content-type': contentType }, body: new Uint8Array(raw) }).formData();
    for (const value of form.values()) {
      if (typeof value !== 'string') return Buffer.from(await value.arrayBuffer());
    }
  } catch {
    return undefined;
  }
  return undefined;
}
