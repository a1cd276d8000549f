import { createReadStream } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { z } from 'zod';
import type {
  ClientSettings,
  DeviceClass,
  Inventory,
  InventoryChampion,
  InventoryUser,
  InventoryClient,
  InventoryDevice,
  InventoryLocation,
  InventoryMsp,
  MspInventorySettings,
  Ring,
} from '../../domain/inventory.ts';
import { parseWindowSpec, WINDOW_EXAMPLES, type WindowRule } from '../../domain/window-spec.ts';
import { traceMemory } from '../../runtime/memory-trace.ts';
import { decodeUtf8 } from './utf8.ts';
import { checkZone } from './zone.ts';
import { AliasIndex, checkAliases } from './yaml-aliases.ts';
import { splitInventory, type InventoryPieces } from './yaml-pieces.ts';
import { didYouMean, quote, YamlReader, type Field, type InventoryProblem, type ListItem, type TextRule } from './yaml-reader.ts';

export type { InventoryProblem } from './yaml-reader.ts';

/** `more`: problems found beyond the first MAX_PROBLEMS_SHOWN, which alone are returned (by line). */
export type InventoryParse = { ok: true; inventory: Inventory } | { ok: false; problems: InventoryProblem[]; more?: number };

/** A person fixes the first mistakes first; a hostile or mangled file must not print a million lines. */
export const MAX_PROBLEMS_SHOWN = 100;
/** About twice what 100,000 devices take in the flow style `generate-inventory` writes (15 MB). */
export const MAX_INVENTORY_BYTES = 32 * 1024 * 1024;

const ROOT_SHAPE = { required: ['msp', 'clients'], optional: [] } as const;
const MSP_SHAPE = {
  required: ['name', 'engineers', 'channel', 'timezone', 'windows'],
  optional: ['devices', 'soak_hours', 'run_concurrency', 'missed_window_limit'],
} as const;
const CLIENT_SHAPE = {
  required: ['id', 'name', 'timezone', 'windows'],
  optional: [
    'software', 'champions', 'users', 'locations',
    'channel', 'teams_tenant_id', 'chat', 'dm_time', 'dm_template', 'max_deferrals', 'notice_hours', 'auto_confirm_hours', 'run_concurrency',
    'sla_critical_days', 'sla_important_days', 'report_day',
    'tactical_client', 'ninjaone_organization',
  ],
} as const;
const CHAMPION_SHAPE = { required: [], optional: ['email', 'teams_id', 'teamsId', 'name'] } as const;
const USER_SHAPE = { required: ['email'], optional: ['windows_user'] } as const;
const LOCATION_SHAPE = { required: ['id'], optional: ['name', 'devices'] } as const;
const DEVICE_SHAPE = { required: ['name', 'class'], optional: ['ring', 'os', 'user'] } as const;
const CLIENT_RINGS = ['pilot', 'broad'] as const;

/** Ids end up in URLs, job ids (no `:`) and Slack button values, so they stay plain. */
const ID_PATTERN = /^[a-z0-9][a-z0-9_-]*$/;
const CLASS_PATTERN = /^[a-z][a-z0-9_-]*$/;
/** Slack user ids start with U, or W on Enterprise Grid; channel ids with C, or G for older private ones. */
const SLACK_USER_PATTERN = /^[UW][A-Z0-9]{2,}$/;
const SLACK_CHANNEL_PATTERN = /^[CG][A-Z0-9]{2,}$/;
const emailSchema = z.email();
const TENANT_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TIME_PATTERN = /^([01]\d|2[0-3]):[0-5]\d$/;

/** The longest text each kind of field takes: far above any real value, far below what could hurt. */
const TEXT = {
  name: { max: 200 },
  id: { max: 64 },
  /** Device classes, rings, chat names, times: short words. */
  word: { max: 40 },
  slackId: { max: 40 },
  /** RFC 5321's limit for an address. */
  email: { max: 254 },
  teamsId: { max: 200 },
  zone: { max: 100 },
  window: { max: 100 },
  template: { max: 2000, multiline: true },
} as const satisfies Record<string, TextRule>;

interface SeenDevice {
  line: number;
  path: string;
}

/** A device's class, kept until its owner's windows are known (the keys may come in any order). */
interface ClassUse {
  deviceClass: string;
  node: Node | null;
  path: string;
}

