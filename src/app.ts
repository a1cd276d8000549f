import path from 'node:path';
import { Redis } from 'ioredis';
import type { Config } from './config.ts';
import type { Deployer } from './adapters/deployers/port.ts';
import { openDatabase, type Database } from './db/client.ts';
import { migrateDatabase } from './db/migrate.ts';
import { ROLES, type Role, type RunningJobs } from './jobs/context.ts';
import { startJobs } from './jobs/start.ts';
import type { Sandbox } from './sandbox/sandbox.ts';
import type { SandboxClock } from './sandbox/clock.ts';
import { OutboxNotifier } from './jobs/outbox.ts';
import { createSlackApp } from './bot/slack/app.ts';
import { createTeamsAdapter, createTeamsBot, teamsRequestHandler } from './bot/teams/app.ts';
import type { Logger } from './log.ts';
import { recordLiveChat } from './db/sandbox-repo.ts';
import { checkSandboxDatabase } from './sandbox/database-check.ts';
import { lockDataDir } from './runtime/data-dir-lock.ts';
import { createHttpServer, createMetricsRegistry, createMetricsServer, type HttpServer } from './runtime/http.ts';
import { startPrivateRedis, type PrivateRedis } from './runtime/redis-server.ts';
import { configuredDeployer } from './adapters/deployers/configured.ts';

export interface StartOptions {
  roles: ReadonlySet<Role>;
  /** Overrides config.port (tests pass 0 for a free port). */
  port?: number;
  now?: () => Date;
  /** Sandbox only: the clock to run on (the demo drives its own); default one kept under the data dir. */
  sandboxClock?: SandboxClock;
  /** Sandbox only: real ms between scheduler ticks (the demo and tests tick faster than the default 2 s). */
  sandboxTickMs?: number;
  /** Sandbox only: the one month its local MSRC serves, and the document for it (the demo's `--cvrf`). */
  sandboxRelease?: { id: string; document?: unknown };
}

export interface RunningApp {
  /** The HTTP port, when this process has the web role. */
  port: number | undefined;
  /** The address HTTP listens on, when this process has the web role. */
  host: string | undefined;
  redisUrl: string;
  database: Database;
  http: HttpServer | undefined;
  /** Set when running as the local sandbox (no chat credentials): its page is at `/`. */
  sandbox: Sandbox | undefined;
  /** Which chat runs (real Slack/Teams, the sandbox, or none) and why. */
  chat: ChatChoice;
  stop(): Promise<void>;
}

