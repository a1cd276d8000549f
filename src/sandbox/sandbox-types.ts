/** What a started sandbox offers: its own module, so the page routes (routes.ts) use it without importing sandbox.ts, which mounts them. */
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { HttpServer } from '../runtime/http.ts';
import type { SimulatedFleet } from '../adapters/deployers/simulated.ts';
import type { SandboxClock } from './clock.ts';
import type { SlackEmulator } from './emulators/slack-emulator.ts';
import type { BotConnectorEmulator } from './emulators/bot-connector-emulator.ts';
import type { SandboxDirectory } from './directory.ts';
import type { Deployer } from '../adapters/deployers/port.ts';
import type { SandboxNinjaOne } from './ninjaone.ts';
import type { SandboxTactical } from './tactical.ts';

export interface AttachOptions {
  http: HttpServer;
  /** The address HTTP listens on: the page API calls this process's own /slack/events and /api/messages there. */
  host: string;
  port: number;
  redis: Redis;
  prefix: string;
}

export interface Sandbox {
  /** The configuration with chat and feeds pointed at the emulators: what the app runs on. */
  config: Config;
  clock: SandboxClock;
  pace: { tickMs: number; realDelayMs: (until: Date, now: Date) => number };
  deployer: SimulatedFleet;
  /** Where the sandbox's runs go: the simulated fleet, or (PATCHBAY_SANDBOX_DEPLOYER=tactical|ninjaone) that adapter. */
  devices: Deployer;
  /** Set when runs go to the Tactical RMM emulator. */
  tactical: SandboxTactical | undefined;
  /** Set when runs go to the NinjaOne emulator. */
  ninjaone: SandboxNinjaOne | undefined;
  slack: SlackEmulator;
  connector: BotConnectorEmulator;
  directory: SandboxDirectory;
  /** Minted at each start; the served page carries it and every page-API call must send it (page-guard.ts). */
  pageToken: string;
  /** Mounts the page and its API, and installs the bot in each client's Teams (once HTTP is up). */
  attach(options: AttachOptions): Promise<void>;
  /** Promotes run jobs delayed in real time so they look at the clock again (after a jump). */
  wakeDelayedRuns(): Promise<void>;
  /** Writes the clock and the emulated chats now: the first step of a stop, before anything that may wait. */
  save(): Promise<void>;
  stop(): Promise<void>;
}
