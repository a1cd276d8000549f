/**
 * `POST /api/<method>`: parse the arguments, apply injected latency and faults, check the token and the
 * method's rate tier, run the method, and record the call (tests read the log through `calls()`).
 */
import type { IncomingMessage } from 'node:http';
import { JSON_FIELDS, parseArgs, sleep, SlackError, str, type Answer, type Args, type Methods } from './protocol.ts';
import type { RateLimiter } from './rate-limits.ts';
import type { Fault, RecordedCall } from './types.ts';
import type { Workspace } from './workspace.ts';

/** What tests inject and read: faults and latency per method, and the call log. */
export interface ApiControls {
  calls: RecordedCall[];
  faults: Map<string, Fault[]>;
  latency: Map<string, number>;
}

/** The call as tests see it: the token left out, JSON-string fields parsed (kept raw when they did not parse). */
function recordedArgs(args: Args): Args {
  const { token: _token, ...parsed } = args;
  for (const k of JSON_FIELDS) {
    const v = parsed[k];
    if (typeof v !== 'string') continue;
    try {
      parsed[k] = JSON.parse(v);
    } catch {
      // keep the raw string: the call was refused for it
    }
  }
  return parsed;
}

/** The next injected fault for `method`, as an answer; undefined when none is queued. */
function takeFault(controls: ApiControls, limits: RateLimiter, method: string): Answer | undefined {
  const queue = controls.faults.get(method);
  const fault = queue?.[0];
  if (!queue || !fault) return undefined;
  fault.times = (fault.times ?? 1) - 1;
  if (fault.times <= 0) queue.shift();
  if (fault.status === 429) {
    limits.countRateLimited(method);
    return { status: 429, body: { ok: false, error: 'ratelimited' }, headers: { 'retry-after': String(fault.retryAfter ?? 1) } };
  }
  if (fault.status !== undefined && fault.status !== 200) return { status: fault.status, body: `emulated HTTP ${fault.status}` };
  return { status: 200, body: { ok: false, error: fault.error ?? 'fatal_error' } };
}

function authError(ws: Workspace, req: IncomingMessage, args: Args): string | undefined {
  const auth = req.headers.authorization;
  const token = auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length) : str(args.token);
  if (token === undefined || token === '') return 'not_authed';
  return token === ws.botToken ? undefined : 'invalid_auth';
}

function runMethod(ws: Workspace, methods: Methods, method: string, args: Args): Answer {
  try {
    const out = methods[method]!(args, ws.stampClock());
    if ('status' in out && typeof out.status === 'number' && 'body' in out) return out as Answer;
    const { response_metadata, ...rest } = out as Record<string, unknown>;
    return { status: 200, body: { ok: true, ...rest, response_metadata: response_metadata ?? {} } };
  } catch (e) {
    if (e instanceof SlackError) return { status: 200, body: { ok: false, error: e.error, ...e.extra } };
    throw e;
  }
}

export function apiHandler(ws: Workspace, limits: RateLimiter, methods: Methods, controls: ApiControls) {
  return async function handleApi(method: string, req: IncomingMessage, raw: string, query: URLSearchParams): Promise<Answer> {
    const at = ws.clock();
    let args: Args = {};
    const record = (answer: Answer): Answer => {
      const body = answer.body as { ok?: boolean; error?: string } | undefined;
      const ok = answer.status === 200 && body?.ok === true;
      controls.calls.push({ method, args: recordedArgs(args), at, status: answer.status, ok, ...(body?.error !== undefined ? { error: body.error } : {}) });
      return answer;
    };
    try {
      args = parseArgs(raw, req.headers['content-type'], query);
    } catch {
      return record({ status: 200, body: { ok: false, error: 'invalid_json' } });
    }
    const delay = (controls.latency.get(method) ?? 0) + (controls.latency.get('*') ?? 0);
    if (delay > 0) await sleep(delay);
    const fault = takeFault(controls, limits, method);
    if (fault) return record(fault);
    if (!methods[method]) return record({ status: 200, body: { ok: false, error: 'unknown_method', req_method: method } });
    const refused = authError(ws, req, args);
    if (refused !== undefined) return record({ status: 200, body: { ok: false, error: refused } });
    const wait = limits.takeTier(method);
    if (wait !== undefined) return record(limits.ratelimitedAnswer(method, wait));
    return record(runMethod(ws, methods, method, args));
  };
}