/**
 * Parses and validates an inventory file. Every problem is reported at once, each with the line of
 * the node to blame and its field path; the inventory is returned only when there are none.
 *
 * A file in the usual block layout is parsed one client at a time (yaml-pieces.ts), each client's tree dropped
 * once read, so 100,000 devices need megabytes rather than a gigabyte; any file the pieces cannot stand for
 * exactly (a YAML error, an anchor or alias, another layout) is parsed whole, as `whole: true` forces.
 */
export function parseInventory(text: string, file: string, options: { whole?: boolean } = {}): InventoryParse {
  return (options.whole ? undefined : parseInventoryInPieces(text, file)) ?? parseWhole(text, file);
}

/** The reading one client at a time, or undefined when the file needs the whole-document parse. */
export function parseInventoryInPieces(text: string, file: string): InventoryParse | undefined {
  const pieces = splitInventory(text);
  return pieces && parseInPieces(text, pieces, file);
}

function parseWhole(text: string, file: string): InventoryParse {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const aliases = new AliasIndex(doc);
  const reader = new YamlReader(aliases, lines, file);

  const linesWithSyntaxErrors = new Set<number>();
  for (const error of doc.errors) {
    const { line, col } = lines.linePos(error.pos[0]);
    // One broken line often yields several errors that say the same thing three ways; the first is the clearest.
    if (linesWithSyntaxErrors.has(line)) continue;
    linesWithSyntaxErrors.add(line);
    reader.add({ file, line, column: col, path: '', message: firstLine(error.message) });
  }
  // Past a syntax error the tree is a guess, and checking it would bury the real mistake in echoes.
  // A repeated key leaves a sound tree, so that one alone does not stop the checks.
  const treeIsSound = doc.errors.every((error) => error.code === 'DUPLICATE_KEY');
  if (treeIsSound) {
    const aliasCheck = checkAliases(aliases);
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
      reader.report(undefined, '', 'the file is empty (expected "msp:" and "clients:")');
    } else if (!aliasCheck.ok) {
      // Walking it would take the time and memory the aliases multiply; one problem says why not.
      reader.report(aliasCheck.alias, '', aliasCheck.message);
    } else {
      const inventory = new InventoryReader(reader).read(doc.contents as Node);
      if (reader.problemCount === 0) return { ok: true, inventory };
    }
  }
  return problemsOf(reader);
}

/** A piece of the file parsed alone, or undefined when it is not one the whole-document parse would read alike. */
function parsePiece(text: string): { doc: Document; aliases: AliasIndex; lines: LineCounter } | undefined {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) return undefined;
  const aliases = new AliasIndex(doc);
  // An alias may name an anchor in another piece, and the alias-expansion guard must see the whole file.
  if (aliases.anchored > 0 || aliases.aliases().length > 0) return undefined;
  return { doc, aliases, lines };
}

/** The whole-document reading, one client at a time; undefined as soon as a piece needs the whole document. */
function parseInPieces(text: string, pieces: InventoryPieces, file: string): InventoryParse | undefined {
  const head = parsePiece(text.slice(0, pieces.headEnd));
  if (!head || !isMap(head.doc.contents)) return undefined;
  const reader = new YamlReader(head.aliases, head.lines, file);
  let needsWhole = false;
  function* clientItems(): Generator<ListItem> {
    for (const [index, piece] of pieces.clients.entries()) {
      const parsed = parsePiece(text.slice(piece.start, piece.end));
      const seq = parsed?.doc.contents;
      if (!parsed || !isSeq(seq) || seq.items.length !== 1) {
        needsWhole = true;
        return;
      }
      if (index % 100 === 0) traceMemory(`parse client ${index}`);
      reader.usePiece(parsed.aliases, parsed.lines, piece.line - 1);
      yield { node: seq.items[0] as Node, path: `clients[${index}]` };
    }
  }
  const inventory = new InventoryReader(reader).read(head.doc.contents, clientItems());
  if (needsWhole) return undefined;
  return reader.problemCount === 0 ? { ok: true, inventory } : problemsOf(reader);
}

function problemsOf(reader: YamlReader): Extract<InventoryParse, { ok: false }> {
  const problems = reader.problems.sort((a, b) => a.line - b.line || a.column - b.column);
  const more = reader.problemCount - Math.min(problems.length, MAX_PROBLEMS_SHOWN);
  return more > 0 ? { ok: false, problems: problems.slice(0, MAX_PROBLEMS_SHOWN), more } : { ok: false, problems };
}

