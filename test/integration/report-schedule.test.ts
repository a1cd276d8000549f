/**
 * The scheduled reports on a real database: a tick sends what is due (the client's monthly report on its
 * report_day at 08:00 local, the engineers' weekly KEV list on Monday), archives it, and queues its messages; a
 * second tick, or a tick after a restart, sends nothing more; a tick after a gap sends what fell due in it.
 */
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { sendDueReports } from '../../src/jobs/report-schedule.ts';
import { openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';
import { worldInventory } from '../support/rollout-world.ts';

const log = pino({ level: 'silent' });
let database: TestDatabase;

beforeAll(async () => {
  database = await openTestDatabase();
  const inventory = worldInventory({ clients: [{ id: 'acme', pilot: 1, broad: 2 }, { id: 'bolt', pilot: 0, broad: 1 }] });
  inventory.msp.channel = 'C0ENG';
  inventory.msp.timezone = 'America/Chicago';
  inventory.clients[0]!.timezone = 'America/Chicago';
  inventory.clients[0]!.settings = { reportDay: 3 };
  await applyInventory(database.db, inventory, new Date('2026-10-01T00:00:00Z'));
});
afterAll(async () => {
  await database.close();
});

const tick = (at: string) => sendDueReports({ db: database.db, now: () => new Date(at) }, log);
const archivedKeys = async () => rowsOf<{ k: string }>(await database.db.execute(sql`select distinct delivery_key as k from report_archive order by 1`)).map((r) => r.k);
const outboxKeys = async () => rowsOf<{ k: string }>(await database.db.execute(sql`select idempotency_key as k from chat_outbox order by id`)).map((r) => r.k);

describe(`scheduled reports (${testBackend()})`, () => {
  it('sends each due report once across ticks and restarts, and what fell due in a gap', async () => {
    // Tue 3 Nov 2026, 07:59 in Chicago (13:59 UTC): not yet; the Monday KEV list of 2 Nov (09:00 Chicago) is due.
    expect(await tick('2026-11-03T13:59:00Z')).toEqual(['report:kev_weekly:msp:2026-W45']);
    expect(await tick('2026-11-03T14:00:00Z')).toEqual(['report:monthly:acme:2026-Oct']);
    expect(await tick('2026-11-03T14:05:00Z')).toEqual([]);
    const outbox = await outboxKeys();
    expect(outbox.filter((k) => k.startsWith('report:monthly:acme:2026-Oct'))).toEqual(['report:monthly:acme:2026-Oct', 'report:monthly:acme:2026-Oct:files']);
    // Down from 4 to 12 November: the Monday of the 9th is sent when it is back, once.
    expect(await tick('2026-11-12T10:00:00Z')).toEqual(['report:kev_weekly:msp:2026-W46']);
    expect(await tick('2026-11-12T10:00:00Z')).toEqual([]);
    expect(await archivedKeys()).toEqual(['report:kev_weekly:msp:2026-W45', 'report:kev_weekly:msp:2026-W46', 'report:monthly:acme:2026-Oct']);
    expect((await outboxKeys()).length).toBe(outbox.length + 1);
  });
});
