/**
 * The local sandbox end to end, on a real PostgreSQL (or its embedded PGlite when the run is on PGlite) and a real
 * redis-server: `startApp` with no chat credentials loads the sample inventory, the real release watcher finds the
 * sample month on the local MSRC, the digest reaches the emulated engineers' channel through the outbox, and the
 * page's clicks travel the signed Slack path and the token-checked Teams path to the same listeners and use-cases
 * as in production.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { startApp, type RunningApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase, rowsOf } from '../../src/db/client.ts';
import { enqueueOutbox } from '../../src/db/outbox-repo.ts';
import { createLogger } from '../../src/log.ts';
import { ROLES } from '../../src/jobs/context.ts';
import { SandboxClock } from '../../src/sandbox/clock.ts';
import type { SandboxAnswer, SandboxSlackMessage, SandboxState } from '../../src/sandbox/api-types.ts';
import { PAGE_TOKEN_HEADER } from '../../src/sandbox/page-guard.ts';
import { appDatabaseEnv, type AppTestDatabase } from '../support/db.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';

let app: RunningApp;
let scratch: AppTestDatabase;
let redis: TestRedis;
let dataDir: string;
let base: string;
// Monday 7 December 2026, 09:00 in Chicago: the day before Patch Tuesday.
const clock = new SandboxClock({ start: new Date('2026-12-07T15:00:00Z'), rate: 1 });

beforeAll(async () => {
  scratch = await appDatabaseEnv('patchbay_sandbox');
  redis = await startTestRedis();
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-sandbox-'));
  await start();
}, 120_000);

/** Starts (or starts again) the sandbox on the same database, Redis, data dir and clock. */
async function start(): Promise<void> {
  const config = loadConfig({ ...scratch.env, REDIS_URL: redis.url, REDIS_PREFIX: `sbx${process.pid}`, PATCHBAY_DATA_DIR: dataDir, PATCHBAY_SANDBOX: 'on' });
  expect(config.sandbox).toBe(true);
  app = await startApp(config, createLogger('silent'), { roles: new Set(ROLES), port: 0, sandboxClock: clock, sandboxTickMs: 300 });
  base = `http://127.0.0.1:${app.port}`;
}

