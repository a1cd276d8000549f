/**
 * The watcher end to end: a real redis-server, real Postgres, BullMQ's job scheduler and worker, and a local
 * HTTP server standing in for MSRC and CISA, with a clock the test moves.
 */
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import { loadConfig } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { loadKevIndex } from '../../src/db/kev-repo.ts';
import { listReleases, loadRelease } from '../../src/db/release-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { msp } from '../../src/db/schema.ts';
import type { RunningJobs } from '../../src/jobs/context.ts';
import { memoryAttemptLog, memoryFailureLog, releaseWatchModule, runWatchTick } from '../../src/jobs/release-watch.ts';
import type { Release } from '../../src/domain/release.ts';
import { sql } from 'drizzle-orm';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shared = path.resolve(repoRoot, '../shared/fixtures');
const hasShared = ['msrc/2024-May.json', 'msrc/2024-Feb.json', 'msrc/updates-index.json', 'kev/known_exploited_vulnerabilities.json'].every((f) =>
  existsSync(path.join(shared, f)),
);
if (!hasShared) console.warn(`[release-watch] ${shared} is absent: the watcher test is skipped`);

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(!hasShared)('release watcher on BullMQ, Redis, Postgres and a local MSRC', () => {
  let database: TestDatabase;
  let redisServer: TestRedis;
  let redis: Redis;
  let server: http.Server;
  let jobs: RunningJobs | undefined;
  const hits: string[] = [];
  const logLines: string[] = [];
  let clock = new Date('2024-05-14T16:30:00Z'); // 09:30 in Los Angeles: May is not out yet
  let listMay = false;
  let mayResponses: Array<'500' | 'ok' | 'truncated'> = [];
  let may: Release;

  const docs = hasShared
    ? {
        index: JSON.parse(readFileSync(path.join(shared, 'msrc/updates-index.json'), 'utf8')) as { value: Array<{ ID: string }> },
        may: readFileSync(path.join(shared, 'msrc/2024-May.json'), 'utf8'),
        feb: readFileSync(path.join(shared, 'msrc/2024-Feb.json'), 'utf8'),
        kev: readFileSync(path.join(shared, 'kev/known_exploited_vulnerabilities.json'), 'utf8'),
      }
    : undefined;

  const count = (prefix: string) => hits.filter((hit) => hit.startsWith(prefix)).length;

  beforeAll(async () => {
    [database, redisServer] = await Promise.all([openTestDatabase(), startTestRedis()]);
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    may = parseCvrf(docs!.may, '2024-May.json');
    server = http.createServer((request, response) => {
      const url = request.url ?? '';
      hits.push(url);
      if (url === '/updates') {
        // Before publication MSRC's index may already list next month; the watcher must not care either way.
        const value = docs!.index.value.filter((entry) => listMay || entry.ID !== '2024-May');
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value }));
      } else if (url === '/cvrf/2024-May') {
        const mode = mayResponses.shift() ?? 'ok';
        if (mode === '500') response.writeHead(500).end('upstream trouble');
        else if (mode === 'truncated') response.writeHead(200).end(docs!.may.slice(0, docs!.may.length / 3));
        else response.writeHead(200, { 'content-type': 'application/json' }).end(docs!.may);
      } else if (url === '/kev.json') {
        response.writeHead(200, { 'content-type': 'application/json' }).end(docs!.kev);
      } else {
        response.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;

    // Last month (April, played by February's document) is stored and was read a moment ago.
    const april: Release = { ...parseCvrf(docs!.feb, '2024-Feb.json'), id: '2024-Apr' };
    await storeRelease(database.db, april, { fetchedAt: clock, now: clock });
    await database.db.insert(msp).values({ id: 1, name: 'Example IT', timezone: 'America/Chicago', channel: 'C0PATCH', windows: {} });

    const log = pino({ level: 'debug' }, new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) }));
    const config = loadConfig({ MSRC_API_URL: `http://127.0.0.1:${port}/`, KEV_URL: `http://127.0.0.1:${port}/kev.json` });
    jobs = await releaseWatchModule({ tickMs: 100, fetch: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 5000 } })({
      config,
      database,
      redis,
      prefix: redisServer.prefix,
      log,
      roles: new Set(['scheduler', 'worker']),
      now: () => clock,
    });
  }, 60_000);

  afterAll(async () => {
    await jobs?.close();
    await redis?.quit();
    await redisServer?.stop();
    await new Promise((resolve) => server?.close(resolve));
    await database?.close();
  });

  const ticksLogged = () => logLines.filter((line) => line.includes('release watch')).length;

  it('before 10:00 Los Angeles time on Patch Tuesday it fetches nothing from MSRC (KEV is refreshed)', async () => {
    await until('the KEV catalog', () => loadKevIndex(database.db));
    const seen = ticksLogged();
    await until('several ticks', async () => ticksLogged() >= seen + 5);
    expect(count('/updates')).toBe(0);
    expect(count('/cvrf/')).toBe(0);
    expect(count('/kev.json')).toBe(1);
  });

  it('from 10:00 it polls; an index without the month fetches no document; then 500 then 200 stores it', async () => {
    clock = new Date('2024-05-14T17:00:30Z');
    await until('a poll of the index', async () => count('/updates') >= 1);
    await until('the not-listed tick to finish', async () => logLines.some((line) => line.includes('not published in the MSRC index yet')));
    expect(count('/cvrf/')).toBe(0);
    expect((await listReleases(database.db)).map((r) => r.id)).toEqual(['2024-Apr']);
    // Within the poll interval nothing is asked again, however often the scheduler ticks.
    const polls = count('/updates');
    const seen = ticksLogged();
    await until('more ticks', async () => ticksLogged() >= seen + 3);
    expect(count('/updates')).toBe(polls);

    listMay = true;
    mayResponses = ['500', 'ok'];
    clock = new Date('2024-05-14T17:05:30Z');
    await until('May stored', async () => (await listReleases(database.db)).some((r) => r.id === '2024-May'));
    expect(count('/cvrf/2024-May')).toBe(2);
    expect(await loadRelease(database.db, '2024-May')).toEqual(may);
    const outbox = rowsOf<{ subject: string }>(await database.db.execute(sql`select subject from chat_outbox where subject like 'digest:2024-May%' order by id`));
    expect(outbox[0]?.subject).toBe('digest:2024-May');
    // The digest queued on release day already carries CISA's flags (KEV was stored first).
    const [post] = rowsOf<{ payload: { text: string } }>(await database.db.execute(sql`select payload from chat_outbox where subject = 'digest:2024-May'`));
    expect(post!.payload.text).toContain('2024-May');
  });

  it('a truncated document the next day is refused and the stored release stays as it was', async () => {
    const before = (await listReleases(database.db)).find((r) => r.id === '2024-May')!;
    mayResponses = ['truncated'];
    clock = new Date('2024-05-15T17:10:00Z');
    await until('the failed re-read', async () => logLines.some((line) => line.includes('read failed')));
    expect(count('/cvrf/2024-May')).toBe(3);
    expect(await loadRelease(database.db, '2024-May')).toEqual(may);
    const after = (await listReleases(database.db)).find((r) => r.id === '2024-May')!;
    expect(after).toEqual(before);
    // After the poll interval it reads again, gets the good document, and finds nothing changed.
    clock = new Date('2024-05-15T17:16:00Z');
    await until('the retried re-read', async () => count('/cvrf/2024-May') >= 4);
    await until('the check time to move', async () => (await listReleases(database.db)).find((r) => r.id === '2024-May')!.fetchedAt.getTime() === clock.getTime());
    expect(Number(rowsOf<{ n: number | string }>(await database.db.execute(sql`select count(*) as n from release_changes`))[0]!.n)).toBe(0);
  });
});

