import { Document, Scalar, type Node } from 'yaml';
import type {
  Inventory,
  InventoryChampion,
  InventoryClient,
  InventoryDevice,
  InventoryLocation,
  InventoryMsp,
} from '../../domain/inventory.ts';
import { parseWindowSpec, type WindowRule } from '../../domain/window-spec.ts';
import { Prng } from './prng.ts';

export interface GenerateOptions {
  clients: number;
  /** Client devices in total; the MSP's own handful of ring-0 machines come on top. */
  devices: number;
  seed: number;
}

interface ClientKind {
  slug: string;
  label: string;
  /** Last letter of the three-letter device prefix: ACD = ACme Dental. */
  letter: string;
  software: readonly string[];
  /** Desktop roles as they show up in device names: FD = front desk. */
  roles: readonly string[];
}

const KINDS: readonly ClientKind[] = [
  { slug: 'dental', label: 'Dental', letter: 'D', software: ['Dentrix', 'Eaglesoft', 'Dexis', 'Open Dental'], roles: ['FD', 'OP', 'DR', 'OF'] },
  { slug: 'family-medicine', label: 'Family Medicine', letter: 'M', software: ['eClinicalWorks', 'athenaOne', 'NextGen Office', 'Epic Hyperspace'], roles: ['FD', 'EX', 'NS', 'OF'] },
  { slug: 'law', label: 'Law', letter: 'L', software: ['Clio', 'PCLaw', 'Worldox', 'Adobe Acrobat'], roles: ['AT', 'PL', 'RC', 'OF'] },
  { slug: 'accounting', label: 'Accounting', letter: 'A', software: ['QuickBooks', 'Lacerte', 'Drake Tax', 'CCH Axcess'], roles: ['AC', 'RC', 'OF'] },
  { slug: 'veterinary', label: 'Veterinary', letter: 'V', software: ['AVImark', 'Cornerstone', 'ezyVet'], roles: ['FD', 'EX', 'LB'] },
  { slug: 'realty', label: 'Realty', letter: 'R', software: ['Dotloop', 'SkySlope', 'Microsoft 365 Apps'], roles: ['AG', 'RC', 'OF'] },
  { slug: 'engineering', label: 'Engineering', letter: 'E', software: ['AutoCAD', 'Revit', 'Bluebeam Revu'], roles: ['CD', 'PM', 'OF'] },
];

const PREFIXES = [
  'acme', 'bluebird', 'cedar', 'harbor', 'summit', 'maple', 'riverside', 'lakeside', 'northstar', 'pinecrest',
  'oakwood', 'silverline', 'redwood', 'granite', 'willow', 'brightwater', 'evergreen', 'ironbridge', 'sunrise',
  'coastal', 'prairie', 'highland', 'meadow', 'copper', 'bayview',
] as const;

const LOCATIONS = [
  'main-st', 'downtown', 'north', 'south', 'east', 'west', 'midtown', 'uptown', 'plaza', 'airport', 'harbor-view', 'old-town',
] as const;

const FIRST_NAMES = [
  'jane', 'john', 'maria', 'james', 'linda', 'robert', 'patricia', 'michael', 'jennifer', 'david', 'susan', 'carlos',
  'aisha', 'wei', 'priya', 'liam', 'olivia', 'noah', 'emma', 'lucas', 'mia', 'ethan', 'chloe', 'sam',
] as const;
const LAST_NAMES = [
  'smith', 'johnson', 'garcia', 'brown', 'nguyen', 'miller', 'davis', 'martinez', 'lee', 'wilson', 'anderson',
  'thomas', 'taylor', 'moore', 'white', 'harris', 'clark', 'lewis', 'walker', 'patel', 'kim', 'obrien',
] as const;

