import { inflateSync, crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { teamsManifest, teamsPackage } from '../../src/bot/teams/package.ts';
import { parsePatchCommand } from '../../src/bot/patch-command.ts';
import { waitBeforeSend, TEAMS_CONVERSATION_LIMITS, retryDelayMs } from '../../src/domain/teams-pacing.ts';

const APP = '11111111-2222-3333-4444-555555555555';

/** Reads a stored-entry zip through its central directory, checking each CRC: what an uploader does. */
function unzip(zip: Buffer): Map<string, Buffer> {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    expect(zip.readUInt32LE(at)).toBe(0x02014b50);
    const crc = zip.readUInt32LE(at + 16);
    const size = zip.readUInt32LE(at + 24);
    const nameLength = zip.readUInt16LE(at + 28);
    const offset = zip.readUInt32LE(at + 42);
    const name = zip.subarray(at + 46, at + 46 + nameLength).toString('utf8');
    const localNameLength = zip.readUInt16LE(offset + 26);
    const data = zip.subarray(offset + 30 + localNameLength, offset + 30 + localNameLength + size);
    expect(crc32(data) >>> 0, name).toBe(crc);
    files.set(name, data);
    at += 46 + nameLength;
  }
  return files;
}

function pngInfo(png: Buffer): { width: number; height: number; pixels: Buffer } {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const idatLength = png.readUInt32BE(33);
  return { width, height, pixels: inflateSync(png.subarray(41, 41 + idatLength)) };
}

describe('teams-package', () => {
  it('zips a manifest naming the bot and its domains, and the two icons at the sizes Teams requires', () => {
    const files = unzip(teamsPackage({ appId: APP, domains: ['https://patchbay.example.com/api/messages'] }));
    expect([...files.keys()]).toEqual(['manifest.json', 'color.png', 'outline.png']);
    const manifest = JSON.parse(files.get('manifest.json')!.toString('utf8'));
    expect(manifest.bots).toEqual([{ botId: APP, scopes: ['personal', 'team', 'groupChat'], supportsFiles: false, isNotificationOnly: false }]);
    expect(manifest.validDomains).toEqual(['patchbay.example.com']);
    expect(manifest.name.short.length).toBeLessThanOrEqual(30);
    expect(manifest.description.short.length).toBeLessThanOrEqual(80);
    const color = pngInfo(files.get('color.png')!);
    const outline = pngInfo(files.get('outline.png')!);
    expect([color.width, color.height, outline.width, outline.height]).toEqual([192, 192, 32, 32]);
    // The outline icon must be white on transparent: every pixel is either transparent or opaque white.
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const p = outline.pixels.subarray(y * 129 + 1 + x * 4, y * 129 + 5 + x * 4);
        expect(p[3] === 0 || (p[0] === 255 && p[1] === 255 && p[2] === 255)).toBe(true);
      }
    }
  });

  it('refuses an app id that is not a GUID', () => {
    expect(() => teamsManifest({ appId: 'my-bot', domains: [] })).toThrow(/GUID/);
  });
});

describe('/patch link', () => {
  it('parses one client id, and refuses none or two', () => {
    expect(parsePatchCommand('link acme-dental')).toEqual({ kind: 'link', client: 'acme-dental' });
    expect(parsePatchCommand('link').kind).toBe('unknown');
    expect(parsePatchCommand('link a b').kind).toBe('unknown');
  });
});

describe('Teams pacing', () => {
  it('allows 7 in a second, then waits for the oldest of them to leave the window', () => {
    const sent = [0, 10, 20, 30, 40, 50, 60];
    expect(waitBeforeSend(sent.slice(0, 6), 70, TEAMS_CONVERSATION_LIMITS)).toBe(0);
    expect(waitBeforeSend(sent, 70, TEAMS_CONVERSATION_LIMITS)).toBe(930);
    // Eight in two seconds: after 8 spread over 1.5 s the ninth waits for the first to be 2 s old.
    expect(waitBeforeSend([0, 200, 400, 600, 1200, 1300, 1400, 1500], 1600, TEAMS_CONVERSATION_LIMITS)).toBe(400);
  });

  it('honours Retry-After, else backs off exponentially with jitter within a cap', () => {
    expect(retryDelayMs(0, 3000, () => 0)).toBe(3000);
    expect(retryDelayMs(3, undefined, () => 0.999)).toBeLessThanOrEqual(8000);
    expect(retryDelayMs(20, undefined, () => 0.999)).toBeLessThanOrEqual(60_000);
    expect(retryDelayMs(1, undefined, () => 0)).toBeGreaterThanOrEqual(250);
  });
});
