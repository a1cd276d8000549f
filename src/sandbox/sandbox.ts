/**
 * The local sandbox: patchbay with no Slack workspace, no Teams tenant and no devices. The emulators the tests
 * use stand in for Slack's Web API and Teams' Bot Connector (in this process, on loopback ports), a local MSRC
 * API serves a sample release for every month, a simulated fleet stands in for devices, and a page at `/` shows
 * what the bot posted. Everything else is the production code path: the real Bolt app verifies signed requests,
 * the real Teams adapter verifies tokens, jobs run on BullMQ, state lives in the database.
 *
 * The page's clicks are turned here into exactly what Slack or Teams would send (a signed interaction, a token-
 * bearing invoke) and posted to this process's own /slack/events and /api/messages.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { DEFAULTS, type Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import { hasMsp } from '../db/msp-repo.ts';
import { retryUnsentNow } from '../db/outbox-repo.ts';
import { repointServiceUrls } from '../db/teams-conversations-repo.ts';
import type { Logger } from '../log.ts';
import { SimulatedFleet, type SimulatedBehaviour } from '../adapters/deployers/simulated.ts';
import { startSandboxNinjaOne } from './ninjaone.ts';
import { startSandboxTactical } from './tactical.ts';
import { importInventoryFile } from '../commands/import.ts';
import { RUN_QUEUE } from '../jobs/rollout/index.ts';
import { CLOCK_SAVE_EVERY_MS, freshSandboxStart, SandboxClock, sandboxClockFile } from './clock.ts';
import { startSlackEmulator, type SlackEmulator, type SlackEmulatorHistory } from './emulators/slack-emulator.ts';
import { startBotConnectorEmulator, type BotConnectorEmulator, type StoredActivity } from './emulators/bot-connector-emulator.ts';
import { startSampleMsrc, type SampleMsrc } from './sample-msrc.ts';
import { loadDirectory, type SandboxDirectory } from './directory.ts';
import { sandboxRoutes } from './routes.ts';

export const SANDBOX_TEAMS_APP_ID = '00000000-5a4d-4b0c-8000-70a7c4ba5e00';
const SANDBOX_TEAMS_TENANT = 'sandbox-msp-tenant';
/**
 * The bearer the app sends the Bot Connector emulator instead of one from Entra ID. JWT-shaped because the Teams
 * SDK reads a token's claims; unsigned, because the emulator only checks that one is there.
 */
const OUTBOUND_TOKEN = `${[{ alg: 'none', typ: 'JWT' }, { iss: 'patchbay-sandbox', aud: 'https://api.botframework.com' }].map((p) => Buffer.from(JSON.stringify(p)).toString('base64url')).join('.')}.`;
/** Clock ms per real ms: a minute a second, so a night's window passes in a few real minutes. */
export const DEFAULT_SANDBOX_RATE = 60;

const repoRoot = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
export const SAMPLE_INVENTORY = path.join(repoRoot, 'examples', 'sandbox-inventory.yaml');

/** A fleet that misbehaves now and then, as real ones do, so the window summaries have something to say. */
export const SANDBOX_FLEET: Partial<SimulatedBehaviour> = {
  latencyMs: 50,
  operationMs: 12 * 60_000,
  installFailureRate: 0.04,
  offlineRate: 0.06,
  rebootTwiceRate: 0.15,
};

export interface SandboxOptions {
  config: Config;
  database: Database;
  log: Logger;
  /** Default: rate DEFAULT_SANDBOX_RATE, its reading kept under the data dir. */
  clock?: SandboxClock;
  /** Loaded when no inventory has been imported. Default examples/sandbox-inventory.yaml. */
  inventoryFile?: string;
  fleet?: Partial<SimulatedBehaviour>;
  /** Real ms between scheduler ticks. Default 2000. */
  tickMs?: number;
  /** Serve only this month on the local MSRC (the demo's), with this document instead of the sample. */
  release?: { id: string; document?: unknown };
}

