/**
 * `patchbay devices check [--fix]` against the Tactical emulator: the refused agents named with their settings,
 * unmapped OSes listed, and --fix writing Tactical's agent-level policy (read back) with an audit row per agent.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAgents, renderCheck } from '../../src/adapters/deployers/tactical-check.ts';
import { TacticalClient } from '../../src/adapters/deployers/tactical-client.ts';
import { startTacticalEmulator, TacticalEmulator, type RunningTacticalEmulator } from '../../src/sandbox/emulators/tactical-emulator.ts';
import { cliTestTimeout } from '../support/cli.ts';
import { appDatabaseEnv, type AppTestDatabase } from '../support/db.ts';
import { TEST_API_KEY } from '../support/tactical-world.ts';

function fleet(): TacticalEmulator {
  const emu = new TacticalEmulator({ now: () => new Date('2024-02-14T02:00:00Z'), apiKey: TEST_API_KEY });
  emu.addAgent({ hostname: 'GOOD-PC', client: 'Contoso' });
  emu.addAgent({ hostname: 'AUTO-PC', client: 'Contoso', site: 'Branch', automationPolicy: { critical: 'approve', reboot_after_install: 'required' } });
  emu.addAgent({ hostname: 'LINUX-1', client: 'Fabrikam', operatingSystem: 'Ubuntu 22.04 x86_64 5.15.0-91-generic' });
  return emu;
}

describe('devices check on the emulator', () => {
  let server: RunningTacticalEmulator;
  afterAll(async () => server?.close());

  it('names the refused agent and each setting, lists the unmapped OS, and --fix makes it drivable', async () => {
    server = await startTacticalEmulator(fleet());
    const client = new TacticalClient({ url: server.url, apiKey: TEST_API_KEY, requestsPerSecond: 1000 });
    const checks = await checkAgents(client, { fix: false });
    const auto = checks.find((c) => c.hostname === 'AUTO-PC')!;
    expect(auto.problems).toEqual([expect.stringMatching(/^critical: approve/), expect.stringMatching(/^reboot_after_install: required/)]);
    expect(checks.find((c) => c.hostname === 'GOOD-PC')).toMatchObject({ problems: [], osMapping: { kind: 'mapped', product: 'Windows 11 Version 23H2 for x64-based Systems' } });
    const report = renderCheck(checks, false);
    expect(report).toMatch(/^refused AUTO-PC \(Contoso \/ Branch\): critical: approve/m);
    expect(report).toMatch(/^unmapped OS LINUX-1 .*not a Windows agent/m);
    expect(report).toMatch(/3 agents: 2 patchbay may drive, 1 refused, 1 with an OS MSRC does not name/);

    const audited: string[] = [];
    const fixed = await checkAgents(client, { fix: true, onFixed: async (c) => void audited.push(c.hostname) });
    expect(fixed.find((c) => c.hostname === 'AUTO-PC')).toMatchObject({ problems: [], fixed: { before: auto.problems } });
    expect(audited).toEqual(['AUTO-PC']);
    const edits = server.emulator.requests.filter((r) => r.method === 'PUT');
    expect(edits).toHaveLength(1);
    expect(edits[0]!.body).toMatchObject({ winupdatepolicy: [{ critical: 'manual', run_time_days: [], reboot_after_install: 'never' }] });
    expect((await checkAgents(client, { fix: false })).every((c) => c.problems.length === 0)).toBe(true);
  });
});

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(repoRoot, 'bin/patchbay.mjs');

describe('patchbay devices check (the command)', { timeout: cliTestTimeout(3) }, () => {
  let server: RunningTacticalEmulator;
  let database: AppTestDatabase;
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-devices-check-'));
  beforeAll(async () => {
    server = await startTacticalEmulator(fleet());
    database = await appDatabaseEnv('patchbay_devices');
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  function run(args: string[], extra: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = { PATH: process.env.PATH ?? '', PATCHBAY_DATA_DIR: path.join(dir, 'data'), LOG_LEVEL: 'silent', DEPLOYER: 'tactical', TACTICAL_URL: server.url, TACTICAL_API_KEY: TEST_API_KEY, ...database.env, ...extra };
    return new Promise((resolve) => {
      execFile(process.execPath, [bin, 'devices', ...args], { cwd: repoRoot, env }, (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  }

  it('exits 1 naming the refused agent, then --fix fixes it and a new check passes; the key is never printed', async () => {
    const first = await run(['check']);
    expect(first.code).toBe(1);
    expect(first.stdout).toMatch(/refused AUTO-PC/);
    const fixed = await run(['check', '--fix']);
    expect(fixed.stdout).toMatch(/^fixed AUTO-PC \(Contoso \/ Branch\): was critical: approve/m);
    expect(fixed.code).toBe(0);
    if (database.env.DATABASE_URL) {
      const sql = postgres(database.env.DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        const rows = await sql`select actor, action, subject, detail from audit_log where action = 'tactical.policy_fixed'`;
        expect(rows).toEqual([expect.objectContaining({ action: 'tactical.policy_fixed', subject: expect.stringMatching(/^tactical-agent:/), detail: expect.objectContaining({ hostname: 'AUTO-PC' }) })]);
        expect(rows[0]!.actor).toMatch(/^cli/);
      } finally {
        await sql.end({ timeout: 5 });
      }
    }
    const wrongKey = await run(['check'], { TACTICAL_API_KEY: 'WRONG-KEY-0123456789' });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/401 Invalid token/);
    for (const out of [first, fixed, wrongKey]) expect(out.stdout + out.stderr).not.toMatch(/TESTKEY0123|WRONG-KEY-0123/);
  });
});
