/**
 * `devices sync`: the YAML's Tactical-linked client takes its devices from Tactical (through the emulator), applied
 * like an import on a real database: new agents as broad, the YAML's pilots kept, devices gone from Tactical retired
 * (never deleted) and restored when they return, unmapped OSes listed.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TacticalClient } from '../../src/adapters/deployers/tactical-client.ts';
import { mergeTactical, type TacticalAgentRow, type TacticalClientRow } from '../../src/adapters/deployers/tactical-sync.ts';
import { rowsOf } from '../../src/db/client.ts';
import { importInventory, readInventory } from '../../src/commands/import.ts';
import { startTacticalEmulator, TacticalEmulator, type RunningTacticalEmulator } from '../../src/sandbox/emulators/tactical-emulator.ts';
import { cliTestTimeout } from '../support/cli.ts';
import { appDatabaseEnv, openTestDatabase, type AppTestDatabase, type TestDatabase } from '../support/db.ts';
import { TEST_API_KEY } from '../support/tactical-world.ts';

const YAML = `
msp:
  name: Example IT
  engineers: [U0ENG1]
  channel: C0ENGINEERS
  timezone: America/Chicago
  windows: { desktop: "daily 01:00-05:00" }
  devices:
    - { name: EXIT-01, class: desktop }
clients:
  - id: contoso
    name: Contoso
    timezone: America/New_York
    tactical_client: Contoso Ltd
    windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }
    locations:
      - id: main-office
        name: Main office (HQ)
        devices:
          - { name: CON-PC-01, class: desktop, ring: pilot, user: jane@contoso.example }
          - { name: CON-OLD-01, class: desktop }
  - id: fabrikam
    name: Fabrikam
    timezone: America/Chicago
    windows: { desktop: "daily 01:00-05:00" }
    locations:
      - id: main
        devices:
          - { name: FAB-PC-01, class: desktop }
`;

describe('devices sync', () => {
  let database: TestDatabase;
  let server: RunningTacticalEmulator;
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-sync-'));
  const file = path.join(dir, 'inventory.yaml');
  beforeAll(async () => {
    database = await openTestDatabase();
    const emu = new TacticalEmulator({ now: () => new Date('2024-02-14T02:00:00Z'), apiKey: TEST_API_KEY });
    emu.addAgent({ hostname: 'CON-PC-01', client: 'Contoso Ltd', site: 'Main Office' });
    emu.addAgent({ hostname: 'CON-PC-02', client: 'Contoso Ltd', site: 'Main Office' });
    emu.addAgent({ hostname: 'CON-SRV-01', client: 'Contoso Ltd', site: 'Data Center', monitoringType: 'server', operatingSystem: 'Windows Server 2022 Standard, 64 bit v21H2 (build 20348.2227)' });
    emu.addAgent({ hostname: 'CON-LNX-01', client: 'Contoso Ltd', site: 'Data Center', operatingSystem: 'Ubuntu 22.04 x86_64 5.15.0-91-generic' });
    emu.addAgent({ hostname: 'OTHER-01', client: 'Someone Else' });
    server = await startTacticalEmulator(emu);
    writeFileSync(file, YAML);
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function sync(agents?: (all: TacticalAgentRow[]) => TacticalAgentRow[]) {
    const read = await readInventory(file);
    if (!read.ok) throw new Error(read.problems.join('\n'));
    const client = new TacticalClient({ url: server.url, apiKey: TEST_API_KEY, requestsPerSecond: 1000 });
    const all = await client.get<TacticalAgentRow[]>('agents/');
    const merged = mergeTactical(read.inventory, await client.get<TacticalClientRow[]>('clients/'), agents ? agents(all) : all);
    const outcome = await importInventory(database, merged.inventory, 'inventory.yaml + Tactical RMM', { dryRun: false, now: new Date(), actor: 'test' });
    if (!outcome.ok) throw new Error(outcome.problems.join('\n'));
    return { merged, changes: outcome.changes };
  }

  const devices = async () =>
    rowsOf<{ name: string; client_id: string | null; location_id: string | null; ring: string; class: string; os: string | null; user_email: string | null; retired: boolean }>(
      await database.db.execute(sql`select name, client_id, location_id, ring, class, os, user_email, retired_at is not null as retired from devices order by name`),
    );

  it('takes the linked client’s machines from Tactical, keeping the YAML’s ring, class and user', async () => {
    const { merged } = await sync();
    expect(merged.added.sort()).toEqual(['contoso/CON-LNX-01', 'contoso/CON-PC-02', 'contoso/CON-SRV-01']);
    expect(merged.unmapped).toEqual([expect.objectContaining({ device: 'CON-LNX-01', reason: expect.stringMatching(/not a Windows agent/) })]);
    expect(merged.problems).toEqual([]);
    const rows = await devices();
    expect(rows.find((d) => d.name === 'CON-PC-01')).toMatchObject({ ring: 'pilot', user_email: 'jane@contoso.example', location_id: 'main-office', os: 'Windows 11 Version 23H2 for x64-based Systems', retired: false });
    expect(rows.find((d) => d.name === 'CON-PC-02')).toMatchObject({ ring: 'broad', class: 'desktop', client_id: 'contoso' });
    expect(rows.find((d) => d.name === 'CON-SRV-01')).toMatchObject({ ring: 'broad', class: 'server', location_id: 'data-center', os: 'Windows Server 2022' });
    expect(rows.find((d) => d.name === 'CON-LNX-01')).toMatchObject({ os: null });
    // Not in Tactical: retired, not deleted. Clients without a link and the MSP's machines stay as the YAML says.
    expect(rows.find((d) => d.name === 'CON-OLD-01')).toBeUndefined();
    expect(rows.find((d) => d.name === 'FAB-PC-01')).toMatchObject({ retired: false });
    expect(rows.find((d) => d.name === 'EXIT-01')).toMatchObject({ ring: 'msp', retired: false });
    expect(rows.find((d) => d.name === 'OTHER-01')).toBeUndefined();
  });

  it('an agent gone from Tactical retires; back again, it is restored', async () => {
    const gone = await sync((all) => all.filter((a) => a.hostname !== 'CON-PC-02'));
    expect(gone.changes.retiredDevices).toEqual(['CON-PC-02']);
    expect((await devices()).find((d) => d.name === 'CON-PC-02')).toMatchObject({ retired: true });
    const back = await sync();
    expect(back.changes.restoredDevices).toEqual(['CON-PC-02']);
    expect(back.merged.added).toContain('contoso/CON-PC-02');
  });

  it('a link to a Tactical client that does not exist is a problem, and that client keeps its YAML devices', () => {
    const merged = mergeTactical(
      { msp: { name: 'x', engineers: [], channel: 'C1', timezone: 'UTC', windows: {}, devices: [] }, clients: [{ id: 'a', name: 'A', timezone: 'UTC', windows: {}, software: [], champions: [], locations: [{ id: 'l', name: undefined, devices: [{ name: 'A-1', class: 'desktop', ring: 'pilot', os: undefined, user: undefined }] }], tacticalClient: '42' }] },
      [{ id: 7, name: 'Seven', sites: [] }],
      [],
    );
    expect(merged.problems).toEqual([expect.stringMatching(/^a: tactical_client "42" is not a client in Tactical RMM/)]);
    expect(merged.inventory.clients[0]!.locations[0]!.devices.map((d) => d.name)).toEqual(['A-1']);
  });
});

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('patchbay devices sync (the command)', { timeout: cliTestTimeout(5) }, () => {
  let server: RunningTacticalEmulator;
  let database: AppTestDatabase;
  const dir = mkdtempSync(path.join(tmpdir(), 'patchbay-sync-cli-'));
  const file = path.join(dir, 'inventory.yaml');
  beforeAll(async () => {
    const emu = new TacticalEmulator({ now: () => new Date('2024-02-14T02:00:00Z'), apiKey: TEST_API_KEY });
    emu.addAgent({ hostname: 'CON-PC-01', client: 'Contoso Ltd', site: 'Main Office' });
    emu.addAgent({ hostname: 'CON-PC-09', client: 'Contoso Ltd', site: 'Main Office' });
    server = await startTacticalEmulator(emu);
    database = await appDatabaseEnv('patchbay_sync');
    writeFileSync(file, YAML);
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (args: string[]) => devices(['sync', ...args]);

  function devices(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = { PATH: process.env.PATH ?? '', PATCHBAY_DATA_DIR: path.join(dir, 'data'), LOG_LEVEL: 'silent', DEPLOYER: 'tactical', TACTICAL_URL: server.url, TACTICAL_API_KEY: TEST_API_KEY, ...database.env };
    return new Promise((resolve) => {
      execFile(process.execPath, [path.join(repoRoot, 'bin/patchbay.mjs'), 'devices', ...args], { cwd: repoRoot, env }, (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  }

  it('imports the merged inventory and lists the new agents', async () => {
    const synced = await run([file, '--json']);
    expect(synced.stderr).toBe('');
    expect(synced.code).toBe(0);
    const out = JSON.parse(synced.stdout) as { dryRun: boolean; added: string[]; devices: { added: number } };
    expect(out).toMatchObject({ dryRun: false, added: ['contoso/CON-PC-09'] });
    expect(out.devices.added).toBe(4);
    const again = await run([file]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/new agents, ring broad \(1\): contoso\/CON-PC-09/);
  });

  it('lists what patchbay manages: from where, online and last seen from Tactical, OS as MSRC names it, ring, user', async () => {
    const listed = await devices(['list', '--json']);
    expect(listed.stderr).toBe('');
    expect(listed.code).toBe(0);
    const rows = (JSON.parse(listed.stdout) as { devices: Array<Record<string, unknown>> }).devices;
    expect(rows.map((r) => r.name)).toEqual(['EXIT-01', 'CON-PC-01', 'CON-PC-09', 'FAB-PC-01']);
    expect(rows[0]).toMatchObject({ client: 'msp', from: 'inventory', status: null, lastSeen: null, ring: 'msp' });
    expect(rows[1]).toMatchObject({
      client: 'contoso', from: 'tactical', status: 'online', lastSeen: expect.stringMatching(/^2024-02-14T/), os: 'Windows 11 Version 23H2 for x64-based Systems', ring: 'pilot', user: 'jane@contoso.example',
    });
    expect(rows[2]).toMatchObject({ from: 'tactical', ring: 'broad', user: null });
    const contoso = await devices(['list', '--client', 'contoso']);
    expect(contoso.code).toBe(0);
    expect(contoso.stdout).toMatch(/CON-PC-01 .*│ contoso .*│ Tactical RMM .*│ online .*│ 2024-02-14T.*│ Windows 11 Version 23H2 for x64-based Systems .*│ pilot .*│ jane@contoso.example/);
    expect(contoso.stdout).not.toContain('FAB-PC-01');
    expect(contoso.stdout).toMatch(/2 devices\n$/);
    const unknown = await devices(['list', '--client', 'nope']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('no client nope in the inventory');
  });
});
