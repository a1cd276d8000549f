// The emulator's external upload flow (files.getUploadURLExternal -> POST bytes -> files.completeUploadExternal),
// proven with Slack's own WebClient (its filesUploadV2 runs the three steps) and with the steps made by hand.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, LogLevel, WebClient, type Logger } from '@slack/web-api';
import { startSlackEmulator, type SlackEmulator, type SlackEmulatorOptions } from '../support/slack-emulator.ts';

const CH = 'C0ENGINEERS';
const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, setLevel: () => {}, getLevel: () => LogLevel.ERROR, setName: () => {} };

let emu: SlackEmulator;
let web: WebClient;
let now = 1_800_000_000_000;

async function start(options: SlackEmulatorOptions = {}): Promise<void> {
  emu = await startSlackEmulator({ clock: () => now, ...options });
  web = new WebClient(emu.botToken, { slackApiUrl: emu.url, retryConfig: { retries: 0 }, rejectRateLimitedCalls: true, logger: quiet });
}

async function slackError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string; data?: { error?: string } };
    if (err.code !== ErrorCode.PlatformError) throw e;
    return err.data?.error ?? '';
  }
  throw new Error('expected the call to be refused');
}

const post = (url: string, body: Uint8Array | string): Promise<Response> => fetch(url, { method: 'POST', body });

beforeEach(() => start());
afterEach(async () => {
  await emu.close();
});

describe('Slack emulator: external file upload', () => {
  it('filesUploadV2 uploads several files into a thread with a comment, bytes unchanged', async () => {
    const parent = await web.chat.postMessage({ channel: CH, text: 'reports' });
    const binary = Buffer.from([0, 255, 1, 254, 10, 13, 0x25, 0x50, 0x44, 0x46]);
    const csv = Buffer.from('device,compliant\r\n"=cmd",no\r\n', 'utf8');
    const res = await web.filesUploadV2({
      channel_id: CH,
      thread_ts: parent.ts!,
      initial_comment: 'Acme, 2026-Nov',
      file_uploads: [
        { file: binary, filename: 'a.pdf', title: 'Report' },
        { file: csv, filename: 'a.csv' },
      ],
    });
    expect(res.ok).toBe(true);
    const files = emu.files({ channel: CH });
    // Typed from the name, as Slack's file object is (the upload carries no content type).
    expect(files.map((f) => [f.name, f.size, f.thread_ts, f.mimetype])).toEqual([
      ['a.pdf', binary.length, parent.ts, 'application/pdf'],
      ['a.csv', csv.length, parent.ts, 'text/csv'],
    ]);
    expect(files[0]!.bytes.equals(binary)).toBe(true);
    expect(files[1]!.bytes.equals(csv)).toBe(true);
    const [share] = emu.replies(CH, parent.ts!);
    expect(share?.text).toBe('Acme, 2026-Nov');
    expect(share?.files).toEqual(files.map((f) => f.id));
  });

  it('getUploadURLExternal: filename and length are required, 0 bytes and over 1 GB are refused', async () => {
    expect(await slackError(web.files.getUploadURLExternal({ filename: 'x.csv' } as never))).toBe('invalid_arguments');
    expect(await slackError(web.files.getUploadURLExternal({ length: 3 } as never))).toBe('invalid_arguments');
    expect(await slackError(web.files.getUploadURLExternal({ filename: 'x.csv', length: 0 }))).toBe('missing_argument');
    expect(await slackError(web.files.getUploadURLExternal({ filename: 'x.csv', length: 1024 ** 3 + 1 }))).toBe('file_upload_size_restricted');
    const ok = await web.files.getUploadURLExternal({ filename: 'x.csv', length: 1024 ** 3 });
    expect(ok.upload_url).toMatch(/\/upload\/v1\//);
    expect(ok.file_id).toMatch(/^F/);
  });

  it('the upload URL takes exactly `length` bytes, once, before it expires', async () => {
    const a = await web.files.getUploadURLExternal({ filename: 'a.csv', length: 3 });
    expect((await post(a.upload_url!, 'abcd')).status).toBe(400);
    expect((await post(a.upload_url!, 'abc')).status).toBe(200);
    expect((await post(a.upload_url!, 'abc')).status).toBe(404);

    const late = await web.files.getUploadURLExternal({ filename: 'b.csv', length: 3 });
    now += 10 * 60_000 + 1;
    expect((await post(late.upload_url!, 'abc')).status).toBe(404);
    expect(await slackError(web.files.completeUploadExternal({ files: [{ id: late.file_id! }], channel_id: CH }))).toBe('file_not_found');
  });

  it('completeUploadExternal: files required, uploaded first, completed once; channel must exist and have the bot', async () => {
    await emu.close();
    await start({ channels: [{ id: CH, name: 'patch-engineers' }, { id: 'C0OUTSIDE', name: 'outside', member: false }], maxFilesPerComplete: 2 });
    const upload = async (name: string) => {
      const u = await web.files.getUploadURLExternal({ filename: name, length: 2 });
      expect((await post(u.upload_url!, 'hi')).status).toBe(200);
      return u.file_id!;
    };
    expect(await slackError(web.files.completeUploadExternal({ files: [] as never }))).toBe('invalid_arguments');
    const never = await web.files.getUploadURLExternal({ filename: 'n.csv', length: 2 });
    expect(await slackError(web.files.completeUploadExternal({ files: [{ id: never.file_id! }], channel_id: CH }))).toBe('file_not_found');
    const id = await upload('a.csv');
    expect(await slackError(web.files.completeUploadExternal({ files: [{ id }], channel_id: 'C0NOPE' }))).toBe('channel_not_found');
    expect(await slackError(web.files.completeUploadExternal({ files: [{ id }], channel_id: 'C0OUTSIDE' }))).toBe('not_in_channel');
    const three = [await upload('b.csv'), await upload('c.csv'), id].map((f) => ({ id: f }));
    expect(await slackError(web.files.completeUploadExternal({ files: three as never, channel_id: CH }))).toBe('invalid_arguments');
    const done = await web.files.completeUploadExternal({ files: [{ id, title: 'A' }], channel_id: CH, initial_comment: 'here' });
    expect(done.files?.[0]?.title).toBe('A');
    expect(await slackError(web.files.completeUploadExternal({ files: [{ id }], channel_id: CH }))).toBe('file_not_found');
    expect(emu.messages(CH).map((m) => m.text)).toEqual(['here']);
  });

  it('a file completed without a channel stays private: stored, not posted', async () => {
    const u = await web.files.getUploadURLExternal({ filename: 'p.csv', length: 1 });
    await post(u.upload_url!, 'p');
    await web.files.completeUploadExternal({ files: [{ id: u.file_id! }] });
    expect(emu.files().map((f) => [f.id, f.channel])).toEqual([[u.file_id, undefined]]);
    expect(emu.messages()).toEqual([]);
  });
});
