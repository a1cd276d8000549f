import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DateTime } from 'luxon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MsrcClient, monthlyReleases, readRelease } from '../../src/adapters/msrc/client.ts';
import { FetchError, readConditional, readText } from '../../src/adapters/msrc/http.ts';
import { DocumentError } from '../../src/adapters/msrc/json-text.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const fixture = path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json');
const fixtureText = readFileSync(fixture, 'utf8');
const shared = path.resolve(repoRoot, '../shared/fixtures');
const hasIndex = existsSync(path.join(shared, 'msrc/updates-index.json'));
if (!hasIndex) console.warn(`[msrc-fetch] ${shared} is absent: the real updates-index test is skipped`);

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let server: Server;
let base: string;
let handler: Handler = (_req, res) => res.end();
const seen: Array<{ url: string; accept: string | undefined }> = [];
const noWait = { sleep: async () => undefined, baseDelayMs: 1 };

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', accept: req.headers.accept });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cvrf/v3.0/`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('MSRC over HTTP', () => {
  it('retries a 500 and then reads the month with Accept: application/json', async () => {
    seen.length = 0;
    let calls = 0;
    handler = (_req, res) => {
      calls++;
      if (calls === 1) {
        res.statusCode = 500;
        res.end('oops');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(fixtureText);
    };
    const delays: number[] = [];
    const client = new MsrcClient(base, { sleep: async (ms) => void delays.push(ms), random: () => 0.5, baseDelayMs: 100 });
    const release = await client.getRelease('2024-jun');
    expect(release.id).toBe('2024-Jun');
    expect(seen.map((s) => s.url)).toEqual(['/cvrf/v3.0/cvrf/2024-Jun', '/cvrf/v3.0/cvrf/2024-Jun']);
    expect(seen[0]?.accept).toBe('application/json');
    expect(delays).toEqual([50]);
  });

  it('honours Retry-After on a 429 and backs off exponentially otherwise', async () => {
    let calls = 0;
    handler = (_req, res) => {
      calls++;
      if (calls === 1) {
        res.statusCode = 429;
        res.setHeader('retry-after', '7');
        res.end();
      } else if (calls <= 3) {
        res.statusCode = 503;
        res.end();
      } else res.end('{"ok":true}');
    };
    const delays: number[] = [];
    const text = await readText(`${base}x`, { sleep: async (ms) => void delays.push(ms), random: () => 1, baseDelayMs: 100, attempts: 4 });
    expect(text).toBe('{"ok":true}');
    expect(delays).toEqual([7000, 200, 400]);
  });

  it('does not retry a 404 and says which URL failed', async () => {
    let calls = 0;
    handler = (_req, res) => {
      calls++;
      res.statusCode = 404;
      res.end();
    };
    const error = await readText(`${base}missing`, noWait).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toBe(`${base}missing: HTTP 404 Not Found`);
    expect(calls).toBe(1);
  });

  it('times out a response that never finishes', async () => {
    handler = (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.write('{"value": [');
      // never ends
    };
    const error = await readText(`${base}updates`, { ...noWait, timeoutMs: 200, attempts: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as Error).message).toContain('gave up after 2 attempts: no complete answer within 200 ms');
  });

  it('returns nothing from a body cut short', async () => {
    handler = (_req, res) => {
      res.setHeader('content-length', String(fixtureText.length));
      res.write(fixtureText.slice(0, 2000));
      setTimeout(() => res.destroy(), 10);
    };
    const result = await new MsrcClient(base, { ...noWait, attempts: 2 }).getRelease('2024-Jun').then(
      (release) => ({ release }),
      (error: unknown) => ({ error }),
    );
    expect('release' in result).toBe(false);
    expect((result as { error: Error }).error).toBeInstanceOf(FetchError);
    expect((result as { error: Error }).error.message).toMatch(/network error/);
  });

  it('refuses a complete answer that is not the JSON it should be', async () => {
    handler = (_req, res) => res.end(fixtureText.slice(0, 3000));
    await expect(new MsrcClient(base, noWait).getRelease('2024-Jun')).rejects.toThrow(DocumentError);
    await expect(new MsrcClient(base, noWait).getRelease('2024-Jun')).rejects.toThrow(/truncated JSON/);
  });
});

