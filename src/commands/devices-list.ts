/**
 * `patchbay devices list`: the machines patchbay manages, from the database, with whether each is online and when it
 * was last seen from the device manager that synced it (Tactical RMM: one `GET /agents/`; NinjaOne: `GET
 * /v2/devices`, keyset pages), asked only for machines a sync brought in. The inventory file's own machines have no
 * device manager to ask, so they show no presence.
 */
import type { Config } from '../config.ts';
import type { ManagedDevice } from '../db/devices-repo.ts';

export interface AgentPresence {
  status: string;
  lastSeen: string | null;
}

export interface DeviceListRow {
  name: string;
  /** `msp` for the MSP's own machines. */
  client: string;
  location: string | null;
  from: 'inventory' | 'tactical' | 'ninjaone';
  /** `online`, `offline`, `overdue` as Tactical says (NinjaOne: online or offline); null when nothing says. */
  status: string | null;
  lastSeen: string | null;
  /** As MSRC names the product; null: unknown or unmapped, so nothing is planned for it. */
  os: string | null;
  ring: string;
  class: string;
  user: string | null;
  timezone: string;
}

function fromOf(device: ManagedDevice): DeviceListRow['from'] {
  return device.syncedFrom === 'tactical' || device.syncedFrom === 'ninjaone' ? device.syncedFrom : 'inventory';
}

/** Pure: the stored devices with their device manager's word on each synced one, matched by host name (case-insensitive). */
export function listRows(devices: readonly ManagedDevice[], agents: ReadonlyMap<string, AgentPresence>): DeviceListRow[] {
  return devices.map((d) => {
    const from = fromOf(d);
    const agent = from !== 'inventory' ? agents.get(d.name.toLowerCase()) : undefined;
    return {
      name: d.name,
      client: d.clientId ?? 'msp',
      location: d.locationId,
      from,
      status: agent?.status ?? null,
      lastSeen: agent?.lastSeen ?? null,
      os: d.os,
      ring: d.ring,
      class: d.class,
      user: d.userEmail,
      timezone: d.timezone,
    };
  });
}

/**
 * Presence from each device manager for the devices it synced (an MSP moving from Tactical to NinjaOne has both for
 * a while); a warning for those of a manager that is not the configured one.
 */
export async function managerPresence(config: Config, devices: readonly ManagedDevice[]): Promise<{ agents: Map<string, AgentPresence>; warning?: string }> {
  const answers = [await tacticalPresence(config, devices), await ninjaOnePresence(config, devices)];
  // Each manager speaks only for the devices it synced, even if the other knows a machine by the same name.
  const from = new Map(devices.map((d) => [d.name.toLowerCase(), d.syncedFrom]));
  const agents = new Map([...answers[0]!.agents].filter(([name]) => from.get(name) === 'tactical').concat([...answers[1]!.agents].filter(([name]) => from.get(name) === 'ninjaone')));
  const warnings = answers.flatMap((a) => (a.warning ? [a.warning] : []));
  return warnings.length > 0 ? { agents, warning: warnings.join('\n') } : { agents };
}

/** NinjaOne's devices by lower-cased system name; a warning instead when it cannot be read (the list still shows). */
async function ninjaOnePresence(config: Config, devices: readonly ManagedDevice[]): Promise<{ agents: Map<string, AgentPresence>; warning?: string }> {
  const agents = new Map<string, AgentPresence>();
  if (!devices.some((d) => d.syncedFrom === 'ninjaone')) return { agents };
  const { ninjaOneClientFor } = await import('../jobs/device-sync.ts');
  const client = ninjaOneClientFor(config);
  if (!client) return { agents, warning: 'DEPLOYER is not ninjaone: online and last seen are not shown for the machines synced from NinjaOne' };
  const { readAllPages } = await import('../adapters/deployers/ninjaone-sync-read.ts');
  try {
    const rows = await readAllPages<{ id: number; systemName: string; offline?: boolean; lastContact?: number | null }>(client, 'v2/devices');
    for (const row of rows) {
      // lastContact is epoch seconds, as a double.
      const lastSeen = typeof row.lastContact === 'number' ? new Date(Math.round(row.lastContact * 1000)).toISOString() : null;
      agents.set(row.systemName.toLowerCase(), { status: row.offline ? 'offline' : 'online', lastSeen });
    }
    return { agents };
  } catch (error) {
    return { agents, warning: `reading NinjaOne failed, so online and last seen are not shown: ${client.redact((error as Error).message)}` };
  }
}

/** Tactical's agents by lower-cased host name; a warning instead when it cannot be read (the list still shows). */
async function tacticalPresence(config: Config, devices: readonly ManagedDevice[]): Promise<{ agents: Map<string, AgentPresence>; warning?: string }> {
  const agents = new Map<string, AgentPresence>();
  if (!devices.some((d) => d.syncedFrom === 'tactical')) return { agents };
  const { tacticalClientFor } = await import('../jobs/device-sync.ts');
  const client = tacticalClientFor(config);
  if (!client) return { agents, warning: 'DEPLOYER is not tactical: online and last seen are not shown for the machines synced from Tactical RMM' };
  try {
    const rows = await client.get<Array<{ hostname: string; status: string; last_seen: string | null }>>('agents/');
    for (const row of rows) agents.set(row.hostname.toLowerCase(), { status: row.status, lastSeen: row.last_seen });
    return { agents };
  } catch (error) {
    return { agents, warning: `reading Tactical RMM failed, so online and last seen are not shown: ${client.redact((error as Error).message)}` };
  }
}

const FROM_WORDS: Record<DeviceListRow['from'], string> = { tactical: 'Tactical RMM', ninjaone: 'NinjaOne', inventory: 'inventory file' };

export async function renderDeviceList(rows: readonly DeviceListRow[]): Promise<string> {
  if (rows.length === 0) return 'No devices: import an inventory (patchbay import) or sync one (patchbay devices sync).\n';
  const { default: Table } = await import('cli-table3');
  const table = new Table({ head: ['device', 'client', 'from', 'online', 'last seen', 'OS (as MSRC names it)', 'ring', 'user'], style: { head: [], border: [] } });
  for (const r of rows) {
    table.push([r.name, r.client, FROM_WORDS[r.from], r.status ?? '-', r.lastSeen ?? '-', r.os ?? '(unknown: not patched)', r.ring, r.user ?? '-']);
  }
  return `${table.toString()}\n${rows.length} device${rows.length === 1 ? '' : 's'}\n`;
}
