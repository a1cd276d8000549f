/**
 * Download links for archived report files, for Teams: a bot cannot attach a file to a channel or group post, and
 * the file consent card works only in a 1:1 chat, one consent per file. So the champion's card carries links to
 * patchbay's own HTTP route `/reports/file?id=…&exp=…&sig=…`, where `sig` is an HMAC-SHA256 of the id and the
 * expiry under a server secret (REPORT_LINK_SECRET): unguessable, good until `exp`, and the file is served from the
 * archive after its SHA-256 is checked. Anyone holding the link until it expires can download the file: the same
 * trust as the Teams message that carries it.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { AppDatabase } from '../db/client.ts';
import { ArchiveIntegrityError, fetchArchived } from '../db/report-archive-repo.ts';
import type { Logger } from '../log.ts';

export const REPORT_LINK_PATH = '/reports/file';

const signature = (secret: string, id: number, exp: number): string => createHmac('sha256', secret).update(`report-file:${id}:${exp}`).digest('base64url');

/** A link to archived file `id`, good until `expiresAt` (to the second). */
export function signReportLink(secret: string, baseUrl: string, id: number, expiresAt: Date): string {
  const exp = Math.floor(expiresAt.getTime() / 1000);
  const url = new URL(REPORT_LINK_PATH, baseUrl);
  url.search = new URLSearchParams({ id: String(id), exp: String(exp), sig: signature(secret, id, exp) }).toString();
  return url.toString();
}

/** The signer the report use-case is handed, from the configuration. */
export function reportLinkSigner(config: { secret: string; publicUrl: string }): (id: number, expiresAt: Date) => string {
  return (id, expiresAt) => signReportLink(config.secret, config.publicUrl, id, expiresAt);
}

/** The archived file id a link's query grants at `now`, or why not. Pure but for the HMAC. */
export function verifyReportLink(secret: string, query: URLSearchParams, now: Date): { ok: true; id: number } | { ok: false; status: 403; why: string } {
  const id = Number(query.get('id'));
  const exp = Number(query.get('exp'));
  const sig = query.get('sig') ?? '';
  if (!Number.isSafeInteger(id) || id <= 0 || !Number.isSafeInteger(exp)) return { ok: false, status: 403, why: 'not a report link' };
  const expected = Buffer.from(signature(secret, id, exp));
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, status: 403, why: 'not a valid report link' };
  if (exp * 1000 <= now.getTime()) return { ok: false, status: 403, why: 'this link has expired: ask your IT provider for a new copy' };
  return { ok: true, id };
}

/** The route: the file as archived, or 403/404 with a short reason (never the secret or the SQL). */
export function reportDownloadHandler(options: { db: AppDatabase; secret: string; now: () => Date; log: Logger }) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const deny = (status: number, text: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`${text}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return deny(405, 'GET only');
    const granted = verifyReportLink(options.secret, new URL(req.url ?? '/', 'http://local').searchParams, options.now());
    if (!granted.ok) return deny(granted.status, granted.why);
    try {
      const file = await fetchArchived(options.db, granted.id);
      if (!file) return deny(404, 'no such report file');
      res.writeHead(200, {
        'content-type': file.mimeType,
        'content-length': String(file.bytes.length),
        'content-disposition': `attachment; filename="${file.fileName.replace(/[^A-Za-z0-9._-]/g, '_')}"`,
        'cache-control': 'no-store',
        'x-content-sha256': file.sha256,
      });
      res.end(req.method === 'HEAD' ? undefined : file.bytes);
    } catch (error) {
      if (!(error instanceof ArchiveIntegrityError)) throw error;
      options.log.error({ id: granted.id }, error.message);
      deny(500, 'this report file failed its integrity check; your IT provider has been told');
    }
  };
}
