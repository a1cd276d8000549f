/**
 * The broad plan as a notice (src/use-cases/audience.ts, `broadPlanNotice`, the one builder the Teams tick and the
 * champion's answer share): one post per champion conversation under keys that name the conversation, so the tick
 * and the answer never post it twice. And no plan for a broad ring with nothing to do.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { rowsOf } from '../../src/db/client.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { captureInstall, type InstallInput } from '../../src/use-cases/teams-link.ts';
import { broadPlanNotice } from '../../src/use-cases/audience.ts';
import { queueClientMessages } from '../../src/jobs/teams.ts';
import { renderNotice } from '../../src/chat/notices.ts';
import { loadAudiences } from '../../src/chat/audiences.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { scheduleGate, worldInventory, worldRelease } from '../support/rollout-world.ts';

let database: TestDatabase;
const now = () => new Date('2024-02-20T15:00:00Z');

beforeAll(async () => {
  database = await openTestDatabase();
  const inventory = worldInventory({ clients: [{ id: 'acme', pilot: 1, broad: 2 }, { id: 'kiosk', pilot: 1, broad: 2 }] });
  inventory.clients[0]!.champions = [{ email: 'ana@acme.example', teamsId: 'aad-ana', name: 'Ana Silva' }];
  inventory.clients[0]!.locations[0]!.devices[1]!.user = 'jane@acme.example';
  for (const d of inventory.clients[1]!.locations[0]!.devices) if (d.ring === 'broad') d.os = 'Ubuntu 22.04';
  await applyInventory(database.db, inventory, now());
  await storeRelease(database.db, worldRelease(), { fetchedAt: now(), now: now() });
  await database.db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U_ENG', 'slack', 'test-approve-release', now())`);
  for (const client of ['acme', 'kiosk']) await scheduleGate(database.db, 'broad', client, now());
  await database.db.execute(sql`update clients set settings = settings || '{"teamsTenantId": "tenant-acme"}'::jsonb where id = 'acme'`);
  const ctx = { db: database.db, now };
  await captureInstall(ctx, install('a:personal-ana', 'personal', 'aad-ana'));
  await captureInstall(ctx, install('19:acme-general', 'channel', 'aad-admin', 'tenant-acme'));
}, 60_000);
afterAll(async () => database?.close());

function install(conversationId: string, kind: InstallInput['kind'], aad: string, tenantId = 'tenant-x'): InstallInput {
  return { conversationId, tenantId, kind, reference: { conversation: { id: conversationId } }, by: { id: aad, email: undefined, upn: undefined, name: aad } };
}

describe('the broad plan notice', () => {
  it('renders one Teams post per champion conversation, keyed per conversation', async () => {
    const notice = await broadPlanNotice(database.db, '2024-Feb', 'acme', now());
    expect(notice).toBeDefined();
    const rows = renderNotice(notice!, await loadAudiences(database.db));
    expect(rows.map((r) => r.channel)).toEqual(['a:personal-ana', '19:acme-general']);
    expect(rows.map((r) => [r.platform, r.key, r.subject])).toEqual([
      ['teams', 'teams:plan:2024-Feb:acme:a:personal-ana', 'plan:2024-Feb:acme'],
      ['teams', 'teams:plan:2024-Feb:acme:19:acme-general', 'plan:2024-Feb:acme'],
    ]);
    expect(rows[0]!.payload.text).toBe('2024-Feb: your machines will be patched on these nights. Save your work and leave your computer on.');
  });

  it('is none for a broad ring with nothing to install', async () => {
    expect(await broadPlanNotice(database.db, '2024-Feb', 'kiosk', now())).toBeUndefined();
    expect(await broadPlanNotice(database.db, '2024-Feb', 'nobody', now())).toBeUndefined();
  });

  it('is what the Teams tick queues, once', async () => {
    const ids = await queueClientMessages(database.db, now());
    const list = rowsOf<{ key: string }>(
      await database.db.execute(sql`select idempotency_key as key from chat_outbox where id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)::int) order by id`),
    ).map((r) => r.key);
    expect(list).toEqual(['teams:plan:2024-Feb:acme:a:personal-ana', 'teams:plan:2024-Feb:acme:19:acme-general']);
    expect(await queueClientMessages(database.db, now())).toEqual([]);
  });
});
