/**
 * Tonight's DMs at a size that takes several write batches, on the real database: a tick that dies after some
 * batches committed and runs again writes every DM and its outbox post exactly once (exactly once, nothing lost).
 * The failure is the database's own: a trigger refuses one outbox row of a later batch, as a crash would stop it.
 * And who a DM reaches, read for everyone at once: each person's own address, whatever else others have.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { loadRecipients, storeSlackDirectory } from '../../src/db/directory-repo.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { queueUserDms } from '../../src/jobs/user-dm.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { scheduleGate, worldInventory, worldRelease, WIN11 } from '../support/rollout-world.ts';

/** More than two of the job's write batches (500 DMs each), so a failure can fall after one committed. */
const USERS = 1100;
const FAIL_AT = 700;
const SETUP_AT = new Date('2024-06-01T12:00:00Z');
const TICK_AT = new Date('2024-06-11T20:00:00Z'); // 15:00 CDT, the afternoon before the 01:00 window

let database: TestDatabase;

async function count(query: ReturnType<typeof sql>): Promise<number> {
  const [row] = rowsOf<{ n: string | number }>(await database.db.execute(query));
  return Number(row?.n ?? 0);
}

const dmRows = () => count(sql`select count(*) as n from user_dms where kind = 'tonight'`);
const dmPeople = () => count(sql`select count(distinct person_id) as n from user_dms where kind = 'tonight'`);
const dmPosts = () => count(sql`select count(*) as n from chat_outbox where subject like 'userdm:tonight:%'`);
/** DM rows without their post, or posts without their DM row: what a crash between the two writes would leave. */
const unpaired = () =>
  count(sql`select count(*) as n from user_dms d full join (select * from chat_outbox where subject like 'userdm:tonight:%') o
    on o.idempotency_key = 'userdm:' || d.key where d.id is null or o.id is null`);

beforeAll(async () => {
  database = await openTestDatabase();
  const db = database.db;
  const inventory = worldInventory({ clients: [{ id: 'acme', pilot: 0, broad: 0 }] });
  inventory.clients[0]!.locations[0]!.devices = Array.from({ length: USERS }, (_, i) => ({ name: `ACME-PC-${i}`, class: 'desktop', ring: 'broad' as const, os: WIN11, user: `user${i}@acme.example` }));
  await applyInventory(db, inventory, SETUP_AT);
  await storeRelease(db, worldRelease(), { fetchedAt: SETUP_AT, now: SETUP_AT });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U_ENG', 'slack', 'test-approve', ${SETUP_AT.toISOString()}::timestamptz)`);
  await scheduleGate(db, 'broad', 'acme', SETUP_AT);
  const members = Array.from({ length: USERS }, (_, i) => ({ id: `U${i}`, email: `user${i}@acme.example`, tz: 'America/Chicago', realName: `User ${i}` }));
  await storeSlackDirectory(db, members, SETUP_AT);
}, 120_000);

afterAll(async () => {
  await database?.close();
});

describe('a DM tick that fails part-way through its batches', () => {
  it('keeps what committed, each DM with its post, and the re-run writes the rest once', async () => {
    const db = database.db;
    await db.execute(sql`create sequence dm_posts_seen`);
    await db.execute(sql.raw(`create function refuse_one_dm_post() returns trigger language plpgsql as $$
      begin
        if new.subject like 'userdm:tonight:%' and nextval('dm_posts_seen') = ${FAIL_AT} then raise exception 'worker died'; end if;
        return new;
      end $$`));
    await db.execute(sql`create trigger refuse_one_dm_post before insert on chat_outbox for each row execute function refuse_one_dm_post()`);

    await expect(queueUserDms(db, TICK_AT)).rejects.toThrow();
    const committed = await dmRows();
    // Halfway: the batches before the failure are kept, the failing one is not.
    expect(committed).toBeGreaterThan(0);
    expect(committed).toBeLessThan(USERS);
    expect(await unpaired()).toBe(0);

    await db.execute(sql`drop trigger refuse_one_dm_post on chat_outbox`);
    const rerun = await queueUserDms(db, TICK_AT);
    expect(rerun.dms).toBe(USERS - committed);
    expect(rerun.outboxIds).toHaveLength(USERS - committed);
    expect([await dmRows(), await dmPeople(), await dmPosts(), await unpaired()]).toEqual([USERS, USERS, USERS, 0]);

    const again = await queueUserDms(db, TICK_AT);
    expect([again.dms, again.outboxIds.length]).toEqual([0, 0]);
    expect(await dmPosts()).toBe(USERS);
  }, 120_000);
});

