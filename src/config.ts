import path from 'node:path';
import { z } from 'zod';

/**
 * The environment, validated once at start. Nothing else in the code reads process.env:
 * everything that needs a setting is handed a Config.
 */

const optionalString = z
  .string()
  .trim()
  .transform((value) => (value === '' ? undefined : value))
  .optional();

const url = (protocols: string[], example: string) =>
  optionalString.refine(
    (value) => {
      if (value === undefined) return true;
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message: `expected a URL such as ${example}` },
  );

const portNumber = optionalString.transform((value, ctx) => {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: 'expected a port number from 0 to 65535' });
    return z.NEVER;
  }
  return port;
});

const syncTime = optionalString.refine((v) => v === undefined || /^([01]\d|2[0-3]):[0-5]\d$/.test(v), { message: 'expected HH:MM (24-hour), in the MSP\'s time zone' });

const numberWhere = (valid: (n: number) => boolean, message: string) =>
  optionalString.transform((value, ctx) => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isFinite(n) || !valid(n)) {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return n;
  });

const envSchema = z.object({
  NODE_ENV: optionalString,
  DATABASE_URL: url(['postgres:', 'postgresql:'], 'postgres://user:pass@localhost:5432/patchbay'),
  PATCHBAY_DATA_DIR: optionalString,
  REDIS_URL: url(['redis:', 'rediss:'], 'redis://127.0.0.1:6379'),
  REDIS_PREFIX: optionalString.refine((v) => v === undefined || !v.includes(':'), {
    message: 'expected a name without ":" (BullMQ forbids it), e.g. patchbay',
  }),
  PORT: portNumber,
  HOST: optionalString,
  METRICS_PORT: portNumber,
  METRICS_HOST: optionalString,
  LOG_LEVEL: optionalString.pipe(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional()),
  SLACK_BOT_TOKEN: optionalString.refine((v) => v === undefined || v.startsWith('xoxb-'), {
    message: 'expected a bot token starting with xoxb-',
  }),
  SLACK_SIGNING_SECRET: optionalString,
  SLACK_APP_TOKEN: optionalString.refine((v) => v === undefined || v.startsWith('xapp-'), {
    message: 'expected an app-level token starting with xapp- (Socket Mode)',
  }),
  SLACK_API_URL: url(['http:', 'https:'], 'https://slack.com/api/'),
  TEAMS_APP_ID: optionalString,
  TEAMS_APP_PASSWORD: optionalString,
  TEAMS_TENANT_ID: optionalString,
  // Never echoed back in a problem (see SECRETS).
  REPORT_LINK_SECRET: optionalString.refine((v) => v === undefined || v.length >= 32, { message: 'expected at least 32 characters (e.g. openssl rand -hex 32)' }),
  PUBLIC_URL: optionalString.pipe(z.url().optional()),
  MSRC_API_URL: url(['http:', 'https:', 'file:'], 'https://api.msrc.microsoft.com/cvrf/v3.0/'),
  KEV_URL: url(['http:', 'https:', 'file:'], 'https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json'),
  PATCHBAY_SANDBOX: optionalString.pipe(z.enum(['auto', 'on', 'off']).optional()),
  DEPLOYER: optionalString.pipe(z.enum(['simulated', 'tactical', 'ninjaone']).optional()),
  PATCHBAY_SANDBOX_DEPLOYER: optionalString.pipe(z.enum(['simulated', 'tactical', 'ninjaone']).optional()),
  TACTICAL_URL: url(['http:', 'https:'], 'https://api.rmm.example.com/'),
  // Never echoed back in a problem (see SECRETS): a key with a typo is still most of a key.
  TACTICAL_API_KEY: optionalString.refine((v) => v === undefined || /^\S{8,}$/.test(v), { message: 'expected the API key Tactical RMM showed when it was created' }),
  DEVICE_SYNC_INVENTORY: optionalString,
  DEVICE_SYNC_TIME: syncTime,
  // The names from when only Tactical RMM synced devices: still read, the new names win.
  TACTICAL_SYNC_INVENTORY: optionalString,
  TACTICAL_SYNC_TIME: syncTime,
  TACTICAL_REQUESTS_PER_SECOND: optionalString.transform((value, ctx) => {
    if (value === undefined) return undefined;
    const rate = Number(value);
    if (!Number.isFinite(rate) || rate <= 0 || rate > 1000) {
      ctx.addIssue({ code: 'custom', message: 'expected a number of requests per second above 0, at most 1000' });
      return z.NEVER;
    }
    return rate;
  }),
  NINJAONE_URL: url(['https:', 'http:'], 'https://eu.ninjarmm.com'),
  NINJAONE_CLIENT_ID: optionalString,
  // Never echoed back in a problem (see SECRETS).
  NINJAONE_CLIENT_SECRET: optionalString,
  NINJAONE_INSTALL_SCRIPT_ID: numberWhere((n) => Number.isInteger(n) && n > 0, 'expected the id of Install-PatchbayKBs.ps1 in your NinjaOne script library, e.g. 42'),
  NINJAONE_REQUESTS_PER_SECOND: numberWhere((n) => n > 0 && n <= 1000, 'expected a number of requests per second above 0, at most 1000'),
});

