/**
 * Database failures in one line a person can act on. drizzle wraps every failed statement in an error whose
 * message is the whole SQL and its parameters (inventory names, emails, notes): none of that belongs on a
 * terminal or in a chat, and neither does the password in DATABASE_URL. Imports nothing heavy: the CLI loads
 * it only when something already failed.
 */
import type { Config } from '../config.ts';

/** A database failure already said in one line; the original stays as `cause` for PATCHBAY_DEBUG. */
export class DatabaseError extends Error {
  override name = 'DatabaseError';
}

/** What postgres.js and Node answer when the server cannot be reached at all. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED']);

interface ServerError extends Error {
  code: string;
  severity: string;
}

/** postgres.js's PostgresError and PGlite's errors both carry the SQLSTATE and a severity. */
function isServerError(error: unknown): error is ServerError {
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return error instanceof Error && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string';
}

/** drizzle's DrizzleQueryError, told by its shape: it has no name of its own. */
function isWrappedQuery(error: unknown): error is Error & { query: unknown; params: unknown } {
  return error instanceof Error && 'query' in error && 'params' in error && error.message.startsWith('Failed query:');
}

/** `postgres://db.example:5432`: where, without the user, the password or the database. */
export function serverOf(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.hostname}${parsed.port ? `:${parsed.port}` : ':5432'}`;
  } catch {
    return 'the server in DATABASE_URL';
  }
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!.trim();
}

/**
 * The failure in one line, or undefined when `error` is not a database failure. With the target, a failure
 * to reach or log in to PostgreSQL names the server and says to check DATABASE_URL.
 */
export function describeDatabaseError(error: unknown, target?: Config['database']): string | undefined {
  if (error instanceof DatabaseError) return error.message;
  const wrapped = isWrappedQuery(error);
  const inner = wrapped ? error.cause : error;
  const where = target?.kind === 'postgres' ? ` at ${serverOf(target.url)}` : '';
  if (isServerError(inner)) {
    const message = firstLine(inner.message);
    // 3D000: no such database; class 28: the login was refused. Both are fixed in DATABASE_URL or on the server.
    if (inner.code === '3D000' || inner.code.startsWith('28')) return `${message}${where} (check DATABASE_URL)`;
    return message;
  }
  const code = (inner as { code?: unknown } | undefined)?.code;
  if (inner instanceof Error && typeof code === 'string' && UNREACHABLE.has(code)) {
    return `cannot reach PostgreSQL${where}: ${firstLine(inner.message)} (check DATABASE_URL, and that the server runs)`;
  }
  if (wrapped) return inner instanceof Error ? firstLine(inner.message) : 'a database statement failed';
  return undefined;
}
