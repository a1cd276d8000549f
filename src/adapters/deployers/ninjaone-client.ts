/**
 * HTTP to NinjaOne's public API v2: OAuth client credentials, a request budget, and retries that never repeat an
 * action (research §2.1, §2.7).
 *
 * The token: `POST /ws/oauth/token` (client credentials, scopes `monitoring management control`, never
 * `offline_access`: EU rejects it with this grant). It is cached and renewed `renewBeforeSeconds` before it
 * expires, on the injected clock, so a long window does not meet an expired token; if one is refused anyway (401:
 * revoked, server restarted), a fresh one is fetched and the request is sent once more, never more.
 *
 * The budget: NinjaOne publishes no limits and answers 429 when it has had enough, so requests are spaced to at most
 * `requestsPerSecond`, and a 429 waits its `Retry-After` before the same request is tried again (a 429 was refused,
 * so even a POST may be repeated).
 *
 * Retries: GET, PUT and DELETE are retried with backoff after 5xx, timeouts and network errors. A POST (a script
 * run, a reboot, a scan) is never repeated after a timeout or a 5xx: it may have reached the device, and NinjaOne
 * has no job id or idempotency key to tell; the adapter reads the device's activities instead.
 *
 * The client secret and the tokens never leave their headers and form: errors name the method, path and status,
 * and anything echoed back is scrubbed.
 */
import { RequestBudget } from './tactical-client.ts';

export interface NinjaOneClientOptions {
  /** The region's host, e.g. https://eu.ninjarmm.com */
  url: string;
  clientId: string;
  clientSecret: string;
  requestsPerSecond?: number;
  timeoutMs?: number;
  retries?: number;
  backoffMs?: number;
  renewBeforeSeconds?: number;
  /** The clock tokens expire on. */
  now?: () => Date;
  sleep?: (ms: number) => Promise<void>;
}

/** NinjaOne answered with an error status (4xx, or a 429 through every retry). */
export class NinjaOneHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly detail: string,
  ) {
    super(message);
    this.name = 'NinjaOneHttpError';
  }
}

/** NinjaOne did not answer (timeout, connection refused) or answered 5xx: whether it acted is unknown. */
export class NinjaOneUnavailableError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
    this.name = 'NinjaOneUnavailableError';
  }
}

const SCOPES = 'monitoring management control';
const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

type Once = { ok: true; value: unknown } | { ok: false; error: Error; status?: number; retryAfterMs?: number; unclear: boolean };

export class NinjaOneClient {
  readonly base: string;
  readonly #clientId: string;
  readonly #clientSecret: string;
  #token: { value: string; expiresAt: number } | undefined;
  #fetching: Promise<string> | undefined;
  private readonly budget: RequestBudget;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly renewBeforeMs: number;
  private readonly now: () => Date;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Requests sent, token requests and retries included. */
  sent = 0;
  /** Tokens fetched (for tests and the sandbox page). */
  tokensFetched = 0;

  constructor(options: NinjaOneClientOptions) {
    this.base = options.url.endsWith('/') ? options.url : `${options.url}/`;
    this.#clientId = options.clientId;
    this.#clientSecret = options.clientSecret;
    this.sleep = options.sleep ?? realSleep;
    this.budget = new RequestBudget(options.requestsPerSecond ?? 10, this.sleep);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 500;
    this.renewBeforeMs = (options.renewBeforeSeconds ?? 300) * 1000;
    this.now = options.now ?? (() => new Date());
  }

