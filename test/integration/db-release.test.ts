import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKevCatalog } from '../../src/adapters/kev/catalog.ts';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import { rowsOf } from '../../src/db/client.ts';
import { kevRefreshedAt, loadKevIndex, replaceKevCatalog } from '../../src/db/kev-repo.ts';
import { loadDigestInput, loadRelease, listReleases } from '../../src/db/release-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { msp } from '../../src/db/schema.ts';
import { buildDigest, type KevIndex } from '../../src/domain/digest.ts';
import type { Release } from '../../src/domain/release.ts';
import { openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shared = path.resolve(repoRoot, '../shared/fixtures');
const hasShared = existsSync(path.join(shared, 'msrc/2024-Feb.json'));
if (!hasShared) console.warn(`[db-release] ${shared} is absent: storing the real 2024-Feb is skipped`);

const STORED_AT = new Date('2024-03-20T18:00:00Z');
const LATER = new Date('2024-03-21T18:00:00Z');
const EVEN_LATER = new Date('2024-03-22T18:00:00Z');

async function count(database: TestDatabase, query: string): Promise<number> {
  const [row] = rowsOf<{ n: number | string }>(await database.db.execute(sql.raw(query)));
  return Number(row!.n);
}

async function tableCounts(database: TestDatabase) {
  return {
    releases: await count(database, 'select count(*) as n from releases'),
    updates: await count(database, 'select count(*) as n from updates'),
    cves: await count(database, 'select count(*) as n from cves'),
    links: await count(database, 'select count(*) as n from update_cves'),
    changes: await count(database, 'select count(*) as n from release_changes'),
    outbox: await count(database, 'select count(*) as n from chat_outbox'),
    audit: await count(database, 'select count(*) as n from audit_log'),
  };
}

function linkCount(release: Release): number {
  const known = new Set(release.cves.map((c) => c.id));
  return new Set(release.updates.flatMap((u) => u.cves.filter((l) => known.has(l.cveId)).map((l) => `${u.id}|${l.cveId}`))).size;
}

describe.skipIf(!hasShared)(`storing 2024-Feb (${testBackend()})`, () => {
  let database: TestDatabase;
  let feb: Release;
  const text = hasShared ? readFileSync(path.join(shared, 'msrc/2024-Feb.json'), 'utf8') : '';

  beforeAll(async () => {
    database = await openTestDatabase();
    feb = parseCvrf(text, '2024-Feb.json');
    await database.db.insert(msp).values({ id: 1, name: 'Example IT', timezone: 'America/Chicago', channel: 'C0PATCH', windows: { desktop: 'daily 01:00-05:00' } });
  }, 60_000);
  afterAll(async () => database?.close());

  it('stores a new release: rows match the model, the digest is queued as a channel post and its thread', async () => {
    const result = await storeRelease(database.db, feb, { fetchedAt: STORED_AT, now: STORED_AT });
    expect(result.outcome).toBe('new');
    expect(result.changes).toEqual([]);
    const counts = await tableCounts(database);
    expect(counts.releases).toBe(1);
    expect(counts.updates).toBe(feb.updates.length);
    expect(counts.cves).toBe(feb.cves.length);
    expect(counts.links).toBe(linkCount(feb));
    expect(counts.changes).toBe(0);
    expect(counts.outbox).toBe(result.queued);
    expect(result.queued).toBeGreaterThan(1);

    // Fixes without a KB are stored under their slug, with kb left null rather than crammed.
    const noKb = feb.updates.filter((u) => u.kb === undefined);
    expect(await count(database, 'select count(*) as n from updates where kb is null')).toBe(noKb.length);
    // Unknown stays unknown: a CVE MSRC says nothing about is null, never false.
    const unknownExploited = feb.cves.filter((c) => c.exploited === undefined).length;
    expect(await count(database, 'select count(*) as n from cves where exploited is null')).toBe(unknownExploited);

    const outbox = rowsOf<{ subject: string; channel: string; action: string; payload: { text: string; blocks: unknown[]; threadSubject?: string } }>(
      await database.db.execute(sql`select subject, channel, action, payload from chat_outbox order by id`),
    );
    expect(outbox[0]).toMatchObject({ subject: 'digest:2024-Feb', channel: 'C0PATCH', action: 'post' });
    expect(outbox[0]!.payload.threadSubject).toBeUndefined();
    outbox.slice(1).forEach((row, i) => {
      expect(row.subject).toBe(`digest:2024-Feb:thread:${i + 1}`);
      expect(row.payload.threadSubject).toBe('digest:2024-Feb');
    });
    // Interactive: the thread carries the Approve/Hold/Add note buttons.
    expect(JSON.stringify(outbox.map((row) => row.payload.blocks))).toContain('"type":"actions"');

    expect(await loadRelease(database.db, '2024-Feb')).toEqual(feb);
    expect((await listReleases(database.db)).map((r) => [r.id, r.cves, r.updates])).toEqual([['2024-Feb', feb.cves.length, feb.updates.length]]);
  });

  it('storing the same document again writes nothing but the time it was checked', async () => {
    const before = await tableCounts(database);
    const result = await storeRelease(database.db, feb, { fetchedAt: LATER, now: LATER });
    expect(result).toMatchObject({ outcome: 'unchanged', changes: [], queued: 0 });
    expect(await tableCounts(database)).toEqual(before);
    expect(await count(database, `select count(*) as n from updates where updated_at > '2024-03-20T18:00:00Z'`)).toBe(0);
    expect((await listReleases(database.db))[0]!.fetchedAt.toISOString()).toBe(LATER.toISOString());
  });

  function revise(base: Release): Release {
    const revised: Release = structuredClone(base);
    const target = revised.cves.find((c) => c.id === 'CVE-2024-21412')!;
    const flipped = revised.cves.find((c) => c.exploited === false && c.severity === 'Important')!;
    flipped.exploited = true;
    const added = { ...structuredClone(target), id: 'CVE-2024-99999', title: 'Invented <!channel> flaw', exploited: false };
    revised.cves.push(added);
    const update = revised.updates.find((u) => u.kb !== undefined && u.cves.some((l) => l.cveId === target.id))!;
    update.cves.push({ cveId: added.id, severity: added.severity });
    update.knownIssues.push({ kb: '9999999', url: 'https://support.microsoft.com/help/9999999', text: undefined });
    revised.currentReleaseDate = '2024-03-25T07:00:00Z';
    revised.revisions.push({ number: '9.0', date: '2024-03-25T07:00:00Z', description: 'test revision' });
    return revised;
  }

  it('a revision updates in place, lists what changed, and queues one thread reply; storing it twice adds nothing', async () => {
    const revised = revise(feb);
    const flipped = revised.cves.find((c) => c.exploited === true && feb.cves.find((o) => o.id === c.id)?.exploited === false)!;
    const before = await tableCounts(database);
    const result = await storeRelease(database.db, revised, { fetchedAt: EVEN_LATER, now: EVEN_LATER });
    expect(result.outcome).toBe('revised');
    expect(result.changes.map((c) => c.message).sort()).toEqual(
      [
        `${flipped.id} is now marked exploited`,
        expect.stringContaining('CVE-2024-99999 (Invented <!channel> flaw) was added'),
        expect.stringMatching(/^KB\d+ now lists known issues \(KB9999999\)$/),
      ].sort((a, b) => String(a).localeCompare(String(b))),
    );
    const after = await tableCounts(database);
    expect(after.cves).toBe(before.cves + 1);
    expect(after.links).toBe(before.links + 1);
    expect(after.changes).toBe(1);
    expect(after.outbox).toBe(before.outbox + 1);
    expect(await count(database, `select count(*) as n from cves where exploited and cve = '${flipped.id}'`)).toBe(1);

    const [reply] = rowsOf<{ subject: string; payload: { text: string; threadSubject: string; blocks: unknown[] } }>(
      await database.db.execute(sql`select subject, payload from chat_outbox order by id desc limit 1`),
    );
    expect(reply!.subject).toMatch(/^release-changes:2024-Feb:[0-9a-f]{16}$/);
    expect(reply!.payload.threadSubject).toBe('digest:2024-Feb');
    const shown = JSON.stringify(reply!.payload.blocks);
    expect(shown).toContain(`${flipped.id} is now marked exploited`);
    // Text is data: MSRC's title cannot ping the channel.
    expect(shown).toContain('&lt;!channel&gt;');
    expect(shown).not.toContain('<!channel>');

    const again = await storeRelease(database.db, revised, { fetchedAt: EVEN_LATER, now: EVEN_LATER });
    expect(again.outcome).toBe('unchanged');
    expect(await tableCounts(database)).toEqual(after);
    expect(await loadRelease(database.db, '2024-Feb')).toEqual(revised);
  });

  it('a revision that drops a CVE and an update marks their rows instead of deleting them', async () => {
    const current = (await loadRelease(database.db, '2024-Feb'))!;
    const dropped: Release = structuredClone(current);
    dropped.cves = dropped.cves.filter((c) => c.id !== 'CVE-2024-99999');
    for (const u of dropped.updates) u.cves = u.cves.filter((l) => l.cveId !== 'CVE-2024-99999');
    const gone = dropped.updates.pop()!;
    const updateRow = rowsOf<{ id: number }>(await database.db.execute(sql`select id from updates where update_key = ${gone.id}`))[0]!;
    // Something already points at the update (a decision): removing it must not break that.
    await database.db.execute(sql`insert into decisions (kind, release_id, update_id, actor, source, idempotency_key, created_at)
      values ('approve', '2024-Feb', ${updateRow.id}, 'U1', 'slack', 'test-approve-1', now())`);
    const result = await storeRelease(database.db, dropped, { fetchedAt: EVEN_LATER, now: EVEN_LATER });
    expect(result.outcome).toBe('revised');
    expect(result.changes.map((c) => c.message)).toContain('CVE-2024-99999 is no longer in the release');
    expect(await count(database, `select count(*) as n from cves where cve = 'CVE-2024-99999' and removed_at is not null`)).toBe(1);
    expect(await count(database, `select count(*) as n from updates where update_key = '${gone.id}' and removed_at is not null`)).toBe(1);
    expect(await count(database, 'select count(*) as n from updates where removed_at is null')).toBe(dropped.updates.length);
    // And if Microsoft puts it back, the same row comes back.
    const restored = await storeRelease(database.db, current, { fetchedAt: EVEN_LATER, now: EVEN_LATER });
    expect(restored.outcome).toBe('revised');
    expect(await count(database, 'select count(*) as n from cves where removed_at is not null')).toBe(0);
    expect(await count(database, 'select count(*) as n from updates where removed_at is not null')).toBe(0);
  });

  it('an invalid document is refused before it can replace the stored release', async () => {
    const before = await tableCounts(database);
    const stored = await loadRelease(database.db, '2024-Feb');
    expect(() => parseCvrf(text.slice(0, text.length / 2), 'truncated.json')).toThrow(/truncated\.json/);
    const broken: Release = { ...structuredClone(stored!), currentReleaseDate: 'not a date' };
    await expect(storeRelease(database.db, broken, { fetchedAt: EVEN_LATER, now: EVEN_LATER })).rejects.toThrow(/currentReleaseDate/);
    const twice: Release = { ...structuredClone(stored!), cves: [...stored!.cves, stored!.cves[0]!] };
    await expect(storeRelease(database.db, twice, { fetchedAt: EVEN_LATER, now: EVEN_LATER })).rejects.toThrow(/listed twice/);
    expect(await tableCounts(database)).toEqual(before);
    expect(await loadRelease(database.db, '2024-Feb')).toEqual(stored);
  });

  it('the digest from the database matches the digest from the document, KEV included', async () => {
    const kevText = readFileSync(path.join(shared, 'kev/known_exploited_vulnerabilities.json'), 'utf8');
    const kev = parseKevCatalog(kevText);
    await storeRelease(database.db, feb, { fetchedAt: EVEN_LATER, now: EVEN_LATER });
    await replaceKevCatalog(database.db, kev, { now: EVEN_LATER });
    const now = new Date('2024-03-26T12:00:00Z');
    const input = await loadDigestInput(database.db, '2024-Feb', now);
    const fromDb = buildDigest({ ...input, fleet: undefined });
    const fromFile = buildDigest({ release: feb, kev, now: input.now });
    expect(fromDb).toEqual(fromFile);
    expect(fromDb.totals.cves).toBeGreaterThanOrEqual(72);
    expect(fromDb.totals.kev).toBeGreaterThan(0);
    await expect(loadDigestInput(database.db, '2099-Jan', now)).rejects.toThrow(/2099-Jan is not stored \(known: 2024-Feb\)/);
  });
});

describe(`the KEV catalog in Postgres (${testBackend()})`, () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await openTestDatabase();
  }, 60_000);
  afterAll(async () => database?.close());

  const entry = (cveId: string, dueDate = '2024-03-05') => ({
    cveId,
    vulnerabilityName: `${cveId} flaw`,
    dateAdded: '2024-02-13',
    dueDate,
    knownRansomwareCampaignUse: 'Unknown' as const,
  });
  const catalog = (version: string, ...entries: ReturnType<typeof entry>[]): KevIndex => ({
    version,
    dateReleased: `${version}T12:00:00Z`,
    entries: new Map(entries.map((e) => [e.cveId, e])),
  });

  it('replaces the catalog: new, changed, unchanged and withdrawn entries; reads back as the digest index', async () => {
    expect(await loadKevIndex(database.db)).toBeUndefined();
    expect(await kevRefreshedAt(database.db)).toBeUndefined();
    const first = await replaceKevCatalog(database.db, catalog('2024.02.13', entry('CVE-2024-21412'), entry('CVE-2024-21351')), { now: STORED_AT });
    expect(first).toMatchObject({ added: 2, changed: 0, removed: 0, unchanged: 0 });
    const same = await replaceKevCatalog(database.db, catalog('2024.02.13', entry('CVE-2024-21412'), entry('CVE-2024-21351')), { now: LATER });
    expect(same).toMatchObject({ added: 0, changed: 0, removed: 0, unchanged: 2 });
    const next = await replaceKevCatalog(
      database.db,
      catalog('2024.02.15', entry('CVE-2024-21412', '2024-04-01'), entry('CVE-2024-21410')),
      { now: EVEN_LATER },
    );
    expect(next).toMatchObject({ added: 1, changed: 1, removed: 1, unchanged: 0 });
    const index = (await loadKevIndex(database.db))!;
    expect(index.version).toBe('2024.02.15');
    expect(index.dateReleased).toBe('2024.02.15T12:00:00Z');
    expect([...index.entries.keys()].sort()).toEqual(['CVE-2024-21410', 'CVE-2024-21412']);
    expect(index.entries.get('CVE-2024-21412')).toEqual(entry('CVE-2024-21412', '2024-04-01'));
    expect(await count(database, `select count(*) as n from kev_entries where removed_at is not null`)).toBe(1);
    expect((await kevRefreshedAt(database.db))?.toISOString()).toBe(EVEN_LATER.toISOString());
    // A withdrawn entry that returns is live again.
    const back = await replaceKevCatalog(database.db, catalog('2024.02.16', entry('CVE-2024-21412', '2024-04-01'), entry('CVE-2024-21410'), entry('CVE-2024-21351')), {
      now: EVEN_LATER,
    });
    expect(back).toMatchObject({ added: 0, changed: 1, removed: 0 });
    expect((await loadKevIndex(database.db))!.entries.size).toBe(3);
  });

  it('refuses an empty catalog and keeps the stored one', async () => {
    await expect(replaceKevCatalog(database.db, catalog('2024.02.17'), { now: EVEN_LATER })).rejects.toThrow(/no entries/);
    expect((await loadKevIndex(database.db))!.entries.size).toBe(3);
  });
});
