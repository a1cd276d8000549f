/**
 * Which database the tests run on, decided once per run (test/support/global-setup.ts) so that `npm ci && npm test`
 * passes on a fresh machine: PostgreSQL when one answers, embedded PGlite when none does. Asking for PostgreSQL
 * (TEST_DATABASE_URL or PATCHBAY_TEST_DB=postgres, as CI does) never falls back: an outage there must fail the run.
 */
import postgres from 'postgres';

export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export type TestBackend = 'postgres' | 'pglite';

export type ProbeResult = { ok: true } | { ok: false; nothingListens: boolean; reason: string };

export interface BackendChoice {
  backend: TestBackend;
  /** One line for the person running the tests, when the choice is not the one they would assume. */
  notice?: string;
}

/** Errors that mean no server is there at all, as opposed to a server that answered and refused. */
const NOTHING_THERE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'CONNECT_TIMEOUT']);

/** The URL without its password: it ends up in messages, and secrets never do. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return '(an unparsable URL)';
  }
}

/** Connects and runs `select 1`. A listener that never speaks PostgreSQL is cut off after `timeoutMs`. */
export async function probePostgres(url: string, timeoutMs = 5_000): Promise<ProbeResult> {
  const sql = postgres(url, { max: 1, connect_timeout: Math.ceil(timeoutMs / 1000), onnotice: () => {} });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<ProbeResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, nothingListens: false, reason: `something listens but gave no PostgreSQL answer within ${timeoutMs} ms` }), timeoutMs);
  });
  const answered = sql`select 1`.then(
    (): ProbeResult => ({ ok: true }),
    (error: { code?: string; message?: string }): ProbeResult => ({
      ok: false,
      nothingListens: error.code !== undefined && NOTHING_THERE.has(error.code),
      reason: error.message ?? String(error),
    }),
  );
  try {
    return await Promise.race([answered, timedOut]);
  } finally {
    clearTimeout(timer);
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/**
 * PATCHBAY_TEST_DB=pglite: PGlite. PATCHBAY_TEST_DB=postgres or TEST_DATABASE_URL set: PostgreSQL, or an error when
 * it does not answer. Neither: PostgreSQL on the default URL when it answers, PGlite (with a notice) when nothing
 * listens there; a server that is there but refuses is an error, since its owner most likely meant to use it.
 */
export async function chooseTestBackend(
  env: NodeJS.ProcessEnv,
  { probe = probePostgres, defaultUrl = DEFAULT_TEST_DATABASE_URL }: { probe?: (url: string) => Promise<ProbeResult>; defaultUrl?: string } = {},
): Promise<BackendChoice> {
  const asked = env.PATCHBAY_TEST_DB?.trim() || undefined;
  if (asked === 'pglite') return { backend: 'pglite' };
  if (asked !== undefined && asked !== 'postgres') {
    throw new Error(`PATCHBAY_TEST_DB is "${asked}": use postgres or pglite, or leave it unset to use PostgreSQL when one answers`);
  }
  const explicitUrl = env.TEST_DATABASE_URL?.trim() || undefined;
  const url = explicitUrl ?? defaultUrl;
  const result = await probe(url);
  if (result.ok) return { backend: 'postgres' };
  const why = explicitUrl ? 'TEST_DATABASE_URL is set' : 'PATCHBAY_TEST_DB=postgres is set';
  if (explicitUrl !== undefined || asked === 'postgres') {
    throw new Error(`The tests need PostgreSQL (${why}) but ${describeUrl(url)} does not answer: ${result.reason}`);
  }
  if (!result.nothingListens) {
    throw new Error(
      `A server at ${describeUrl(url)} refused the tests: ${result.reason}. Set TEST_DATABASE_URL to a PostgreSQL the tests may use, or PATCHBAY_TEST_DB=pglite`,
    );
  }
  return {
    backend: 'pglite',
    notice: `No PostgreSQL answers at ${describeUrl(url)}: the database tests run on embedded PGlite (set TEST_DATABASE_URL or PATCHBAY_TEST_DB=postgres to require PostgreSQL).`,
  };
}
