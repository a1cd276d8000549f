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
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { DateTime } from 'luxon';
import { readKevCatalog } from '../adapters/kev/catalog.ts';
import { MsrcClient } from '../adapters/msrc/client.ts';
import { FetchError, type FetchOptions, type Validators } from '../adapters/msrc/http.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import { kevRefreshedAt, replaceKevCatalog, type KevReplaceResult } from '../db/kev-repo.ts';
import { listReleases, type StoreOutcome } from '../db/release-repo.ts';
import { storeRelease } from '../use-cases/store-release.ts';
import { DEFAULT_WATCH_SETTINGS, planWatch, type ReleaseAction, type WatchPlan, type WatchSettings } from '../domain/release-watch.ts';
import type { PollOutcome } from '../domain/msrc-cadence.ts';
import type { ReleaseChange } from '../domain/release.ts';
import type { Logger } from '../log.ts';
import type { JobContext, JobModule } from './context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';

export const RELEASE_WATCH_QUEUE = 'release-watch';
const SCHEDULER_ID = 'release-watch-tick';
const TICK = 'tick';
/** Delayed ticks at the cadence's instants: `next-<epoch ms>`. */
export const NEXT_PREFIX = 'next-';
const KEV_KEY = 'kev';

/** When each read was last attempted (successful or not), so a failing MSRC is retried at the poll interval. */
export interface AttemptLog {
  get(key: string): Promise<Date | undefined>;
  all(): Promise<Map<string, Date>>;
  set(key: string, at: Date): Promise<void>;
  /**
   * Sets `key` to `at` only if it still holds `expected` (undefined: absent), so of two workers that planned the
   * same poll from the same state only one asks MSRC. True when this caller won.
   */
  claim(key: string, expected: Date | undefined, at: Date): Promise<boolean>;
}

export function memoryAttemptLog(): AttemptLog {
  const map = new Map<string, Date>();
  return {
    get: async (key) => map.get(key),
    all: async () => new Map(map),
    set: async (key, at) => void map.set(key, at),
    async claim(key, expected, at) {
      if (map.get(key)?.getTime() !== expected?.getTime()) return false;
      map.set(key, at);
      return true;
    },
  };
}

// Compare-and-set in one step on the server: an absent field is compared as ''.
const CLAIM_SCRIPT = `if (redis.call('hget', KEYS[1], ARGV[1]) or '') == ARGV[2] then redis.call('hset', KEYS[1], ARGV[1], ARGV[3]) return 1 end return 0`;

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
    async claim(field, expected, at) {
      return (await redis.eval(CLAIM_SCRIPT, 1, key, field, expected?.toISOString() ?? '', at.toISOString())) === 1;
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

/**
 * What a poll leaves for the next one: the validators of MSRC's last answers (so the next request is conditional)
 * and the failures in a row (for the backoff). A cache: losing it costs one full read and one early retry.
 */
export interface PollMemo {
  get<T>(key: string): Promise<T | undefined>;
  all<T>(prefix: string): Promise<Map<string, T>>;
  set(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
}

export function memoryPollMemo(): PollMemo {
  const map = new Map<string, string>();
  return {
    get: async <T>(key: string) => (map.has(key) ? (JSON.parse(map.get(key)!) as T) : undefined),
    all: async <T>(prefix: string) => new Map([...map].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), JSON.parse(v) as T])),
    set: async (key, value) => void map.set(key, JSON.stringify(value)),
    delete: async (key) => void map.delete(key),
  };
}

export function redisPollMemo(redis: Redis, prefix: string): PollMemo {
  const hash = `${prefix}:release-watch:memo`;
  return {
    async get<T>(key: string) {
      const value = await redis.hget(hash, key);
      return value === null ? undefined : (JSON.parse(value) as T);
    },
    async all<T>(keyPrefix: string) {
      const entries = Object.entries(await redis.hgetall(hash)).filter(([k]) => k.startsWith(keyPrefix));
      return new Map(entries.map(([k, v]) => [k.slice(keyPrefix.length), JSON.parse(v) as T]));
    },
    async set(key, value) {
      await redis.hset(hash, key, JSON.stringify(value));
    },
    async delete(key) {
      await redis.hdel(hash, key);
    },
  };
}

const OUTCOME = 'outcome:';
/** Validators of an index answer that did not list the month: a 304 to them means it is still not listed. */
const INDEX_WITHOUT = 'updates-without:';
/** Validators of the month's document as stored (with its hash, so a database restored to another one is not fooled). */
const DOCUMENT = 'cvrf:';

type StoredValidators = Validators & { documentHash: string };

