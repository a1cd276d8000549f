/**
 * Reading a JSON document from an http(s) URL, a file:// URL or a file path. HTTP reads time out, and network
 * errors, 5xx and 429 are retried with exponential backoff and full jitter (Retry-After wins when given).
 * The whole body is read before anything is returned: a half-read document is an error, never a result.
 * Nothing larger than maxBytes is read, from a server or a file: the byte count is checked as it arrives.
 * readConditional sends the validators of an earlier answer (If-None-Match, If-Modified-Since; RFC 9110 §13.1) and
 * reports a 304 as "not modified" without a body; a server that sends no validators is simply read in full.
 */
import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DocumentError } from './json-text.ts';

/**
 * The most read of one document. MSRC's biggest months are about 3 MB and CISA's catalog about 1.5 MB; a
 * 200 MB answer took over a gigabyte of memory to parse, so anything near this is not what was asked for.
 */
export const MAX_DOCUMENT_BYTES = 64 * 1024 * 1024;

export interface FetchOptions {
  /** Per attempt, covering headers and body. */
  timeoutMs?: number;
  /** Total attempts, including the first. */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  headers?: Record<string, string>;
  fetch?: typeof globalThis.fetch;
  /** Injected so tests need not wait; defaults to a real timer. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Default MAX_DOCUMENT_BYTES. */
  maxBytes?: number;
}

export class FetchError extends Error {
  constructor(
    readonly url: string,
    message: string,
    readonly status?: number,
    /** What the server's last Retry-After asked for, so a poller can wait that long before asking again. */
    readonly retryAfterMs?: number,
  ) {
    super(`${url}: ${message}`);
    this.name = 'FetchError';
  }
}

/** The validators of an answer (RFC 9110 §8.8), as the server wrote them; either may be absent. */
export interface Validators {
  etag?: string;
  lastModified?: string;
}

export type ConditionalRead = { notModified: true; validators: Validators } | { notModified: false; text: string; validators: Validators };