/** Real zones where an MSP's clients sit, weighted toward the US. */
const ZONES: ReadonlyArray<readonly [string, number]> = [
  ['America/New_York', 8], ['America/Chicago', 8], ['America/Denver', 3], ['America/Phoenix', 2],
  ['America/Los_Angeles', 6], ['America/Anchorage', 1], ['Pacific/Honolulu', 1], ['Europe/London', 3],
  ['Europe/Dublin', 1], ['Europe/Berlin', 2], ['Europe/Paris', 1], ['Europe/Amsterdam', 1], ['Europe/Madrid', 1],
  ['Australia/Sydney', 2], ['Australia/Melbourne', 1], ['Australia/Brisbane', 1], ['Australia/Perth', 1],
  ['Australia/Adelaide', 1],
];

// Product names exactly as Microsoft writes them in the CVRF ProductTree (checked against 2024-May).
const DESKTOP_OS: ReadonlyArray<readonly [string, number]> = [
  ['Windows 11 Version 23H2 for x64-based Systems', 45],
  ['Windows 11 Version 22H2 for x64-based Systems', 15],
  ['Windows 10 Version 22H2 for x64-based Systems', 32],
  ['Windows 10 Version 21H2 for x64-based Systems', 4],
  ['Windows 11 Version 23H2 for ARM64-based Systems', 4],
];
const SERVER_OS: ReadonlyArray<readonly [string, number]> = [
  ['Windows Server 2022', 50],
  ['Windows Server 2019', 35],
  ['Windows Server 2016', 15],
];

const DESKTOP_WINDOWS: ReadonlyArray<readonly [string, number]> = [
  ['daily 01:00-05:00', 70], ['mon-fri 22:00-02:00', 15], ['daily 02:00-06:00', 15],
];
const SERVER_WINDOWS: ReadonlyArray<readonly [string, number]> = [
  ['sun 01:00-05:00', 70], ['sat 23:00-03:00', 20], ['wed 02:00-04:00', 10],
];
/** Laptops go home at night, so a client that names them patches them over lunch. */
const LAPTOP_WINDOW = 'mon-fri 12:00-13:00';
const SERVER_SHARE = 0.1;