describe('document size', () => {
  it('refuses an answer whose Content-Length is over 64 MB without reading it, and does not ask again', async () => {
    seen.length = 0;
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(200 * 1024 * 1024) });
      res.write('{"DocumentTitle": ');
      // ... and the rest would follow, 200 MB of it.
    };
    const error = await new MsrcClient(base, { ...noWait, attempts: 3, timeoutMs: 20_000 }).getRelease('2024-Jun').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DocumentError);
    expect((error as Error).message).toBe(`${base}cvrf/2024-Jun: 200 MB, larger than the 64 MB a document may be (MSRC's months are a few MB); not read`);
    expect(seen).toHaveLength(1);
  });

  it('stops reading an answer of no stated length once it passes the limit', async () => {
    let sent = 0;
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (!res.destroyed && sent < 512 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    };
    const error = await readText(`${base}updates`, { ...noWait, attempts: 1, timeoutMs: 20_000, maxBytes: 1024 * 1024 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DocumentError);
    expect((error as Error).message).toBe(`${base}updates: more than 1 MB, larger than the 1 MB a document may be (MSRC's months are a few MB); not read`);
    // Socket buffers hold a few megabytes at most; the server was not read to the end.
    expect(sent).toBeLessThan(64 * 1024 * 1024);
  });

  it('refuses a file over the limit, counting while reading', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-msrc-size-'));
    try {
      // Sparse: 65 MB on paper, nothing on disk.
      const huge = path.join(dir, 'huge.json');
      writeFileSync(huge, '{');
      truncateSync(huge, 65 * 1024 * 1024);
      await expect(readRelease(huge)).rejects.toThrow(`${huge}: more than 64 MB, larger than the 64 MB a document may be`);
      await expect(readRelease(fixture, { maxBytes: 1000 })).rejects.toThrow(`${fixture}: more than 1000 bytes, larger than the 1000 bytes a document may be`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('files', () => {
  it('reads a path and a file:// URL alike', async () => {
    expect((await readRelease(fixture)).id).toBe('2024-Jun');
    expect((await readRelease(pathToFileURL(fixture).toString())).id).toBe('2024-Jun');
    await expect(readRelease(path.join(repoRoot, 'nope.json'))).rejects.toThrow(/no such file/);
  });
});

describe('updates index', () => {
  const index = {
    value: [
      { ID: '2024-Feb', DocumentTitle: 'February 2024 Security Updates' },
      { ID: '2024-Mar', DocumentTitle: 'March 2024 Security Updates' },
      { ID: '1999-Sep', DocumentTitle: 'Mariner Release Notes' },
      { ID: '2024-Apr', DocumentTitle: 'April 2024 Early Security Updates' },
    ],
  };

  it('keeps monthly releases whose Patch Tuesday has come, and no other document', () => {
    // 2024-03-12 is March's Patch Tuesday; 09:59 in Redmond is before it, 10:00 is it.
    const before = DateTime.fromISO('2024-03-12T09:59', { zone: 'America/Los_Angeles' });
    expect(monthlyReleases(index, before).map((e) => e.id)).toEqual(['2024-Feb']);
    expect(monthlyReleases(index, before.plus({ minutes: 1 })).map((e) => e.id)).toEqual(['2024-Feb', '2024-Mar']);
  });

  it('names a malformed index entry', () => {
    expect(() => monthlyReleases({ value: [{ DocumentTitle: 'x' }] }, DateTime.utc())).toThrow('value[0].ID: expected a string, got nothing');
  });

  it.skipIf(!hasIndex)('filters the real index: no Mariner notes, no early updates, no unreleased month', () => {
    const json = JSON.parse(readFileSync(path.join(shared, 'msrc/updates-index.json'), 'utf8'));
    const now = DateTime.fromISO('2026-06-01T00:00:00Z');
    const ids = monthlyReleases(json, now).map((e) => e.id);
    expect(ids).toContain('2024-Feb');
    expect(ids).toContain('2026-May');
    expect(ids).not.toContain('2026-Jun');
    expect(ids).not.toContain('2026-Jul');
    expect(ids).not.toContain('1999-Sep');
    expect(monthlyReleases(json, DateTime.fromISO('2026-06-09T17:00:00Z')).map((e) => e.id)).toContain('2026-Jun');
  });

  it('lists releases through the client', async () => {
    handler = (_req, res) => res.end(JSON.stringify(index));
    seen.length = 0;
    const entries = await new MsrcClient(base, noWait).listReleases(DateTime.fromISO('2024-04-01T00:00:00Z'));
    expect(seen.map((s) => s.url)).toEqual(['/cvrf/v3.0/updates']);
    expect(entries.map((e) => e.id)).toEqual(['2024-Feb', '2024-Mar']);
  });
});

describe('conditional reads', () => {
  it('sends the validators it was given, and a 304 is "not modified" keeping what the 304 left out', async () => {
    const asked: Array<{ inm?: string; ims?: string }> = [];
    handler = (req, res) => {
      asked.push({ inm: req.headers['if-none-match'], ims: req.headers['if-modified-since'] });
      if (req.headers['if-none-match'] === '"v1"') return res.writeHead(304, { etag: '"v1"' }).end();
      res.writeHead(200, { etag: '"v1"', 'last-modified': 'Tue, 14 May 2024 17:03:00 GMT' }).end('{"value":[]}');
    };
    const first = await readConditional(`${base}updates`, undefined, noWait);
    expect(first).toEqual({ notModified: false, text: '{"value":[]}', validators: { etag: '"v1"', lastModified: 'Tue, 14 May 2024 17:03:00 GMT' } });
    const second = await readConditional(`${base}updates`, first.validators, noWait);
    expect(second).toEqual({ notModified: true, validators: { etag: '"v1"', lastModified: 'Tue, 14 May 2024 17:03:00 GMT' } });
    expect(asked).toEqual([{}, { inm: '"v1"', ims: 'Tue, 14 May 2024 17:03:00 GMT' }]);
  });

  it('a server without validators is read in full every time; a 304 nobody asked for is an error', async () => {
    handler = (_req, res) => res.writeHead(200).end('{"value":[]}');
    expect(await readConditional(`${base}updates`, {}, noWait)).toEqual({ notModified: false, text: '{"value":[]}', validators: {} });
    handler = (_req, res) => res.writeHead(304).end();
    await expect(readText(`${base}updates`, noWait)).rejects.toMatchObject({ name: 'FetchError', status: 304 });
  });

  it('a document fetch that gives up on 429 carries the Retry-After for the poller', async () => {
    handler = (_req, res) => res.writeHead(429, { 'retry-after': '120' }).end();
    const client = new MsrcClient(base, { ...noWait, attempts: 2 });
    await expect(client.getReleaseIfChanged('2024-May', { etag: '"v1"' })).rejects.toMatchObject({ name: 'FetchError', status: 429, retryAfterMs: 120_000 });
  });
});
