/** What the sandbox's Tactical emulator is seeded from: the live devices, and the KBs of every stored release. */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

export interface SandboxAgentSource {
  name: string;
  /** The client's name, or the MSP's for its own machines. */
  client: string;
  os: string | null;
  class: string;
}

export async function liveDevicesWithOwners(db: AppDatabase): Promise<SandboxAgentSource[]> {
  return rowsOf<SandboxAgentSource>(
    await db.execute(sql`select d.name, coalesce(c.name, m.name) as client, d.os, d.class
      from devices d left join clients c on c.id = d.client_id left join msp m on m.id = 1
      where d.retired_at is null order by d.name`),
  );
}

export async function storedKbs(db: AppDatabase): Promise<Array<{ kb: string; restartRequired: string | null }>> {
  return rowsOf<{ kb: string; restart_required: string | null }>(
    await db.execute(sql`select kb, max(restart_required) as restart_required from updates where kb is not null and kb <> '' group by kb order by kb`),
  ).map((r) => ({ kb: r.kb, restartRequired: r.restart_required }));
}