export interface TickDeps {
  database: Database;
  config: Pick<Config, 'msrcApiUrl' | 'kevUrl'>;
  log: Logger;
  attempts: AttemptLog;
  failures: FailureLog;
  /** The running clock, when the tick's `now` may lag by the time the tick takes. */
  clock?: () => Date;
  /** Validators and backoff between polls; without one every read is in full and failures do not back off. */
  memo?: PollMemo;
  settings?: WatchSettings;
  fetch?: FetchOptions;
  actor?: string;
  source?: 'cli' | 'system';
}

export interface TickReport {
  plan: WatchPlan;
  /** When something is due again, planned after this tick's reads. */
  next: DateTime;
  kev?: { ok: true; result: KevReplaceResult } | { ok: false; error: string };
  release?:
    | { ok: true; releaseId: string; outcome: StoreOutcome | 'not-listed' | 'not-modified'; changes: ReleaseChange[]; queued: number; notQueued?: string }
    | { ok: false; releaseId: string; error: string };
}

/** One tick: plan, then act. Fetch and document errors are reported, not thrown; database errors are thrown. */
export async function runWatchTick(deps: TickDeps, nowDate: Date): Promise<TickReport> {
  const now = DateTime.fromJSDate(nowDate, { zone: 'utc' });
  const { database, log } = deps;
  const memo = deps.memo ?? memoryPollMemo();
  const { plan, stored, attempts } = await loadAndPlan(deps, memo, now);
  const report: TickReport = { plan, next: plan.nextCheckAt };
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
  // Stamped when MSRC is asked, after the KEV download: the cadence counts from the request, not the tick.
  if (!(await deps.attempts.claim(action.releaseId, attempts.get(action.releaseId), deps.clock?.() ?? nowDate))) {
    log.debug({ release: action.releaseId }, 'release watch: another tick took this poll');
    report.next = (await loadAndPlan(deps, memo, now)).plan.nextCheckAt;
    return report;
  }
  const storedHash = stored.find((release) => release.id === action.releaseId)?.documentHash;
  try {
    report.release = await readAndStore(deps, memo, action, now, storedHash, storeOptions);
    await memo.delete(OUTCOME + action.releaseId);
  } catch (error) {
    if (!isReadError(error)) throw error;
    report.release = { ok: false, releaseId: action.releaseId, error: (error as Error).message };
    await recordFailure(deps, memo, action.releaseId, error as Error);
  }
  // Planned again on what this tick left behind, so the scheduler knows when the cadence is due next.
  report.next = (await loadAndPlan(deps, memo, now)).plan.nextCheckAt;
  return report;
}

async function loadAndPlan(deps: TickDeps, memo: PollMemo, now: DateTime) {
  const { database } = deps;
  const attempts = await deps.attempts.all();
  const stored = await listReleases(database.db);
  const plan = planWatch(
    now,
    {
      stored: stored.map((release) => ({ id: release.id, checkedAt: release.fetchedAt })),
      lastAttemptAt: new Map([...attempts].filter(([key]) => key !== KEV_KEY)),
      kevRefreshedAt: await kevRefreshedAt(database.db),
      kevLastAttemptAt: attempts.get(KEV_KEY),
      outcomes: await memo.all<PollOutcome>(OUTCOME),
    },
    deps.settings ?? DEFAULT_WATCH_SETTINGS,
  );
  return { plan, stored, attempts };
}

type ReleaseReport = Extract<TickReport['release'], { ok: true }>;

/** Reads the month (the index first when it is not stored yet), each read conditional when validators are known. */
async function readAndStore(
  deps: TickDeps,
  memo: PollMemo,
  action: Exclude<ReleaseAction, { action: 'wait' }>,
  now: DateTime,
  storedHash: string | undefined,
  storeOptions: { actor: string; source: 'cli' | 'system' },
): Promise<ReleaseReport> {
  const { releaseId } = action;
  const client = new MsrcClient(deps.config.msrcApiUrl, deps.fetch);
  const nothing = { ok: true as const, releaseId, changes: [], queued: 0 };
  if (action.action === 'poll') {
    const indexKey = INDEX_WITHOUT + releaseId;
    const index = await client.listReleasesIfChanged(now, await memo.get<Validators>(indexKey));
    if (index.notModified || !index.value.some((entry) => entry.id === releaseId)) {
      if (!index.notModified && (index.validators.etag || index.validators.lastModified)) await memo.set(indexKey, index.validators);
      deps.log.info({ release: releaseId, notModified: index.notModified }, 'release watch: not published in the MSRC index yet');
      return { ...nothing, outcome: 'not-listed' };
    }
    await memo.delete(indexKey);
  }
  const documentKey = DOCUMENT + releaseId;
  const known = await memo.get<StoredValidators>(documentKey);
  // Conditional only against the document as stored: a 304 must mean "what you hold is current".
  const validators = known && storedHash !== undefined && known.documentHash === storedHash ? known : undefined;
  const read = await client.getReleaseIfChanged(releaseId, validators);
  if (read.notModified) {
    deps.log.debug({ release: releaseId }, `release ${releaseId}: not modified (304)`);
    return { ...nothing, outcome: 'not-modified' };
  }
  const release = read.value;
  if (release.id !== releaseId) throw new WrongDocumentError(`asked MSRC for ${releaseId} and got a document for ${release.id}`);
  const nowDate = now.toJSDate();
  const result = await storeRelease(deps.database.db, release, { fetchedAt: nowDate, now: nowDate, ...storeOptions });
  await deps.failures.clear(releaseId);
  if (read.validators.etag || read.validators.lastModified) await memo.set(documentKey, { ...read.validators, documentHash: result.documentHash });
  else await memo.delete(documentKey);
  const level = result.outcome === 'unchanged' ? 'debug' : 'info';
  deps.log[level](
    { release: releaseId, outcome: result.outcome, changes: result.changes.map((c) => c.message), queued: result.queued, notQueued: result.notQueued },
    `release ${releaseId}: ${result.outcome}`,
  );
  return { ok: true, releaseId, ...result };
}

