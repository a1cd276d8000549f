/**
 * Issue 13 finding 7: who a client's Teams conversations speak to. Champions (their personal chats, the client's
 * channel, a chat an engineer's code linked) get sign-off cards, plans and summaries; a staff member's personal
 * chat, linked to the client by tenant alone, gets none of that; and a client whose broad machines have nothing
 * to install gets no plan ("save your work tonight") at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { captureInstall, createLinkCode, redeemLinkCode, type InstallInput } from '../../src/use-cases/teams-link.ts';
import { clientConversations, planItems } from '../../src/use-cases/pilot.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { scheduleGate, worldInventory, worldRelease } from '../support/rollout-world.ts';

let database: TestDatabase;
const now = () => new Date('2024-02-20T15:00:00Z');

beforeAll(async () => {
  database = await openTestDatabase();
  const inventory = worldInventory({ clients: [{ id: 'acme', pilot: 1, broad: 2 }, { id: 'kiosk', pilot: 1, broad: 2 }] });
  inventory.clients[0]!.champions = [{ email: 'ana@acme.example', teamsId: 'aad-ana', name: 'Ana Silva' }];
  inventory.clients[0]!.locations[0]!.devices[1]!.user = 'jane@acme.example';
  // Kiosk's broad machines run something no update in the release applies to.
  for (const d of inventory.clients[1]!.locations[0]!.devices) if (d.ring === 'broad') d.os = 'Ubuntu 22.04';
  await applyInventory(database.db, inventory, now());
  await storeRelease(database.db, worldRelease(), { fetchedAt: now(), now: now() });
  await database.db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U_ENG', 'slack', 'test-approve-release', now())`);
  // Both clients' broad rings are next: every update got past ring msp and their pilots (audited skips), so what
  // a broad plan holds depends only on what their broad machines run.
  for (const client of ['acme', 'kiosk']) await scheduleGate(database.db, 'broad', client, now());
  await database.db.execute(sql`update clients set settings = settings || '{"teamsTenantId": "tenant-acme"}'::jsonb where id = 'acme'`);
  await database.db.execute(sql`update clients set settings = settings || '{"teamsTenantId": "tenant-kiosk"}'::jsonb where id = 'kiosk'`);
}, 60_000);
afterAll(async () => database?.close());

const install = (conversationId: string, kind: InstallInput['kind'], tenantId: string, aad: string, email?: string): InstallInput => ({
  conversationId,
  tenantId,
  kind,
  reference: { conversation: { id: conversationId } },
  by: { id: aad, email, upn: email, name: aad },
});

describe('the audience of a client’s Teams conversations', () => {
  it('gives champion traffic to the champion’s chat, the channel and a code-linked chat, never to a user’s personal chat', async () => {
    const ctx = { db: database.db, now };
    const champion = await captureInstall(ctx, install('a:personal-ana', 'personal', 'tenant-acme', 'aad-ana'));
    expect(champion).toMatchObject({ outcome: 'linked', clientId: 'acme', audience: 'champions' });
    const user = await captureInstall(ctx, install('a:personal-jane', 'personal', 'tenant-acme', 'aad-jane', 'jane@acme.example'));
    expect(user).toMatchObject({ outcome: 'linked', clientId: 'acme', audience: 'user' });
    await captureInstall(ctx, install('a:personal-stranger', 'personal', 'tenant-acme', 'aad-stranger'));
    await captureInstall(ctx, install('19:acme-general', 'channel', 'tenant-acme', 'aad-admin'));
    // An engineer's code, redeemed by someone the inventory does not list as a champion, still links a champion chat.
    const code = await createLinkCode(ctx, { actor: { platform: 'slack', id: 'U_ENG' }, clientId: 'acme' });
    if (code.outcome !== 'created') throw new Error(code.message);
    const redeemed = await redeemLinkCode(ctx, code.code, install('a:personal-office-manager', 'personal', 'tenant-other', 'aad-om'));
    expect(redeemed).toMatchObject({ outcome: 'linked', audience: 'champions' });

    expect(await clientConversations(database.db, 'acme')).toEqual(['a:personal-ana', '19:acme-general', 'a:personal-office-manager']);
  });

  it('sends the broad plan only for machines with something to install', async () => {
    const ctx = { db: database.db, now };
    await captureInstall(ctx, install('19:kiosk-general', 'channel', 'tenant-kiosk', 'aad-kiosk-admin'));
    expect(await planItems(database.db, '2024-Feb', 'kiosk', now())).toEqual([]);
    const acme = await planItems(database.db, '2024-Feb', 'acme', now());
    expect(acme.map((i) => i.channel)).toEqual(['a:personal-ana', '19:acme-general', 'a:personal-office-manager']);
    expect(JSON.stringify(acme[0]!.payload)).toMatch(/save your work/i);
    // Issue 13 finding 8: nights in the client's zone by its abbreviation or city, never "GMT+13".
    await database.db.execute(sql`update clients set timezone = 'Pacific/Auckland' where id = 'acme'`);
    const auckland = JSON.stringify((await planItems(database.db, '2024-Feb', 'acme', now()))[0]!.payload);
    expect(auckland).toMatch(/NZDT|Auckland time/);
    expect(auckland).not.toMatch(/GMT[+-]/);
  });
});
