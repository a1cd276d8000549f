/**
 * HTTP to a Tactical RMM server: `X-API-KEY`, paths with their trailing slash, a request budget, and retries.
 *
 * Why a budget: Tactical publishes no limit and throttles nothing but logins (tacticalrmm/throttles.py), and the
 * server is the MSP's own, shared with its technicians' web UI; a window of thousands of agents must not flood it.
 * Requests are spaced to at most `requestsPerSecond` (per client, i.e. per back end in one process).
 *
 * Why retries differ by request: reads and row edits (GET, PUT) are safe to repeat, so 5xx, timeouts and network
 * errors are retried with backoff. An install POST is retried only on a 5xx answer (the server said it failed;
 * a timeout may have installed). A reboot POST is never repeated here: every call reboots the machine, so after an
 * unclear answer the adapter judges by `boot_time` instead (tactical.ts).
 *
 * The key never leaves the header: errors name the method, path and status, and anything echoed back is scrubbed.
 */

import { DeployerUnavailable } from './port.ts';

/** The manager's name as engineers read it. */
export const TACTICAL = 'Tactical RMM';

export type RetryRule = 'safe' | 'on-5xx' | 'never';

export interface TacticalClientOptions {
  /** The API's base URL, e.g. https://api.rmm.example.com/ */
  url: string;
  apiKey: string;
  requestsPerSecond?: number;
  timeoutMs?: number;
  retries?: number;
  backoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** Tactical answered with an error status: 400 (its own message), 401/403 (the key), 404, 5xx. */
export class TacticalHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly detail: string,
  ) {
    super(message);
    this.name = 'TacticalHttpError';
  }
}

/**
 * Tactical did not answer (timeout, connection refused), or kept answering 5xx, through every retry: the port's
 * DeployerUnavailable, so a run pauses rather than fails. The message names the request; the key is never in it.
 */
export class TacticalUnavailableError extends DeployerUnavailable {
  constructor(
    message: string,
    /** The last status seen, when there was one. */
    readonly status: number | undefined,
    host: string,
    reason: string,
  ) {
    super(TACTICAL, host, reason);
    this.message = message;
    this.name = 'TacticalUnavailableError';
  }
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Spaces calls evenly: each takes the next free slot 1/rate seconds after the previous one. */
export class RequestBudget {
  private nextSlot = 0;
  constructor(
    private readonly perSecond: number,
    private readonly sleep: (ms: number) => Promise<void> = realSleep,
  ) {}

  async take(): Promise<void> {
    const now = Date.now();
    const slot = Math.max(now, this.nextSlot);
    this.nextSlot = slot + 1000 / this.perSecond;
    if (slot > now) await this.sleep(slot - now);
  }
}

export class TacticalClient {
  readonly base: string;
  // A #private field: not enumerable, so neither JSON.stringify nor util.inspect nor a logger shows the key.
  readonly #apiKey: string;
  private readonly budget: RequestBudget;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Requests sent, retries included (for benchmarks and the sandbox page). */
  sent = 0;

  constructor(options: TacticalClientOptions) {
    this.base = options.url.endsWith('/') ? options.url : `${options.url}/`;
    this.#apiKey = options.apiKey;
    this.sleep = options.sleep ?? realSleep;
    this.budget = new RequestBudget(options.requestsPerSecond ?? 10);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 500;
  }

  /** Host (and port) of the server: what engineers may be told, unlike the key. */
  get host(): string {
    return new URL(this.base).host;
  }

  /** Removes the key from any text that may have echoed it (a proxy's error page, an exception's message). */
  redact(text: string): string {
    return this.#apiKey === '' ? text : text.split(this.#apiKey).join('[redacted]');
  }

  async get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path, undefined, 'safe');
  }

  async put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body, 'safe');
  }

  async post<T>(path: string, retry: RetryRule, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body, retry);
  }

  async request<T>(method: string, path: string, body: unknown, retry: RetryRule): Promise<T> {
    // Django routes end in "/": without it a GET is redirected and a POST fails (research §1.1).
    if (!path.split('?')[0]!.endsWith('/')) throw new Error(`Tactical paths end in "/": ${method} ${path}`);
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.once(method, path, body);
      if (outcome.ok) return outcome.value as T;
      const canRetry = attempt < this.retries && (retry === 'safe' ? outcome.retryable : retry === 'on-5xx' ? outcome.status !== undefined && outcome.status >= 500 : false);
      if (!canRetry) throw outcome.error;
      await this.sleep(this.backoffMs * 2 ** attempt);
    }
  }

  private async once(method: string, path: string, body: unknown): Promise<{ ok: true; value: unknown } | { ok: false; error: Error; retryable: boolean; status?: number }> {
    await this.budget.take();
    this.sent++;
    const where = `Tactical RMM ${method} /${path}`;
    let response: Response;
    try {
      response = await fetch(new URL(path, this.base), {
        method,
        headers: { 'X-API-KEY': this.#apiKey, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const why = (error as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : this.redact((error as Error).message);
      return { ok: false, error: new TacticalUnavailableError(`${where}: ${why}`, undefined, this.host, why), retryable: true };
    }
    const text = await response.text().catch(() => '');
    if (response.ok) return { ok: true, value: text === '' ? null : parseJson(text) };
    const detail = this.redact(describeBody(text));
    if (response.status >= 500) {
      return { ok: false, error: new TacticalUnavailableError(`${where}: HTTP ${response.status}`, response.status, this.host, `HTTP ${response.status}`), retryable: true, status: response.status };
    }
    return { ok: false, error: new TacticalHttpError(`${where}: HTTP ${response.status} ${detail}`, response.status, detail), retryable: false, status: response.status };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Tactical's errors: a bare JSON string (notify_error), DRF's {"detail": …}, or a field map. Short either way. */
function describeBody(text: string): string {
  const parsed = parseJson(text);
  const shown = typeof parsed === 'string' ? parsed : typeof parsed === 'object' && parsed !== null && 'detail' in parsed ? String((parsed as { detail: unknown }).detail) : JSON.stringify(parsed);
  return shown.length > 200 ? `${shown.slice(0, 200)}…` : shown;
}