import type { Sandbox } from './sandbox-types.ts';
export type { AttachOptions, Sandbox } from './sandbox-types.ts';

/** What the sandbox runs after a stop: each part adds how it stops, and they stop in reverse. */
type Stops = Array<() => Promise<void>>;

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const { config, database, log } = options;
  const stops: Stops = [];
  const stop = async () => {
    for (const run of stops.reverse()) await run().catch((error: unknown) => log.warn({ err: error }, 'sandbox: stopping a part failed'));
    stops.length = 0;
  };
  try {
    await mkdir(path.join(config.dataDir, 'sandbox'), { recursive: true });
    const clock = startClock(options, stops);
    await importSampleInventory(options, clock);
    const directory = await loadDirectory(database.db);
    const chat = await startEmulatedChat(options, clock, directory, stops);
    const msrc: SampleMsrc = await startSampleMsrc({ clock: clock.now, ...(options.release ? { release: options.release } : {}) });
    stops.push(() => msrc.close());
    const signingSecret = randomBytes(16).toString('hex');
    const reportLinks = await sandboxReportLinks(config);
    // The fleet's ledger lives beside the database too: after a restart a device still knows what it installed
    // and which reboots it owes, so a run resumed mid-step finds the device where it left it.
    const deployer = new SimulatedFleet({ clock: clock.now, fleet: options.fleet ?? SANDBOX_FLEET, seed: 7, ledgerPath: path.join(config.dataDir, 'sandbox', 'fleet.jsonl') });
    const tactical = config.sandboxDeployer === 'tactical' ? await startSandboxTactical({ now: clock.now, database, log, refreshMs: options.tickMs ?? 2_000 }) : undefined;
    if (tactical) stops.push(() => tactical.close());
    const ninjaone = config.sandboxDeployer === 'ninjaone' ? await startSandboxNinjaOne({ now: clock.now, database, log, refreshMs: options.tickMs ?? 2_000 }) : undefined;
    if (ninjaone) stops.push(() => ninjaone.close());
    const parts = { clock, directory, chat, deployer, tactical, ninjaone, signingSecret, config: sandboxConfig(config, chat, msrc, signingSecret, reportLinks.config) };
    return assembleSandbox(options, { ...parts, reportLinks }, stops, stop);
  } catch (error) {
    await stop();
    throw error;
  }
}

function startClock(options: SandboxOptions, stops: Stops): SandboxClock {
  const { dataDir } = options.config;
  const clock = options.clock ?? new SandboxClock({ file: sandboxClockFile(dataDir), rate: DEFAULT_SANDBOX_RATE, start: freshSandboxStart(new Date()) });
  stops.push(async () => clock.save({ final: true }));
  const saver = setInterval(() => clock.save(), CLOCK_SAVE_EVERY_MS);
  saver.unref();
  stops.push(async () => clearInterval(saver));
  return clock;
}

async function importSampleInventory(options: SandboxOptions, clock: SandboxClock): Promise<void> {
  const { database, log } = options;
  if (await inventoryImported(database)) return;
  const file = options.inventoryFile ?? SAMPLE_INVENTORY;
  const outcome = await importInventoryFile(database, file, { dryRun: false, now: clock.now(), actor: 'sandbox' });
  if (!outcome.ok) throw new Error(`the sandbox's sample inventory does not import:\n${outcome.problems.join('\n')}`);
  log.info({ file }, 'sandbox: no inventory was imported; loaded the sample one');
}

interface EmulatedChat {
  slack: SlackEmulator;
  connector: BotConnectorEmulator;
  /** Writes both emulators' history beside the database, when it changed since the last write. */
  save(): Promise<void>;
}

/**
 * The emulated chats are kept beside the database: a restarted sandbox must find the messages the database
 * says were posted (the bot edits them in place), not an empty channel.
 */
