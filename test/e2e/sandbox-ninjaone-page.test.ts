/**
 * The sandbox on the NinjaOne emulator (PATCHBAY_SANDBOX_DEPLOYER=ninjaone), in Debian's Chromium driven by
 * playwright-core: the rollout's deployer is the real NinjaOne adapter, the emulator's devices are the inventory's
 * machines in their organization and location, and after the adapter starts an install the page's NinjaOne panel
 * shows the device in maintenance and the script run on top of the request log, on the sandbox clock.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startApp, type RunningApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { createLogger } from '../../src/log.ts';
import { ROLES } from '../../src/jobs/context.ts';
import { SandboxClock } from '../../src/sandbox/clock.ts';
import type { SandboxNinjaOneState, SandboxState } from '../../src/sandbox/api-types.ts';
import { NINJAONE_STATE_PATH } from '../../src/sandbox/ninjaone-routes.ts';
import { PAGE_TOKEN_HEADER } from '../../src/sandbox/page-guard.ts';
import { appDatabaseEnv, type AppTestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`sandbox NinjaOne page test skipped: no ${CHROMIUM} (apt-get install chromium)`);
const SHOTS = path.resolve(import.meta.dirname, '../../test-results');

let app: RunningApp;
let scratch: AppTestDatabase;
let redis: TestRedis;
let dataDir: string;
let browser: Browser;
let page: Page;

describe.skipIf(!haveChromium)('the sandbox on NinjaOne, and its page panel in Chromium', () => {
  beforeAll(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    scratch = await appDatabaseEnv('patchbay_page_ninja');
    redis = await startTestRedis();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-page-ninja-'));
    const config = loadConfig({ ...scratch.env, REDIS_URL: redis.url, REDIS_PREFIX: `pnin${process.pid}`, PATCHBAY_DATA_DIR: dataDir, PATCHBAY_SANDBOX: 'on', PATCHBAY_SANDBOX_DEPLOYER: 'ninjaone' });
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

  it('runs go to the NinjaOne adapter on the inventory’s machines; the panel shows devices and requests, newest first', async () => {
    const sandbox = app.sandbox!;
    expect(sandbox.devices.name).toBe('ninjaone');
    const emulator = sandbox.ninjaone!.emulator;
    const inventory = rowsOf<{ name: string; client: string | null; location: string | null }>(
      await app.database.db.execute(sql`select d.name, c.name as client, coalesce(l.name, l.id) as location from devices d left join clients c on c.id = d.client_id
        left join locations l on l.client_id = d.client_id and l.id = d.location_id where d.retired_at is null order by d.name`),
    );
    expect(inventory.length).toBeGreaterThan(10);
    const devices = emulator.deviceList();
    expect(devices.map((d) => d.systemName).sort()).toEqual(inventory.map((d) => d.name).sort());
    const placed = inventory.find((d) => d.client !== null && d.location !== null)!;
    expect(devices.find((d) => d.systemName === placed.name)).toMatchObject({ organization: placed.client, location: placed.location, online: true, inMaintenance: false });

    const target = devices.find((d) => d.systemName === placed.name)!;
    emulator.addPatch(target.id, { kb: '5099001', severity: 'CRITICAL' });
    await page.goto(`http://127.0.0.1:${app.port}/`);
    const panel = page.getByTestId('ninjaone-panel');
    await panel.waitFor({ timeout: 30_000 });
    const row = panel.locator(`[data-testid="ninjaone-device"][data-name="${target.systemName}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await row.innerText()).toContain(`${placed.client} / ${placed.location}`);
    expect(await row.locator('[data-online]').innerText()).toBe('online');
    expect(await row.locator('[data-maintenance]').innerText()).toBe('off');
    expect(await row.locator('[data-boot]').getAttribute('data-boot')).toBe(new Date(target.lastBootTime * 1000).toISOString());

    const status = await sandbox.devices.install({ id: 0, name: target.systemName }, [{ key: 'KB5099001', kb: '5099001' }], 'page-ninjaone-1');
    expect(status.state).toBe('running');
    const scriptPath = `/v2/device/${target.id}/script/run`;
    const newest = panel.getByTestId('ninjaone-request').first();
    await expect.poll(async () => (await newest.innerText()).includes(scriptPath), { timeout: 15_000 }).toBe(true);
    expect(await newest.innerText()).toMatch(/POST/);
    expect(await newest.innerText()).toContain('204');
    await expect.poll(async () => row.locator('[data-maintenance]').innerText(), { timeout: 10_000 }).toBe('on');

    // The panel draws what the route answers: newest first, times on the sandbox clock.
    const headers = { [PAGE_TOKEN_HEADER]: sandbox.pageToken };
    const api = (await (await fetch(`http://127.0.0.1:${app.port}${NINJAONE_STATE_PATH}`, { headers })).json()) as SandboxNinjaOneState;
    const times = api.requests.map((r) => Date.parse(r.at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(api.requests.map((r) => `${r.method} ${r.path}`).slice(0, 3)).toEqual([`POST ${scriptPath}`, expect.stringMatching(new RegExp(`^GET /v2/device/${target.id}/activities`)), `PUT /v2/device/${target.id}/maintenance`]);
    const at = Date.parse(api.requests[0]!.at);
    expect(Math.abs(at - sandbox.clock.now().getTime())).toBeLessThan(5 * 60_000);
    // Not the wall clock either. The sandbox clock starts on a fixed date, so the two can only be told apart while
    // they are far apart: within a day of that date (as on 2026-12-06 and 07) the check above is the one that holds.
    if (Math.abs(sandbox.clock.now().getTime() - Date.now()) > 24 * 3600_000) expect(Math.abs(at - Date.now())).toBeGreaterThan(12 * 3600_000);
    expect(api.devices.find((d) => d.systemName === target.systemName)).toMatchObject({ maintenance: true, online: true });
    const state = (await (await fetch(`http://127.0.0.1:${app.port}/sandbox/api/state`, { headers })).json()) as SandboxState;
    expect(state.ninjaone).toEqual({ devices: inventory.length });
    expect(state.tactical).toBeUndefined();
    expect(await page.getByTestId('tactical-panel').count()).toBe(0);
    await page.screenshot({ path: path.join(SHOTS, 'sandbox-ninjaone-panel.png') });

    // Without the page token the route is refused like every other page route.
    expect((await fetch(`http://127.0.0.1:${app.port}${NINJAONE_STATE_PATH}`)).status).toBeGreaterThanOrEqual(400);
  }, 120_000);
});
