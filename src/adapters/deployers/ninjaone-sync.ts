/**
 * `patchbay devices sync` with DEPLOYER=ninjaone: the inventory YAML with the devices of its NinjaOne-linked clients
 * (`ninjaone_organization`, by name or id) taken from NinjaOne. Pure: ninjaone-sync-read.ts reads
 * `GET /v2/organizations`, `/v2/locations` and `/v2/devices-detailed`, and the result is applied like an import, so
 * devices no longer in NinjaOne retire (never deleted) and come back if they return.
 *
 * As for Tactical (tactical-sync.ts): the YAML keeps windows, champions, settings, software, and per device the ring,
 * the class and the user when it names the device; NinjaOne says which machines exist, their location, their OS
 * as MSRC names it and, when the YAML names no user, who logged in last (`lastLoggedInUser`). A new device appears
 * as `broad` and is listed; an OS MSRC does not name is listed and left unset, never patched on a guess.
 *
 * NinjaOne has no device time zone (research §2.2), so a synced device has none of its own: its windows follow its
 * client's zone from the YAML. Only devices NinjaOne has approved count: a PENDING one is not managed yet, and a
 * DECOMMISSIONED one is gone (it retires). Network devices, VM hosts and cloud monitors are not machines patchbay
 * patches and are not listed.
 */
import type { Inventory, InventoryClient, InventoryDevice } from '../../domain/inventory.ts';
import { mapNinjaOneOs, type NinjaOsFields } from './ninjaone-os.ts';
import { claimDeviceName, mergeLinkedClients, siteLocations, yamlDevicesByName, type SyncResult } from './sync-merge.ts';
import { linkLoggedUser, windowsUsersOf, type WindowsUser } from './tactical-users.ts';

export interface NinjaOrganizationRow {
  id: number;
  name: string;
}

export interface NinjaLocationRow {
  id: number;
  name: string;
  organizationId: number;
}

/** The part of `GET /v2/devices-detailed` (AgentDevice) the sync reads. */
export interface NinjaDeviceRow {
  id: number;
  systemName: string;
  organizationId: number;
  locationId?: number | null;
  nodeClass: string;
  approvalStatus?: string;
  os?: NinjaOsFields | null;
  /** `CONTOSO\jane`, or absent when nobody has logged in. */
  lastLoggedInUser?: string | null;
}

export function findNinjaOrganization(link: string, organizations: readonly NinjaOrganizationRow[]): NinjaOrganizationRow | undefined {
  if (/^\d+$/.test(link)) return organizations.find((o) => o.id === Number(link));
  return organizations.find((o) => o.name.toLowerCase() === link.toLowerCase());
}

/** The machines patchbay patches: agents on a computer, approved in NinjaOne. */
export function isManagedNinjaDevice(device: NinjaDeviceRow): boolean {
  const status = device.approvalStatus ?? 'APPROVED';
  return status === 'APPROVED' && /^(WINDOWS_|LINUX_|MAC)/.test(device.nodeClass);
}

function isServer(device: NinjaDeviceRow): boolean {
  return /_SERVER$/.test(device.nodeClass);
}

/** The class a new device gets: `server` for servers, else the client's first non-server class with a window. */
function classFor(device: NinjaDeviceRow, client: InventoryClient): string {
  const classes = Object.keys(client.windows);
  if (isServer(device)) return classes.includes('server') ? 'server' : (classes[0] ?? 'server');
  return ['workstation', 'desktop', 'laptop'].find((c) => classes.includes(c)) ?? classes.find((c) => c !== 'server') ?? classes[0] ?? 'desktop';
}

export interface NinjaOneFleet {
  organizations: readonly NinjaOrganizationRow[];
  locations: readonly NinjaLocationRow[];
  devices: readonly NinjaDeviceRow[];
}

export function mergeNinjaOne(yaml: Inventory, fleet: NinjaOneFleet): SyncResult {
  return mergeLinkedClients(yaml, (client) => client.ninjaoneOrganization, (client, link, taken, result) => {
    const linked = findNinjaOrganization(link, fleet.organizations);
    if (linked) return mergeClient(client, linked, fleet, taken, result);
    result.problems.push(`${client.id}: ninjaone_organization "${link}" is not an organization in NinjaOne; its devices are left as the YAML has them`);
    return client;
  });
}

function mergeClient(client: InventoryClient, linked: NinjaOrganizationRow, fleet: NinjaOneFleet, taken: Set<string>, result: SyncResult): InventoryClient {
  const claim = { taken, known: yamlDevicesByName(client) };
  const sites = fleet.locations.filter((l) => l.organizationId === linked.id).sort((a, b) => a.id - b.id);
  const locations = siteLocations(client, sites.map((row) => ({ key: row.id, id: row.id, name: row.name })));
  const people = windowsUsersOf(client);
  const devices = fleet.devices.filter((d) => d.organizationId === linked.id && isManagedNinjaDevice(d)).sort((a, b) => a.systemName.localeCompare(b.systemName));
  for (const row of devices) {
    const claimed = claimDeviceName(client, row.systemName, 'NinjaOne device', claim, result);
    if (!claimed) continue;
    let location = locations.get(row.locationId ?? -1);
    if (!location) {
      // A device with no location (or one the list did not carry) still belongs to its client.
      location = { id: 'unassigned', name: 'No location in NinjaOne', devices: [] };
      locations.set(row.locationId ?? -1, location);
    }
    location.devices.push(deviceFor(row, claimed.yamlDevice, client, people, result));
  }
  return { ...client, locations: [...locations.values()] };
}

function deviceFor(row: NinjaDeviceRow, yamlDevice: InventoryDevice | undefined, client: InventoryClient, people: readonly WindowsUser[], result: SyncResult): InventoryDevice {
  const mapped = mapNinjaOneOs(row.os);
  if (mapped.kind === 'unmapped') result.unmapped.push({ client: client.id, device: row.systemName, os: mapped.os, reason: mapped.reason });
  let user = yamlDevice?.user;
  if (user === undefined) {
    const link = linkLoggedUser(row.lastLoggedInUser, people);
    if (link.kind === 'linked') user = link.email;
    else if (link.kind !== 'nobody') result.unlinked.push({ client: client.id, device: row.systemName, username: row.lastLoggedInUser ?? '', why: link.kind });
  }
  return {
    name: row.systemName,
    class: yamlDevice?.class ?? classFor(row, client),
    ring: yamlDevice?.ring ?? 'broad',
    os: mapped.kind === 'mapped' ? mapped.product : undefined,
    user,
    syncedFrom: 'ninjaone',
  };
}
