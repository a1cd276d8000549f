/** What the sandbox's NinjaOne emulator is seeded from: the live devices with their organization and location. */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

export interface SandboxNinjaDeviceSource {
  name: string;
  /** The client's name, or the MSP's for its own machines: NinjaOne's organization. */
  organization: string;
  /** The inventory location's name (or id); machines without one sit in NinjaOne's default location. */
  location: string | null;
  class: string;
}

export async function liveDevicesWithLocations(db: AppDatabase): Promise<SandboxNinjaDeviceSource[]> {
  return rowsOf<SandboxNinjaDeviceSource>(
    await db.execute(sql`select d.name, coalesce(c.name, m.name) as organization, coalesce(l.name, l.id) as location, d.class
      from devices d left join clients c on c.id = d.client_id left join msp m on m.id = 1
      left join locations l on l.client_id = d.client_id and l.id = d.location_id
      where d.retired_at is null order by d.name`),
  );
}
