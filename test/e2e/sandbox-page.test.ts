/**
 * The sandbox page in a real browser: playwright-core driving Debian's Chromium against `startApp` in sandbox mode
 * on a real PostgreSQL and redis-server. A person clicks Approve on the digest and sees the message change in place;
 * a champion answers the pilot sign-off card in Teams (reached by the demo's script: approval, ring msp, soak,
 * promotion, the pilot window) and sees it refreshed with their answer. Both clicks travel the production path (a signed Slack interaction, a token-checked Teams invoke). Screenshots land in test-results/.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startApp, type RunningApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { listArchive } from '../../src/db/report-archive-repo.ts';
import { createLogger } from '../../src/log.ts';
import { ROLES } from '../../src/jobs/context.ts';
import { SandboxClock } from '../../src/sandbox/clock.ts';
import { demoClockStart, runDemoScript, type SignoffCard } from '../../src/sandbox/demo-script.ts';
import { DEMO_TICK_MS, startDemoApp } from '../../src/commands/demo.ts';
import type { SandboxState } from '../../src/sandbox/api-types.ts';
import { PAGE_TOKEN_HEADER } from '../../src/sandbox/page-guard.ts';
import { appDatabaseEnv, type AppTestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`sandbox page tests skipped: no ${CHROMIUM} (apt-get install chromium)`);
const SHOTS = path.resolve(import.meta.dirname, '../../test-results');
const TICK_MS = 300;
const RELEASE = '2026-Dec';
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Debian's Chromium with one page whose script errors fail the test. */
async function openChromium(): Promise<{ browser: Browser; page: Page }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // As root on a machine with no network: no sandbox, and nothing that phones home.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (error) => {
    throw error;
  });
  return { browser, page };
}

let app: RunningApp;
let scratch: AppTestDatabase;
let redis: TestRedis;
let dataDir: string;
let base: string;
let browser: Browser;
let page: Page;
const clock = new SandboxClock({ start: demoClockStart(RELEASE), rate: 1 });

