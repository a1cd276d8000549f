import path from 'node:path';
import { Redis } from 'ioredis';
import type { Config } from './config.ts';
import type { Deployer } from './adapters/deployers/port.ts';
import { openDatabase, type Database } from './db/client.ts';
import { migrateDatabase } from './db/migrate.ts';
import { ROLES, type Role, type RunningJobs } from './jobs/context.ts';
import { startJobs } from './jobs/start.ts';
import { releaseOrphanedJobs } from './jobs/orphans.ts';
import type { Sandbox } from './sandbox/sandbox.ts';
import type { SandboxClock } from './sandbox/clock.ts';
import { OutboxNotifier } from './jobs/outbox.ts';
import { createSlackApp } from './bot/slack/app.ts';
import { REPORT_LINK_PATH, reportDownloadHandler, reportLinkSigner } from './runtime/report-links.ts';
import { createTeamsApp, createTeamsBot, teamsRequestHandler } from './bot/teams/app.ts';
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

type MetricsRegistry = ReturnType<typeof createMetricsRegistry>;

/** Everything started so far, stopped in reverse on the way out (`firsts` before the rest). */
class Shutdown {
  private readonly cleanups: Array<{ name: string; run: () => Promise<void> }> = [];
  // Run before anything that could wait on Redis or a client, so they happen even if a later step hangs.
  private readonly firsts: Array<{ name: string; run: () => Promise<void> }> = [];
  stopping = false;

  constructor(private readonly log: Logger) {}

  add(name: string, run: () => Promise<void>): void {
    this.cleanups.push({ name, run });
  }

  first(name: string, run: () => Promise<void>): void {
    this.firsts.push({ name, run });
  }

  readonly stop = async (): Promise<void> => {
    this.stopping = true;
    for (const { name, run } of [...this.firsts.splice(0), ...this.cleanups.splice(0).reverse()]) {
      this.log.debug(`shutdown: ${name}`);
      try {
        await run();
      } catch (error) {
        this.log.error({ err: error }, `shutdown: ${name} failed`);
      }
    }
  };
}

/** Starts patchbay: database (migrated), Redis (ours or the configured one), jobs by role, and HTTP. */
export async function startApp(configured: Config, log: Logger, options: StartOptions): Promise<RunningApp> {
  const shutdown = new Shutdown(log);
  const privateRedis: { server?: PrivateRedis } = {};
  try {
    // Embedded parts belong to one process; with a real Postgres and Redis any number may run.
    if (configured.database.kind === 'embedded' || !configured.redisUrl) {
      const lock = await lockDataDir(configured.dataDir);
      shutdown.add('data dir lock', () => lock.release());
    }
    // Stopped last: until then the jobs, queues and the sandbox still talk to it.
    shutdown.add('private redis-server', async () => privateRedis.server?.stop());

    const database = await openDatabase(configured.database);
    shutdown.add('database', () => database.close());
    const migration = await migrateDatabase(database);
    log.info({ database: database.kind, ...migration }, 'database ready');

    const chat = await chooseChat(configured, database, options.roles);
    log[chat.mode === 'off' && configured.sandboxMode !== 'off' ? 'warn' : 'info']({ chat: chat.mode }, `mode: ${CHAT_MODE_LABEL[chat.mode]}, because ${chat.why}`);
    const sandbox = chat.mode === 'sandbox' ? await startSandboxFor(configured, database, log, options, shutdown) : undefined;
    const config = sandbox ? sandbox.config : configured;
    const now = sandbox ? sandbox.clock.now : (options.now ?? (() => new Date()));

    const { redis, redisUrl, redisGone } = await connectRedis(config, log, shutdown, privateRedis);
    await startJobsFor({ config, database, redis, log, roles: options.roles, now, sandbox }, shutdown, redisGone);
    const metrics = await startMetrics(config, log, shutdown);
    const web = options.roles.has('web') ? await startWeb({ config, database, redis, log, now, sandbox, metrics, port: options.port }, shutdown) : undefined;
    return { port: web?.port, host: web?.host, redisUrl, database, http: web?.http, sandbox, chat, stop: shutdown.stop };
  } catch (error) {
    await shutdown.stop();
    throw error;
  }
}

