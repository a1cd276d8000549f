/**
 * The release watcher. The scheduler role keeps one BullMQ job scheduler ticking every minute (upserted at
 * every start, so losing Redis loses nothing); each tick asks the domain (planWatch) what is due and does it:
 * refresh the KEV catalog, poll MSRC for the month, or re-read the stored month. The schedule lives in the
 * calendar, not in a cron string.
 *
 * Failures stay small: the adapters retry HTTP errors and timeouts with backoff; whatever still fails is
 * logged and tried again after the poll interval. A document that does not parse completely never reaches
 * storeRelease, so a half-read or invalid document never replaces the stored one.
 */
import type { Redis } from 'ioredis';
import { DateTime } from 'luxon';
import { readKevCatalog } from '../adapters/kev/catalog.ts';
import { MsrcClient } from '../adapters/msrc/client.ts';
import type { FetchOptions } from '../adapters/msrc/http.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import { kevRefreshedAt, replaceKevCatalog, type KevReplaceResult } from '../db/kev-repo.ts';
import { listReleases, type StoreOutcome } from '../db/release-repo.ts';
import { storeRelease } from '../use-cases/store-release.ts';
import { DEFAULT_WATCH_SETTINGS, planWatch, type WatchPlan, type WatchSettings } from '../domain/release-watch.ts';
import type { ReleaseChange } from '../domain/release.ts';
import type { Logger } from '../log.ts';
import type { JobModule } from './context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';

export const RELEASE_WATCH_QUEUE = 'release-watch';
const SCHEDULER_ID = 'release-watch-tick';
const TICK = 'tick';
const KEV_KEY = 'kev';

/** When each read was last attempted (successful or not), so a failing MSRC is retried at the poll interval. */
export interface AttemptLog {
  get(key: string): Promise<Date | undefined>;
  all(): Promise<Map<string, Date>>;
  set(key: string, at: Date): Promise<void>;
}

export function memoryAttemptLog(): AttemptLog {
  const map = new Map<string, Date>();
  return {
    get: async (key) => map.get(key),
    all: async () => new Map(map),
    set: async (key, at) => void map.set(key, at),
  };
}

/** In Redis: shared by every worker process; losing it only means one early retry. */
export function redisAttemptLog(redis: Redis, prefix: string): AttemptLog {
  const key = `${prefix}:release-watch:attempts`;
  return {
    async get(field) {
      const value = await redis.hget(key, field);
      return value ? new Date(value) : undefined;
    },
    async all() {
      const values = await redis.hgetall(key);
      return new Map(Object.entries(values).map(([field, value]) => [field, new Date(value)]));
    },
    async set(field, at) {
      await redis.hset(key, field, at.toISOString());
    },
  };
}

/**
 * The last document failure logged per release. A refused document stays refused at every poll until MSRC
 * changes it, so it is a warning once per document (its content, or its revision), not once per poll.
 */
export interface FailureLog {
  /** True when `signature` is what was last reported for `key`; otherwise it is recorded as reported. */
  isRepeat(key: string, signature: string): Promise<boolean>;
  clear(key: string): Promise<void>;
}

export function memoryFailureLog(): FailureLog {
  const map = new Map<string, string>();
  return {
    async isRepeat(key, signature) {
      if (map.get(key) === signature) return true;
      map.set(key, signature);
      return false;
    },
    clear: async (key) => void map.delete(key),
  };
}

/** In Redis, beside the attempt log: every worker process agrees on what was already said. */
export function redisFailureLog(redis: Redis, prefix: string): FailureLog {
  const key = `${prefix}:release-watch:reported-failures`;
  return {
    async isRepeat(field, signature) {
      // HSET answers 0 when the field existed; compare first, since the value may differ.
      if ((await redis.hget(key, field)) === signature) return true;
      await redis.hset(key, field, signature);
      return false;
    },
    async clear(field) {
      await redis.hdel(key, field);
    },
  };
}

export interface TickDeps {
  database: Database;
  config: Pick<Config, 'msrcApiUrl' | 'kevUrl'>;
  log: Logger;
  attempts: AttemptLog;
  failures: FailureLog;
  settings?: WatchSettings;
  fetch?: FetchOptions;
  actor?: string;
  source?: 'cli' | 'system';
}

export interface TickReport {
  plan: WatchPlan;
  kev?: { ok: true; result: KevReplaceResult } | { ok: false; error: string };
  release?:
    | { ok: true; releaseId: string; outcome: StoreOutcome | 'not-listed'; changes: ReleaseChange[]; queued: number; notQueued?: string }
    | { ok: false; releaseId: string; error: string };
}