/**
 * A fetch failure counts towards the backoff (with MSRC's Retry-After); a refused document does not, since MSRC
 * answered and the next revision may fix it. Either is logged: a network failure each time, a refusal once.
 */
async function recordFailure(deps: TickDeps, memo: PollMemo, releaseId: string, error: Error): Promise<void> {
  const document = error as { name: string; message: string; fingerprint?: string };
  if (error instanceof FetchError) {
    const previous = (await memo.get<PollOutcome>(OUTCOME + releaseId))?.consecutiveFailures ?? 0;
    const outcome: PollOutcome = { consecutiveFailures: previous + 1, ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}) };
    await memo.set(OUTCOME + releaseId, outcome);
  } else {
    await memo.delete(OUTCOME + releaseId);
  }
  if (document.name === 'DocumentError' && (await deps.failures.isRepeat(releaseId, document.fingerprint ?? document.message))) {
    deps.log.debug({ release: releaseId, error: document.message }, 'release watch: the same document is still refused; the stored release stays');
  } else {
    deps.log.warn({ err: error, release: releaseId }, 'release watch: read failed; the stored release stays, retrying at the next poll');
  }
}

class WrongDocumentError extends Error {
  override name = 'DocumentError';
}

function isReadError(error: unknown): boolean {
  return error instanceof Error && (error.name === 'FetchError' || error.name === 'DocumentError');
}

export interface ReleaseWatchOptions {
  /** How often the heartbeat ticks; each tick is cheap when nothing is due. */
  tickMs?: number;
  settings?: WatchSettings;
  fetch?: FetchOptions;
}

/** The cadence's next instant as a delayed job beside the heartbeat; later than this the heartbeat is enough. */
const NEXT_HORIZON_MS = 24 * 3_600_000;
/** BullMQ may hand a delayed job over a little early; a tick that finds itself early only waits again. */
const NEXT_MARGIN_MS = 20;

/**
 * Schedules the tick for when the cadence says: the heartbeat (a job scheduler, every tickMs) is a floor that also
 * survives a lost Redis or a clock jump, and each tick adds one delayed job for the next due instant. The job id is
 * that instant, so a restart, a second worker or the heartbeat asking for the same instant adds nothing.
 */
async function scheduleNext(queue: Queue, context: JobContext, report: TickReport, currentJobId: string | undefined): Promise<string | undefined> {
  const next = report.next.toJSDate();
  // Measured after the tick: the time it took is not waited a second time.
  const now = context.now();
  const waitMs = next.getTime() - now.getTime();
  if (waitMs > NEXT_HORIZON_MS) return undefined;
  const delay = Math.max(0, Math.round(context.pace?.realDelayMs(next, now) ?? waitMs)) + NEXT_MARGIN_MS;
  let jobId = `${NEXT_PREFIX}${next.getTime()}`;
  // Handed over early, this very job is still active under that id and an add would be ignored.
  if (jobId === currentJobId) jobId = `${jobId}-again`;
  await queue.add(TICK, {}, { ...KEEP_FEW, attempts: 1, jobId, delay });
  return jobId;
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
            const now = context.now();
            const report = await runWatchTick(
              {
                database: context.database,
                config: context.config,
                log: context.log,
                attempts: redisAttemptLog(context.redis, context.prefix),
                failures: redisFailureLog(context.redis, context.prefix),
                memo: redisPollMemo(context.redis, context.prefix),
                clock: context.now,
                settings: options.settings,
                fetch: options.fetch,
              },
              now,
            );
            const next = await scheduleNext(queue, context, report, job.id);
            // Kept in BullMQ for a look with a queue dashboard; small: no changes list beyond the messages.
            return {
              action: report.plan.release.action,
              release: report.plan.release.releaseId,
              outcome: report.release?.ok ? report.release.outcome : report.release?.error,
              kev: report.kev?.ok ? report.kev.result.version : report.kev?.error,
              next,
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
