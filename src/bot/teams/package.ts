/**
 * The Teams app package a Teams admin uploads: manifest.json (schema 1.17) naming the bot id, the scopes it is
 * installed in (a client's team, group chats, a champion's personal chat), the valid domains, and the two icons
 * Teams requires (color 192x192, outline 32x32 white on transparent), drawn here as PNGs so nothing binary is
 * kept in the repository.
 */
import { deflateSync, crc32 } from 'node:zlib';
import { zipStored } from '../../runtime/zip.ts';

export interface PackageInput {
  appId: string;
  /** The public host Teams reaches /api/messages on, e.g. patchbay.example-msp.com. */
  domains: string[];
  name?: string;
  developer?: { name: string; websiteUrl: string; privacyUrl: string; termsOfUseUrl: string };
  version?: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function teamsManifest(input: PackageInput): Record<string, unknown> {
  if (!GUID.test(input.appId)) throw new Error(`the bot's app id must be a GUID (the Entra app registration's Application (client) ID), got "${input.appId}"`);
  const domains = input.domains.map((d) => d.replace(/^https?:\/\//, '').replace(/\/.*$/, '')).filter(Boolean);
  const site = domains[0] ? `https://${domains[0]}` : 'https://example.com';
  const developer = input.developer ?? { name: input.name ?? 'patchbay', websiteUrl: site, privacyUrl: `${site}/privacy`, termsOfUseUrl: `${site}/terms` };
  return {
    $schema: 'https://developer.microsoft.com/en-us/json-schemas/teams/v1.17/MicrosoftTeams.schema.json',
    manifestVersion: '1.17',
    version: input.version ?? '1.0.0',
    // The app's id in the Teams catalogue; using the bot id keeps one id to manage.
    id: input.appId,
    developer,
    name: { short: (input.name ?? 'patchbay').slice(0, 30), full: `${input.name ?? 'patchbay'}: monthly patching from your IT provider`.slice(0, 100) },
    description: {
      short: 'Check and confirm your monthly Windows updates.'.slice(0, 80),
      full: 'Your IT provider tests Microsoft’s monthly updates on a few of your machines first. This app asks your champions whether everything still works, then tells you when the rest of your machines will be updated and how each night went.',
    },
    icons: { color: 'color.png', outline: 'outline.png' },
    accentColor: '#2E6BD9',
    bots: [{ botId: input.appId, scopes: ['personal', 'team', 'groupChat'], supportsFiles: false, isNotificationOnly: false }],
    permissions: ['identity', 'messageTeamMembers'],
    validDomains: domains,
  };
}

/** An RGBA PNG of size x size, each pixel from `paint`. */
export function png(size: number, paint: (x: number, y: number) => [number, number, number, number]): Buffer {
  const raw = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const [r, g, b, a] = paint(x, y);
      const at = y * (size * 4 + 1) + 1 + x * 4;
      raw[at] = r;
      raw[at + 1] = g;
      raw[at + 2] = b;
      raw[at + 3] = a;
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // RGBA
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** A check mark: the app is about confirming that things work. */
function onCheck(x: number, y: number, size: number): boolean {
  const u = x / size;
  const v = y / size;
  const near = (ax: number, ay: number, bx: number, by: number) => {
    const t = Math.max(0, Math.min(1, ((u - ax) * (bx - ax) + (v - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2)));
    return Math.hypot(u - (ax + t * (bx - ax)), v - (ay + t * (by - ay))) < 0.07;
  };
  return near(0.25, 0.52, 0.43, 0.7) || near(0.43, 0.7, 0.76, 0.32);
}

export function colorIcon(): Buffer {
  return png(192, (x, y) => (onCheck(x, y, 192) ? [255, 255, 255, 255] : [0x2e, 0x6b, 0xd9, 255]));
}

export function outlineIcon(): Buffer {
  return png(32, (x, y) => (onCheck(x, y, 32) ? [255, 255, 255, 255] : [0, 0, 0, 0]));
}

export function teamsPackage(input: PackageInput): Buffer {
  return zipStored([
    { name: 'manifest.json', data: Buffer.from(`${JSON.stringify(teamsManifest(input), null, 2)}\n`) },
    { name: 'color.png', data: colorIcon() },
    { name: 'outline.png', data: outlineIcon() },
  ]);
}
