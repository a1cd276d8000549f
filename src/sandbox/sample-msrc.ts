/**
 * A local stand-in for MSRC's CVRF API and CISA's KEV feed, for the sandbox (which cannot reach either). The real
 * release watcher reads it through MSRC_API_URL and KEV_URL, so jumping the clock to Patch Tuesday makes the
 * watcher find the month exactly as it would find Microsoft's: the index lists only months published by the
 * sandbox's clock, and each month's document is the project's sample release for that month.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { DateTime } from 'luxon';
import { currentRelease, parseReleaseId, releaseMonth } from '../domain/calendar.ts';
import { sampleCvrf, sampleKev, sampleRevisionAt, sampleUpdatesIndex } from './sample-release.ts';
import { notModified, notModifiedHeaders, validatorHeaders, type Representation } from './emulators/conditional-get.ts';

export interface SampleMsrc {
  /** For MSRC_API_URL: `{url}updates` and `{url}cvrf/2026-Dec`. */
  msrcUrl: string;
  kevUrl: string;
  close(): Promise<void>;
}

/** How many months back the index reaches: enough for the watcher, which only asks for the current one. */
const INDEX_MONTHS = 3;

export interface SampleMsrcOptions {
  clock: () => Date;
  /**
   * Serve this month only (the demo's), from its Patch Tuesday on: `document` when given (a stored CVRF, e.g. a
   * real month), else the sample. Without it every month is the sample and the index reaches back INDEX_MONTHS.
   */
  release?: { id: string; document?: unknown; publishAt?: Date };
  /** Every request as it arrived, with the status answered: for tests counting what the watcher asks. */
  onRequest?: (request: { path: string; status: number; at: Date; conditional: boolean }) => void;
}

export async function startSampleMsrc(options: SampleMsrcOptions): Promise<SampleMsrc> {
  const only = options.release;
  const publishedMonths = (): string[] => {
    if (only) return publishedOnly(only.id, options.clock(), only.publishAt);
    const latest = currentRelease(DateTime.fromJSDate(options.clock()));
    const months: string[] = [];
    for (let back = INDEX_MONTHS - 1; back >= 0; back--) {
      const at = latest.publishedAt.setZone('UTC').startOf('month').minus({ months: back });
      months.push(releaseMonth(at.year, at.month).id);
    }
    return months;
  };

  // Each month is served at the revision the clock has reached, so the watcher's daily re-read finds revisions
  // (an exploited flag turning Yes, a late CVE) and the thread gets its "what changed" replies.
  const revisionOf = (month: string) => sampleRevisionAt(month, DateTime.fromJSDate(options.clock())) ?? 1;

  // As an origin keeps them: a strong ETag of the bytes, and Last-Modified the clock's instant when they changed.
  const representations = new Map<string, Representation>();
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    const header = (name: string) => (typeof req.headers[name] === 'string' ? (req.headers[name] as string) : undefined);
    const request = { method: req.method ?? 'GET', ifNoneMatch: header('if-none-match'), ifModifiedSince: header('if-modified-since') };
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      const now = options.clock();
      let current: Representation = {};
      if (status === 200) {
        const etag = `"${createHash('sha256').update(text).digest('base64url').slice(0, 27)}"`;
        const known = representations.get(pathname);
        current = known?.etag === etag ? known : { etag, lastModified: new Date(Math.floor(now.getTime() / 1000) * 1000) };
        representations.set(pathname, current);
      }
      const answered = status === 200 && notModified(request, current) ? 304 : status;
      options.onRequest?.({ path: pathname, status: answered, at: now, conditional: request.ifNoneMatch !== undefined || request.ifModifiedSince !== undefined });
      if (answered === 304) return res.writeHead(304, notModifiedHeaders(current, now)).end();
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...validatorHeaders(current) });
      res.end(text);
    };
    if (pathname === '/msrc/updates') return send(200, sampleUpdatesIndex(publishedMonths(), { revisionOf }));
    const month = /^\/msrc\/cvrf\/([^/]+)$/.exec(pathname)?.[1];
    if (month !== undefined) {
      const id = parseReleaseId(decodeURIComponent(month));
      // Like MSRC: a month not yet published by the clock is not there.
      if (!id.ok || !publishedMonths().includes(id.value.id)) return send(404, { error: { code: 'NotFound', message: `no document ${month}` } });
      if (only?.document !== undefined && id.value.id === only.id) return send(200, only.document);
      return send(200, sampleCvrf(id.value.id, { revision: revisionOf(id.value.id) }));
    }
    if (pathname === '/kev.json') {
      const latest = publishedMonths().at(-1) ?? only?.id ?? currentRelease(DateTime.fromJSDate(options.clock())).id;
      return send(200, sampleKev(latest, { revision: revisionOf(latest) }));
    }
    return send(404, { error: { code: 'NotFound', message: pathname } });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    msrcUrl: `${origin}/msrc/`,
    kevUrl: `${origin}/kev.json`,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** The month as a one-entry index once the clock has reached its publication (or `publishAt`: Microsoft is late), as MSRC lists it. */
function publishedOnly(id: string, now: Date, publishAt?: Date): string[] {
  const parsed = parseReleaseId(id);
  if (!parsed.ok) throw new Error(parsed.error);
  return (publishAt?.getTime() ?? parsed.value.publishedAt.toMillis()) <= now.getTime() ? [parsed.value.id] : [];
}
