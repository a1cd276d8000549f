/**
 * Issue 13 finding 5, from the tables: `/patch status` reads the releases, holds and people the gates read. Last
 * month's release shows as superseded once a newer one is stored, and a client hold placed by a champion's
 * problem report names the client and the champion, not their ids.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { releaseStatus, statusNames } from '../../src/use-cases/status.ts';
import { statusText } from '../../src/chat/slack/views.ts';
import { promoteRelease } from '../../src/use-cases/rollout-actions.ts';
import { approve } from '../../src/use-cases/decisions.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { worldInventory, worldRelease } from '../support/rollout-world.ts';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import { sampleCvrf } from '../../src/sandbox/sample-release.ts';

const GUID = '6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f';
let database: TestDatabase;
const now = new Date('2024-03-13T15:00:00Z');

beforeAll(async () => {
  database = await openTestDatabase();
  const inventory = worldInventory({ clients: [{ id: 'harbour' }] });
  inventory.clients[0]!.name = 'Harbour Accounting';
  inventory.clients[0]!.champions = [{ email: 'ana@harbour.example', teamsId: GUID, name: 'Ana Silva' }];
  await applyInventory(database.db, inventory, now);
  const feb = worldRelease();
  await storeRelease(database.db, feb, { fetchedAt: now, now });
  await storeRelease(database.db, { ...feb, id: '2024-Mar', title: 'March 2024 Security Updates', initialReleaseDate: '2024-03-12T17:00:00Z', currentReleaseDate: '2024-03-12T17:00:00Z' }, { fetchedAt: now, now });
  await database.db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Mar', 'U_ENG', 'slack', 'test-approve-mar', now())`);
  await database.db.execute(sql`insert into holds (scope, release_id, client_id, reason, placed_by, placed_via, placed_at)
    values ('client', '2024-Mar', 'harbour', 'Pilot problem: printers stopped', ${GUID}, 'system', now())`);
}, 60_000);
afterAll(async () => database?.close());

describe('status from the tables', () => {
  it('shows last month as superseded and this month’s client hold by name', async () => {
    const statuses = await Promise.all(['2024-Mar', '2024-Feb'].map((id) => releaseStatus(database.db, id)));
    expect(statuses.map((s) => s?.supersededBy)).toEqual([null, '2024-Mar']);
    const text = statusText(statuses.map((s) => s!), 'America/Chicago', now, await statusNames(database.db));
    const [mar, feb] = text.split('\n\n');
    expect(feb).toContain('superseded by 2024-Mar');
    expect(feb).not.toContain('waiting for a decision');
    expect(mar).toContain('Updates: 3 approved, 0 held, 0 waiting');
    expect(mar).toContain('Harbour Accounting, held by Ana Silva: Pilot problem: printers stopped');
    expect(mar).not.toContain(GUID);
  });

  it('tells apart the two "Release Notes" fixes (.NET and Edge) by their family, as the digest does (sandbox walk)', async () => {
    const sample = parseCvrf(JSON.stringify(sampleCvrf('2026-Dec')));
    await storeRelease(database.db, sample, { fetchedAt: now, now });
    const ctx = { db: database.db, now: () => now };
    const cli = { platform: 'cli' as const, id: 'pat' };
    expect(await approve(ctx, { actor: cli, releaseId: sample.id, updateKey: null })).toMatchObject({ outcome: 'applied' });
    const status = (await releaseStatus(database.db, sample.id))!;
    const text = statusText([status], 'America/Chicago', now, await statusNames(database.db));
    const notes = text.match(/Release Notes[^:]*:/g) ?? [];
    expect(notes.length).toBe(2);
    expect(new Set(notes).size).toBe(2);
    // Why Promote has nothing yet names the fixes the same way; the skip command it suggests takes the key.
    const refused = await promoteRelease(ctx, { actor: cli, releaseId: sample.id });
    expect(refused.message).toContain('Click to Run (Microsoft Office): none of our machines runs it; `/patch skip msp click-to-run.microsoft-office`');
    expect(refused.message).not.toMatch(/^click-to-run/m);
  });
});
