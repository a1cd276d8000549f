import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, '/srv/patchbay');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('loadConfig', () => {
  it('runs on embedded defaults when nothing is set', () => {
    const config = loadConfig({}, '/srv/patchbay');
    expect(config.database).toEqual({ kind: 'embedded', dataDir: path.join('/srv/patchbay/.data', 'pglite') });
    expect(config.redisUrl).toBeUndefined();
    expect(config.port).toBe(3000);
    expect(config.slack.apiUrl).toBe('https://slack.com/api/');
  });

  it('uses PostgreSQL when DATABASE_URL is set and resolves the data dir', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/pb', PATCHBAY_DATA_DIR: 'var', PORT: '8080' }, '/srv');
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgres://u@db:5432/pb' });
    expect(config.dataDir).toBe('/srv/var');
    expect(config.port).toBe(8080);
  });

  it('leaves the listen address to start unless HOST says which', () => {
    expect(loadConfig({}).host).toBeUndefined();
    expect(loadConfig({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
  });

  it('runs the sandbox by itself only on the embedded database; on an external PostgreSQL only when asked', () => {
    expect(loadConfig({}).sandbox).toBe(true);
    const external = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/pb' });
    expect(external.sandbox).toBe(false);
    expect(external.chatReason).toMatch(/DATABASE_URL is set.*PATCHBAY_SANDBOX=on/);
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db:5432/pb', PATCHBAY_SANDBOX: 'on' })).toMatchObject({ sandbox: true, sandboxMode: 'on' });
    expect(loadConfig({ PATCHBAY_SANDBOX: 'off' }).sandbox).toBe(false);
    expect(loadConfig({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's' })).toMatchObject({ sandbox: false, chatReason: 'Slack credentials are set' });
    expect(problemsOf({ PATCHBAY_SANDBOX: 'on', TEAMS_APP_ID: 'id', TEAMS_APP_PASSWORD: 'pw' })[0]).toMatch(/^PATCHBAY_SANDBOX: "on" emulates Slack and Teams/);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' }).database.kind).toBe('embedded');
  });

  it('names every bad variable and what it expects, all at once', () => {
    const problems = problemsOf({ PORT: 'eighty', DATABASE_URL: 'mysql://x', REDIS_URL: 'nope', SLACK_BOT_TOKEN: 'abc' });
    expect(problems).toHaveLength(4);
    expect(problems.find((p) => p.startsWith('PORT:'))).toMatch(/port number.*"eighty"/);
    expect(problems.find((p) => p.startsWith('DATABASE_URL:'))).toMatch(/postgres:\/\//);
    expect(problems.find((p) => p.startsWith('REDIS_URL:'))).toMatch(/redis:\/\//);
    expect(problems.find((p) => p.startsWith('SLACK_BOT_TOKEN:'))).toMatch(/xoxb-/);
  });

  it('refuses an out-of-range port and a prefix BullMQ cannot use', () => {
    expect(problemsOf({ PORT: '70000' })[0]).toMatch(/^PORT: expected a port number from 0 to 65535/);
    expect(problemsOf({ REDIS_PREFIX: 'a:b' })[0]).toMatch(/^REDIS_PREFIX: .*":"/);
  });

  it('moves /metrics to METRICS_PORT (loopback unless METRICS_HOST says otherwise) only when it is set', () => {
    expect(loadConfig({}).metrics).toBeUndefined();
    expect(loadConfig({ METRICS_PORT: '9464' }).metrics).toEqual({ port: 9464, host: '127.0.0.1' });
    expect(loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }).metrics).toEqual({ port: 9464, host: '0.0.0.0' });
    expect(problemsOf({ METRICS_PORT: 'x' })[0]).toMatch(/^METRICS_PORT: expected a port number/);
    expect(problemsOf({ METRICS_HOST: '0.0.0.0' })[0]).toMatch(/^METRICS_HOST: also set METRICS_PORT/);
    expect(problemsOf({ METRICS_PORT: '3000' })[0]).toMatch(/^METRICS_PORT: expected a port other than PORT/);
  });

  it('refuses half a Slack or Teams configuration', () => {
    expect(problemsOf({ SLACK_BOT_TOKEN: 'xoxb-1' })[0]).toMatch(/SLACK_SIGNING_SECRET/);
    expect(problemsOf({ TEAMS_APP_ID: 'id' })[0]).toMatch(/TEAMS_APP_PASSWORD/);
    expect(problemsOf({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's' })).toEqual([]);
  });

  it('sends installs to Tactical RMM only with DEPLOYER=tactical, its URL and key; the simulated fleet otherwise', () => {
    expect(loadConfig({}).deployer).toEqual({ kind: 'simulated' });
    const key = 'ZZZ9X8W7V6U5T4S3R2Q1P0ONMLKJIHGF';
    expect(loadConfig({ DEPLOYER: 'tactical', TACTICAL_URL: 'https://api.rmm.example.com/', TACTICAL_API_KEY: key }).deployer).toEqual({
      kind: 'tactical',
      url: 'https://api.rmm.example.com/',
      apiKey: key,
      requestsPerSecond: 10,
    });
    expect(problemsOf({ DEPLOYER: 'tactical', TACTICAL_URL: 'https://api.rmm.example.com/' })).toEqual(['DEPLOYER: "tactical" also needs TACTICAL_URL and TACTICAL_API_KEY']);
    expect(problemsOf({ TACTICAL_API_KEY: key })[0]).toMatch(/set DEPLOYER=tactical/);
    expect(problemsOf({ DEPLOYER: 'ninja' })[0]).toMatch(/^DEPLOYER: /);
    expect(problemsOf({ DEPLOYER: 'tactical', TACTICAL_URL: 'https://x/', TACTICAL_API_KEY: key, TACTICAL_REQUESTS_PER_SECOND: '0' })[0]).toMatch(/TACTICAL_REQUESTS_PER_SECOND/);
  });

  it('sends installs to NinjaOne only with DEPLOYER=ninjaone, its host, client credentials and script id', () => {
    const ninja = { DEPLOYER: 'ninjaone', NINJAONE_URL: 'https://eu.ninjarmm.com', NINJAONE_CLIENT_ID: 'client-1', NINJAONE_CLIENT_SECRET: 'shh-0123456789', NINJAONE_INSTALL_SCRIPT_ID: '42' };
    expect(loadConfig(ninja).deployer).toEqual({ kind: 'ninjaone', url: 'https://eu.ninjarmm.com', clientId: 'client-1', clientSecret: 'shh-0123456789', installScriptId: 42, requestsPerSecond: 5 });
    expect(loadConfig({ ...ninja, NINJAONE_REQUESTS_PER_SECOND: '2.5' }).deployer).toMatchObject({ requestsPerSecond: 2.5 });
    expect(problemsOf({ DEPLOYER: 'ninjaone', NINJAONE_URL: 'https://eu.ninjarmm.com' })).toEqual(['DEPLOYER: "ninjaone" also needs NINJAONE_CLIENT_ID, NINJAONE_CLIENT_SECRET, NINJAONE_INSTALL_SCRIPT_ID']);
    expect(problemsOf({ ...ninja, NINJAONE_INSTALL_SCRIPT_ID: 'Install-PatchbayKBs' })[0]).toMatch(/^NINJAONE_INSTALL_SCRIPT_ID: expected the id/);
    const stray = problemsOf({ NINJAONE_CLIENT_SECRET: 'stray-secret-value' });
    expect(stray).toEqual(['NINJAONE_CLIENT_SECRET: set DEPLOYER=ninjaone to send installs and reboots to NinjaOne (or unset them)']);
  });

  it('reads the device sync file and time from DEVICE_SYNC_*, still from the old TACTICAL_SYNC_* names, the new winning', () => {
    expect(loadConfig({}, '/srv/patchbay').deviceSync).toEqual({ inventory: undefined, time: '06:00' });
    expect(loadConfig({ DEVICE_SYNC_INVENTORY: 'inventory.yaml', DEVICE_SYNC_TIME: '05:30' }, '/srv/patchbay').deviceSync).toEqual({ inventory: '/srv/patchbay/inventory.yaml', time: '05:30' });
    expect(loadConfig({ TACTICAL_SYNC_INVENTORY: 'old.yaml', TACTICAL_SYNC_TIME: '07:15' }, '/srv/patchbay').deviceSync).toEqual({ inventory: '/srv/patchbay/old.yaml', time: '07:15' });
    const both = { DEVICE_SYNC_INVENTORY: 'new.yaml', TACTICAL_SYNC_INVENTORY: 'old.yaml', DEVICE_SYNC_TIME: '05:00', TACTICAL_SYNC_TIME: '07:00' };
    expect(loadConfig(both, '/srv/patchbay').deviceSync).toEqual({ inventory: '/srv/patchbay/new.yaml', time: '05:00' });
    expect(problemsOf({ DEVICE_SYNC_TIME: '25:00' })[0]).toMatch(/^DEVICE_SYNC_TIME: expected HH:MM/);
  });

  it('never shows the Tactical API key in a configuration problem', () => {
    const almost = 'ab cd-secret-part-of-a-key';
    const problems = problemsOf({ DEPLOYER: 'tactical', TACTICAL_URL: 'https://x/', TACTICAL_API_KEY: almost });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^TACTICAL_API_KEY: /);
    expect(problems.join('\n')).not.toContain('secret-part');
  });
});