async function startSandboxFor(config: Config, database: Database, log: Logger, options: StartOptions, shutdown: Shutdown): Promise<Sandbox> {
  const { startSandbox } = await import('./sandbox/sandbox.ts');
  const sandbox = await startSandbox({
    config,
    database,
    log,
    ...(options.sandboxClock ? { clock: options.sandboxClock } : {}),
    ...(options.sandboxTickMs ? { tickMs: options.sandboxTickMs } : {}),
    ...(options.sandboxRelease ? { release: options.sandboxRelease } : {}),
  });
  shutdown.add('sandbox', () => sandbox.stop());
  shutdown.first('sandbox state', () => sandbox.save());
  return sandbox;
}

/** The configured Redis, or a private redis-server under the data dir when none is. */
async function connectRedis(config: Config, log: Logger, shutdown: Shutdown, privateRedis: { server?: PrivateRedis }): Promise<{ redis: Redis; redisUrl: string; redisGone: Promise<void> }> {
  let redisUrl = config.redisUrl;
  if (!redisUrl) {
    const server = await startPrivateRedis({ dir: path.join(config.dataDir, 'redis'), appendOnly: true, ownProcessGroup: true });
    privateRedis.server = server;
    if (server.stoppedLeftover) log.warn({ pid: server.stoppedLeftover }, 'stopped a redis-server a killed patchbay left running on this data dir');
    redisUrl = server.url;
    log.info({ url: redisUrl, pid: server.pid }, 'started a private redis-server (set REDIS_URL to use your own)');
  }
  // Once stopping, a Redis that went away is not waited for: BullMQ's duplicates share this strategy.
  const retryStrategy = (times: number) => (shutdown.stopping ? null : Math.min(times * 50, 2_000));
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: true, retryStrategy });
  redis.on('error', (error) => (shutdown.stopping ? log.debug({ err: error }, 'redis connection error while stopping') : log.warn({ err: error }, 'redis connection error')));
  // Ends only once stopping found Redis gone (see retryStrategy): then nothing waits on it any more.
  const redisGone = new Promise<void>((resolve) => redis.once('end', resolve));
  await redis.connect();
  shutdown.add('redis connection', async () => {
    if (redis.status !== 'end') await redis.quit();
  });
  await warnUnlessNoEviction(redis, log);
  if (privateRedis.server) await releaseJobsOfKilledProcess(redis, config.redisPrefix, log);
  return { redis, redisUrl, redisGone };
}

/** Our private Redis serves this process alone: what is active in it was left by one killed before (./jobs/orphans.ts). */
async function releaseJobsOfKilledProcess(redis: Redis, prefix: string, log: Logger): Promise<void> {
  const released = await releaseOrphanedJobs(redis, prefix);
  if (Object.keys(released).length > 0) log.warn({ released }, 'jobs a killed patchbay was running are taken up again now');
}

/** What the parts after Redis are started with. */
interface Started {
  config: Config;
  database: Database;
  redis: Redis;
  log: Logger;
  now: () => Date;
  sandbox: Sandbox | undefined;
}

async function startJobsFor(started: Started & { roles: ReadonlySet<Role> }, shutdown: Shutdown, redisGone: Promise<void>): Promise<void> {
  const { config, database, redis, log, roles, now, sandbox } = started;
  const jobs: RunningJobs = await startJobs({
    config,
    database,
    redis,
    prefix: config.redisPrefix,
    log,
    roles,
    now,
    ...(sandbox ? { pace: sandbox.pace, deployer: sandbox.devices } : deployerOf(config, database, now, log)),
  });
  // A worker closing while its connection waits to reconnect would wait for ever (BullMQ waits for an 'end' that
  // never comes). With Redis gone no job can record its end anyway: it is redone after the next start.
  shutdown.add('jobs', async () => {
    const closed = await Promise.race([jobs.close().then(() => true), redisGone.then(() => false)]);
    if (!closed) log.warn('Redis went away during the stop: jobs in flight will be redone after the next start');
  });
}