/** Variables whose values never appear in a configuration problem (or anywhere else patchbay writes). */
const SECRETS = new Set(['REPORT_LINK_SECRET', 'TACTICAL_API_KEY', 'NINJAONE_CLIENT_SECRET', 'SLACK_BOT_TOKEN', 'SLACK_SIGNING_SECRET', 'SLACK_APP_TOKEN', 'TEAMS_APP_PASSWORD']);

export type Env = z.input<typeof envSchema>;

export interface Config {
  /** `embedded` is PGlite on disk under dataDir; `postgres` is a real server through postgres.js. */
  database: { kind: 'embedded'; dataDir: string } | { kind: 'postgres'; url: string };
  dataDir: string;
  /** Unset: `patchbay start` runs a private redis-server under dataDir. */
  redisUrl: string | undefined;
  redisPrefix: string;
  port: number;
  /** Unset: every interface, but loopback only in sandbox mode (its page acts as anyone in the directory). */
  host: string | undefined;
  /** Set: /metrics is served only on this port and host, not on the public `port` beside /slack/events. */
  metrics: { port: number; host: string } | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Signed download links for report files (Teams): both set, or links are left out of the champions' cards. */
  reportLinks: { secret: string; publicUrl: string } | undefined;
  slack: {
    botToken: string | undefined;
    signingSecret: string | undefined;
    appToken: string | undefined;
    apiUrl: string;
  };
  teams: {
    appId: string | undefined;
    appPassword: string | undefined;
    tenantId: string | undefined;
    /** Set only by the sandbox: its Bot Connector emulator publishes the keys and mints the tokens. */
    openIdMetadataUrl?: string;
    tokenIssuer?: string;
    /** Set only by the sandbox: the bearer sent to its Bot Connector emulator instead of one from Entra ID. */
    staticOutboundToken?: string;
  };
  msrcApiUrl: string;
  kevUrl: string;
  /**
   * Whether `patchbay start` runs the local sandbox (emulated Slack and Teams, a simulated fleet, a sample
   * inventory). It writes made-up data, so by itself (`auto`) only with no chat credentials on the embedded
   * database; on an external PostgreSQL only when PATCHBAY_SANDBOX=on says so.
   */
  sandbox: boolean;
  /** What PATCHBAY_SANDBOX asked for; `on` makes a database the sandbox may not use an error, not chat off. */
  sandboxMode: 'auto' | 'on' | 'off';
  /** Why chat runs as it does (connected, sandbox, off), for the one line said at start. */
  chatReason: string;
  /**
   * What installs and reboots go to: the simulated fleet (the demo, and the default until a device manager is
   * configured), or a Tactical RMM server. The key is only ever sent in its X-API-KEY header.
   */
  deployer:
    | { kind: 'simulated' }
    | { kind: 'tactical'; url: string; apiKey: string; requestsPerSecond: number }
    | { kind: 'ninjaone'; url: string; clientId: string; clientSecret: string; installScriptId: number; requestsPerSecond: number };
  /** The daily device sync, used with a device manager (Tactical RMM or NinjaOne). */
  deviceSync: DeviceSyncConfig;
  /** In sandbox mode: the simulated fleet, or the Tactical (NinjaOne) adapter on a Tactical RMM (NinjaOne) emulator. */
  sandboxDeployer: 'simulated' | 'tactical' | 'ninjaone';
}