afterAll(async () => {
  await app?.stop();
  await redis?.stop();
  await scratch?.drop();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

/** The header the page sends its per-start token in, as the page itself does on every call. */
const tokenHeader = () => ({ [PAGE_TOKEN_HEADER]: app.sandbox!.pageToken });

async function state(): Promise<SandboxState> {
  const res = await fetch(`${base}/sandbox/api/state`, { headers: tokenHeader() });
  expect(res.status).toBe(200);
  return (await res.json()) as SandboxState;
}

async function send(route: string, body: unknown): Promise<{ status: number; answer: SandboxAnswer }> {
  const res = await fetch(`${base}/sandbox/api/${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...tokenHeader() }, body: JSON.stringify(body) });
  return { status: res.status, answer: (await res.json()) as SandboxAnswer };
}

/** A request with exactly these headers (fetch will not send a made-up Host), as a browser on another page might. */
async function raw(method: string, pathname: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: app.port, method, path: pathname, headers }, (res) => {
      // An accepted event stream never ends: its status is the answer.
      if (String(res.headers['content-type']).startsWith('text/event-stream')) {
        req.destroy();
        return resolve({ status: res.statusCode ?? 0, text: '' });
      }
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const holdCount = async () => Number(rowsOf<{ n: number }>(await app.database.db.execute(sql`select count(*)::int as n from holds`))[0]!.n);

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

  it('listens on loopback only, so other machines cannot reach the page API', async () => {
    const lan = Object.values(os.networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (!lan) return console.warn('no non-loopback IPv4 address on this machine: the loopback bind is not checked');
    const reached = await new Promise<boolean>((resolve) => {
      const req = http.get({ host: lan, port: app.port, path: '/healthz', timeout: 5_000 }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy(new Error('timeout')));
    });
    expect(reached).toBe(false);
  });

  it('refuses a text/plain POST (what any web page can send without asking), and does nothing', async () => {
    const s = await state();
    const engineer = s.slack.people.find((p) => p.role === 'engineer')!;
    const before = await holdCount();
    const body = JSON.stringify({ user: engineer.id, channel: s.msp.channel, text: '/patch hold all csrf' });
    const res = await raw('POST', '/sandbox/api/slack/command', { 'content-type': 'text/plain', ...tokenHeader() }, body);
    expect(res.status).toBe(415);
    expect(await holdCount()).toBe(before);
  });

  it('refuses a request sent from another origin', async () => {
    const s = await state();
    const engineer = s.slack.people.find((p) => p.role === 'engineer')!;
    const body = JSON.stringify({ user: engineer.id, channel: s.msp.channel, text: '/patch hold all csrf' });
    const post = await raw('POST', '/sandbox/api/slack/command', { 'content-type': 'application/json', origin: 'https://evil.example', ...tokenHeader() }, body);
    expect(post.status).toBe(403);
    expect((await raw('GET', '/sandbox/api/state', { origin: 'https://evil.example', ...tokenHeader() })).status).toBe(403);
    // The page's own origin is fine.
    expect((await raw('GET', '/sandbox/api/state', { origin: `http://localhost:${app.port}`, host: `localhost:${app.port}`, ...tokenHeader() })).status).toBe(200);
  });

  it('refuses a Host that is not this machine (DNS rebinding): no page, no token, no people', async () => {
    const evil = { host: `evil.example:${app.port}` };
    for (const pathname of ['/', '/sandbox/api/state', `/sandbox/events?token=${app.sandbox!.pageToken}`]) {
      const res = await raw('GET', pathname, { ...evil, ...tokenHeader() });
      expect(res.status, pathname).toBe(403);
      expect(res.text).not.toContain('@');
    }
    for (const host of [`localhost:${app.port}`, `127.0.0.1:${app.port}`, `[::1]:${app.port}`]) {
      expect((await raw('GET', '/sandbox/api/state', { host, ...tokenHeader() })).status, host).toBe(200);
    }
  });

  it('refuses a page-API call without the page token or with a wrong one', async () => {
    const s = await state();
    const engineer = s.slack.people.find((p) => p.role === 'engineer')!;
    const before = await holdCount();
    const body = JSON.stringify({ user: engineer.id, channel: s.msp.channel, text: '/patch hold all no token' });
    expect((await raw('POST', '/sandbox/api/slack/command', { 'content-type': 'application/json' }, body)).status).toBe(403);
    expect((await raw('POST', '/sandbox/api/slack/command', { 'content-type': 'application/json', [PAGE_TOKEN_HEADER]: 'guessed' }, body)).status).toBe(403);
    expect((await raw('GET', '/sandbox/api/state', {})).status).toBe(403);
    expect((await raw('GET', '/sandbox/events', {})).status).toBe(403);
    expect((await raw('GET', '/sandbox/events?token=guessed', {})).status).toBe(403);
    expect((await raw('GET', `/sandbox/events?token=${app.sandbox!.pageToken}`, {})).status).toBe(200);
    expect(await holdCount()).toBe(before);
  });

  it('hands the token to its own page only, inside the page it serves', async () => {
    const page = await fetch(`${base}/`);
    expect(page.headers.get('cache-control')).toBe('no-store');
    // Not framed by another page (a click there would be a click here).
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(await page.text()).toContain(`content="${app.sandbox!.pageToken}"`);
    expect(app.sandbox!.pageToken).toMatch(/^[A-Za-z0-9_-]{32,}$/);
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
    // 8 December 2026 is the second Tuesday; MSRC publishes at 10:00 Pacific (18:00Z). The clock jumps once the
    // messages due (the approval's digest edit) have gone out.
    await until('the jump', async () => (clock.now().getTime() >= Date.parse('2026-12-08T18:00:00Z') ? true : undefined));
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
    await start();
    const after = await state();
    expect(after.slack.channels.find((c) => c.id === after.msp.channel)!.messages.map((m) => m.ts)).toEqual(posted);
    expect(after.slack.modals).toEqual([]);
    // The bot is installed once per conversation, as in a real tenant: no second round of welcome messages.
    expect(after.teams.conversations.flatMap((c) => c.activities).length).toBe(before.teams.conversations.flatMap((c) => c.activities).length);
  }, 90_000);

  it('keeps Teams working across a restart: the emulator comes back on a new port, and waiting sends go out', async () => {
    const [linked] = rowsOf<{ conversation_id: string }>(
      await app.database.db.execute(sql`select conversation_id from teams_conversations where client_id is not null and removed_at is null order by id limit 1`),
    );
    const conversation = linked!.conversation_id;
    const oldUrl = app.sandbox!.connector.url;
    await app.stop();
    // Waiting when it stopped: a send that had failed a few times (its next try an hour away), one queued behind it.
    const side = await openDatabase(scratch.env.DATABASE_URL ? { kind: 'postgres', url: scratch.env.DATABASE_URL } : { kind: 'embedded', dataDir: path.join(dataDir, 'pglite') });
    const at = clock.now();
    const post = (name: string, text: string) => ({ key: `restart:${name}:${at.getTime()}`, platform: 'teams' as const, channel: conversation, action: 'post' as const, subject: `restart:${name}`, payload: { text } });
    const waiting = await enqueueOutbox(side.db, [post('a', 'Failed before the restart'), post('b', 'Queued behind it')], at);
    await side.db.execute(sql`update chat_outbox set state = 'failed', attempts = 7, last_error = 'teams unreachable: connect ECONNREFUSED',
      next_attempt_at = ${new Date(at.getTime() + 3_600_000).toISOString()}::timestamptz where id = ${waiting[0]!}`);
    await side.close();

    await start();
    expect(app.sandbox!.connector.url).not.toBe(oldUrl);
    // And a message sent after the restart, as any to a champion would be.
    const later = await enqueueOutbox(app.database.db, [post('c', 'Sent after the restart')], clock.now());
    const ids = [...waiting, ...later];
    await until(
      'the three Teams sends',
      async () => {
        const rows = rowsOf<{ state: string }>(await app.database.db.execute(sql`select state from chat_outbox where id in (${sql.join(ids.map((id) => sql`${id}`), sql`, `)})`));
        return rows.every((r) => r.state === 'sent') ? true : undefined;
      },
      60_000,
    );
    const texts = app.sandbox!.connector.activities(conversation).map((a) => String(a.activity.text ?? ''));
    expect(texts).toEqual(expect.arrayContaining(['Failed before the restart', 'Queued behind it', 'Sent after the restart']));
    const [bad] = rowsOf<{ n: number }>(await app.database.db.execute(sql`select count(*)::int as n from chat_outbox where platform = 'teams' and state in ('failed', 'dead')`));
    expect(Number(bad!.n)).toBe(0);
  }, 120_000);

  it('plays an open window out before a jump passes its end: no machine at work is cut short', async () => {
    const db = app.database.db;
    const dmCount = async () => (await state()).slack.dms.reduce((n, dm) => n + dm.messages.length, 0);
    // Pressed until a window opens. A press may stop first at its users' DM time: the DMs go out before the next,
    // or the window rightly starts nothing on their machines (no reboot without a warning).
    for (let press = 0; press < 3; press++) {
      const before = await dmCount();
      const { answer } = await send('clock', { jump: 'next-window' });
      expect(answer.ok).toBe(true);
      if (/opens/.test(answer.detail ?? '')) break;
      await until("the users' DMs", async () => ((await dmCount()) > before ? true : undefined), 30_000);
    }
    const openWindow = async () => {
      const at = clock.now().toISOString();
      const [row] = rowsOf<{ start: string | null; n: number }>(
        await db.execute(sql`select min(window_start)::text as start, count(*)::int as n from runs
          where window_start <= ${at}::timestamptz and window_end > ${at}::timestamptz and state in ('scheduled', 'running')`),
      );
      return row && row.n > 0 ? row.start! : undefined;
    };
    const windowStart = await until('runs at work in the open window', openWindow, 30_000);

    const { answer } = await send('clock', { jump: 'window-end' });
    expect(answer.ok).toBe(true);
    expect(answer.detail).toMatch(/still at work in an open window: it plays out first/);
    // A second jump while the window plays out is refused, not stacked on the first.
    expect((await send('clock', { jump: 'plus-hour' })).answer.ok).toBe(false);

    const runsOf = async () =>
      rowsOf<{ state: string; result: string | null; window_end: string }>(await db.execute(sql`select state, result, window_end::text from runs where window_start = ${windowStart}::timestamptz`));
    const settled = await until('the window played out and the clock at its end', async () => {
      const runs = await runsOf();
      const end = Date.parse(runs[0]!.window_end);
      return runs.every((r) => r.state !== 'scheduled' && r.state !== 'running') && clock.now().getTime() >= end ? runs : undefined;
    }, 90_000);
    expect(settled.filter((r) => r.result === 'window_ended')).toEqual([]);
    expect(settled.some((r) => r.state === 'succeeded')).toBe(true);
    expect(clock.rate).toBe(1);
  }, 150_000);

  it('never moves the clock back, and says so', async () => {
    const before = clock.now().getTime();
    expect(() => clock.jumpTo(new Date(before - 3_600_000))).toThrow(/only moves forward/);
    const { answer } = await send('clock', { rate: 0 });
    expect(answer.ok).toBe(false);
  });
});