async function startEmulatedChat(options: SandboxOptions, clock: SandboxClock, directory: SandboxDirectory, stops: Stops): Promise<EmulatedChat> {
  const { config, database, log } = options;
  const chatFile = path.join(config.dataDir, 'sandbox', 'chat.json');
  const saved = await readChatHistory(chatFile, log);
  const slack = await startSlackEmulator({
    botToken: `xoxb-sandbox-${randomBytes(8).toString('hex')}`,
    team: { id: 'T0SANDBOX', domain: 'patchbay-sandbox', name: directory.msp.name },
    users: directory.slackUsers(),
    channels: directory.slackChannels(),
    stampClock: () => clock.nowMs(),
    ...(saved ? { restore: saved.slack } : {}),
  });
  stops.push(() => slack.close());
  const connector = await startBotConnectorEmulator({ stampClock: () => clock.nowMs(), ...(saved ? { restore: saved.teams } : {}) });
  stops.push(() => connector.close());
  await carryOnTeams(database, connector.url, clock.now(), log);
  let savedSignature = '';
  const save = async () => {
    const signature = `${slack.calls().length}:${connector.calls().length}:${connector.activities().length}`;
    if (signature === savedSignature) return;
    savedSignature = signature;
    await mkdir(path.dirname(chatFile), { recursive: true });
    const history: ChatHistory = { slack: slack.history(), teams: connector.activities() };
    await writeFile(`${chatFile}.tmp`, JSON.stringify(history));
    await rename(`${chatFile}.tmp`, chatFile);
  };
  const chatSaver = setInterval(() => void save().catch((error: unknown) => log.warn({ err: error }, 'sandbox: saving the chat history failed')), 3_000);
  chatSaver.unref();
  stops.push(async () => {
    clearInterval(chatSaver);
    await save();
  });
  for (const member of directory.teamsMembers()) connector.addMember(member);
  return { slack, connector, save };
}

/** The configuration the app runs on: chat pointed at the emulators, and the feeds at the samples unless set. */
function sandboxConfig(config: Config, chat: EmulatedChat, msrc: SampleMsrc, signingSecret: string, reportLinks: Config['reportLinks']): Config {
  const { slack, connector } = chat;
  return {
    ...config,
    slack: { botToken: slack.botToken, signingSecret, appToken: undefined, apiUrl: slack.url },
    teams: {
      appId: SANDBOX_TEAMS_APP_ID,
      appPassword: 'sandbox',
      tenantId: SANDBOX_TEAMS_TENANT,
      openIdMetadataUrl: connector.openIdMetadataUrl,
      tokenIssuer: connector.issuer,
      staticOutboundToken: OUTBOUND_TOKEN,
    },
    // Feeds the user pointed somewhere are theirs; the defaults are unreachable from here, so serve samples.
    msrcApiUrl: config.msrcApiUrl === DEFAULTS.msrcApiUrl ? msrc.msrcUrl : config.msrcApiUrl,
    kevUrl: config.kevUrl === DEFAULTS.kevUrl ? msrc.kevUrl : config.kevUrl,
    reportLinks,
  };
}

interface SandboxReportLinks {
  config: NonNullable<Config['reportLinks']>;
  /** Called once HTTP listens: from then on links name this start's own address. */
  listening(baseUrl: string): void;
}

/**
 * The Teams report card's download links, which must open from the page: signed with a secret kept beside the
 * database (made once, never logged, so a card from before a restart still opens while its link lasts) and
 * naming the sandbox's own address, known only once HTTP listens. The signer reads `publicUrl` at each signing,
 * so it is a getter. A PUBLIC_URL and REPORT_LINK_SECRET the user set win.
 */
async function sandboxReportLinks(config: Config): Promise<SandboxReportLinks> {
  if (config.reportLinks) return { config: config.reportLinks, listening: () => {} };
  const file = path.join(config.dataDir, 'sandbox', 'report-link-secret');
  let secret = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (secret.length < 32) {
    secret = randomBytes(32).toString('hex');
    await writeFile(file, `${secret}\n`, { mode: 0o600 });
  }
  let baseUrl = `http://127.0.0.1:${config.port}`;
  return {
    config: {
      secret,
      get publicUrl() {
        return baseUrl;
      },
    },
    listening: (url) => void (baseUrl = url),
  };
}

