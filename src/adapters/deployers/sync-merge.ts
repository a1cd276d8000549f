/**
 * What a device sync does the same way whichever device manager it reads (tactical-sync.ts, ninjaone-sync.ts): the
 * YAML's clients with no link pass through as written, device names stay unique across the MSP, a manager's sites
 * become inventory locations with stable ids, and a device the YAML did not name is reported as added.
 */
import type { Inventory, InventoryClient, InventoryDevice, InventoryLocation } from '../../domain/inventory.ts';
import type { UserLinkProblem } from './tactical-users.ts';

export interface SyncResult {
  inventory: Inventory;
  /** New devices, added as broad: `client/hostname`. */
  added: string[];
  unmapped: Array<{ client: string; device: string; os: string; reason: string }>;
  /** Logged-in names that linked the device to nobody: unknown, or matching more than one person. */
  unlinked: UserLinkProblem[];
  /** Things the engineers must fix (a link to a client that does not exist, a hostname used twice). */
  problems: string[];
}

export function siteId(name: string, id: number): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return /^[a-z0-9]/.test(slug) ? slug.slice(0, 60) : `site-${id}`;
}

/**
 * The YAML with each linked client's devices taken from the manager (`mergeClient`); unlinked clients as written.
 * `taken` holds the device names already used, lower-cased: the YAML's outside linked clients count too
 * (devices_name_key is unique across the MSP).
 */
export function mergeLinkedClients(
  yaml: Inventory,
  linkOf: (client: InventoryClient) => string | undefined,
  mergeClient: (client: InventoryClient, link: string, taken: Set<string>, result: SyncResult) => InventoryClient,
): SyncResult {
  const result: SyncResult = { inventory: { ...yaml, clients: [] }, added: [], unmapped: [], unlinked: [], problems: [] };
  const taken = new Set(yaml.msp.devices.map((d) => d.name.toLowerCase()));
  for (const client of yaml.clients) {
    if (!linkOf(client)) for (const l of client.locations) for (const d of l.devices) taken.add(d.name.toLowerCase());
  }
  for (const client of yaml.clients) {
    const link = linkOf(client);
    result.inventory.clients.push(link ? mergeClient(client, link, taken, result) : client);
  }
  return result;
}

/**
 * The manager's sites as inventory locations, by the caller's key, in the order given: ids slugged from the name,
 * two names that slug alike ("Main St" and "Main-St") still two locations; the YAML's name kept when it has one.
 */
export function siteLocations<K>(client: InventoryClient, sites: ReadonlyArray<{ key: K; id: number; name: string }>): Map<K, InventoryLocation> {
  const locations = new Map<K, InventoryLocation>();
  const ids = new Set<string>();
  for (const site of sites) {
    const slug = siteId(site.name, site.id);
    const id = ids.has(slug) ? `${slug}-${site.id}` : slug;
    ids.add(id);
    const yamlLocation = client.locations.find((l) => l.id === id);
    locations.set(site.key, { id, name: yamlLocation?.name ?? site.name, devices: [] });
  }
  return locations;
}

/** The YAML's devices of a client by lower-cased name. */
export function yamlDevicesByName(client: InventoryClient): Map<string, InventoryDevice> {
  const known = new Map<string, InventoryDevice>();
  for (const l of client.locations) for (const d of l.devices) known.set(d.name.toLowerCase(), d);
  return known;
}

/**
 * Claims a device's name for this client. Undefined when another device patchbay manages has it (a problem for the
 * engineers, the device left out); else the YAML's entry for it, if any (none: reported as added).
 */
export function claimDeviceName(
  client: InventoryClient,
  name: string,
  what: string,
  claim: { taken: Set<string>; known: ReadonlyMap<string, InventoryDevice> },
  result: SyncResult,
): { yamlDevice: InventoryDevice | undefined } | undefined {
  const { taken, known } = claim;
  const key = name.toLowerCase();
  if (taken.has(key)) {
    result.problems.push(`${client.id}: the ${what} ${name} has the name of another device patchbay manages; it is left out until one is renamed`);
    return undefined;
  }
  taken.add(key);
  const yamlDevice = known.get(key);
  if (!yamlDevice) result.added.push(`${client.id}/${name}`);
  return { yamlDevice };
}
