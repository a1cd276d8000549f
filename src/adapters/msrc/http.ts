/**
 * Reading a JSON document from an http(s) URL, a file:// URL or a file path. HTTP reads time out, and network
 * errors, 5xx and 429 are retried with exponential backoff and full jitter (Retry-After wins when given).
 * The whole body is read before anything is returned: a half-read document is an error, never a result.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

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
}

export class FetchError extends Error {
  constructor(
    readonly url: string,
    message: string,
    readonly status?: number,
  ) {
    super(`${url}: ${message}`);
    this.name = 'FetchError';
  }
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

export async function readText(location: string, options: FetchOptions = {}): Promise<string> {
  if (!/^https?:\/\//i.test(location)) {
    const file = /^file:\/\//i.test(location) ? fileURLToPath(location) : location;
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new FetchError(file, code === 'ENOENT' ? 'no such file' : error instanceof Error ? error.message : String(error));
    }
  }
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
        headers: { Accept: 'application/json', ...options.headers },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.ok) return await response.text();
      await response.body?.cancel().catch(() => undefined);
      lastError = new FetchError(location, `HTTP ${response.status} ${response.statusText}`.trim(), response.status);
      if (!RETRYABLE_STATUS(response.status)) throw lastError;
      delay = retryAfterMs(response.headers.get('retry-after'), Date.now());
    } catch (error) {
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
  throw new FetchError(location, `gave up after ${attempts} attempts: ${lastError?.message.slice(location.length + 2) ?? 'unknown error'}`, lastError?.status);
}
