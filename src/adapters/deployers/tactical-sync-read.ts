/**
 * What a sync reads from Tactical RMM: `GET /clients/`, `GET /agents/`, and `GET /agents/{id}/` for each agent of a
 * linked client whose own time zone patchbay still has to learn. The list (AgentTableSerializer) carries no time
 * zone, so the detail is the only place it is; but it costs one request per agent, and on a server shared with the
 * technicians the daily sync must not read 20,000 details every morning to learn nothing. So by default only
 * agents patchbay does not manage yet are read, and the zone stored for the others is kept; an engineer's sync
 * (`/patch sync`, `patchbay devices sync`) reads every one again, which is how a zone changed in Tactical arrives.
 */
import type { Inventory } from '../../domain/inventory.ts';
import { TacticalHttpError, type TacticalClient } from './tactical-client.ts';
import { findTacticalClient, mergeTactical, type SyncResult, type TacticalAgentRow, type TacticalClientRow } from './tactical-sync.ts';

export interface ReadOptions {
  /** Live devices an earlier sync brought in, by lower-cased name, with the zone stored for each (null: none). */
  storedZones: ReadonlyMap<string, string | null>;
  /** Read every linked agent's detail again, not only the agents new to patchbay. */
  rereadZones: boolean;
}

/** Reads Tactical and merges it into the inventory file's model (see tactical-sync.ts). Throws when Tactical fails. */
export async function readTacticalSync(client: TacticalClient, inventory: Inventory, options: ReadOptions): Promise<SyncResult> {
  const [clients, agents] = await Promise.all([client.get<TacticalClientRow[]>('clients/'), client.get<TacticalAgentRow[]>('agents/')]);
  const linkedNames = new Set(
    inventory.clients.flatMap((c) => {
      const linked = c.tacticalClient ? findTacticalClient(c.tacticalClient, clients) : undefined;
      return linked ? [linked.name] : [];
    }),
  );
  const zones = new Map<string, string | null>();
  for (const agent of agents.filter((a) => linkedNames.has(a.client_name))) {
    const stored = options.storedZones.get(agent.hostname.toLowerCase());
    if (!options.rereadZones && stored !== undefined) {
      zones.set(agent.agent_id, stored);
      continue;
    }
    // Sequential: the client's request budget paces them anyway, and one at a time keeps memory flat.
    zones.set(agent.agent_id, await agentZone(client, agent.agent_id));
  }
  return mergeTactical(inventory, clients, agents, zones);
}

/** An agent removed between the list and its detail (404) has no zone to give; any other error fails the sync. */
async function agentZone(client: TacticalClient, agentId: string): Promise<string | null> {
  try {
    const detail = await client.get<{ time_zone?: string | null }>(`agents/${encodeURIComponent(agentId)}/`);
    return detail.time_zone ?? null;
  } catch (error) {
    if (error instanceof TacticalHttpError && error.status === 404) return null;
    throw error;
  }
}