interface SandboxParts {
  config: Config;
  clock: SandboxClock;
  directory: SandboxDirectory;
  chat: EmulatedChat;
  deployer: SimulatedFleet;
  tactical: Sandbox['tactical'];
  ninjaone: Sandbox['ninjaone'];
  signingSecret: string;
  reportLinks: SandboxReportLinks;
}

function assembleSandbox(options: SandboxOptions, parts: SandboxParts, stops: Stops, stop: () => Promise<void>): Sandbox {
  const { database, log } = options;
  const { clock, chat, deployer, tactical, ninjaone, signingSecret } = parts;
  let runQueue: Queue | undefined;
  const pageToken = randomBytes(32).toString('base64url');
  const sandbox: Sandbox = {
    config: parts.config,
    clock,
    pace: { tickMs: options.tickMs ?? 2_000, realDelayMs: clock.realDelayMs },
    deployer,
    devices: tactical?.deployer ?? ninjaone?.deployer ?? deployer,
    tactical,
    ninjaone,
    slack: chat.slack,
    connector: chat.connector,
    directory: parts.directory,
    pageToken,
    async attach({ http, host, port, redis, prefix }) {
      runQueue = new Queue(RUN_QUEUE, { connection: redis, prefix });
      stops.push(async () => void (await runQueue?.close()));
      parts.reportLinks.listening(`http://${selfAddress(host)}:${port}`);
      const routes = sandboxRoutes({ sandbox, database, log, appUrl: `http://${selfAddress(host)}:${port}`, signingSecret, appId: SANDBOX_TEAMS_APP_ID, pageToken, listenHost: options.config.host });
      for (const [route, handler] of routes.handlers) http.mount(route, handler);
      // The page's event streams never end by themselves; the server's stop would wait on them.
      http.beforeClose(() => routes.close());
      stops.push(() => routes.close());
      await routes.installTeams();
    },
    async wakeDelayedRuns() {
      await runQueue?.promoteJobs();
    },
    async save() {
      clock.save({ final: true });
      await chat.save();
    },
    stop,
  };
  return sandbox;
}

/**
 * The emulator listens on a new loopback port at each start, but stored conversation references (and so every
 * proactive send) still name the last one: point them at this one, and send now what failed or waited meanwhile.
 * Runs before the outbox deliverer starts, so no send goes to the old address.
 */
async function carryOnTeams(database: Database, serviceUrl: string, now: Date, log: Logger): Promise<void> {
  const { hostname, protocol } = new URL(serviceUrl);
  const repointed = await repointServiceUrls(database.db, `${protocol}//${hostname}:`, serviceUrl, now);
  const requeued = await retryUnsentNow(database.db, 'teams', now);
  if (repointed + requeued > 0) log.info({ repointed, requeued, serviceUrl }, "sandbox: Teams conversations now point at this start's emulator; waiting Teams sends go out now");
}

/** Where this process reaches itself: loopback when bound to every interface, else the one address it is bound to. */
function selfAddress(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

interface ChatHistory {
  slack: SlackEmulatorHistory;
  teams: StoredActivity[];
}

async function readChatHistory(file: string, log: Logger): Promise<ChatHistory | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const history = JSON.parse(text) as ChatHistory;
    if (!Array.isArray(history.slack?.messages) || !Array.isArray(history.teams)) throw new Error('not a chat history');
    return history;
  } catch (error) {
    log.warn({ err: error, file }, 'sandbox: the saved chat history is unreadable; starting with empty chats');
    return undefined;
  }
}

async function inventoryImported(database: Database): Promise<boolean> {
  return hasMsp(database.db);
}
