/**
 * Conditional GET as an origin server evaluates it, from RFC 9110 (HTTP Semantics), for the emulators:
 * - §13.2.1: preconditions are evaluated only when the answer without them would be 2xx (a 404 stays a 404).
 * - §13.2.2 order: If-None-Match first; If-Modified-Since only when If-None-Match is absent (§13.1.3).
 * - §13.1.2 If-None-Match: "*" matches any current representation; otherwise a list of entity tags compared with
 *   the *weak* comparison function (§8.8.3.2: opaque tags equal, W/ prefixes ignored). A match on GET/HEAD is 304.
 * - §13.1.3 If-Modified-Since: ignored unless GET/HEAD, unless it is one valid HTTP-date, and when the resource has
 *   no modification date; 304 when the representation was not modified after that date (one-second resolution).
 * - §15.4.5 a 304 has no content and carries the ETag (and Date) a 200 would; Last-Modified only when there is no
 *   ETag, since it then guides the cache.
 */

export interface Representation {
  /** A complete entity-tag as sent in ETag: `"abc"` or `W/"abc"`. */
  etag?: string;
  lastModified?: Date;
}

export interface ConditionalRequest {
  method: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
}

const ENTITY_TAG = /^(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$/;

/** The opaque tags of an If-None-Match list; undefined for "*", and malformed members are skipped. */
function listedOpaqueTags(field: string): string[] | undefined {
  if (field.trim() === '*') return undefined;
  const tags: string[] = [];
  // Commas may sit inside an opaque tag only in theory (etagc excludes nothing but DQUOTE); split on the quotes.
  for (const match of field.matchAll(/(W\/)?"[^"]*"/g)) {
    const parsed = ENTITY_TAG.exec(match[0]);
    if (parsed) tags.push(parsed[2]!);
  }
  return tags;
}

function opaqueTag(etag: string): string | undefined {
  return ENTITY_TAG.exec(etag.trim())?.[2];
}

/** An IMF-fixdate, or the obsolete RFC 850 and asctime forms a recipient must accept (§5.6.7). */
function parseHttpDate(value: string): Date | undefined {
  const text = value.trim();
  const imf = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;
  const rfc850 = /^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \d{2}-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
  const asctime = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;
  if (!imf.test(text) && !rfc850.test(text) && !asctime.test(text)) return undefined;
  const ms = Date.parse(asctime.test(text) ? `${text} GMT` : text);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

/** True when the request's conditions say "you already have it": answer 304. Only for a would-be 2xx answer. */
export function notModified(request: ConditionalRequest, current: Representation): boolean {
  const method = request.method.toUpperCase();
  if (method !== 'GET' && method !== 'HEAD') return false;
  if (request.ifNoneMatch !== undefined) {
    const listed = listedOpaqueTags(request.ifNoneMatch);
    if (listed === undefined) return true;
    const mine = current.etag === undefined ? undefined : opaqueTag(current.etag);
    return mine !== undefined && listed.includes(mine);
  }
  if (request.ifModifiedSince === undefined || current.lastModified === undefined) return false;
  const since = parseHttpDate(request.ifModifiedSince);
  if (!since) return false;
  return Math.floor(current.lastModified.getTime() / 1000) <= Math.floor(since.getTime() / 1000);
}

/** The header fields a 304 carries for this representation (§15.4.5). */
export function notModifiedHeaders(current: Representation, now: Date): Record<string, string> {
  if (current.etag !== undefined) return { etag: current.etag, date: now.toUTCString() };
  return { date: now.toUTCString(), ...(current.lastModified ? { 'last-modified': current.lastModified.toUTCString() } : {}) };
}

/** The validators a 200 carries. */
export function validatorHeaders(current: Representation): Record<string, string> {
  return { ...(current.etag ? { etag: current.etag } : {}), ...(current.lastModified ? { 'last-modified': current.lastModified.toUTCString() } : {}) };
}