/** The daily device sync from the configured device manager (src/jobs/device-sync.ts). */
export interface DeviceSyncConfig {
  /** The inventory file it merges the device manager's devices into; unset: the sync says it cannot run. */
  inventory: string | undefined;
  /** HH:MM in the MSP's zone. */
  time: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export const DEFAULTS = {
  port: 3000,
  // Metrics say a lot about the install; only this machine sees them unless METRICS_HOST says otherwise.
  metricsHost: '127.0.0.1',
  dataDir: './.data',
  redisPrefix: 'patchbay',
  slackApiUrl: 'https://slack.com/api/',
  msrcApiUrl: 'https://api.msrc.microsoft.com/cvrf/v3.0/',
  kevUrl: 'https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json',
  // Tactical publishes no limit; its server is the MSP's own, shared with the technicians' web UI.
  tacticalRequestsPerSecond: 10,
  // Before the engineers' day: they read what changed with their first coffee, before any window of the night.
  deviceSyncTime: '06:00',
  // NinjaOne publishes no limit either and answers 429 past its own; the client also honours Retry-After.
  ninjaoneRequestsPerSecond: 5,
} as const;

/** Reads and validates the environment; every problem is reported at once, each naming its variable. */
export function loadConfig(env: Record<string, string | undefined>, cwd = process.cwd()): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '?');
      const shown = env[name] === undefined || SECRETS.has(name) ? '' : ` (got ${JSON.stringify(env[name])})`;
      return `${name}: ${issue.message}${shown}`;
    });
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const problems: string[] = [];
  const slackParts = [e.SLACK_BOT_TOKEN, e.SLACK_SIGNING_SECRET].filter(Boolean).length;
  if (slackParts === 1) {
    problems.push('SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET: set both to connect Slack, or neither for the local sandbox');
  }
  if (e.SLACK_APP_TOKEN && !e.SLACK_BOT_TOKEN) {
    problems.push('SLACK_APP_TOKEN: Socket Mode also needs SLACK_BOT_TOKEN');
  }
  if (Boolean(e.TEAMS_APP_ID) !== Boolean(e.TEAMS_APP_PASSWORD)) {
    problems.push('TEAMS_APP_ID and TEAMS_APP_PASSWORD: set both to connect Teams, or neither for the local sandbox');
  }
  if (e.PATCHBAY_SANDBOX === 'on' && (e.SLACK_BOT_TOKEN || e.TEAMS_APP_ID)) {
    problems.push('PATCHBAY_SANDBOX: "on" emulates Slack and Teams; unset it to connect the configured SLACK_*/TEAMS_* credentials');
  }
  if (e.METRICS_HOST && e.METRICS_PORT === undefined) {
    problems.push('METRICS_HOST: also set METRICS_PORT (the port /metrics moves to)');
  }
  if (e.METRICS_PORT !== undefined && e.METRICS_PORT !== 0 && e.METRICS_PORT === (e.PORT ?? DEFAULTS.port)) {
    problems.push(`METRICS_PORT: expected a port other than PORT (${e.METRICS_PORT}); /metrics moves off the public port`);
  }
  const tacticalParts = [e.TACTICAL_URL, e.TACTICAL_API_KEY].filter(Boolean).length;
  if (e.DEPLOYER === 'tactical' && tacticalParts < 2) {
    problems.push('DEPLOYER: "tactical" also needs TACTICAL_URL and TACTICAL_API_KEY');
  } else if (e.DEPLOYER !== 'tactical' && tacticalParts > 0) {
    problems.push('TACTICAL_URL and TACTICAL_API_KEY: set DEPLOYER=tactical to send installs and reboots to Tactical RMM (or unset them)');
  }
  problems.push(...ninjaOneProblems(e));
  if (problems.length > 0) throw new ConfigError(problems);

  const dataDir = path.resolve(cwd, e.PATCHBAY_DATA_DIR ?? DEFAULTS.dataDir);
  return {
    database: e.DATABASE_URL ? { kind: 'postgres', url: e.DATABASE_URL } : { kind: 'embedded', dataDir: path.join(dataDir, 'pglite') },
    dataDir,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX ?? DEFAULTS.redisPrefix,
    port: e.PORT ?? DEFAULTS.port,
    host: e.HOST,
    metrics: e.METRICS_PORT === undefined ? undefined : { port: e.METRICS_PORT, host: e.METRICS_HOST ?? DEFAULTS.metricsHost },
    logLevel: e.LOG_LEVEL ?? 'info',
    slack: {
      botToken: e.SLACK_BOT_TOKEN,
      signingSecret: e.SLACK_SIGNING_SECRET,
      appToken: e.SLACK_APP_TOKEN,
      apiUrl: e.SLACK_API_URL ?? DEFAULTS.slackApiUrl,
    },
    teams: { appId: e.TEAMS_APP_ID, appPassword: e.TEAMS_APP_PASSWORD, tenantId: e.TEAMS_TENANT_ID },
    reportLinks: e.REPORT_LINK_SECRET && e.PUBLIC_URL ? { secret: e.REPORT_LINK_SECRET, publicUrl: e.PUBLIC_URL } : undefined,
    msrcApiUrl: e.MSRC_API_URL ?? DEFAULTS.msrcApiUrl,
    kevUrl: e.KEV_URL ?? DEFAULTS.kevUrl,
    deployer:
      e.DEPLOYER === 'tactical'
        ? { kind: 'tactical', url: e.TACTICAL_URL!, apiKey: e.TACTICAL_API_KEY!, requestsPerSecond: e.TACTICAL_REQUESTS_PER_SECOND ?? DEFAULTS.tacticalRequestsPerSecond }
        : e.DEPLOYER === 'ninjaone'
          ? ninjaOneDeployer(e)
          : { kind: 'simulated' },
    deviceSync: deviceSyncOf(e, cwd),
    sandboxDeployer: e.PATCHBAY_SANDBOX_DEPLOYER ?? 'simulated',
    ...chatMode(e),
  };
}