describe.skipIf(!haveChromium)('the sandbox page in Chromium', () => {
  beforeAll(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    scratch = await appDatabaseEnv('patchbay_page');
    redis = await startTestRedis();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-page-'));
    const config = loadConfig({ ...scratch.env, REDIS_URL: redis.url, REDIS_PREFIX: `page${process.pid}`, PATCHBAY_DATA_DIR: dataDir, PATCHBAY_SANDBOX: 'on' });
    app = await startApp(config, createLogger('silent'), { roles: new Set(ROLES), port: 0, sandboxClock: clock, sandboxTickMs: TICK_MS });
    base = `http://127.0.0.1:${app.port}`;
    ({ browser, page } = await openChromium());
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await app?.stop();
    await redis?.stop();
    await scratch?.drop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  async function state(): Promise<SandboxState> {
    return (await (await fetch(`${base}/sandbox/api/state`, { headers: { [PAGE_TOKEN_HEADER]: app.sandbox!.pageToken } })).json()) as SandboxState;
  }

  it('an engineer clicks Approve on the digest and sees it approved in place', async () => {
    // Patch Tuesday: the jump makes the real release watcher find the month on the local MSRC.
    await page.goto(`${base}/`);
    await page.getByTestId('jump-next-patch-tuesday').click();
    const s0 = await state();
    await page.getByTestId(`nav-slack-${s0.msp.channel}`).click();
    const digest = page.getByTestId('slack-message').filter({ hasText: `Patch Tuesday ${RELEASE}` }).first();
    await digest.waitFor({ timeout: 60_000 });
    expect(await digest.getByText('Approved', { exact: false }).count()).toBe(0);
    await page.screenshot({ path: path.join(SHOTS, 'sandbox-digest.png') });

    await digest.getByRole('button', { name: 'Approve release' }).click();
    await digest.getByText('Approved', { exact: false }).first().waitFor({ timeout: 30_000 });
    const text = await digest.innerText();
    expect(text).toMatch(/Approved.*by @Pat Engineer/s);
    expect(await digest.innerText()).toContain('(edited)');
    await page.screenshot({ path: path.join(SHOTS, 'sandbox-approved.png') });

    // It was a real decision, made by the engineer the page acted as, through the signed Slack path.
    const decisions = rowsOf<{ actor: string; source: string }>(await app.database.db.execute(sql`select actor, source from decisions`));
    expect(decisions).toContainEqual(expect.objectContaining({ actor: 'U0ENG1', source: 'slack' }));
  }, 120_000);

  // Issue 13 finding 10: the page never sent app_home_opened, so the bot never published the Home tab.
  it('opening the Home tab asks the bot for it, as Slack does, and shows what it published', async () => {
    await page.getByTestId('nav-slack-home').click();
    const home = page.getByTestId('slack-home');
    await home.waitFor({ timeout: 30_000 });
    expect(await home.innerText()).toContain(`Current release: ${RELEASE}`);
    expect((await state()).slack.home.U0ENG1).toBeDefined();
  }, 60_000);

  // Issue 17: a report sent from the page shows its files in the summary's thread, and both the Slack file link
  // and the Teams card's signed link hand back the very bytes the archive holds.
  it('an engineer types /patch report; the thread lists the files and the PDF downloads byte for byte', async () => {
    await page.goto(`${base}/`);
    const s0 = await state();
    await page.getByTestId(`nav-slack-${s0.msp.channel}`).click();
    await page.getByTestId('composer-input').fill('/patch report acme-dental');
    await page.getByTestId('composer-send').click();
    const summary = page.getByTestId('slack-message').filter({ hasText: 'devices compliant' }).filter({ has: page.getByTestId('thread-toggle') }).first();
    await summary.waitFor({ timeout: 60_000 });
    await summary.getByTestId('thread-toggle').click();
    const files = summary.getByTestId('slack-file');
    await files.first().waitFor({ timeout: 30_000 });
    const archived = await listArchive(app.database.db, { clientId: 'acme-dental' });
    const pdf = archived.find((f) => f.format === 'pdf')!;
    expect(await files.count()).toBe(archived.length);
    const pdfEntry = files.filter({ hasText: pdf.fileName });
    expect(await pdfEntry.innerText()).toContain('application/pdf');
    await page.screenshot({ path: path.join(SHOTS, 'sandbox-report.png') });

    // The browser's own download of the link: the exact bytes, named as uploaded.
    const [download] = await Promise.all([page.waitForEvent('download'), pdfEntry.getByTestId('slack-file-link').click()]);
    expect(download.suggestedFilename()).toBe(pdf.fileName);
    expect(sha256(await fs.readFile(await download.path()))).toBe(pdf.sha256);
    const href = (await pdfEntry.getByTestId('slack-file-link').getAttribute('href'))!;
    const res = await fetch(new URL(href, base));
    expect(res.headers.get('content-type')).toBe('application/pdf');
    expect(res.headers.get('content-disposition')).toContain(`filename="${pdf.fileName}"`);
    expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(pdf.sha256);

    // The champion's card in Teams: its PDF button (an Action.OpenUrl, so a link to assistive tech) opens the signed /reports/file link, which serves the same bytes.
    const withCard = (await state()).teams.conversations.find((c) => c.clientId === 'acme-dental' && c.activities.some((a) => JSON.stringify(a.card ?? {}).includes(pdf.fileName)))!;
    expect(withCard).toBeDefined();
    await page.getByTestId(`nav-teams-${withCard.id}`).click();
    const button = page.getByTestId('teams-activity').getByRole('link', { name: pdf.fileName, exact: true }).first();
    await button.waitFor({ timeout: 30_000 });
    const opened = page.context().waitForEvent('request', (r) => r.url().includes('/reports/file'));
    await button.click();
    const link = (await opened).url();
    expect(link.startsWith(`${base}/reports/file?`)).toBe(true);
    const fromCard = await fetch(link);
    expect(fromCard.status).toBe(200);
    expect(sha256(new Uint8Array(await fromCard.arrayBuffer()))).toBe(pdf.sha256);
  }, 120_000);
});

describe.skipIf(!haveChromium)('a champion in the sandbox page', () => {
  let demo: RunningApp;
  let demoDir: string;
  let demoBrowser: Browser;
  let champion: Page;

  beforeAll(async () => {
    demoDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-page-demo-'));
    demo = await startDemoApp({ dataDir: demoDir, port: 0, release: { id: RELEASE }, log: createLogger('silent') });
    ({ browser: demoBrowser, page: champion } = await openChromium());
  }, 120_000);

  afterAll(async () => {
    await demoBrowser?.close();
    await demo?.stop();
    if (demoDir) await fs.rm(demoDir, { recursive: true, force: true });
  }, 120_000);

  it('answers the pilot sign-off card with Everything works, and the card shows who answered', async () => {
    const url = `http://127.0.0.1:${demo.port}`;
    await champion.goto(`${url}/`);
    const stop = new AbortController();
    let answered: SignoffCard | undefined;
    // The script plays the month up to the first card a champion confirms; that one is pressed in the page.
    const script = runDemoScript(
      { baseUrl: url, db: demo.database.db, sandbox: demo.sandbox!, releaseId: RELEASE, tickMs: DEMO_TICK_MS },
      {
        timeoutScale: 3,
        signal: stop.signal,
        answerSignoff: async (card, throughApi) => {
          // Any other card is answered as the page API would, so the script can go on to the one pressed here.
          if (card.problem || answered) return throughApi(card);
          await champion.getByTestId(`nav-teams-${card.conversationId}`).click();
          await champion.getByTestId('teams-actor').selectOption(card.champion.id);
          const activity = champion.locator(`[data-testid="teams-activity"][data-id="${card.activityId}"]`);
          const button = activity.getByRole('button', { name: 'Everything works' });
          await button.waitFor({ timeout: 30_000 });
          await champion.screenshot({ path: path.join(SHOTS, 'sandbox-signoff-card.png') });
          await button.click();
          await activity.getByText(/confirmed by/i).first().waitFor({ timeout: 30_000 });
          await champion.screenshot({ path: path.join(SHOTS, 'sandbox-signoff-answered.png') });
          answered = card;
          stop.abort(new Error('the browser answered its card'));
        },
      },
    );
    await expect(script).rejects.toThrow(/the browser answered its card/);
    expect(answered).toBeDefined();
    // The click was the champion's own, through the token-checked Teams path: their pilot is confirmed by them.
    const [gate] = rowsOf<{ state: string; confirmed_by: string | null }>(
      await demo.database.db.execute(sql`select state, confirmed_by from rollouts where release_id = ${RELEASE} and ring = 'pilot' and client_id = ${answered!.clientId}`),
    );
    expect(gate!.state).toBe('confirmed');
    expect(gate!.confirmed_by).toBe(`champion:${answered!.champion.id}`);
    expect((await champion.locator(`[data-testid="teams-activity"][data-id="${answered!.activityId}"]`).getByRole('button', { name: 'Everything works' }).count())).toBe(0);
  }, 600_000);
});