function rule(spec: string): WindowRule {
  const parsed = parseWindowSpec(spec);
  if (!parsed.ok) throw new Error(`generator window "${spec}" does not parse: ${parsed.error}`);
  return parsed.value;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function titleCase(slug: string): string {
  return slug.split('-').map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join(' ');
}

/**
 * Splits `total` into `parts` shares, each at least `minimum` when there is enough, the rest by
 * random weights skewed so a few parts are large (a few big clients, many small ones).
 */
function allocate(random: Prng, total: number, parts: number, minimum: number, skew: number): number[] {
  const floor = total >= parts * minimum ? minimum : 0;
  const shares = new Array<number>(parts).fill(floor);
  const rest = total - floor * parts;
  const weights = shares.map(() => 0.25 + random.next() ** skew * 3);
  const weightSum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (rest * w) / weightSum);
  let given = 0;
  exact.forEach((value, i) => {
    shares[i]! += Math.floor(value);
    given += Math.floor(value);
  });
  // Hand out what rounding left over to the largest fractions, so the total is exact.
  const byFraction = exact.map((value, i) => [value - Math.floor(value), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; k < rest - given; k++) shares[byFraction[k % parts]![1]]! += 1;
  return shares;
}

function guid(random: Prng): string {
  const hex = (length: number) => Array.from({ length }, () => random.int(0, 15).toString(16)).join('');
  return `${hex(8)}-${hex(4)}-4${hex(3)}-${random.pick(['8', '9', 'a', 'b'])}${hex(3)}-${hex(12)}`;
}

function person(random: Prng, domain: string): { name: string; email: string } {
  const first = random.pick(FIRST_NAMES);
  const last = random.pick(LAST_NAMES);
  return { name: `${titleCase(first)} ${titleCase(last)}`, email: `${first}.${last}@${domain}` };
}

function generateMsp(): InventoryMsp {
  const device = (name: string, deviceClass: string, os: string): InventoryDevice => ({
    name, class: deviceClass, ring: 'msp', os, user: deviceClass === 'server' ? undefined : 'tech@example-it.example',
  });
  return {
    name: 'Example IT',
    engineers: ['U0ENG001', 'U0ENG002', 'U0ENG003', 'U0ENG004'],
    channel: 'C0PATCH',
    timezone: 'America/Chicago',
    windows: { desktop: rule('daily 01:00-05:00'), server: rule('sun 01:00-05:00') },
    devices: [
      device('EXIT-TEST-01', 'desktop', 'Windows 11 Version 23H2 for x64-based Systems'),
      device('EXIT-TEST-02', 'desktop', 'Windows 10 Version 22H2 for x64-based Systems'),
      device('EXIT-TEST-SRV-01', 'server', 'Windows Server 2022'),
      device('EXIT-SRV-01', 'server', 'Windows Server 2019'),
    ],
  };
}

function generateClient(random: Prng, number: number, deviceCount: number): InventoryClient {
  const kind = random.pick(KINDS);
  const prefix = random.pick(PREFIXES);
  const id = `${prefix}-${kind.slug}-${pad(number, 3)}`;
  const domain = `${id}.example`;
  const code = `${prefix.slice(0, 2).toUpperCase()}${kind.letter}-${pad(number, 3)}`;
  const hasLaptops = random.chance(0.25);
  const windows: Record<string, WindowRule> = {
    desktop: rule(random.weighted(DESKTOP_WINDOWS)),
    server: rule(random.weighted(SERVER_WINDOWS)),
  };
  if (hasLaptops) windows.laptop = rule(LAPTOP_WINDOW);

  const software = [...new Set([random.pick(kind.software), random.pick(kind.software), 'Microsoft 365 Apps'])];
  const champions: InventoryChampion[] = Array.from({ length: random.chance(0.3) ? 2 : 1 }, () => {
    const who = person(random, domain);
    const teams = random.chance(0.5);
    return { email: who.email, teamsId: teams ? guid(random) : undefined, name: who.name };
  });

  const locationCount = Math.max(1, Math.min(deviceCount, LOCATIONS.length, 1 + Math.floor(deviceCount / 80) + (random.chance(0.3) ? 1 : 0)));
  const sizes = deviceCount === 0 ? [] : allocate(random, deviceCount, locationCount, 1, 1);
  let sequence = 0;
  const locations: InventoryLocation[] = sizes.map((size, index) => {
    const locationId = LOCATIONS[index]!;
    const pilots = size >= 6 ? random.int(1, 2) : 1;
    const devices: InventoryDevice[] = [];
    for (let i = 0; i < size; i++) {
      sequence += 1;
      const isPilot = i < pilots;
      // Pilots are desktops: they stand in for the machines the client's staff use every day.
      const deviceClass = isPilot ? 'desktop' : random.chance(SERVER_SHARE) ? 'server' : hasLaptops && random.chance(0.25) ? 'laptop' : 'desktop';
      const role = deviceClass === 'server' ? 'SRV' : deviceClass === 'laptop' ? 'LT' : random.pick(kind.roles);
      devices.push({
        name: `${code}-${role}-${pad(sequence, 4)}`,
        class: deviceClass,
        ring: isPilot ? 'pilot' : 'broad',
        os: random.weighted(deviceClass === 'server' ? SERVER_OS : DESKTOP_OS),
        user: deviceClass === 'server' ? undefined : person(random, domain).email,
      });
    }
    return { id: locationId, name: index === 0 || random.chance(0.5) ? `${titleCase(locationId)} office` : undefined, devices };
  });

  return {
    id,
    name: `${titleCase(prefix)} ${kind.label}`,
    timezone: random.weighted(ZONES),
    windows,
    software,
    champions,
    locations,
  };
}

/** A realistic inventory of the given size; the same options always give the same inventory. */
export function generateInventory(o: GenerateOptions): Inventory {
  const parts = generateInventoryParts(o);
  return { msp: parts.msp, clients: [...parts.clients] };
}

/** The same inventory with its clients made one at a time, so 100,000 devices can be written without being held. */
export function generateInventoryParts(o: GenerateOptions): { msp: InventoryMsp; clients: Generator<InventoryClient> } {
  for (const [name, value] of Object.entries(o)) {
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a whole number ≥ 0, got ${value}`);
  }
  const random = new Prng(o.seed);
  const sizes = o.clients === 0 ? [] : allocate(random, o.devices, o.clients, 1, 2);
  function* clients(): Generator<InventoryClient> {
    for (const [index, size] of sizes.entries()) yield generateClient(random, index + 1, size);
  }
  return { msp: generateMsp(), clients: clients() };
}

/** Double quotes for windows and product names, as people write them (and `01:00-05:00` reads oddly bare). */
function quoted(text: string): Scalar {
  const scalar = new Scalar(text);
  scalar.type = Scalar.QUOTE_DOUBLE;
  return scalar;
}

/** YAML in the layout of examples/inventory.yaml: one line per device. Parsing it gives back the same Inventory. */
export function inventoryToYaml(inv: Inventory): string {
  return [...inventoryYamlPieces(inv.msp, inv.clients)].join('');
}

const CLIENTS_KEY = 'clients:\n';

/**
 * inventoryToYaml's text in pieces: the MSP and `clients:`, then each client's entry, rendered from a document of
 * its own (the `clients:` line cut off) so that only one client's YAML tree exists at a time.
 */
export function* inventoryYamlPieces(msp: InventoryMsp, clients: Iterable<InventoryClient>): Generator<string> {
  let first = true;
  for (const client of clients) {
    if (first) yield render({ msp: mspContents(msp) }) + CLIENTS_KEY;
    first = false;
    yield render({ clients: [clientContents(client)] }).slice(CLIENTS_KEY.length);
  }
  if (first) yield render({ msp: mspContents(msp), clients: [] });
}

function render(contents: Record<string, unknown>): string {
  const doc = new Document();
  doc.contents = doc.createNode(contents) as Node;
  return doc.toString({ lineWidth: 0, flowCollectionPadding: true });
}

/** Marks a value for flow style (`[ a, b ]`, `{ k: v }`) when its document creates its node. */
function flow(value: object): Node {
  return new Document().createNode(value, { flow: true }) as Node;
}

function windowsNode(rules: Record<string, WindowRule>): Node {
  return flow(Object.fromEntries(Object.entries(rules).map(([deviceClass, rule]) => [deviceClass, quoted(rule.spec)])));
}

function deviceNode(d: InventoryDevice): Node {
  return flow(
    omitUndefined({
      name: d.name,
      class: d.class,
      // Ring 0 is implied under msp, and broad is the default: only pilots say their ring.
      ring: d.ring === 'pilot' ? 'pilot' : undefined,
      user: d.user,
      os: d.os === undefined ? undefined : quoted(d.os),
    }),
  );
}

function mspContents(msp: InventoryMsp): Record<string, unknown> {
  return {
    name: msp.name,
    engineers: flow(msp.engineers),
    channel: msp.channel,
    timezone: msp.timezone,
    windows: windowsNode(msp.windows),
    devices: msp.devices.map(deviceNode),
  };
}

function clientContents(client: InventoryClient): Record<string, unknown> {
  const settings = client.settings;
  return omitUndefined({
    id: client.id,
    name: client.name,
    timezone: client.timezone,
    windows: windowsNode(client.windows),
    software: flow(client.software),
    channel: settings?.slackChannel,
    teams_tenant_id: settings?.teamsTenantId,
    chat: settings?.chatPlatform,
    dm_time: settings?.dmTime === undefined ? undefined : quoted(settings.dmTime),
    dm_template: settings?.dmTemplate === undefined ? undefined : quoted(settings.dmTemplate),
    max_deferrals: settings?.maxDeferralsPerRelease,
    notice_hours: settings?.noticeHours,
    auto_confirm_hours: settings?.autoConfirmHours,
    run_concurrency: settings?.runConcurrency,
    sla_critical_days: settings?.slaCriticalDays,
    sla_important_days: settings?.slaImportantDays,
    report_day: settings?.reportDay,
    champions: client.champions.map((c) => flow(omitUndefined({ name: c.name, email: c.email, teams_id: c.teamsId }))),
    locations: client.locations.map((location) => omitUndefined({ id: location.id, name: location.name, devices: location.devices.map(deviceNode) })),
  });
}

function omitUndefined<T extends Record<string, unknown>>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
