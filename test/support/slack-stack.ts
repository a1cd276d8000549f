/**
 * The Slack side of patchbay as e2e tests drive it: a test database and redis-server, the Slack emulator, the real
 * Bolt app on our HTTP server and the real outbox deliverer posting through the real WebClient. `seed` fills the
 * database before the app starts.
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import { createSlackApp, type SlackApp } from '../../src/bot/slack/app.ts';
import type { ReportFileSource } from '../../src/chat/port.ts';
import type { AppDatabase } from '../../src/db/client.ts';
import { deliveryClient, OutboxNotifier, startOutboxDeliverer, type OutboxDeliverer } from '../../src/jobs/outbox.ts';
import { createHttpServer, type HttpServer } from '../../src/runtime/http.ts';
import { openTestDatabase, type TestDatabase } from './db.ts';
import { startTestRedis, type TestRedis } from './redis.ts';
import { startSlackEmulator, type SlackEmulator } from './slack-emulator.ts';

export interface SlackStackOptions {
  signingSecret: string;
  now: () => Date;
  seed: (db: AppDatabase) => Promise<void>;
  /** Where the deliverer's Slack sender reads report files (the archive). */
  files?: (db: AppDatabase) => ReportFileSource;
  channelIntervalMs?: number;
}

export interface SlackStack {
  database: TestDatabase;
  redis: TestRedis;
  emu: SlackEmulator;
  http: HttpServer;
  slack: SlackApp;
  eventsUrl: string;
  deliverer: OutboxDeliverer;
  close(): Promise<void>;
}

export async function startSlackStack(options: SlackStackOptions): Promise<SlackStack> {
  const log = pino({ level: 'silent' });
  const [database, redis, emu] = await Promise.all([openTestDatabase(), startTestRedis(), startSlackEmulator({ rateLimits: false })]);
  await options.seed(database.db);
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const notifier = new OutboxNotifier(connection, redis.prefix);
  const slack = createSlackApp({ botToken: emu.botToken, signingSecret: options.signingSecret, apiUrl: emu.url, database, log, now: options.now, notifyOutbox: (ids) => notifier.notify(ids) });
  const http = createHttpServer({ log, readiness: [] });
  http.mount('/slack/events', slack.handler!);
  const eventsUrl = `http://127.0.0.1:${await http.listen(0, '127.0.0.1')}/slack/events`;
  const slackClient = deliveryClient(emu.botToken, emu.url, options.files?.(database.db));
  const deliverer = await startOutboxDeliverer({ database, connection, prefix: redis.prefix, log, slack: slackClient, channelIntervalMs: options.channelIntervalMs ?? 10 });
  return {
    database,
    redis,
    emu,
    http,
    slack,
    eventsUrl,
    deliverer,
    async close() {
      await deliverer.close();
      await notifier.close();
      await http.close();
      connection.disconnect();
      await Promise.all([database.close(), redis.stop(), emu.close()]);
    },
  };
}