/** Starts patchbay: database (migrated), Redis (ours or the configured one), jobs by role, and HTTP. */
export async function startApp(configured: Config, log: Logger, options: StartOptions): Promise<RunningApp> {
  let config = configured;
  let now = options.now ?? (() => new Date());
  const cleanups: Array<{ name: string; run: () => Promise<void> }> = [];
  // Run before anything that could wait on Redis or a client, so they happen even if a later step hangs.
  const firsts: typeof cleanups = [];
  let stopping = false;
  let privateRedis: PrivateRedis | undefined;
  const stop = async () => {
    stopping = true;
    for (const { name, run } of [...firsts.splice(0), ...cleanups.splice(0).reverse()]) {
      log.debug(`shutdown: ${name}`);
      try {
        await run();
      } catch (error) {
        log.error({ err: error }, `shutdown: ${name} failed`);
      }
    }
  };

  try {
    // Embedded parts belong to one process; with a real Postgres and Redis any number may run.
    if (config.database.kind === 'embedded' || !config.redisUrl) {
      const lock = await lockDataDir(config.dataDir);
      cleanups.push({ name: 'data dir lock', run: () => lock.release() });
    }
    // Stopped last: until then the jobs, queues and the sandbox still talk to it.
    cleanups.push({ name: 'private redis-server', run: async () => privateRedis?.stop() });

    const database = await openDatabase(config.database);
    cleanups.push({ name: 'database', run: () => database.close() });
    const migration = await migrateDatabase(database);
    log.info({ database: database.kind, ...migration }, 'database ready');

    const chat = await chooseChat(config, database, options.roles);
    log[chat.mode === 'off' && config.sandboxMode !== 'off' ? 'warn' : 'info']({ chat: chat.mode }, `mode: ${CHAT_MODE_LABEL[chat.mode]}, because ${chat.why}`);
    let sandbox: Sandbox | undefined;
    if (chat.mode === 'sandbox') {
      const { startSandbox } = await import('./sandbox/sandbox.ts');
      sandbox = await startSandbox({
        config,
        database,
        log,
        ...(options.sandboxClock ? { clock: options.sandboxClock } : {}),
        ...(options.sandboxTickMs ? { tickMs: options.sandboxTickMs } : {}),
        ...(options.sandboxRelease ? { release: options.sandboxRelease } : {}),
      });
      const running = sandbox;
      cleanups.push({ name: 'sandbox', run: () => running.stop() });
      firsts.push({ name: 'sandbox state', run: () => running.save() });
      config = sandbox.config;
      now = sandbox.clock.now;
    }

    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      privateRedis = await startPrivateRedis({ dir: path.join(config.dataDir, 'redis'), appendOnly: true, ownProcessGroup: true });
      if (privateRedis.stoppedLeftover) log.warn({ pid: privateRedis.stoppedLeftover }, 'stopped a redis-server a killed patchbay left running on this data dir');
      redisUrl = privateRedis.url;
      log.info({ url: redisUrl, pid: privateRedis.pid }, 'started a private redis-server (set REDIS_URL to use your own)');
    }
    // Once stopping, a Redis that went away is not waited for: BullMQ's duplicates share this strategy.
    const retryStrategy = (times: number) => (stopping ? null : Math.min(times * 50, 2_000));
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: true, retryStrategy });
    redis.on('error', (error) => (stopping ? log.debug({ err: error }, 'redis connection error while stopping') : log.warn({ err: error }, 'redis connection error')));
    // Ends only once stopping found Redis gone (see retryStrategy): then nothing waits on it any more.
    const redisGone = new Promise<void>((resolve) => redis.once('end', resolve));
    await redis.connect();
    cleanups.push({
      name: 'redis connection',
      run: async () => {
        if (redis.status !== 'end') await redis.quit();
      },
    });
    await warnUnlessNoEviction(redis, log);

    const jobs: RunningJobs = await startJobs({
      config,
      database,
      redis,
      prefix: config.redisPrefix,
      log,
      roles: options.roles,
      now,
      ...(sandbox ? { pace: sandbox.pace, deployer: sandbox.devices } : deployerOf(config, database, now, log)),
    });
    cleanups.push({
      name: 'jobs',
      // A worker closing while its connection waits to reconnect would wait for ever (BullMQ waits for an 'end' that
      // never comes). With Redis gone no job can record its end anyway: it is redone after the next start.
      run: async () => {
        const closed = await Promise.race([jobs.close().then(() => true), redisGone.then(() => false)]);
        if (!closed) log.warn('Redis went away during the stop: jobs in flight will be redone after the next start');
      },
    });

    const metrics = createMetricsRegistry();
    if (config.metrics) {
      const metricsServer = createMetricsServer({ log, metrics });
      const metricsPort = await metricsServer.listen(config.metrics.port, config.metrics.host);
      cleanups.push({ name: 'metrics http', run: () => metricsServer.close() });
      log.info({ port: metricsPort, host: config.metrics.host }, `metrics on http://${config.metrics.host}:${metricsPort}/metrics`);
    }

    let http: HttpServer | undefined;
    let port: number | undefined;
    let host: string | undefined;
    if (options.roles.has('web')) {
      http = createHttpServer({
        log,
        metrics,
        serveMetrics: !config.metrics,
        readiness: [
          { name: 'database', check: () => database.ping() },
          { name: 'redis', check: () => redis.ping() },
        ],
      });
      // The sandbox page acts as anyone in the directory: unless told otherwise it is for this machine only.
      host = config.host ?? (sandbox ? '127.0.0.1' : '0.0.0.0');
      port = await http.listen(options.port ?? config.port, host);
      const server = http;
      cleanups.push({ name: 'http', run: () => server.close() });
      if (config.slack.botToken && config.slack.signingSecret) {
        // Use-cases write the outbox; this tells the deliverer at once instead of waiting for its sweep.
        const notifier = new OutboxNotifier(redis, config.redisPrefix);
        cleanups.push({ name: 'outbox notifier', run: () => notifier.close() });
        const slack = createSlackApp({
          ...config.slack,
          botToken: config.slack.botToken,
          signingSecret: config.slack.signingSecret,
          database,
          log,
          now,
          notifyOutbox: (ids) => notifier.notify(ids),
        });
        if (slack.handler) server.mount('/slack/events', slack.handler);
        await slack.start();
        cleanups.push({ name: 'slack', run: () => slack.stop() });
        log.info({ mode: config.slack.appToken ? 'socket' : 'http' }, 'slack connected');
      }
      if (config.teams.appId) {
        // Card answers write the outbox too; the notifier hands their rows to the deliverer at once.
        const notifier = new OutboxNotifier(redis, config.redisPrefix);
        cleanups.push({ name: 'teams outbox notifier', run: () => notifier.close() });
        const adapter = createTeamsAdapter(config.teams);
        const teams = createTeamsBot({ db: database.db, log, now, notifyOutbox: (ids) => notifier.notify(ids), adapter, botAppId: config.teams.appId });
        server.mount('/api/messages', teamsRequestHandler(adapter, teams));
        log.info({ tenant: config.teams.tenantId ?? 'multi-tenant' }, 'teams connected on /api/messages');
      }
      if (sandbox) {
        await sandbox.attach({ http: server, host, port, redis, prefix: config.redisPrefix });
        log.info({ port }, `sandbox: no Slack or Teams credentials, so both are emulated here; open http://localhost:${port}/`);
      }
      log.info({ host, port }, `listening on ${host}:${port} (/healthz, /readyz${config.metrics ? '' : ', /metrics'})`);
    }
    return { port, host, redisUrl, database, http, sandbox, chat, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface ChatChoice {
  mode: 'connected' | 'sandbox' | 'off';
  why: string;
}

const CHAT_MODE_LABEL: Record<ChatChoice['mode'], string> = { connected: 'chat connected', sandbox: 'sandbox', off: 'chat off' };

/**
 * Real chat, the sandbox or none. The sandbox writes made-up data and its page acts as anyone, so on top of the
 * configuration's say (Config.sandbox) it needs every role here and a database it claimed while empty; asked for
 * explicitly (PATCHBAY_SANDBOX=on), a database it may not use is an error rather than chat off.
 */
async function chooseChat(config: Config, database: Database, roles: ReadonlySet<Role>): Promise<ChatChoice> {
  const platforms = [...(config.slack.botToken ? ['slack'] : []), ...(config.teams.appId ? ['teams'] : [])];
  if (platforms.length > 0) {
    // From now on this database carries real conversations: the sandbox must never run on it again.
    await recordLiveChat(database.db, new Date(), platforms);
    return { mode: 'connected', why: config.chatReason };
  }
  if (!config.sandbox) return { mode: 'off', why: config.chatReason };
  if (!ROLES.every((role) => roles.has(role))) return { mode: 'off', why: `${config.chatReason}, but the sandbox needs every role in one process (--role all)` };
  const verdict = await checkSandboxDatabase(database, new Date());
  if (verdict.ok) return { mode: 'sandbox', why: config.chatReason };
  const refusal = `the sandbox will not run: ${verdict.why}; give it a fresh PATCHBAY_DATA_DIR (or database), or set SLACK_*/TEAMS_* credentials`;
  if (config.sandboxMode === 'on') throw new Error(`PATCHBAY_SANDBOX=on, but ${refusal}`);
  return { mode: 'off', why: `${config.chatReason}, but ${refusal}` };
}

async function warnUnlessNoEviction(redis: Redis, log: Logger): Promise<void> {
  try {
    const [, policy] = (await redis.config('GET', 'maxmemory-policy')) as [string, string];
    if (policy !== 'noeviction') {
      log.warn({ policy }, 'Redis maxmemory-policy is not noeviction: under memory pressure Redis may drop queued jobs');
    }
  } catch {
    // Managed Redis services often disable CONFIG; nothing to check then.
  }
}

/** The configured device manager for the jobs, or nothing (the rollout module's simulated fleet). */
function deployerOf(config: Config, database: Database, now: () => Date, log: Logger): { deployer?: Deployer } {
  const deployer = configuredDeployer(config, database.db, now);
  // The URL only: the key stays in the config and the X-API-KEY header.
  if (config.deployer.kind === 'tactical') log.info({ deployer: 'tactical', url: config.deployer.url }, 'installs and reboots go to Tactical RMM');
  return deployer ? { deployer } : {};
}
