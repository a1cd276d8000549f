/**
 * `patchbay devices sync`: the inventory YAML with the devices of its Tactical-linked clients taken from Tactical
 * RMM. Pure: the command reads Tactical (`GET /clients/`, `GET /agents/`) and applies the result like an import
 * (src/db/inventory-repo.ts), so devices no longer in Tactical retire (never deleted) and come back if they return.
 *
 * What stays the YAML's: windows, champions, settings, software, and per device the ring (which machines are
 * pilots), the class and the user when the YAML names the device. What comes from Tactical: which machines exist,
 * their site (a location), their OS, as MSRC names it, their own time zone (so a window opens in the machine's
 * local time) and, when the YAML names no user, who is logged in. A new agent appears as `broad`, listed for the
 * thread. An OS MSRC does not name is listed (the device is kept, its OS left unset, so no update is planned on a
 * guess); so is a logged-in name that matches nobody, or more than one person.
 */
import { IANAZone } from 'luxon';
import type { Inventory, InventoryClient, InventoryDevice } from '../../domain/inventory.ts';
import { mapTacticalOs } from './tactical-os.ts';
import { claimDeviceName, mergeLinkedClients, siteId, siteLocations, yamlDevicesByName, type SyncResult } from './sync-merge.ts';
import { linkLoggedUser, windowsUsersOf } from './tactical-users.ts';

/** `GET /clients/` (clients/views.py GetAddClients): the fields sync reads. */
export interface TacticalClientRow {
  id: number;
  name: string;
  sites: Array<{ id: number; name: string }>;
}

/** `GET /agents/` (AgentTableSerializer): the fields sync reads. */
export interface TacticalAgentRow {
  agent_id: string;
  hostname: string;
  client_name: string;
  site_name: string;
  monitoring_type: 'server' | 'workstation' | string;
  operating_system: string;
  /** `DOMAIN\jane`; `-`, `None` or empty when nobody is (or was) logged in (AgentTableSerializer.get_logged_username). */
  logged_username?: string | null;
}

/**
 * Each agent's own `time_zone` by `agent_id`, from `GET /agents/{id}/` (the list does not carry it). Null: the agent
 * has none of its own (Tactical then uses its server's default, which says nothing about where the machine is).
 */
export type AgentZones = ReadonlyMap<string, string | null>;

export { siteId, type SyncResult } from './sync-merge.ts';

export function findTacticalClient(link: string, clients: readonly TacticalClientRow[]): TacticalClientRow | undefined {
  if (/^\d+$/.test(link)) return clients.find((c) => c.id === Number(link));
  return clients.find((c) => c.name.toLowerCase() === link.toLowerCase());
}

/** The class a new agent gets: `server` for servers, else the client's first non-server class with a window. */
function classFor(agent: TacticalAgentRow, client: InventoryClient): string {
  const classes = Object.keys(client.windows);
  if (agent.monitoring_type === 'server') return classes.includes('server') ? 'server' : (classes[0] ?? 'server');
  return ['workstation', 'desktop', 'laptop'].find((c) => classes.includes(c)) ?? classes.find((c) => c !== 'server') ?? classes[0] ?? 'desktop';
}

export function mergeTactical(yaml: Inventory, tacticalClients: readonly TacticalClientRow[], agents: readonly TacticalAgentRow[], zones: AgentZones = new Map()): SyncResult {
  return mergeLinkedClients(yaml, (client) => client.tacticalClient, (client, link, taken, result) => {
    const linked = findTacticalClient(link, tacticalClients);
    if (linked) return mergeClient(client, linked, agents, { taken, zones }, result);
    result.problems.push(`${client.id}: tactical_client "${link}" is not a client in Tactical RMM; its devices are left as the YAML has them`);
    return client;
  });
}

interface MergeState {
  /** Device names already used, lower-cased. */
  taken: Set<string>;
  zones: AgentZones;
}

function mergeClient(client: InventoryClient, linked: TacticalClientRow, agents: readonly TacticalAgentRow[], state: MergeState, result: SyncResult): InventoryClient {
  const claim = { taken: state.taken, known: yamlDevicesByName(client) };
  const locations = siteLocations(client, linked.sites.map((site) => ({ key: site.name, id: site.id, name: site.name })));
  const people = windowsUsersOf(client);
  for (const agent of agents.filter((a) => a.client_name === linked.name).sort((a, b) => a.hostname.localeCompare(b.hostname))) {
    const claimed = claimDeviceName(client, agent.hostname, 'Tactical agent', claim, result);
    if (!claimed) continue;
    const device = deviceFor(agent, claimed.yamlDevice, { client, people, zone: state.zones.get(agent.agent_id) ?? undefined }, result);
    let location = locations.get(agent.site_name);
    if (!location) {
      location = { id: siteId(agent.site_name, 0), name: agent.site_name, devices: [] };
      locations.set(agent.site_name, location);
    }
    location.devices.push(device);
  }
  return { ...client, locations: [...locations.values()] };
}

/** One agent as a device: the YAML's ring, class and user when it names the device, the rest from Tactical. */
function deviceFor(
  agent: TacticalAgentRow,
  yamlDevice: InventoryDevice | undefined,
  from: { client: InventoryClient; people: ReturnType<typeof windowsUsersOf>; zone: string | undefined },
  result: SyncResult,
): InventoryDevice {
  const { client } = from;
  const mapped = mapTacticalOs(agent.operating_system ?? '');
  if (mapped.kind === 'unmapped') result.unmapped.push({ client: client.id, device: agent.hostname, os: agent.operating_system, reason: mapped.reason });
  let user = yamlDevice?.user;
  if (user === undefined) {
    const link = linkLoggedUser(agent.logged_username, from.people);
    if (link.kind === 'linked') user = link.email;
    else if (link.kind !== 'nobody') result.unlinked.push({ client: client.id, device: agent.hostname, username: agent.logged_username ?? '', why: link.kind });
  }
  let timezone = yamlDevice?.timezone;
  if (timezone === undefined && from.zone !== undefined) {
    if (IANAZone.isValidZone(from.zone)) timezone = from.zone;
    else result.problems.push(`${client.id}: the Tactical agent ${agent.hostname} has the time zone "${from.zone}", which is not an IANA zone; its windows follow ${client.timezone}`);
  }
  return {
    name: agent.hostname,
    class: yamlDevice?.class ?? classFor(agent, client),
    ring: yamlDevice?.ring ?? 'broad',
    os: mapped.kind === 'mapped' ? mapped.product : undefined,
    user,
    syncedFrom: 'tactical',
    ...(timezone !== undefined ? { timezone } : {}),
  };
}