/** One tick: plan, then act. Fetch and document errors are reported, not thrown; database errors are thrown. */
export async function runWatchTick(deps: TickDeps, nowDate: Date): Promise<TickReport> {
  const now = DateTime.fromJSDate(nowDate, { zone: 'utc' });
  const { database, log } = deps;
  const attempts = await deps.attempts.all();
  const stored = await listReleases(database.db);
  const plan = planWatch(
    now,
    {
      stored: stored.map((release) => ({ id: release.id, checkedAt: release.fetchedAt })),
      lastAttemptAt: new Map([...attempts].filter(([key]) => key !== KEV_KEY)),
      kevRefreshedAt: await kevRefreshedAt(database.db),
      kevLastAttemptAt: attempts.get(KEV_KEY),
    },
    deps.settings ?? DEFAULT_WATCH_SETTINGS,
  );
  const report: TickReport = { plan };
  const storeOptions = { actor: deps.actor ?? 'release-watch', source: deps.source ?? ('system' as const) };

  // KEV first, so a digest stored on this same tick already shows CISA's flags.
  if (plan.refreshKev) {
    await deps.attempts.set(KEV_KEY, nowDate);
    try {
      const kev = await readKevCatalog(deps.config.kevUrl, deps.fetch);
      const result = await replaceKevCatalog(database.db, kev, { now: nowDate, ...storeOptions });
      report.kev = { ok: true, result };
      log.info({ kev: result }, 'KEV catalog refreshed');
    } catch (error) {
      if (!isReadError(error)) throw error;
      report.kev = { ok: false, error: (error as Error).message };
      log.warn({ err: error }, 'KEV catalog not refreshed; the stored one stays');
    }
  }

  const action = plan.release;
  if (action.action === 'wait') {
    log.debug({ release: action.releaseId, until: action.until.toISO(), reason: action.reason }, 'release watch: nothing due');
    return report;
  }
  await deps.attempts.set(action.releaseId, nowDate);
  const client = new MsrcClient(deps.config.msrcApiUrl, deps.fetch);
  try {
    if (action.action === 'poll') {
      const listed = (await client.listReleases(now)).some((entry) => entry.id === action.releaseId);
      if (!listed) {
        report.release = { ok: true, releaseId: action.releaseId, outcome: 'not-listed', changes: [], queued: 0 };
        log.info({ release: action.releaseId }, 'release watch: not published in the MSRC index yet');
        return report;
      }
    }
    const release = await client.getRelease(action.releaseId);
    if (release.id !== action.releaseId) {
      throw new WrongDocumentError(`asked MSRC for ${action.releaseId} and got a document for ${release.id}`);
    }
    const result = await storeRelease(database.db, release, { fetchedAt: nowDate, now: nowDate, ...storeOptions });
    await deps.failures.clear(action.releaseId);
    report.release = { ok: true, releaseId: action.releaseId, ...result };
    const level = result.outcome === 'unchanged' ? 'debug' : 'info';
    log[level](
      { release: action.releaseId, outcome: result.outcome, changes: result.changes.map((c) => c.message), queued: result.queued, notQueued: result.notQueued },
      `release ${action.releaseId}: ${result.outcome}`,
    );
  } catch (error) {
    if (!isReadError(error)) throw error;
    report.release = { ok: false, releaseId: action.releaseId, error: (error as Error).message };
    // A network failure may pass by the next poll and is worth each line; a refused document is the same document.
    const document = error as { name: string; message: string; fingerprint?: string };
    if (document.name === 'DocumentError' && (await deps.failures.isRepeat(action.releaseId, document.fingerprint ?? document.message))) {
      log.debug({ release: action.releaseId, error: document.message }, 'release watch: the same document is still refused; the stored release stays');
    } else {
      log.warn({ err: error, release: action.releaseId }, 'release watch: read failed; the stored release stays, retrying at the next poll');
    }
  }
  return report;
}

class WrongDocumentError extends Error {
  override name = 'DocumentError';
}

function isReadError(error: unknown): boolean {
  return error instanceof Error && (error.name === 'FetchError' || error.name === 'DocumentError');
}

export interface ReleaseWatchOptions {
  /** How often the scheduler ticks; each tick is cheap when nothing is due. */
  tickMs?: number;
  settings?: WatchSettings;
  fetch?: FetchOptions;
}

export function releaseWatchModule(options: ReleaseWatchOptions = {}): JobModule {
  return async (context) => {
    const tickMs = options.tickMs ?? context.pace?.tickMs ?? 60_000;
    const hasScheduler = context.roles.has('scheduler');
    const hasWorker = context.roles.has('worker');
    if (!hasScheduler && !hasWorker) return { close: async () => {} };
    const queue = createQueue(context, RELEASE_WATCH_QUEUE, { ...KEEP_FEW, attempts: 1 });
    if (hasScheduler) {
      await queue.upsertJobScheduler(SCHEDULER_ID, { every: tickMs }, { name: TICK, opts: { ...KEEP_FEW, attempts: 1 } });
    }
    const worker = hasWorker
      ? createWorker(
          context,
          RELEASE_WATCH_QUEUE,
          async (job) => {
            if (job.name !== TICK) return undefined;
            const report = await runWatchTick(
              {
                database: context.database,
                config: context.config,
                log: context.log,
                attempts: redisAttemptLog(context.redis, context.prefix),
                failures: redisFailureLog(context.redis, context.prefix),
                settings: options.settings,
                fetch: options.fetch,
              },
              context.now(),
            );
            // Kept in BullMQ for a look with a queue dashboard; small: no changes list beyond the messages.
            return {
              action: report.plan.release.action,
              release: report.plan.release.releaseId,
              outcome: report.release?.ok ? report.release.outcome : report.release?.error,
              kev: report.kev?.ok ? report.kev.result.version : report.kev?.error,
            };
          },
          { concurrency: 1 },
        )
      : undefined;
    // A tick may be waiting on MSRC through its retries; abandoning it is safe (nothing is half-stored), and
    // waiting would hold shutdown for minutes.
    return { close: () => closeAll([worker], [queue], { force: true }) };
  };
}

export const releaseWatch: JobModule = releaseWatchModule();