/**
 * Reads and parses a file; a file that cannot be read, is too large or is not UTF-8 is one problem (on
 * line 0, or on the line of the first byte that is not UTF-8).
 */
export async function readInventoryFile(file: string): Promise<InventoryParse> {
  const read = await readInventoryText(file);
  traceMemory('file read');
  return read.ok ? parseInventory(read.text, file) : read;
}

/** The file as text, or its one problem. Its bytes (15 MB at 100,000 devices) are garbage once this returns. */
async function readInventoryText(file: string): Promise<{ ok: true; text: string } | Extract<InventoryParse, { ok: false }>> {
  const fileProblem = (line: number, column: number, message: string) => ({ ok: false as const, problems: [{ file, line, column, path: '', message }] });
  let bytes: Buffer;
  try {
    bytes = await readAtMost(file, MAX_INVENTORY_BYTES);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message =
      code === 'ENOENT' ? 'file not found'
      : code === 'EISDIR' ? 'is a directory, not an inventory file'
      : code === 'EACCES' ? 'permission denied'
      : code === 'EFBIG' ? `larger than ${MAX_INVENTORY_BYTES / 1024 / 1024} MB, the most an inventory may be (100,000 devices take about 15 MB)`
      : `cannot be read (${(error as Error).message})`;
    return fileProblem(0, 0, message);
  }
  const decoded = decodeUtf8(bytes);
  return decoded.ok ? decoded : fileProblem(decoded.line, decoded.column, decoded.message);
}

