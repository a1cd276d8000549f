/**
 * What a sync reads from NinjaOne: the organizations, each linked organization's locations
 * (`GET /v2/organization/{id}/locations`), and every device with its OS (`GET /v2/devices-detailed`). Lists page by
 * keyset (`after` = the last id of the page before, research §2.2): a page shorter than asked is the last. NinjaOne
 * has no device time zone, so unlike Tactical there is no per-device detail to read: a sync costs a handful of
 * requests per thousand devices.
 */
import type { Inventory } from '../../domain/inventory.ts';
import type { NinjaOneClient } from './ninjaone-client.ts';
import { findNinjaOrganization, mergeNinjaOne, type NinjaDeviceRow, type NinjaLocationRow, type NinjaOrganizationRow } from './ninjaone-sync.ts';
import type { SyncResult } from './tactical-sync.ts';

export const NINJA_PAGE_SIZE = 1000;

/** Every row of a keyset-paged list. */
export async function readAllPages<T extends { id: number }>(client: NinjaOneClient, path: string, pageSize = NINJA_PAGE_SIZE): Promise<T[]> {
  const rows: T[] = [];
  for (let after: number | undefined; ; ) {
    const query = new URLSearchParams({ pageSize: String(pageSize), ...(after === undefined ? {} : { after: String(after) }) });
    const page = (await client.get<T[] | null>(`${path}?${query}`)) ?? [];
    rows.push(...page);
    if (page.length < pageSize) return rows;
    const last = page[page.length - 1]!.id;
    // A server that ignores `after` would hand the same page forever.
    if (after !== undefined && last <= after) throw new Error(`NinjaOne GET /${path}: paging did not move past id ${after}`);
    after = last;
  }
}

export async function readNinjaOneFleet(client: NinjaOneClient, inventory: Inventory, pageSize = NINJA_PAGE_SIZE) {
  const organizations = await readAllPages<NinjaOrganizationRow>(client, 'v2/organizations', pageSize);
  const linked = inventory.clients.flatMap((c) => {
    const organization = c.ninjaoneOrganization ? findNinjaOrganization(c.ninjaoneOrganization, organizations) : undefined;
    return organization ? [organization.id] : [];
  });
  const locations: NinjaLocationRow[] = [];
  for (const id of new Set(linked)) {
    const rows = (await client.get<Array<{ id: number; name: string; organizationId?: number }> | null>(`v2/organization/${id}/locations`)) ?? [];
    locations.push(...rows.map((l) => ({ id: l.id, name: l.name, organizationId: l.organizationId ?? id })));
  }
  const devices = linked.length === 0 ? [] : await readAllPages<NinjaDeviceRow>(client, 'v2/devices-detailed', pageSize);
  return { organizations, locations, devices };
}

/** Reads NinjaOne and merges it into the inventory file's model (see ninjaone-sync.ts). Throws when NinjaOne fails. */
export async function readNinjaOneSync(client: NinjaOneClient, inventory: Inventory): Promise<SyncResult> {
  return mergeNinjaOne(inventory, await readNinjaOneFleet(client, inventory));
}