  redact(text: string): string {
    let out = text;
    for (const secret of [this.#clientSecret, this.#token?.value ?? '']) if (secret !== '') out = out.split(secret).join('[redacted]');
    return out;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let renewed = false;
    for (let attempt = 0; ; ) {
      const token = await this.token();
      const outcome = await this.once(method, path, body, { authorization: `Bearer ${token}` });
      if (outcome.ok) return outcome.value as T;
      if (outcome.status === 401 && !renewed) {
        // One fresh token, one more try: a second 401 is the credentials, not the token.
        renewed = true;
        if (this.#token?.value === token) this.#token = undefined;
        continue;
      }
      if (!(await this.mayRetry(outcome, attempt++, method !== 'POST'))) throw outcome.error;
    }
  }

  /** Waits as the failure asks and says whether to try again: 429 always may; 5xx and silence only if repeatable. */
  private async mayRetry(outcome: Extract<Once, { ok: false }>, attempt: number, repeatable: boolean): Promise<boolean> {
    if (attempt >= this.retries) return false;
    if (outcome.status === 429) {
      await this.sleep(outcome.retryAfterMs ?? this.backoffMs * 2 ** attempt);
      return true;
    }
    if (!outcome.unclear || !repeatable) return false;
    await this.sleep(this.backoffMs * 2 ** attempt);
    return true;
  }

  private async token(): Promise<string> {
    const cached = this.#token;
    if (cached && this.now().getTime() < cached.expiresAt - this.renewBeforeMs) return cached.value;
    // Runs starting at once share one token request.
    this.#fetching ??= this.fetchToken().finally(() => (this.#fetching = undefined));
    return this.#fetching;
  }

  private async fetchToken(): Promise<string> {
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: this.#clientId, client_secret: this.#clientSecret, scope: SCOPES });
    for (let attempt = 0; ; ) {
      const outcome = await this.once('POST', 'ws/oauth/token', form, {});
      if (outcome.ok) {
        const answer = outcome.value as { access_token?: unknown; expires_in?: unknown } | null;
        if (typeof answer?.access_token !== 'string') throw new NinjaOneHttpError('NinjaOne POST /ws/oauth/token: no access_token in the answer', 200, '');
        this.tokensFetched++;
        const lifetime = typeof answer.expires_in === 'number' ? answer.expires_in * 1000 : 3_600_000;
        this.#token = { value: answer.access_token, expiresAt: this.now().getTime() + lifetime };
        return answer.access_token;
      }
      // Asking for a token changes nothing on a device: safe to repeat after anything unclear.
      if (!(await this.mayRetry(outcome, attempt++, true))) throw outcome.error;
    }
  }

  private async once(method: string, path: string, body: unknown, headers: Record<string, string>): Promise<Once> {
    await this.budget.take();
    this.sent++;
    const where = `NinjaOne ${method} /${path.split('?')[0]}`;
    const form = body instanceof URLSearchParams;
    let response: Response;
    try {
      response = await fetch(new URL(path, this.base), {
        method,
        headers: { ...headers, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json' }) },
        ...(body === undefined ? {} : { body: form ? body.toString() : JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const why = (error as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : this.redact((error as Error).message);
      return { ok: false, error: new NinjaOneUnavailableError(`${where}: ${why}`, undefined), unclear: true };
    }
    const text = await response.text().catch(() => '');
    if (response.ok) return { ok: true, value: text === '' ? null : parseJson(text) };
    if (response.status >= 500) return { ok: false, error: new NinjaOneUnavailableError(`${where}: HTTP ${response.status}`, response.status), status: response.status, unclear: true };
    const detail = this.redact(describeBody(text));
    const retryAfter = Number(response.headers.get('retry-after'));
    return {
      ok: false,
      error: new NinjaOneHttpError(`${where}: HTTP ${response.status} ${detail}`, response.status, detail),
      status: response.status,
      unclear: false,
      ...(Number.isFinite(retryAfter) && retryAfter >= 0 && response.headers.has('retry-after') ? { retryAfterMs: retryAfter * 1000 } : {}),
    };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function describeBody(text: string): string {
  const parsed = parseJson(text);
  const o = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  const shown = typeof parsed === 'string' ? parsed : o ? String(o.error_description ?? o.error ?? o.resultCode ?? JSON.stringify(o)) : String(parsed);
  return shown.length > 200 ? `${shown.slice(0, 200)}…` : shown;
}