async function startMetrics(config: Config, log: Logger, shutdown: Shutdown): Promise<MetricsRegistry> {
  const metrics = createMetricsRegistry();
  if (config.metrics) {
    const metricsServer = createMetricsServer({ log, metrics });
    const metricsPort = await metricsServer.listen(config.metrics.port, config.metrics.host);
    shutdown.add('metrics http', () => metricsServer.close());
    log.info({ port: metricsPort, host: config.metrics.host }, `metrics on http://${config.metrics.host}:${metricsPort}/metrics`);
  }
  return metrics;
}

/** HTTP (health, readiness, metrics) with the chat receivers mounted: real Slack and Teams, or the sandbox's page. */
async function startWeb(started: Started & { metrics: MetricsRegistry; port: number | undefined }, shutdown: Shutdown): Promise<{ http: HttpServer; host: string; port: number }> {
  const { config, database, redis, log, sandbox } = started;
  const http = createHttpServer({
    log,
    metrics: started.metrics,
    serveMetrics: !config.metrics,
    readiness: [
      { name: 'database', check: () => database.ping() },
      { name: 'redis', check: () => redis.ping() },
    ],
  });
  // The sandbox page acts as anyone in the directory: unless told otherwise it is for this machine only.
  const host = config.host ?? (sandbox ? '127.0.0.1' : '0.0.0.0');
  const port = await http.listen(started.port ?? config.port, host);
  shutdown.add('http', () => http.close());
  if (config.slack.botToken && config.slack.signingSecret) await mountSlack(started, http, shutdown);
  if (config.teams.appId) mountTeams(started, http, shutdown);
  if (config.reportLinks) http.mount(REPORT_LINK_PATH, reportDownloadHandler({ db: database.db, secret: config.reportLinks.secret, now: started.now, log }));
  if (sandbox) {
    await sandbox.attach({ http, host, port, redis, prefix: config.redisPrefix });
    log.info({ port }, `sandbox: no Slack or Teams credentials, so both are emulated here; open http://localhost:${port}/`);
  }
  log.info({ host, port }, `listening on ${host}:${port} (/healthz, /readyz${config.metrics ? '' : ', /metrics'})`);
  return { http, host, port };
}

async function mountSlack(started: Started, server: HttpServer, shutdown: Shutdown): Promise<void> {
  const { config, database, redis, log, now } = started;
  // Use-cases write the outbox; this tells the deliverer at once instead of waiting for its sweep.
  const notifier = new OutboxNotifier(redis, config.redisPrefix);
  shutdown.add('outbox notifier', () => notifier.close());
  const slack = createSlackApp({
    ...config.slack,
    botToken: config.slack.botToken!,
    signingSecret: config.slack.signingSecret!,
    database,
    log,
    now,
    notifyOutbox: (ids) => notifier.notify(ids),
    ...(config.reportLinks ? { reportLinks: reportLinkSigner(config.reportLinks) } : {}),
  });
  if (slack.handler) server.mount('/slack/events', slack.handler);
  await slack.start();
  shutdown.add('slack', () => slack.stop());
  log.info({ mode: config.slack.appToken ? 'socket' : 'http' }, 'slack connected');
}

function mountTeams(started: Started, server: HttpServer, shutdown: Shutdown): void {
  const { config, database, redis, log, now } = started;
  // Card answers write the outbox too; the notifier hands their rows to the deliverer at once.
  const notifier = new OutboxNotifier(redis, config.redisPrefix);
  shutdown.add('teams outbox notifier', () => notifier.close());
  const teams = createTeamsApp(config.teams, log);
  createTeamsBot({ db: database.db, log, now, notifyOutbox: (ids) => notifier.notify(ids), teams });
  server.mount('/api/messages', teamsRequestHandler(teams));
  log.info({ tenant: config.teams.tenantId ?? 'multi-tenant' }, 'teams connected on /api/messages');
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
  // The URL only: the key and the client secret stay in the config and their headers.
  if (config.deployer.kind === 'tactical') log.info({ deployer: 'tactical', url: config.deployer.url }, 'installs and reboots go to Tactical RMM');
  if (config.deployer.kind === 'ninjaone') log.info({ deployer: 'ninjaone', url: config.deployer.url, installScriptId: config.deployer.installScriptId }, 'installs and reboots go to NinjaOne');
  return deployer ? { deployer } : {};
}
