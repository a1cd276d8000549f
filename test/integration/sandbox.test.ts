/**
 * The local sandbox end to end, on a real PostgreSQL and a real redis-server: `startApp` with no chat credentials
 * loads the sample inventory, the real release watcher finds the sample month on the local MSRC, the digest reaches
 * the emulated engineers' channel through the outbox, and the page's clicks travel the signed Slack path and the
 * token-checked Teams path to the same listeners and use-cases as in production.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { startApp, type RunningApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { rowsOf } from '../../src/db/client.ts';
import { createLogger } from '../../src/log.ts';
import { ROLES } from '../../src/jobs/index.ts';
import { SandboxClock } from '../../src/sandbox/clock.ts';
import type { SandboxAnswer, SandboxSlackMessage, SandboxState } from '../../src/sandbox/api-types.ts';
import { createScratchDatabase, type ScratchDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';

let app: RunningApp;
let scratch: ScratchDatabase;
let redis: TestRedis;
let dataDir: string;
let base: string;
// Monday 7 December 2026, 09:00 in Chicago: the day before Patch Tuesday.
const clock = new SandboxClock({ start: new Date('2026-12-07T15:00:00Z'), rate: 1 });

beforeAll(async () => {
  scratch = await createScratchDatabase('patchbay_sandbox');
  redis = await startTestRedis();
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-sandbox-'));
  const config = loadConfig({ DATABASE_URL: scratch.url, REDIS_URL: redis.url, REDIS_PREFIX: `sbx${process.pid}`, PATCHBAY_DATA_DIR: dataDir });
  expect(config.sandbox).toBe(true);
  app = await startApp(config, createLogger('silent'), { roles: new Set(ROLES), port: 0, sandboxClock: clock, sandboxTickMs: 300 });
  base = `http://127.0.0.1:${app.port}`;
}, 120_000);

afterAll(async () => {
  await app?.stop();
  await redis?.stop();
  await scratch?.drop();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

async function state(): Promise<SandboxState> {
  const res = await fetch(`${base}/sandbox/api/state`);
  expect(res.status).toBe(200);
  return (await res.json()) as SandboxState;
}

async function send(route: string, body: unknown): Promise<{ status: number; answer: SandboxAnswer }> {
  const res = await fetch(`${base}/sandbox/api/${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, answer: (await res.json()) as SandboxAnswer };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const digestOf = (s: SandboxState, month: string): SandboxSlackMessage | undefined =>
  s.slack.channels.find((c) => c.id === s.msp.channel)?.messages.find((m) => m.blocks.some((b) => (b as { block_id?: string }).block_id === `release:${month}`));

describe('the sandbox', () => {
  it('serves the page and loads the sample inventory when none was imported', async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/sandbox/assets/app.js');
    expect((await fetch(`${base}/sandbox/assets/adaptivecards.js`)).status).toBe(200);
    const [clients] = rowsOf<{ n: number }>(await app.database.db.execute(sql`select count(*)::int as n from clients`));
    expect(Number(clients!.n)).toBeGreaterThanOrEqual(3);
    const s = await state();
    expect(s.slack.people.some((p) => p.role === 'engineer')).toBe(true);
    expect(s.teams.conversations.length).toBeGreaterThan(0);
  });

  it('posts the month already released through the real watcher, outbox and Slack client', async () => {
    // November 2026 was released on 10 November; the watcher's first tick finds it on the local MSRC.
    // The thread of detail per product family follows the channel post, paced per channel.
    const digest = await until('the 2026-Nov digest and its thread', async () => {
      const m = digestOf(await state(), '2026-Nov');
      return m && m.replies.length > 0 ? m : undefined;
    }, 60_000);
    expect(digest.text).toMatch(/2026-Nov/);
  }, 90_000);

  it("links the clients' Teams installs by champion or tenant, as a real install would", async () => {
    const linked = rowsOf<{ client_id: string | null }>(await app.database.db.execute(sql`select client_id from teams_conversations`));
    expect(linked.length).toBeGreaterThan(0);
    expect(linked.every((r) => r.client_id !== null)).toBe(true);
  });

  it("turns a click into a signed interaction: an engineer's approval edits the digest; anyone else is refused", async () => {
    const s = await state();
    const digest = digestOf(s, '2026-Nov')!;
    const engineer = s.slack.people.find((p) => p.role === 'engineer')!;
    const outsider = s.slack.people.find((p) => p.role === 'user')!;

    const refused = await send('slack/action', { user: outsider.id, channel: s.msp.channel, ts: digest.ts, actionId: 'release.approve', blockId: 'release:2026-Nov' });
    expect(refused.answer.ok).toBe(true);
    await until('the refusal', async () => ((await state()).slack.ephemerals.some((e) => e.user === outsider.id) ? true : undefined));
    const [none] = rowsOf<{ n: number }>(await app.database.db.execute(sql`select count(*)::int as n from decisions`));
    expect(Number(none!.n)).toBe(0);

    const approved = await send('slack/action', { user: engineer.id, channel: s.msp.channel, ts: digest.ts, actionId: 'release.approve', blockId: 'release:2026-Nov' });
    expect(approved.answer).toEqual({ ok: true });
    const edited = await until('the digest edited in place', async () => {
      const m = digestOf(await state(), '2026-Nov')!;
      return m.edits > 0 && JSON.stringify(m.blocks).includes('*Approved*') ? m : undefined;
    });
    expect(JSON.stringify(edited.blocks)).toMatch(new RegExp(`\\*Approved\\*[^"]* by <@${engineer.id}>`));
    const decisions = rowsOf<{ actor: string; source: string }>(await app.database.db.execute(sql`select actor, source from audit_log where action like 'decision.%' or action like '%approve%'`));
    expect(decisions.some((d) => d.actor === engineer.id)).toBe(true);
  }, 90_000);

  it('refuses a malformed page request with a message, and a click on a button that is not there', async () => {
    const bad = await send('slack/action', { user: '', channel: 'C0PATCH' });
    expect(bad.status).toBe(400);
    expect(bad.answer.error).toMatch(/user|ts|actionId/);
    const missing = await send('slack/action', { user: 'U0ENG1', channel: 'C0PATCH', ts: '1.000000', actionId: 'release.approve' });
    expect(missing.answer.ok).toBe(false);
    expect(missing.answer.error).toBeTruthy();
  });

  it('runs a slash command through the signed path and shows the answer to whoever typed it', async () => {
    const s = await state();
    const engineer = s.slack.people.find((p) => p.role === 'engineer')!;
    const { answer } = await send('slack/command', { user: engineer.id, channel: s.msp.channel, text: '/patch help' });
    expect(answer.ok).toBe(true);
    await until('the /patch help answer', async () => ((await state()).slack.ephemerals.some((e) => e.user === engineer.id && /\/patch/.test(e.text + JSON.stringify(e.blocks))) ? true : undefined));
  });

  // Issue 13 finding 10: the page never sent app_home_opened, so the Home tab stayed empty.
  it('publishes App Home when the page opens the Home tab, through a signed app_home_opened', async () => {
    const engineer = (await state()).slack.people.find((p) => p.role === 'engineer')!;
    expect((await state()).slack.home[engineer.id]).toBeUndefined();
    const { status, answer } = await send('slack/home-opened', { user: engineer.id });
    expect(status).toBe(200);
    expect(answer.ok).toBe(true);
    const home = await until('the Home tab', async () => (await state()).slack.home[engineer.id]);
    expect(JSON.stringify(home)).toContain('Current release: 2026-Nov');
    expect((await send('slack/home-opened', { user: '' })).status).toBe(400);
  });

  it('jumps the clock to the next Patch Tuesday, where the watcher finds the new month', async () => {
    const { answer } = await send('clock', { jump: 'next-patch-tuesday' });
    expect(answer.ok).toBe(true);
    expect(answer.detail).toMatch(/Patch Tuesday/);
    // 8 December 2026 is the second Tuesday; MSRC publishes at 10:00 Pacific (18:00Z).
    expect(clock.now().getTime()).toBeGreaterThanOrEqual(Date.parse('2026-12-08T18:00:00Z'));
    expect(clock.now().getTime()).toBeLessThan(Date.parse('2026-12-08T18:10:00Z'));
    const digest = await until('the 2026-Dec digest', async () => digestOf(await state(), '2026-Dec'), 60_000);
    expect(digest.text).toMatch(/2026-Dec/);
  }, 90_000);

  it('finds its chats again after a restart, so the bot can still edit what it posted', async () => {
    const before = await state();
    const posted = before.slack.channels.find((c) => c.id === before.msp.channel)!.messages.map((m) => m.ts);
    expect(posted.length).toBeGreaterThan(0);
    // Issue 13 finding 10: a modal open when the sandbox stops is not reopened after the restart.
    const engineer = before.slack.people.find((p) => p.role === 'engineer')!;
    const digest = digestOf(before, '2026-Dec')!;
    expect((await send('slack/action', { user: engineer.id, channel: before.msp.channel, ts: digest.ts, actionId: 'release.hold', blockId: 'release:2026-Dec' })).answer.ok).toBe(true);
    await until('the Hold modal', async () => ((await state()).slack.modals.some((m) => m.user === engineer.id) ? true : undefined));
    await app.stop();
    const config = loadConfig({ DATABASE_URL: scratch.url, REDIS_URL: redis.url, REDIS_PREFIX: `sbx${process.pid}`, PATCHBAY_DATA_DIR: dataDir });
    app = await startApp(config, createLogger('silent'), { roles: new Set(ROLES), port: 0, sandboxClock: clock, sandboxTickMs: 300 });
    base = `http://127.0.0.1:${app.port}`;
    const after = await state();
    expect(after.slack.channels.find((c) => c.id === after.msp.channel)!.messages.map((m) => m.ts)).toEqual(posted);
    expect(after.slack.modals).toEqual([]);
    // The bot is installed once per conversation, as in a real tenant: no second round of welcome messages.
    expect(after.teams.conversations.flatMap((c) => c.activities).length).toBe(before.teams.conversations.flatMap((c) => c.activities).length);
  }, 90_000);

  it('never moves the clock back, and says so', async () => {
    const before = clock.now().getTime();
    expect(() => clock.jumpTo(new Date(before - 3_600_000))).toThrow(/only moves forward/);
    const { answer } = await send('clock', { rate: 0 });
    expect(answer.ok).toBe(false);
  });
});
