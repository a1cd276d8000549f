/**
 * What the sandbox page's "Next window" reads (src/db/page-repo.ts): which owners have work waiting in which device
 * class. Ring msp done on the MSP's desktops but waiting on its server must send the jump to the server window, not
 * to a desktop window in which nothing would happen (sandbox walk).
 */
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { rowsOf, type AppDatabase } from '../../src/db/client.ts';
import { classesWithWork } from '../../src/db/page-repo.ts';
import { insertRuns } from '../../src/db/rollout-repo.ts';
import { openTestDatabase } from '../support/db.ts';
import { scheduleGate, seedWorld, SERVER } from '../support/rollout-world.ts';

const NOW = new Date('2024-02-14T03:00:00Z');
const open: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of open.splice(0).reverse()) await fn().catch(() => {});
});

async function world(): Promise<AppDatabase> {
  const database = await openTestDatabase();
  open.push(() => database.close());
  await seedWorld(database.db, { mspDevices: 2, mspExtra: [{ name: 'MSP-SRV-01', class: 'server', ring: 'msp', os: SERVER, user: undefined }], clients: [{ id: 'acme', pilot: 1, broad: 2 }] }, NOW);
  return database.db;
}

/** Each of the named machines gets a run in the release that ended `state`. */
async function settle(db: AppDatabase, names: string[], state: 'succeeded' | 'failed' | 'skipped' | 'rolled'): Promise<void> {
  const devices = rowsOf<{ id: number }>(await db.execute(sql`select id from devices where name in (select jsonb_array_elements_text(${JSON.stringify(names)}::jsonb))`));
  const [gate] = rowsOf<{ id: number }>(await db.execute(sql`select id from rollouts where release_id = '2024-Feb' and ring = 'msp'`));
  const ids = await insertRuns(db, devices.map((d) => ({ deviceId: Number(d.id), releaseId: '2024-Feb', rolloutId: Number(gate!.id), windowStart: '2024-02-14T07:00:00Z', windowEnd: '2024-02-14T11:00:00Z', updates: [] })), NOW);
  await db.execute(sql`update runs set state = ${state} where id in (select (jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))::int)`);
}

const sorted = (rows: Array<{ clientId: string | null; deviceClass: string }>) => rows.map((r) => `${r.clientId ?? 'msp'}/${r.deviceClass}`).sort();

describe('classes with work', () => {
  it('names a ring\u2019s device classes while one of their machines has not settled, and no ring that is not under way', async () => {
    const db = await world();
    expect(await classesWithWork(db)).toEqual([]);
    await scheduleGate(db, 'msp', null, NOW);
    expect(sorted(await classesWithWork(db))).toEqual(['msp/desktop', 'msp/server']);
    // One desktop done, the other rolled to the next window: the desktops still have work.
    await settle(db, ['MSP-PC-001'], 'succeeded');
    await settle(db, ['MSP-PC-002'], 'rolled');
    expect(sorted(await classesWithWork(db))).toEqual(['msp/desktop', 'msp/server']);
    await db.execute(sql`update runs set state = 'failed' where state = 'rolled'`);
    expect(sorted(await classesWithWork(db))).toEqual(['msp/server']);
    await db.execute(sql`update devices set retired_at = ${NOW.toISOString()}::timestamptz where name = 'MSP-SRV-01'`);
    expect(await classesWithWork(db)).toEqual([]);
  });

  it('leaves out a client held as a whole, and everyone while the whole release is held', async () => {
    const db = await world();
    await scheduleGate(db, 'pilot', 'acme', NOW);
    expect(sorted(await classesWithWork(db))).toEqual(['acme/desktop']);
    const hold = (scope: string, clientId: string | null) =>
      db.execute(sql`insert into holds (scope, release_id, client_id, reason, placed_by, placed_via, placed_at)
        values (${scope}, '2024-Feb', ${clientId}, 'EMR upgrade', 'U_ENG', 'slack', ${NOW.toISOString()}::timestamptz)`);
    await hold('client', 'acme');
    expect(await classesWithWork(db)).toEqual([]);
    await db.execute(sql`update holds set released_at = ${NOW.toISOString()}::timestamptz`);
    expect(sorted(await classesWithWork(db))).toEqual(['acme/desktop']);
    await hold('all', null);
    expect(await classesWithWork(db)).toEqual([]);
  });
});
