// Repositories written for issue 14 (SQL only in src/db): the Slack event-retry claim and the MSP row.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimOnce } from '../../src/db/idempotency-repo.ts';
import { hasMsp, loadMsp } from '../../src/db/msp-repo.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';

const NOW = new Date('2024-02-13T19:00:00Z');

let database: TestDatabase;

beforeAll(async () => {
  database = await openTestDatabase();
});

afterAll(async () => {
  await database?.close();
});

describe('claimOnce', () => {
  it('grants a key once: a retried Slack event finds it taken', async () => {
    const claim = { key: 'slack-event:Ev1', scope: 'slack-event', now: NOW, keepMs: 86_400_000 };
    expect(await claimOnce(database.db, claim)).toBe(true);
    expect(await claimOnce(database.db, claim)).toBe(false);
    expect(await claimOnce(database.db, { ...claim, key: 'slack-event:Ev2' })).toBe(true);
  });
});

describe('msp repository', () => {
  it('has no MSP before an import', async () => {
    expect(await hasMsp(database.db)).toBe(false);
    expect(await loadMsp(database.db)).toBeUndefined();
  });
});