function deviceSyncOf(e: z.output<typeof envSchema>, cwd: string): DeviceSyncConfig {
  const inventory = e.DEVICE_SYNC_INVENTORY ?? e.TACTICAL_SYNC_INVENTORY;
  return { inventory: inventory === undefined ? undefined : path.resolve(cwd, inventory), time: e.DEVICE_SYNC_TIME ?? e.TACTICAL_SYNC_TIME ?? DEFAULTS.deviceSyncTime };
}

const NINJAONE_NEEDS = ['NINJAONE_URL', 'NINJAONE_CLIENT_ID', 'NINJAONE_CLIENT_SECRET', 'NINJAONE_INSTALL_SCRIPT_ID'] as const;

function ninjaOneProblems(e: z.output<typeof envSchema>): string[] {
  const set = NINJAONE_NEEDS.filter((name) => e[name] !== undefined);
  if (e.DEPLOYER === 'ninjaone' && set.length < NINJAONE_NEEDS.length) return [`DEPLOYER: "ninjaone" also needs ${NINJAONE_NEEDS.filter((n) => !set.includes(n)).join(', ')}`];
  if (e.DEPLOYER !== 'ninjaone' && set.length > 0) return [`${set.join(', ')}: set DEPLOYER=ninjaone to send installs and reboots to NinjaOne (or unset them)`];
  return [];
}

function ninjaOneDeployer(e: z.output<typeof envSchema>): Config['deployer'] {
  return {
    kind: 'ninjaone',
    url: e.NINJAONE_URL!,
    clientId: e.NINJAONE_CLIENT_ID!,
    clientSecret: e.NINJAONE_CLIENT_SECRET!,
    installScriptId: e.NINJAONE_INSTALL_SCRIPT_ID!,
    requestsPerSecond: e.NINJAONE_REQUESTS_PER_SECOND ?? DEFAULTS.ninjaoneRequestsPerSecond,
  };
}

/** Connected chat, the sandbox, or chat off, and why. See Config.sandbox for the rule. */
function chatMode(e: z.output<typeof envSchema>): Pick<Config, 'sandbox' | 'sandboxMode' | 'chatReason'> {
  const sandboxMode = e.PATCHBAY_SANDBOX ?? 'auto';
  const connected = [e.SLACK_BOT_TOKEN ? 'Slack' : '', e.TEAMS_APP_ID ? 'Teams' : ''].filter(Boolean);
  if (connected.length > 0) return { sandbox: false, sandboxMode, chatReason: `${connected.join(' and ')} credentials are set` };
  if (sandboxMode === 'off') return { sandbox: false, sandboxMode, chatReason: 'no Slack or Teams credentials, and PATCHBAY_SANDBOX=off' };
  if (sandboxMode === 'on') return { sandbox: true, sandboxMode, chatReason: 'PATCHBAY_SANDBOX=on' };
  if (!e.DATABASE_URL) return { sandbox: true, sandboxMode, chatReason: 'no Slack or Teams credentials, on the embedded database' };
  return {
    sandbox: false,
    sandboxMode,
    chatReason:
      'no Slack or Teams credentials, and DATABASE_URL is set: the sandbox writes sample data, so on an external PostgreSQL it runs only with PATCHBAY_SANDBOX=on (set SLACK_*/TEAMS_* to connect chat)',
  };
}