/** The whole file, or EFBIG past `limit` bytes: counted while reading, since a pipe or a device has no size to check first. */
async function readAtMost(file: string, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  // `end` is inclusive: one byte past the limit is enough to know the file is too large.
  for await (const chunk of createReadStream(file, { end: limit })) {
    total += (chunk as Buffer).length;
    if (total > limit) throw Object.assign(new Error('file too large'), { code: 'EFBIG' });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}

/** Every problem as a line, then `file: … and 120 more problems` when some were left out. */
export function formatProblems(parse: Extract<InventoryParse, { ok: false }>): string[] {
  const lines = parse.problems.map(formatProblem);
  if (parse.more) lines.push(`${parse.problems[0]?.file ?? ''}: … and ${parse.more} more problem${parse.more === 1 ? '' : 's'}`);
  return lines;
}

/** `inventory.yaml:13 clients[0].windows.desktop: "dayly 01:00-05:00" is not a window (…)` */
export function formatProblem(p: InventoryProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}` : `${p.file}:`;
  return p.path === '' ? `${where} ${p.message}` : `${where} ${p.path}: ${p.message}`;
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.trim();
}

class InventoryReader {
  /** Device names by lower-case name, across the whole file: deployers and chat address devices by name. */
  private readonly seenDevices = new Map<string, SeenDevice>();

  constructor(private readonly r: YamlReader) {}

  /** `clientItems`: the clients when they are read piece by piece, instead of from the root's `clients`. */
  read(root: Node, clientItems?: Iterable<ListItem>): Inventory {
    const fields = this.r.map(root, '', ROOT_SHAPE, 'the top level');
    const msp = fields?.get('msp') ? this.readMsp(fields.get('msp')!) : emptyMsp();
    const clients = this.readClients(clientItems ?? this.r.list(fields?.get('clients'), 'clients'));
    return { msp, clients };
  }

  private readMsp(field: Field): InventoryMsp {
    const fields = this.r.map(field.value, 'msp', MSP_SHAPE, 'the MSP');
    if (!fields) return emptyMsp();
    const engineers: string[] = [];
    const engineerItems = this.r.list(fields.get('engineers'), 'Slack user ids');
    if (fields.has('engineers') && engineerItems.length === 0) {
      this.r.report(fields.get('engineers')!.key, 'msp.engineers', 'list at least one engineer (their Slack user id)');
    }
    for (const item of engineerItems) {
      const id = this.r.itemText(item, TEXT.slackId);
      if (id === undefined) continue;
      if (SLACK_USER_PATTERN.test(id)) engineers.push(id);
      else this.r.report(item.node, item.path, `"${id}" is not a Slack user id (expected e.g. "U0123ABCD", from the person's Slack profile: Copy member ID)`);
    }
    const channel = this.r.text(fields.get('channel'), TEXT.slackId);
    if (channel !== undefined && !SLACK_CHANNEL_PATTERN.test(channel)) {
      this.r.report(fields.get('channel')!.value, 'msp.channel', `"${channel}" is not a Slack channel id (expected e.g. "C0123ABCD", shown at the bottom of the channel's details in Slack)`);
    }
    const windows = this.readWindows(fields.get('windows'));
    const classUses: ClassUse[] = [];
    const devices = this.r
      .list(fields.get('devices'), 'devices')
      .map((item) => this.readDevice(item, 'msp', classUses));
    if (windows) this.checkClasses(classUses, windows, 'msp.windows');
    const settings: MspInventorySettings = {};
    const numbers = [
      // Zero soak offers Promote as soon as ring msp finishes (a lab); a month is past any real soak.
      ['soak_hours', 'soakHours', 0, 24 * 30],
      ['run_concurrency', 'runConcurrency', 1, 100_000],
      ['missed_window_limit', 'missedWindowLimit', 1, 100],
    ] as const;
    for (const [key, setting, min, max] of numbers) {
      const value = this.wholeNumber(fields.get(key), min, max);
      if (value !== undefined) settings[setting] = value;
    }
    return {
      name: this.r.text(fields.get('name'), TEXT.name) ?? '',
      engineers,
      channel: channel ?? '',
      timezone: this.readZone(fields.get('timezone')),
      windows: windows ?? {},
      devices,
      ...(Object.keys(settings).length > 0 ? { settings } : {}),
    };
  }

  private readClients(items: Iterable<ListItem>): InventoryClient[] {
    const seenIds = new Map<string, number>();
    const clients: InventoryClient[] = [];
    for (const item of items) {
      const read = this.readClient(item);
      if (!read) continue;
      const { client, idNode } = read;
      const first = seenIds.get(client.id);
      if (first !== undefined) {
        this.r.report(idNode, `${item.path}.id`, `duplicate client id "${client.id}" (first at line ${first})`);
      } else if (client.id !== '') {
        seenIds.set(client.id, this.lineOf(idNode));
      }
      clients.push(client);
    }
    return clients;
  }

  private readClient(item: ListItem): { client: InventoryClient; idNode: Node | null } | undefined {
    const fields = this.r.map(item.node, item.path, CLIENT_SHAPE, 'a client');
    if (!fields) return undefined;
    const id = this.readId(fields.get('id'), 'acme-dental');
    const windows = this.readWindows(fields.get('windows'));
    const software = this.r
      .list(fields.get('software'), 'software names')
      .map((entry) => this.r.itemText(entry, TEXT.name))
      .filter((name): name is string => name !== undefined);
    const champions = this.r
      .list(fields.get('champions'), 'champions')
      .map((entry) => this.readChampion(entry))
      .filter((champion): champion is InventoryChampion => champion !== undefined);
    const users = this.r
      .list(fields.get('users'), 'users')
      .map((entry) => this.readUser(entry))
      .filter((user): user is InventoryUser => user !== undefined);

    const classUses: ClassUse[] = [];
    const seenLocations = new Map<string, number>();
    const locations: InventoryLocation[] = [];
    for (const entry of this.r.list(fields.get('locations'), 'locations')) {
      const read = this.readLocation(entry, classUses);
      if (!read) continue;
      const { location, idNode } = read;
      const first = seenLocations.get(location.id);
      if (first !== undefined) {
        this.r.report(idNode, `${entry.path}.id`, `duplicate location id "${location.id}" in this client (first at line ${first})`);
      } else if (location.id !== '') {
        seenLocations.set(location.id, this.lineOf(idNode));
      }
      locations.push(location);
    }
    if (windows) this.checkClasses(classUses, windows, `${item.path}.windows`);
    const settings = this.readClientSettings(fields);
    const client: InventoryClient = {
      id: id ?? '',
      name: this.r.text(fields.get('name'), TEXT.name) ?? '',
      timezone: this.readZone(fields.get('timezone')),
      windows: windows ?? {},
      software,
      champions,
      locations,
      ...(users.length > 0 ? { users } : {}),
      ...(Object.keys(settings).length > 0 ? { settings } : {}),
      ...this.readTacticalClient(fields.get('tactical_client')),
      ...this.readNinjaOneOrganization(fields.get('ninjaone_organization')),
    };
    return { client, idNode: fields.get('id')?.value ?? null };
  }

  /** The client's Tactical RMM client, by name or numeric id: `patchbay devices sync` reads its agents. */
  private readTacticalClient(field: Field | undefined): { tacticalClient?: string } {
    if (!field) return {};
    const node = this.r.resolve(field.value);
    if (isScalar(node) && typeof node.value === 'number' && Number.isInteger(node.value) && node.value > 0) return { tacticalClient: String(node.value) };
    const name = this.r.text(field, TEXT.name);
    return name === undefined ? {} : { tacticalClient: name };
  }

  /** The client's NinjaOne organization, by name or numeric id: `patchbay devices sync` reads its devices. */
  private readNinjaOneOrganization(field: Field | undefined): { ninjaoneOrganization?: string } {
    const tactical = this.readTacticalClient(field);
    return tactical.tacticalClient === undefined ? {} : { ninjaoneOrganization: tactical.tacticalClient };
  }

  private readClientSettings(fields: Map<string, Field>): ClientSettings {
    const settings: ClientSettings = {};
    const channel = this.r.text(fields.get('channel'), TEXT.slackId);
    if (channel !== undefined) {
      if (SLACK_CHANNEL_PATTERN.test(channel)) settings.slackChannel = channel;
      else this.r.report(fields.get('channel')!.value, fields.get('channel')!.path, `"${channel}" is not a Slack channel id (C… or G…, e.g. C0ACME)`);
    }
    const tenant = this.r.text(fields.get('teams_tenant_id'), TEXT.id);
    if (tenant !== undefined) {
      if (TENANT_PATTERN.test(tenant)) settings.teamsTenantId = tenant.toLowerCase();
      else this.r.report(fields.get('teams_tenant_id')!.value, fields.get('teams_tenant_id')!.path, `"${tenant}" is not a Microsoft 365 tenant id (a GUID)`);
    }
    const chat = this.r.text(fields.get('chat'), TEXT.word);
    if (chat !== undefined) {
      if (chat === 'slack' || chat === 'teams') settings.chatPlatform = chat;
      else this.r.report(fields.get('chat')!.value, fields.get('chat')!.path, `"${chat}" is not a chat (expected slack or teams)`);
    }
    const dmTime = this.r.text(fields.get('dm_time'), TEXT.word);
    if (dmTime !== undefined) {
      if (TIME_PATTERN.test(dmTime)) settings.dmTime = dmTime;
      else this.r.report(fields.get('dm_time')!.value, fields.get('dm_time')!.path, `"${dmTime}" is not a time (HH:MM, e.g. "15:00")`);
    }
    const template = this.r.text(fields.get('dm_template'), TEXT.template);
    if (template !== undefined) settings.dmTemplate = template;
    const numbers = [
      ['max_deferrals', 'maxDeferralsPerRelease', 0, 50],
      ['notice_hours', 'noticeHours', 0, 24 * 7],
      ['auto_confirm_hours', 'autoConfirmHours', 1, 24 * 30],
      ['run_concurrency', 'runConcurrency', 1, 100_000],
      ['sla_critical_days', 'slaCriticalDays', 1, 365],
      ['sla_important_days', 'slaImportantDays', 1, 365],
      // 28 at most: a report day every month has, so February never skips the report.
      ['report_day', 'reportDay', 1, 28],
    ] as const;
    for (const [key, setting, min, max] of numbers) {
      const value = this.wholeNumber(fields.get(key), min, max);
      if (value !== undefined) settings[setting] = value;
    }
    return settings;
  }

  private wholeNumber(field: Field | undefined, min: number, max: number): number | undefined {
    if (!field) return undefined;
    const node = this.r.resolve(field.value);
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    this.r.report(field.value ?? field.key, field.path, `expected a whole number from ${min} to ${max}`);
    return undefined;
  }

  private readChampion(item: ListItem): InventoryChampion | undefined {
    const fields = this.r.map(item.node, item.path, CHAMPION_SHAPE, 'a champion');
    if (!fields) return undefined;
    if (fields.has('teams_id') && fields.has('teamsId')) {
      this.r.report(fields.get('teamsId')!.key, `${item.path}.teamsId`, 'write the Teams id once, as "teams_id" or as "teamsId", not both');
    }
    const email = this.readEmail(fields.get('email'));
    const teamsId = this.r.text(fields.get('teams_id') ?? fields.get('teamsId'), TEXT.teamsId);
    if (!fields.has('email') && !fields.has('teams_id') && !fields.has('teamsId')) {
      this.r.report(item.node, item.path, 'a champion needs an "email" or a "teams_id" (or both), so the bot can reach them');
    }
    return { email, teamsId, name: this.r.text(fields.get('name'), TEXT.name) };
  }

  /** A client's person a synced machine can be linked to by who is logged in on it (`windows_user`: `jane`, `CONTOSO\\jane`). */
  private readUser(item: ListItem): InventoryUser | undefined {
    const fields = this.r.map(item.node, item.path, USER_SHAPE, 'a user');
    if (!fields) return undefined;
    const email = this.readEmail(fields.get('email'));
    if (email === undefined) return undefined;
    const raw = this.r.text(fields.get('windows_user'), TEXT.name);
    if (raw === undefined) return { email };
    const windowsUser = raw.slice(raw.lastIndexOf('\\') + 1).trim().toLowerCase();
    if (windowsUser === '' || /[\s@]/.test(windowsUser)) {
      this.r.report(fields.get('windows_user')!.value, `${item.path}.windows_user`, `"${raw}" is not a Windows user name (expected e.g. "jane" or "CONTOSO\\jane")`);
      return { email };
    }
    return { email, windowsUser };
  }

  private readLocation(item: ListItem, classUses: ClassUse[]): { location: InventoryLocation; idNode: Node | null } | undefined {
    const fields = this.r.map(item.node, item.path, LOCATION_SHAPE, 'a location');
    if (!fields) return undefined;
    const location: InventoryLocation = {
      id: this.readId(fields.get('id'), 'main-st') ?? '',
      name: this.r.text(fields.get('name'), TEXT.name),
      devices: this.r.list(fields.get('devices'), 'devices').map((entry) => this.readDevice(entry, 'client', classUses)),
    };
    return { location, idNode: fields.get('id')?.value ?? null };
  }

  private readDevice(item: ListItem, owner: 'msp' | 'client', classUses: ClassUse[]): InventoryDevice {
    const fields = this.r.map(item.node, item.path, DEVICE_SHAPE, 'a device');
    if (!fields) return { name: '', class: '', ring: 'broad', os: undefined, user: undefined };

    const name = this.r.text(fields.get('name'), TEXT.name);
    if (name !== undefined) this.checkUniqueDevice(name, fields.get('name')!);

    const classField = fields.get('class');
    const deviceClass = this.r.text(classField, TEXT.word);
    if (deviceClass !== undefined) {
      if (CLASS_PATTERN.test(deviceClass)) {
        classUses.push({ deviceClass, node: classField!.value, path: classField!.path });
      } else {
        this.r.report(classField!.value, classField!.path, `"${deviceClass}" is not a device class (use a lower-case word such as desktop, server or laptop)`);
      }
    }

    return {
      name: name ?? '',
      class: deviceClass ?? '',
      ring: this.readRing(fields.get('ring'), owner),
      os: this.r.text(fields.get('os'), TEXT.name),
      user: this.readEmail(fields.get('user')),
    };
  }

  private readRing(field: Field | undefined, owner: 'msp' | 'client'): Ring {
    if (owner === 'msp') {
      const ring = field ? this.r.text(field, TEXT.word) : undefined;
      if (ring !== undefined && ring !== 'msp') {
        this.r.report(field!.value, field!.path, `the MSP's own devices are always ring "msp" (ring 0); remove "ring: ${ring}" or move the device to a client`);
      }
      return 'msp';
    }
    if (!field) return 'broad';
    const ring = this.r.text(field, TEXT.word);
    if (ring === undefined) return 'broad';
    if ((CLIENT_RINGS as readonly string[]).includes(ring)) return ring as Ring;
    const suggestion = didYouMean(ring, CLIENT_RINGS);
    const hint = ring === 'msp' ? '; ring "msp" is only for devices under msp.devices' : suggestion ? `; did you mean "${suggestion}"?` : '';
    this.r.report(field.value, field.path, `unknown ring "${ring}" (expected pilot or broad${hint})`);
    return 'broad';
  }

  private checkUniqueDevice(name: string, field: Field): void {
    const key = name.toLowerCase();
    const first = this.seenDevices.get(key);
    if (first) {
      this.r.report(field.value, field.path, `duplicate device name "${name}" (first at line ${first.line}, ${first.path})`);
    } else {
      this.seenDevices.set(key, { line: this.lineOf(field.value), path: field.path.replace(/\.name$/, '') });
    }
  }

  /** Reported after the owner's windows are read: a device with no window for its class would never be patched. */
  private checkClasses(uses: ClassUse[], windows: Record<DeviceClass, WindowRule>, windowsPath: string): void {
    for (const use of uses) {
      if (Object.hasOwn(windows, use.deviceClass)) continue;
      const known = Object.keys(windows);
      const suggestion = didYouMean(use.deviceClass, known);
      const hint = suggestion ? `; did you mean "${suggestion}"?` : '';
      this.r.report(use.node, use.path, `class "${use.deviceClass}" has no window in ${windowsPath} (it has ${known.join(', ') || 'none'}${hint})`);
    }
  }

  /**
   * Window per device class. An invalid window still counts as present for the class checks, so one typo
   * in a window is one problem, not one per device.
   */
  private readWindows(field: Field | undefined): Record<DeviceClass, WindowRule> | undefined {
    if (!field) return undefined;
    const entries = this.r.map(field.value, field.path, { required: [], optional: [] }, 'windows per device class', true);
    if (!entries) return undefined;
    if (entries.size === 0) {
      this.r.report(field.value, field.path, 'give at least one window, e.g. desktop: "daily 01:00-05:00"');
    }
    const windows: Record<DeviceClass, WindowRule> = {};
    for (const entry of entries.values()) {
      const deviceClass = String(entry.key.value);
      if (deviceClass.length > TEXT.word.max) {
        this.r.report(entry.key, entry.path, `longer than ${TEXT.word.max} characters`);
        continue;
      }
      if (!CLASS_PATTERN.test(deviceClass)) {
        this.r.report(entry.key, entry.path, `${quote(deviceClass)} is not a device class (use a lower-case word such as desktop, server or laptop)`);
        continue;
      }
      const spec = this.r.text(entry, TEXT.window);
      if (spec === undefined) {
        windows[deviceClass] = INVALID_WINDOW;
        continue;
      }
      const parsed = parseWindowSpec(spec);
      if (parsed.ok) {
        windows[deviceClass] = parsed.value;
      } else {
        // Day and shape mistakes read best with an example; a bad time is clearer named exactly.
        const detail = parsed.error.includes('is not a time') ? parsed.error : `expected e.g. ${WINDOW_EXAMPLES}`;
        this.r.report(entry.value, entry.path, `"${spec}" is not a window (${detail})`);
        windows[deviceClass] = INVALID_WINDOW;
      }
    }
    return windows;
  }

  private readZone(field: Field | undefined): string {
    const text = this.r.text(field, TEXT.zone);
    if (text === undefined) return '';
    const check = checkZone(text);
    if (check.ok) return check.zone;
    this.r.report(field!.value, field!.path, check.message);
    return '';
  }

  private readId(field: Field | undefined, example: string): string | undefined {
    const id = this.r.text(field, TEXT.id);
    if (id === undefined) return undefined;
    if (ID_PATTERN.test(id)) return id;
    this.r.report(field!.value, field!.path, `"${id}" is not an id (use lower-case letters, digits, "-" and "_", e.g. "${example}")`);
    return undefined;
  }

  private readEmail(field: Field | undefined): string | undefined {
    const text = this.r.text(field, TEXT.email);
    if (text === undefined) return undefined;
    const email = text.toLowerCase();
    if (emailSchema.safeParse(email).success) return email;
    this.r.report(field!.value, field!.path, `"${text}" is not an email address`);
    return undefined;
  }

  private lineOf(node: Node | null): number {
    return this.r.position(node).line;
  }
}

/** Stands in for a window that failed to parse; never returned, since any problem fails the whole parse. */
const INVALID_WINDOW: WindowRule = { days: [], startMinute: 0, endMinute: 0, spec: '' };

function emptyMsp(): InventoryMsp {
  return { name: '', engineers: [], channel: '', timezone: '', windows: {}, devices: [] };
}
