/** The Web API's wire form: arguments in, `{ok, error, ...}` answers out, and the small parsers every method shares. */
import { randomBytes } from 'node:crypto';

export type Args = Record<string, unknown>;

export interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** A method's result: the fields of an `ok: true` answer, or a whole answer (a 429). */
export type MethodResult = Record<string, unknown> | Answer;
export type Method = (args: Args, at: number) => MethodResult;
export type Methods = Record<string, Method>;

/** Thrown by a method for Slack's `{ok: false, error}` answer (with `extra` fields such as response_metadata). */
export class SlackError extends Error {
  constructor(
    readonly error: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(error);
  }
}

/** Arguments that WebClient sends as JSON strings inside a form body. */
export const JSON_FIELDS = ['blocks', 'attachments', 'view', 'metadata'];

export function parseArgs(raw: string, contentType: string | undefined, query: URLSearchParams): Args {
  const args: Args = {};
  for (const [k, v] of query) args[k] = v;
  if (raw.length > 0) {
    if (contentType?.includes('application/json')) {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed === 'object' && parsed !== null) Object.assign(args, parsed);
    } else {
      for (const [k, v] of new URLSearchParams(raw)) args[k] = v;
    }
  }
  return args;
}

export function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

export function bool(v: unknown): boolean {
  return v === true || v === 'true' || v === '1' || v === 1;
}

/** Parse a JSON-string argument; `undefined` when absent. */
export function jsonArg(args: Args, key: string, badFormat: string): unknown {
  const v = args[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch {
    throw new SlackError(badFormat);
  }
}

export function missingTextWarning(missing: boolean): Record<string, unknown> {
  // Slack itself stays quiet; the emulator warns (like WebClient's own log line) so tests can catch it.
  return missing ? { warning: 'missing_text', response_metadata: { warnings: ['missing_text'] } } : {};
}

/**
 * Slack fills in a block_id (and an action_id on interactive elements) when the app leaves them out, and
 * payloads carry the generated ones; do the same so a click on such a button looks like Slack's.
 */
export function withGeneratedIds(blocks: unknown[] | undefined): unknown[] | undefined {
  if (blocks === undefined) return undefined;
  const gen = (): string => randomBytes(4).toString('base64url').slice(0, 5);
  const element = (el: unknown): unknown => {
    if (typeof el !== 'object' || el === null || Array.isArray(el)) return el;
    const e = el as Record<string, unknown>;
    const interactive = typeof e.type === 'string' && !['image', 'plain_text', 'mrkdwn'].includes(e.type);
    return interactive && e.action_id === undefined ? { ...e, action_id: gen() } : e;
  };
  return blocks.map((b) => {
    if (typeof b !== 'object' || b === null || Array.isArray(b)) return b;
    const block = { ...(b as Record<string, unknown>) };
    if (block.block_id === undefined) block.block_id = gen();
    if (block.type === 'actions' && Array.isArray(block.elements)) block.elements = block.elements.map(element);
    if (block.accessory !== undefined) block.accessory = element(block.accessory);
    if (block.type === 'input' && block.element !== undefined) block.element = element(block.element);
    return block;
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
