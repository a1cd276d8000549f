/**
 * An end user's personal Teams chat is how "save your work tonight" reaches them in Teams: installing the app
 * personally must tie that chat to the inventory person (by email from the roster), not only for champions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { rowsOf } from '../../src/db/client.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { loadRecipients } from '../../src/db/directory-repo.ts';
import { captureInstall, type InstallInput } from '../../src/use-cases/teams-link.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { worldInventory } from '../support/rollout-world.ts';

let database: TestDatabase;
const now = () => new Date('2026-03-02T12:00:00Z');

beforeAll(async () => {
  database = await openTestDatabase();
  const inventory = worldInventory({ clients: [{ id: 'acme', pilot: 1, broad: 1 }] });
  const client = inventory.clients[0]!;
  client.champions = [{ email: 'pat@acme.example', teamsId: undefined, name: 'Pat' }];
  client.locations[0]!.devices[1]!.user = 'jane@acme.example';
  await applyInventory(database.db, inventory, now());
});
afterAll(async () => database?.close());

const personal = (aad: string, email: string | undefined): InstallInput => ({
  conversationId: `a:personal-${aad}`,
  tenantId: 'tenant-acme',
  kind: 'personal',
  reference: { conversation: { id: `a:personal-${aad}` }, user: { id: `29:${aad}`, aadObjectId: aad } },
  by: { id: aad, email, upn: email, name: aad },
});

describe('a personal Teams install', () => {
  it('reaches an end user matched by email, and remembers their Teams id', async () => {
    const ctx = { db: database.db, now };
    expect((await loadRecipients(database.db, 'teams', ['jane@acme.example'])).get('jane@acme.example')?.address).toBeUndefined();
    await captureInstall(ctx, personal('aad-jane', 'Jane@Acme.example'));
    const jane = (await loadRecipients(database.db, 'teams', ['jane@acme.example'])).get('jane@acme.example');
    expect(jane?.address).toEqual({ platform: 'teams', channel: 'a:personal-aad-jane', recipient: 'aad-jane' });
  });

  it('links nobody when the email is not in the inventory', async () => {
    const ctx = { db: database.db, now };
    await captureInstall(ctx, personal('aad-stranger', 'stranger@elsewhere.example'));
    const [row] = rowsOf<{ person_id: number | null }>(await database.db.execute(sql`select person_id from teams_conversations where conversation_id = 'a:personal-aad-stranger'`));
    expect(row).toBeDefined();
    expect(row?.person_id ?? null).toBeNull();
  });
});
