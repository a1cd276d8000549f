/** The machines patchbay manages, as `patchbay devices list` shows them. */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';
import type { Ring } from '../domain/inventory.ts';

export interface ManagedDevice {
  id: number;
  name: string;
  /** Null for the MSP's own machines. */
  clientId: string | null;
  locationId: string | null;
  ring: Ring;
  class: string;
  /** As MSRC names the product; null when unknown (nothing is planned for it). */
  os: string | null;
  userEmail: string | null;
  /** The zone its windows open in: the machine's own, else its client's (or the MSP's). */
  timezone: string;
  /** Null: the inventory file; `tactical`: a Tactical RMM sync. */
  syncedFrom: string | null;
}

/** Live devices, the MSP's first, then by client and name; only `clientId`'s when given (`msp` for the MSP's own). */
export async function listManagedDevices(db: AppDatabase, clientId?: string): Promise<ManagedDevice[]> {
  const only = clientId === undefined ? sql`` : clientId === 'msp' ? sql` and d.client_id is null` : sql` and d.client_id = ${clientId}`;
  const rows = rowsOf<{ id: number; name: string; client_id: string | null; location_id: string | null; ring: Ring; class: string; os: string | null; user_email: string | null; timezone: string; synced_from: string | null }>(
    await db.execute(sql`select d.id, d.name, d.client_id, d.location_id, d.ring, d.class, d.os, d.user_email,
        coalesce(d.timezone, c.timezone, m.timezone) as timezone, d.synced_from
      from devices d left join clients c on c.id = d.client_id left join msp m on m.id = 1
      where d.retired_at is null${only}
      order by d.client_id nulls first, d.name`),
  );
  return rows.map((r) => ({
    id: Number(r.id),
    name: r.name,
    clientId: r.client_id,
    locationId: r.location_id,
    ring: r.ring,
    class: r.class,
    os: r.os,
    userEmail: r.user_email,
    timezone: r.timezone,
    syncedFrom: r.synced_from,
  }));
}

/** Whether a client id is in the inventory (retired or not), so a misspelt `--client` is an error, not an empty list. */
export async function clientExists(db: AppDatabase, clientId: string): Promise<boolean> {
  const [row] = rowsOf<{ n: number }>(await db.execute(sql`select count(*)::int as n from clients where id = ${clientId}`));
  return Number(row?.n ?? 0) > 0;
}