/**
 * A document MSRC keeps serving that patchbay refuses: every poll reads it again (a new revision may fix it),
 * but the log says so once per document, not once per poll.
 */
describe('release watcher and a document it refuses', () => {
  let database: TestDatabase;
  let server: http.Server;
  let base: string;
  let cvrf = '';
  const logLines: Array<{ level: number; msg: string }> = [];
  const edgeCases = JSON.parse(readFileSync(path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json'), 'utf8')) as {
    DocumentTracking: { CurrentReleaseDate: string };
    ProductTree: { Branch: unknown[] };
  };
  const deepRevision = (date: string) => {
    const doc = structuredClone(edgeCases);
    doc.DocumentTracking.CurrentReleaseDate = date;
    let node: Record<string, unknown> = { Type: 2, Name: 'leaf' };
    for (let i = 0; i < 1000; i++) node = { Type: 0, Name: 'n', Items: [node] };
    doc.ProductTree.Branch = [node];
    return JSON.stringify(doc);
  };

  beforeAll(async () => {
    database = await openTestDatabase();
    server = http.createServer((request, response) => {
      if (request.url === '/updates') {
        response.writeHead(200).end(JSON.stringify({ value: [{ ID: '2024-Jun', DocumentTitle: 'June 2024 Security Updates', CvrfUrl: `${base}cvrf/2024-Jun` }] }));
      } else if (request.url === '/cvrf/2024-Jun') {
        response.writeHead(200, { 'content-type': 'application/json' }).end(cvrf);
      } else {
        response.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }, 60_000);

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await database?.close();
  });

  it('warns once per refused document, again for a new revision, and reads a good one', async () => {
    const log = pino({ level: 'debug' }, new Writable({ write: (chunk, _enc, done) => (logLines.push(JSON.parse(String(chunk))), done()) }));
    const deps = {
      database,
      config: { msrcApiUrl: base, kevUrl: `${base}kev.json` },
      log,
      attempts: memoryAttemptLog(),
      failures: memoryFailureLog(),
      fetch: { attempts: 1, timeoutMs: 10_000 },
    };
    const refusals = () => logLines.filter((line) => line.level === 40 && line.msg.startsWith('release watch: read failed'));
    // June 2024's Patch Tuesday is the 11th, 17:00 UTC; a poll is due every 5 minutes until the month is stored.
    const tick = async (minutes: number) => runWatchTick(deps, new Date(Date.UTC(2024, 5, 11, 17, minutes)));

    cvrf = deepRevision('2024-06-11T07:00:00');
    for (const minutes of [1, 7, 13]) {
      const report = await tick(minutes);
      expect(report.release).toMatchObject({ ok: false, error: expect.stringContaining('ProductTree.Branch[0].Items[0]') });
    }
    expect(refusals()).toHaveLength(1);

    cvrf = deepRevision('2024-06-12T07:00:00');
    await tick(19);
    await tick(25);
    expect(refusals()).toHaveLength(2);

    cvrf = JSON.stringify(edgeCases);
    expect((await tick(31)).release).toMatchObject({ ok: true, releaseId: '2024-Jun', outcome: 'new' });
  });
});