describe('the ticks after the night was warned', () => {
  it('plan only who has no DM for the window yet: a new user is warned, a warned user\u2019s second machine is not warned twice', async () => {
    const db = database.db;
    expect(await dmRows()).toBe(USERS);
    const inventory = worldInventory({ clients: [{ id: 'acme', pilot: 0, broad: 0 }] });
    const device = (name: string, user: string) => ({ name, class: 'desktop', ring: 'broad' as const, os: WIN11, user });
    inventory.clients[0]!.locations[0]!.devices = [
      ...Array.from({ length: USERS }, (_, i) => device(`ACME-PC-${i}`, `user${i}@acme.example`)),
      device('ACME-LAPTOP-0', 'user0@acme.example'),
      device('ACME-PC-NEW', 'newcomer@acme.example'),
    ];
    await applyInventory(db, inventory, SETUP_AT);
    const members = [...Array.from({ length: USERS }, (_, i) => ({ id: `U${i}`, email: `user${i}@acme.example`, tz: 'America/Chicago', realName: `User ${i}` })),
      { id: 'U_NEW', email: 'newcomer@acme.example', tz: 'America/Chicago', realName: 'Newcomer' }];
    await storeSlackDirectory(db, members, SETUP_AT);

    const tick = await queueUserDms(db, new Date(TICK_AT.getTime() + 60_000));
    expect(tick.dms).toBe(1);
    const [newcomer] = rowsOf<{ recipient: string }>(await db.execute(sql`select recipient from user_dms where id = (select max(id) from user_dms)`));
    expect(newcomer?.recipient).toBe('U_NEW');
    expect((await queueUserDms(db, new Date(TICK_AT.getTime() + 120_000))).dms).toBe(0);
  }, 120_000);
});

describe('recipients read for a whole night at once', () => {
  it('gives each person their own address: the directory’s Slack id over the inventory’s, the latest live Teams chat', async () => {
    const db = database.db;
    const id = async (email: string) => count(sql`select id as n from people where email = ${email}`);
    const [ann, bob, cat] = [await id('user1@acme.example'), await id('user2@acme.example'), await id('user3@acme.example')];
    await db.execute(sql`insert into chat_identities (person_id, platform, external_id, source) values
      (${ann}, 'slack', 'U_INVENTORY_ANN', 'inventory'), (${bob}, 'teams', 'aad-bob', 'install')`);
    const personal = (conversation: string, person: number, removed: boolean) =>
      sql`(${conversation}, 'personal', ${person}, ${JSON.stringify({ user: { id: `29:${conversation}` } })}::jsonb, ${removed ? SETUP_AT.toISOString() : null}::timestamptz)`;
    await db.execute(sql`insert into teams_conversations (conversation_id, kind, person_id, reference, removed_at) values
      ${personal('a:bob-old', bob, false)}, ${personal('a:bob-new', bob, false)}, ${personal('a:bob-gone', bob, true)},
      ${personal('a:cat-only', cat, false)}`);

    const emails = ['user1@acme.example', 'USER2@acme.example', 'user3@acme.example', 'nobody@acme.example'];
    const slack = await loadRecipients(db, 'slack', emails);
    expect(slack.get('user1@acme.example')?.address).toEqual({ platform: 'slack', channel: 'U1', recipient: 'U1' });
    expect(slack.get('user2@acme.example')?.address?.channel).toBe('U2');
    expect(slack.has('nobody@acme.example')).toBe(false);

    const teams = await loadRecipients(db, 'teams', emails);
    expect(teams.get('user2@acme.example')?.address).toEqual({ platform: 'teams', channel: 'a:bob-new', recipient: 'aad-bob' });
    // No Teams identity: the conversation's own user id, and never another person's chat.
    expect(teams.get('user3@acme.example')?.address).toEqual({ platform: 'teams', channel: 'a:cat-only', recipient: '29:a:cat-only' });
    expect(teams.get('user1@acme.example')?.address).toBeUndefined();
  }, 60_000);
});
