/**
 * A local stand-in for MSRC's CVRF API and CISA's KEV feed, for the sandbox (which cannot reach either). The real
 * release watcher reads it through MSRC_API_URL and KEV_URL, so jumping the clock to Patch Tuesday makes the
 * watcher find the month exactly as it would find Microsoft's: the index lists only months published by the
 * sandbox's clock, and each month's document is the project's sample release for that month.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { DateTime } from 'luxon';
import { currentRelease, parseReleaseId, releaseMonth } from '../domain/calendar.ts';
import { sampleCvrf, sampleKev, sampleRevisionAt, sampleUpdatesIndex } from './sample-release.ts';

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
  release?: { id: string; document?: unknown };
}

export async function startSampleMsrc(options: SampleMsrcOptions): Promise<SampleMsrc> {
  const only = options.release;
  const publishedMonths = (): string[] => {
    if (only) return publishedOnly(only.id, options.clock());
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

  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
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

/** The month as a one-entry index once the clock has reached its publication, as MSRC lists it. */
function publishedOnly(id: string, now: Date): string[] {
  const parsed = parseReleaseId(id);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value.publishedAt.toMillis() <= now.getTime() ? [parsed.value.id] : [];
}
