import type { z } from 'zod';

/** A document that could not be read: what is wrong and where, ready for a person to read. */
export class DocumentError extends Error {
  /** Which text was refused (a hash of it), so a watcher can say so once per document rather than once per poll. */
  fingerprint?: string;

  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.length === 1 ? problems[0] : `\n  ${problems.join('\n  ')}`}`);
    this.name = 'DocumentError';
  }
}

/**
 * JSON.parse with a message that says where: Node 20 reports a character position for bad tokens but nothing
 * for a document cut short, which is the common case for a half-read download, so that case is named as such.
 */
export function parseJsonText(text: string, source: string): unknown {
  if (text.trim() === '') throw new DocumentError(source, ['empty document (expected JSON)']);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw syntaxError(error, text, source);
  }
  const tooDeep = pathDeeperThan(json, MAX_DEPTH);
  if (tooDeep) throw new DocumentError(source, [`${tooDeep}: nested more than ${MAX_DEPTH} levels deep (MSRC's and CISA's documents nest about 8)`]);
  return json;
}

/**
 * Validation (zod) and mapping recurse once per level; a hostile document nested thousands deep would end
 * in a RangeError with no word of where. Real documents stay under ten levels.
 */
export const MAX_DEPTH = 64;

/** The path to the first value nested deeper than `limit` (shortened), or undefined. Iterative: no depth hurts it. */
function pathDeeperThan(json: unknown, limit: number): string | undefined {
  interface Frame {
    value: unknown;
    depth: number;
    key: PropertyKey | undefined;
    parent: Frame | undefined;
  }
  const stack: Frame[] = [{ value: json, depth: 0, key: undefined, parent: undefined }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    if (frame.value === null || typeof frame.value !== 'object') continue;
    if (frame.depth >= limit) {
      const path: PropertyKey[] = [];
      for (let at: Frame | undefined = frame; at?.key !== undefined; at = at.parent) path.unshift(at.key);
      return path.length > 8 ? `${formatPath(path.slice(0, 8))}…` : formatPath(path);
    }
    const entries: Array<[PropertyKey, unknown]> = Array.isArray(frame.value) ? frame.value.map((v, i) => [i, v]) : Object.entries(frame.value);
    // Pushed last to first, so the path found is the first in the document.
    for (const [key, value] of entries.reverse()) {
      if (value !== null && typeof value === 'object') stack.push({ value, depth: frame.depth + 1, key, parent: frame });
    }
  }
  return undefined;
}

function syntaxError(error: unknown, text: string, source: string): DocumentError {
  const message = error instanceof Error ? error.message : String(error);
  const position = /at position (\d+)/.exec(message)?.[1] ?? positionFromSnippet(message, text);
  if (position !== undefined) {
    const at = Number(position);
    const before = text.slice(0, at);
    const line = before.split('\n').length;
    const column = at - before.lastIndexOf('\n');
    const truncated = at >= text.length - 1;
    return new DocumentError(source, [
      `${truncated ? 'truncated JSON' : 'not valid JSON'} at line ${line} column ${column} (character ${at}): ${message.replace(/ in JSON at position \d+.*$/, '')}`,
    ]);
  }
  if (/end of (JSON )?input|Unterminated/i.test(message)) {
    const line = text.split('\n').length;
    return new DocumentError(source, [`truncated JSON: the document ends early, at line ${line} (character ${text.length})`]);
  }
  return new DocumentError(source, [`not valid JSON: ${message}`]);
}

/** Zod path -> `Vulnerability[12].Threats`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(document)' : out;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `a string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

const ARTICLE: Record<string, string> = { array: 'an array', object: 'an object', string: 'a string', number: 'a number', boolean: 'a boolean' };

/** Zod issues as `path: expected an array, got a string "x"` lines, at most `limit` of them. */
export function formatIssues(issues: ReadonlyArray<z.core.$ZodIssue>, limit = 10): string[] {
  const lines = issues.slice(0, limit).map((issue) => {
    const where = formatPath(issue.path);
    if (issue.code === 'invalid_type') {
      const expected = ARTICLE[issue.expected] ?? issue.expected;
      return `${where}: expected ${expected}, got ${describe(issue.input)}`;
    }
    return `${where}: ${issue.message}`;
  });
  if (issues.length > limit) lines.push(`… and ${issues.length - limit} more problems`);
  return lines;
}

/**
 * Node 20+ often reports `Unexpected token '<', "<html>502 "... is not valid JSON` with no position: find the
 * quoted excerpt in the text and the token within it.
 */
function positionFromSnippet(message: string, text: string): string | undefined {
  const match = /Unexpected token '(.)', (?:\.\.\.)?"(.*?)"(?:\.\.\.)? is not valid JSON/s.exec(message);
  if (!match) return undefined;
  const [, token = '', snippet = ''] = match;
  const start = text.indexOf(snippet);
  if (start < 0) return undefined;
  const within = snippet.indexOf(token);
  return String(start + Math.max(0, within));
}
