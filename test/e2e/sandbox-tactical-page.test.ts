/**
 * The sandbox page on the Tactical RMM emulator (PATCHBAY_SANDBOX_DEPLOYER=tactical), in Debian's Chromium driven
 * by playwright-core: after the Tactical adapter installs on an agent, the page's Tactical panel shows the agents
 * (client/site, status, reboot, boot time, policy ok or refused) and the emulator's requests, newest first.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startApp, type RunningApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { ROLES } from '../../src/jobs/context.ts';
import { SandboxClock } from '../../src/sandbox/clock.ts';
import type { SandboxTacticalState } from '../../src/sandbox/api-types.ts';
import { PAGE_TOKEN_HEADER } from '../../src/sandbox/page-guard.ts';
import { TACTICAL_STATE_PATH } from '../../src/sandbox/tactical-routes.ts';
import { appDatabaseEnv, type AppTestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`sandbox Tactical page test skipped: no ${CHROMIUM} (apt-get install chromium)`);
const SHOTS = path.resolve(import.meta.dirname, '../../test-results');

let app: RunningApp;
let scratch: AppTestDatabase;
let redis: TestRedis;
let dataDir: string;
let browser: Browser;
let page: Page;

describe.skipIf(!haveChromium)('the sandbox page’s Tactical RMM panel in Chromium', () => {
  beforeAll(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    scratch = await appDatabaseEnv('patchbay_page_tac');
    redis = await startTestRedis();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-page-tac-'));
    const config = loadConfig({ ...scratch.env, REDIS_URL: redis.url, REDIS_PREFIX: `ptac${process.pid}`, PATCHBAY_DATA_DIR: dataDir, PATCHBAY_SANDBOX: 'on', PATCHBAY_SANDBOX_DEPLOYER: 'tactical' });
    const clock = new SandboxClock({ start: new Date('2026-12-07T15:00:00Z'), rate: 1 });
    app = await startApp(config, createLogger('silent'), { roles: new Set(ROLES), port: 0, sandboxClock: clock, sandboxTickMs: 300 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
    page.on('pageerror', (error) => {
      throw error;
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await app?.stop();
    await redis?.stop();
    await scratch?.drop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('shows the agents and, after an install, the install request on top with its time on the sandbox clock', async () => {
    const sandbox = app.sandbox!;
    const emulator = sandbox.tactical!.emulator;
    const [first, second] = emulator.agentList();
    // One agent whose policy would reboot by itself (refused), one patchbay may drive.
    emulator.setPolicy(second!.agentId, { reboot_after_install: 'always' });
    emulator.addUpdate(first!.agentId, { kb: '5099001', severity: 'Critical' });

    await page.goto(`http://127.0.0.1:${app.port}/`);
    const panel = page.getByTestId('tactical-panel');
    await panel.waitFor({ timeout: 30_000 });
    const firstRow = panel.locator(`[data-testid="tactical-agent"][data-hostname="${first!.hostname}"]`);
    await firstRow.waitFor({ timeout: 10_000 });
    expect(await firstRow.innerText()).toContain(`${first!.client} / ${first!.site}`);
    expect(await firstRow.locator('[data-status]').innerText()).toBe('online');
    expect(await firstRow.locator('[data-policy]').innerText()).toBe('ok');
    const secondRow = panel.locator(`[data-testid="tactical-agent"][data-hostname="${second!.hostname}"]`);
    expect(await secondRow.locator('[data-policy]').innerText()).toBe('refused');
    expect(await secondRow.locator('[data-policy]').getAttribute('title')).toContain('reboot_after_install: always');

    const status = await sandbox.devices.install({ id: 0, name: first!.hostname }, [{ key: 'KB5099001', kb: '5099001' }], 'page-tactical-1');
    expect(status.state).not.toBe('failed');
    const installPath = `/winupdate/${first!.agentId}/install/`;
    const newest = panel.getByTestId('tactical-request').first();
    await expect.poll(async () => (await newest.innerText()).includes(installPath), { timeout: 15_000 }).toBe(true);
    expect(await newest.innerText()).toMatch(/POST/);
    expect(await newest.innerText()).toContain('200');

    // The panel draws what the route answers: newest first, times on the sandbox clock.
    const api = (await (await fetch(`http://127.0.0.1:${app.port}${TACTICAL_STATE_PATH}`, { headers: { [PAGE_TOKEN_HEADER]: sandbox.pageToken } })).json()) as SandboxTacticalState;
    const times = api.requests.map((r) => Date.parse(r.at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(api.requests.find((r) => r.path === installPath)).toMatchObject({ method: 'POST', status: 200 });
    const at = Date.parse(api.requests.find((r) => r.path === installPath)!.at);
    expect(Math.abs(at - sandbox.clock.now().getTime())).toBeLessThan(5 * 60_000);
    // Not the wall clock either. The sandbox clock starts on a fixed date, so the two can only be told apart while
    // they are far apart: within a day of that date (as on 2026-12-06 and 07) the check above is the one that holds.
    if (Math.abs(sandbox.clock.now().getTime() - Date.now()) > 24 * 3600_000) expect(Math.abs(at - Date.now())).toBeGreaterThan(12 * 3600_000);
    expect(api.agents.find((a) => a.hostname === second!.hostname)!.policy).toMatchObject({ ok: false });
    await page.screenshot({ path: path.join(SHOTS, 'sandbox-tactical-panel.png') });

    // Without the page token the route is refused like every other page route.
    expect((await fetch(`http://127.0.0.1:${app.port}${TACTICAL_STATE_PATH}`)).status).toBeGreaterThanOrEqual(400);
  }, 120_000);
});