function validatorsOf(response: Response): Validators {
  const etag = response.headers.get('etag') ?? undefined;
  const lastModified = response.headers.get('last-modified') ?? undefined;
  return { ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
}

function conditionalHeaders(validators: Validators | undefined): Record<string, string> {
  // Both are sent when both are known: a server that understands If-None-Match ignores the other (§13.1.3).
  return {
    ...(validators?.etag ? { 'If-None-Match': validators.etag } : {}),
    ...(validators?.lastModified ? { 'If-Modified-Since': validators.lastModified } : {}),
  };
}

const RETRYABLE_STATUS = (status: number) => status === 429 || status >= 500;

export function isUrl(location: string): boolean {
  return /^(https?|file):\/\//i.test(location);
}

/** Retry-After is either seconds or an HTTP date. */
function retryAfterMs(header: string | null, nowMs: number): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

class TooLarge extends Error {}

function tooLarge(source: string, maxBytes: number, declared?: number): DocumentError {
  const size = declared === undefined ? `more than ${sizeOf(maxBytes)}` : sizeOf(declared);
  const error = new DocumentError(source, [`${size}, larger than the ${sizeOf(maxBytes)} a document may be (MSRC's months are a few MB); not read`]);
  // Refused for its size alone: a watcher reports it once, not at every poll.
  error.fingerprint = `too large: ${size}`;
  return error;
}

function sizeOf(bytes: number): string {
  if (bytes < 1024 * 1024) return `${bytes} bytes`;
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MB`;
}

/** Collects chunks, throwing TooLarge as soon as they pass `maxBytes`; the caller stops reading. */
function byteCounter(maxBytes: number) {
  const chunks: Uint8Array[] = [];
  let total = 0;
  return {
    add(chunk: Uint8Array) {
      total += chunk.byteLength;
      if (total > maxBytes) throw new TooLarge();
      chunks.push(chunk);
    },
    /** As response.text() does: UTF-8, a byte-order mark dropped, a bad byte replaced. */
    text: () => new TextDecoder().decode(Buffer.concat(chunks, total)),
  };
}

async function readFileText(file: string, maxBytes: number): Promise<string> {
  const counter = byteCounter(maxBytes);
  try {
    // A device or a pipe has no size to check first; the count holds for those too.
    for await (const chunk of createReadStream(file, { end: maxBytes })) counter.add(chunk as Buffer);
  } catch (error) {
    if (error instanceof TooLarge) throw tooLarge(file, maxBytes);
    const code = (error as NodeJS.ErrnoException).code;
    throw new FetchError(file, code === 'ENOENT' ? 'no such file' : error instanceof Error ? error.message : String(error));
  }
  return counter.text();
}

async function readBody(response: Response, location: string, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge(location, maxBytes, declared);
  }
  const counter = byteCounter(maxBytes);
  if (!response.body) return '';
  const reader = response.body.getReader();
  try {
    for (let part = await reader.read(); !part.done; part = await reader.read()) counter.add(part.value);
  } catch (error) {
    await reader.cancel().catch(() => undefined);
    throw error instanceof TooLarge ? tooLarge(location, maxBytes) : error;
  }
  return counter.text();
}

export async function readText(location: string, options: FetchOptions = {}): Promise<string> {
  const read = await readConditional(location, undefined, options);
  if (read.notModified) throw new FetchError(location, 'HTTP 304 to a request that was not conditional', 304);
  return read.text;
}

/** A 304 is "not modified" only when validators were sent; the validators returned are those to send next time. */
export async function readConditional(location: string, validators: Validators | undefined, options: FetchOptions = {}): Promise<ConditionalRead> {
  const maxBytes = options.maxBytes ?? MAX_DOCUMENT_BYTES;
  if (!/^https?:\/\//i.test(location)) {
    return { notModified: false, text: await readFileText(/^file:\/\//i.test(location) ? fileURLToPath(location) : location, maxBytes), validators: {} };
  }
  const conditional = conditionalHeaders(validators);
  const asked = Object.keys(conditional).length > 0;
  const attempts = options.attempts ?? 4;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const base = options.baseDelayMs ?? 500;
  const cap = options.maxDelayMs ?? 30_000;
  const doFetch = options.fetch ?? globalThis.fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;

  let lastError: FetchError | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let delay: number | undefined;
    try {
      const response = await doFetch(location, {
        headers: { Accept: 'application/json', ...options.headers, ...conditional },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.ok) return { notModified: false, text: await readBody(response, location, maxBytes), validators: validatorsOf(response) };
      await response.body?.cancel().catch(() => undefined);
      // A 304 may carry only the ETag (§15.4.5): what it leaves out is still what was sent.
      if (response.status === 304 && asked) return { notModified: true, validators: { ...validators, ...validatorsOf(response) } };
      delay = retryAfterMs(response.headers.get('retry-after'), Date.now());
      lastError = new FetchError(location, `HTTP ${response.status} ${response.statusText}`.trim(), response.status, delay);
      if (!RETRYABLE_STATUS(response.status)) throw lastError;
    } catch (error) {
      // A document refused for what it is: asking again brings the same.
      if (error instanceof DocumentError) throw error;
      if (error instanceof FetchError && error === lastError && !RETRYABLE_STATUS(error.status ?? 0)) throw error;
      if (!(error instanceof FetchError)) {
        const name = error instanceof Error ? error.name : '';
        const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
        lastError = new FetchError(
          location,
          name === 'TimeoutError' || name === 'AbortError'
            ? `no complete answer within ${timeoutMs} ms`
            : `network error (${error instanceof Error ? error.message : String(error)}${cause})`,
        );
      }
    }
    if (attempt < attempts) {
      // Full jitter keeps many pollers from retrying in step after an outage.
      await sleep(delay ?? Math.min(cap, random() * base * 2 ** (attempt - 1)));
    }
  }
  throw new FetchError(
    location,
    `gave up after ${attempts} attempts: ${lastError?.message.slice(location.length + 2) ?? 'unknown error'}`,
    lastError?.status,
    lastError?.retryAfterMs,
  );
}
