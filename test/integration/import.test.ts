import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateInventory, inventoryToYaml } from '../../src/adapters/inventory/generate.ts';
import { importInventoryFile } from '../../src/commands/import.ts';
import { applyInventory, type InventoryChanges } from '../../src/db/inventory-repo.ts';
import { loadDigestFleet, loadInventory } from '../../src/db/release-repo.ts';
import { digestFleetOf, type DigestFleet } from '../../src/domain/digest.ts';
import { rowsOf } from '../../src/db/migrate.ts';
import { auditLog, chatIdentities, clients, decisions, devices, people, personRoles, runs } from '../../src/db/schema.ts';
import type { Inventory, InventoryDevice } from '../../src/domain/inventory.ts';
import { parseWindowSpec, type WindowRule } from '../../src/domain/window-spec.ts';
import { createScratchDatabase, openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';
import { cliTestTimeout } from '../support/cli.ts';

const backend = testBackend();
const NOW = new Date('2026-03-01T12:00:00Z');
const LATER = new Date('2026-03-02T12:00:00Z');

function rule(spec: string): WindowRule {
  const parsed = parseWindowSpec(spec);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

function device(name: string, overrides: Partial<InventoryDevice> = {}): InventoryDevice {
  return { name, class: 'desktop', ring: 'broad', os: 'Windows 11 Version 23H2 for x64-based Systems', user: undefined, ...overrides };
}

/** A small world built in code: an MSP with two engineers and one machine, two clients with a location each. */
function smallInventory(): Inventory {
  const windows = { desktop: rule('daily 01:00-05:00'), server: rule('sun 01:00-05:00') };
  return {
    msp: {
      name: 'Example IT',
      engineers: ['U0ENG1', 'U0ENG2'],
      channel: 'C0PATCH',
      timezone: 'America/Chicago',
      windows,
      devices: [device('EXIT-TEST-01', { ring: 'msp' })],
    },
    clients: [
      {
        id: 'acme-dental',
        name: 'Acme Dental',
        timezone: 'America/Chicago',
        windows,
        software: ['Dentrix'],
        champions: [{ email: 'pat@acme.example', teamsId: undefined, name: 'Pat' }],
        locations: [
          {
            id: 'main-st',
            name: 'Main Street',
            devices: [
              device('ACME-FD-01', { ring: 'pilot', user: 'jane@acme.example' }),
              device('ACME-FD-02', { user: 'pat@acme.example' }),
              device('ACME-SRV-01', { class: 'server', os: 'Windows Server 2022' }),
            ],
          },
        ],
      },
      {
        id: 'blue-law',
        name: 'Blue Law',
        timezone: 'America/New_York',
        windows,
        software: [],
        champions: [{ email: undefined, teamsId: 'aad-0001', name: undefined }],
        locations: [{ id: 'hq', name: undefined, devices: [device('BLUE-01'), device('BLUE-02', { ring: 'pilot' })] }],
      },
    ],
  };
}

function withoutNames(changes: InventoryChanges) {
  return { msp: changes.msp, clients: changes.clients, locations: changes.locations, devices: changes.devices, people: changes.people };
}

async function count(database: TestDatabase, table: string): Promise<number> {
  const rows = rowsOf<{ n: string | number }>(await database.db.execute(sql`select count(*) as n from ${sql.identifier(table)}`));
  return Number(rows[0]?.n);
}

async function tableCounts(database: TestDatabase) {
  const tables = ['msp', 'clients', 'locations', 'devices', 'people', 'person_roles', 'chat_identities', 'audit_log'];
  return Object.fromEntries(await Promise.all(tables.map(async (table) => [table, await count(database, table)] as const)));
}

function sortedFleet(fleet: DigestFleet | undefined) {
  const key = (g: DigestFleet['devices'][number]) => `${g.owner}\u0000${g.os ?? ''}`;
  return fleet && { devices: [...fleet.devices].sort((a, b) => key(a).localeCompare(key(b))), clients: [...fleet.clients].sort((a, b) => a.name.localeCompare(b.name)) };
}

/** The digest's fleet as the database sums it is the fleet of the inventory as stored: every decision redraws from it. */
async function expectDigestFleetAsStored(database: TestDatabase): Promise<DigestFleet> {
  const stored = await loadInventory(database.db);
  const summed = await loadDigestFleet(database.db);
  expect(sortedFleet(summed)).toEqual(sortedFleet(stored && digestFleetOf(stored)));
  return summed!;
}

describe(`inventory import on ${backend}`, () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await openTestDatabase();
  });
  afterAll(async () => {
    await database?.close();
  });

  it('adds everything the first time, and the same inventory again changes nothing', async () => {
    const first = await applyInventory(database.db, smallInventory(), NOW);
    expect(withoutNames(first)).toEqual({
      msp: 'added',
      clients: { added: 2, changed: 0, retired: 0, unchanged: 0 },
      locations: { added: 2, changed: 0, retired: 0, unchanged: 0 },
      devices: { added: 6, changed: 0, retired: 0, unchanged: 0 },
      // two engineers, pat (champion and user), jane, and Blue Law's Teams-only champion
      people: { added: 5, changed: 0, retired: 0, unchanged: 0 },
    });
    const stored = await tableCounts(database);

    const second = await applyInventory(database.db, smallInventory(), LATER);
    expect(withoutNames(second)).toEqual({
      msp: 'unchanged',
      clients: { added: 0, changed: 0, retired: 0, unchanged: 2 },
      locations: { added: 0, changed: 0, retired: 0, unchanged: 2 },
      devices: { added: 0, changed: 0, retired: 0, unchanged: 6 },
      people: { added: 0, changed: 0, retired: 0, unchanged: 5 },
    });
    // Nothing rewritten: updated_at still says the first import.
    const [acme] = await database.db.select().from(clients).where(eq(clients.id, 'acme-dental'));
    expect(acme?.updatedAt.toISOString()).toBe(NOW.toISOString());
    // Only the second audit row is new.
    expect(await tableCounts(database)).toEqual({ ...stored, audit_log: stored.audit_log! + 1 });
  });

  it('stores people with their roles and chat identities', async () => {
    const pat = await database.db.select().from(people).where(eq(people.key, 'pat@acme.example'));
    expect(pat).toHaveLength(1);
    expect(pat[0]?.displayName).toBe('Pat');
    const patRoles = await database.db.select().from(personRoles).where(eq(personRoles.personId, pat[0]!.id));
    expect(patRoles.map((r) => `${r.role}/${r.clientId}`).sort()).toEqual(['champion/acme-dental', 'user/acme-dental']);
    const identities = await database.db.select().from(chatIdentities);
    expect(identities.map((i) => `${i.platform}:${i.externalId}`).sort()).toEqual(['slack:U0ENG1', 'slack:U0ENG2', 'teams:aad-0001']);
  });

  it('stores the settings the file gives, keeps what the bot stored itself, and drops what the file no longer says', async () => {
    const settingsOf = async () => (await database.db.select().from(clients).where(eq(clients.id, 'acme-dental')))[0]!.settings;
    const inventory = smallInventory();
    inventory.clients[0]!.settings = { slackChannel: 'C0ACME', chatPlatform: 'teams', maxDeferralsPerRelease: 1 };
    const added = await applyInventory(database.db, inventory, LATER);
    expect(added.clients).toMatchObject({ changed: 1 });
    expect(await settingsOf()).toEqual({ slackChannel: 'C0ACME', chatPlatform: 'teams', maxDeferralsPerRelease: 1 });

    // Something the bot keeps in settings for itself is not the file's to remove.
    await database.db.execute(sql`update clients set settings = settings || '{"linkedBy":"U0ENG1"}'::jsonb where id = 'acme-dental'`);
    expect(withoutNames(await applyInventory(database.db, inventory, LATER)).clients).toMatchObject({ changed: 0 });

    const back = await applyInventory(database.db, smallInventory(), LATER);
    expect(back.clients).toMatchObject({ changed: 1 });
    expect(await settingsOf()).toEqual({ linkedBy: 'U0ENG1' });
    await database.db.execute(sql`update clients set settings = '{}'::jsonb where id = 'acme-dental'`);
  });

  it('stores the MSP\u2019s soak, overall concurrency and missed-window limit, once; keeps the bot\u2019s own msp settings; drops what the file no longer says', async () => {
    const settingsOf = async () => rowsOf<{ settings: Record<string, unknown> }>(await database.db.execute(sql`select settings from msp where id = 1`))[0]!.settings;
    const inventory = smallInventory();
    inventory.msp.settings = { soakHours: 12, runConcurrency: 200, missedWindowLimit: 5 };
    expect((await applyInventory(database.db, inventory, LATER)).msp).toBe('changed');
    expect(await settingsOf()).toEqual({ soakHours: 12, runConcurrency: 200, missedWindowLimit: 5 });
    // The same file again changes nothing, even with the directory sync's own key stored beside them.
    await database.db.execute(sql`update msp set settings = settings || '{"directorySyncedAt":"2026-03-02T00:00:00Z"}'::jsonb where id = 1`);
    const stored = await tableCounts(database);
    expect((await applyInventory(database.db, inventory, LATER)).msp).toBe('unchanged');
    expect(await tableCounts(database)).toEqual({ ...stored, audit_log: stored.audit_log! + 1 });

    inventory.msp.settings = { soakHours: 0 };
    expect((await applyInventory(database.db, inventory, LATER)).msp).toBe('changed');
    expect(await settingsOf()).toEqual({ soakHours: 0, directorySyncedAt: '2026-03-02T00:00:00Z' });
    expect((await applyInventory(database.db, smallInventory(), LATER)).msp).toBe('changed');
    expect(await settingsOf()).toEqual({ directorySyncedAt: '2026-03-02T00:00:00Z' });
    expect((await applyInventory(database.db, smallInventory(), LATER)).msp).toBe('unchanged');
    await database.db.execute(sql`update msp set settings = '{}'::jsonb where id = 1`);
  });

  it('counts only what changed: one device moved ring, one client renamed, one champion gone', async () => {
    const inventory = smallInventory();
    inventory.clients[0]!.locations[0]!.devices[1]!.ring = 'pilot';
    inventory.clients[1]!.name = 'Blue Law LLP';
    inventory.clients[0]!.champions = [];
    const changes = await applyInventory(database.db, inventory, LATER);
    expect(withoutNames(changes)).toEqual({
      msp: 'unchanged',
      clients: { added: 0, changed: 1, retired: 0, unchanged: 1 },
      locations: { added: 0, changed: 0, retired: 0, unchanged: 2 },
      devices: { added: 0, changed: 1, retired: 0, unchanged: 5 },
      // pat lost the champion role but stays a user
      people: { added: 0, changed: 1, retired: 0, unchanged: 4 },
    });
    const [moved] = await database.db.select().from(devices).where(eq(devices.name, 'ACME-FD-02'));
    expect(moved?.ring).toBe('pilot');
    expect(moved?.updatedAt.toISOString()).toBe(LATER.toISOString());
    // back to the original for the tests below
    await applyInventory(database.db, smallInventory(), LATER);
  });

  it('retires a client and its devices that left the file, keeping their history, and restores them when they return', async () => {
    const [blue01] = await database.db.select().from(devices).where(eq(devices.name, 'BLUE-01'));
    const windowStart = new Date('2026-03-03T06:00:00Z');
    await database.db.insert(runs).values({
      deviceId: blue01!.id,
      windowStart,
      windowEnd: new Date('2026-03-03T10:00:00Z'),
      scheduledAt: NOW,
      state: 'succeeded',
    });
    await database.db.insert(decisions).values({
      kind: 'confirm_pilot',
      clientId: 'blue-law',
      deviceId: blue01!.id,
      actor: 'aad-0001',
      source: 'teams',
      idempotencyKey: 'blue-law-confirm',
      createdAt: NOW,
    });

    const inventory = smallInventory();
    inventory.clients = inventory.clients.filter((client) => client.id !== 'blue-law');
    inventory.clients[0]!.locations[0]!.devices.pop(); // ACME-SRV-01 decommissioned
    const retired = await applyInventory(database.db, inventory, LATER, { subject: 'without-blue-law.yaml' });
    expect(retired.retiredClients).toEqual(['blue-law']);
    expect(retired.retiredDevices).toEqual(['ACME-SRV-01', 'BLUE-01', 'BLUE-02']);
    expect(retired.clients).toEqual({ added: 0, changed: 0, retired: 1, unchanged: 1 });
    expect(retired.locations.retired).toBe(1);
    expect(retired.people.retired).toBe(1); // the Teams-only champion of Blue Law
    const fleetWithout = await expectDigestFleetAsStored(database);
    expect(fleetWithout.clients.map((c) => c.name)).toEqual(['Acme Dental']);
    expect(fleetWithout.devices.reduce((n, g) => n + g.count, 0)).toBe(3); // the MSP's machine and two of Acme's

    const [blueLaw] = await database.db.select().from(clients).where(eq(clients.id, 'blue-law'));
    expect(blueLaw?.retiredAt?.toISOString()).toBe(LATER.toISOString());
    const [stillThere] = await database.db.select().from(devices).where(eq(devices.name, 'BLUE-01'));
    expect(stillThere?.retiredAt?.toISOString()).toBe(LATER.toISOString());
    expect(await database.db.select().from(runs).where(eq(runs.deviceId, blue01!.id))).toHaveLength(1);
    expect(await database.db.select().from(decisions).where(eq(decisions.idempotencyKey, 'blue-law-confirm'))).toHaveLength(1);

    // Retiring twice is not a change.
    const again = await applyInventory(database.db, inventory, LATER);
    expect(again.clients).toEqual({ added: 0, changed: 0, retired: 0, unchanged: 1 });
    expect(again.devices).toEqual({ added: 0, changed: 0, retired: 0, unchanged: 3 });

    const back = await applyInventory(database.db, smallInventory(), LATER);
    expect(back.restoredClients).toEqual(['blue-law']);
    expect(back.restoredDevices).toEqual(['ACME-SRV-01', 'BLUE-01', 'BLUE-02']);
    expect(back.clients).toEqual({ added: 0, changed: 1, retired: 0, unchanged: 1 });
    expect(back.devices).toEqual({ added: 0, changed: 3, retired: 0, unchanged: 3 });
    const [restored] = await database.db.select().from(devices).where(eq(devices.name, 'BLUE-01'));
    expect(restored?.retiredAt).toBeNull();
    expect(restored?.id).toBe(blue01!.id); // the same row, so its runs are still its own
    expect((await expectDigestFleetAsStored(database)).devices.reduce((n, g) => n + g.count, 0)).toBe(6);

    const audit = await database.db.select().from(auditLog).where(eq(auditLog.subject, 'without-blue-law.yaml'));
    expect(audit).toHaveLength(1);
    expect(audit[0]?.action).toBe('inventory.import');
    expect((audit[0]?.detail as { retiredClients: string[] }).retiredClients).toEqual(['blue-law']);
  });

  it('a dry run reports what would change and writes nothing', async () => {
    const before = await tableCounts(database);
    const inventory = smallInventory();
    inventory.clients[0]!.locations[0]!.devices.push(device('ACME-FD-03'));
    inventory.clients = inventory.clients.filter((client) => client.id !== 'blue-law');
    const preview = await applyInventory(database.db, inventory, LATER, { dryRun: true });
    expect(preview.devices).toEqual({ added: 1, changed: 0, retired: 2, unchanged: 4 });
    expect(preview.retiredClients).toEqual(['blue-law']);
    expect(await tableCounts(database)).toEqual(before);
    const [blueLaw] = await database.db.select().from(clients).where(eq(clients.id, 'blue-law'));
    expect(blueLaw?.retiredAt).toBeNull();
    expect(await database.db.select().from(devices).where(eq(devices.name, 'ACME-FD-03'))).toEqual([]);
  });

  it('refuses an inventory with repeated device names before writing anything', async () => {
    const before = await tableCounts(database);
    const inventory = smallInventory();
    inventory.clients[1]!.locations[0]!.devices.push(device('ACME-FD-01'));
    await expect(applyInventory(database.db, inventory, LATER)).rejects.toThrow(/device names repeated: ACME-FD-01/);
    expect(await tableCounts(database)).toEqual(before);
  });

  it('a file with mistakes returns every problem with file and line, and writes nothing', async () => {
    const before = await tableCounts(database);
    const folder = await mkdtemp(path.join(tmpdir(), 'patchbay-import-'));
    try {
      const good = inventoryToYaml(smallInventory());
      const bad = good.replace('daily 01:00-05:00', 'dayly 01:00-05:00').replace('America/New_York', 'America/New_Yrok');
      const file = path.join(folder, 'inventory.yaml');
      await writeFile(file, bad);
      const outcome = await importInventoryFile(database, file, { dryRun: false, now: LATER, actor: 'test' });
      expect(outcome.ok).toBe(false);
      if (outcome.ok) return;
      expect(outcome.problems.length).toBeGreaterThanOrEqual(2);
      for (const problem of outcome.problems) expect(problem).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+ `));
      expect(outcome.problems.join('\n')).toMatch(/dayly 01:00-05:00/);
      expect(outcome.problems.join('\n')).toMatch(/America\/New_Yrok/);
      expect(await tableCounts(database)).toEqual(before);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('imports a generated 20-client / 2,000-device inventory, then re-imports it with no changes', async () => {
    const inventory = generateInventory({ clients: 20, devices: 2000, seed: 7 });
    const deviceTotal = inventory.msp.devices.length + inventory.clients.flatMap((c) => c.locations.flatMap((l) => l.devices)).length;
    const generatedIds = new Set(inventory.clients.map((client) => client.id));
    const first = await applyInventory(database.db, inventory, LATER);
    expect(first.devices.added + first.devices.changed + first.devices.unchanged).toBe(deviceTotal);
    expect(first.devices.added).toBeGreaterThan(deviceTotal - 10);
    expect(first.retiredClients).toEqual(['acme-dental', 'blue-law'].filter((id) => !generatedIds.has(id)));
    const second = await applyInventory(database.db, inventory, LATER);
    expect(second.devices).toEqual({ added: 0, changed: 0, retired: 0, unchanged: deviceTotal });
    expect(second.people.added + second.people.changed + second.people.retired).toBe(0);
    expect(second.clients).toEqual({ added: 0, changed: 0, retired: 0, unchanged: inventory.clients.length });
    expect((await expectDigestFleetAsStored(database)).devices.reduce((n, g) => n + g.count, 0)).toBe(deviceTotal);
  });

  it('retires the devices that left a file of several pages of them, wherever they sort, and only those', async () => {
    const inventory = generateInventory({ clients: 30, devices: 12_000, seed: 11 });
    await applyInventory(database.db, inventory, NOW);
    const names = inventory.clients.flatMap((c) => c.locations.flatMap((l) => l.devices.map((d) => d.name))).sort();
    // The first and last, and either side of where the first page of 5,000 stored names would end.
    const leaving = new Set([names[0]!, names[4998]!, names[4999]!, names[5000]!, names[9001]!, names[names.length - 1]!]);
    const smaller: Inventory = {
      ...inventory,
      clients: inventory.clients.map((client) => ({
        ...client,
        locations: client.locations.map((location) => ({ ...location, devices: location.devices.filter((d) => !leaving.has(d.name)) })),
      })),
    };
    const changes = await applyInventory(database.db, smaller, LATER);
    expect(changes.retiredDevices).toEqual([...leaving].sort());
    expect(changes.devices).toMatchObject({ added: 0, changed: 0, retired: leaving.size });
  }, 60_000);
});

const exec = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, '../..');

// Up to three spawns of the CLI in one case.
describe(`patchbay import command on ${backend}`, { timeout: cliTestTimeout(3) }, () => {
  let folder: string;
  let env: Record<string, string | undefined>;
  let dropScratch: (() => Promise<void>) | undefined;
  let openStored: () => Promise<TestDatabase>;

  beforeAll(async () => {
    folder = await mkdtemp(path.join(tmpdir(), 'patchbay-import-cli-'));
    await writeFile(path.join(folder, 'good.yaml'), inventoryToYaml(smallInventory()));
    await writeFile(path.join(folder, 'bad.yaml'), inventoryToYaml(smallInventory()).replace('America/Chicago', 'CST'));
    const base = { ...process.env, LOG_LEVEL: 'silent', DATABASE_URL: '', PATCHBAY_DATA_DIR: path.join(folder, 'data') };
    if (backend === 'postgres') {
      const scratch = await createScratchDatabase('patchbay_test_cli');
      dropScratch = scratch.drop;
      env = { ...base, DATABASE_URL: scratch.url };
      const { openDatabase } = await import('../../src/db/client.ts');
      openStored = async () => ({ ...(await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 1 })), backend });
    } else {
      env = base;
      const { openDatabase } = await import('../../src/db/client.ts');
      openStored = async () => ({ ...(await openDatabase({ kind: 'embedded', dataDir: path.join(folder, 'data', 'pglite') })), backend });
    }
  });
  afterAll(async () => {
    await dropScratch?.();
    await rm(folder, { recursive: true, force: true });
  });

  const patchbay = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await exec(process.execPath, ['bin/patchbay.mjs', ...args], { cwd: repoRoot, env });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  it('a bad file: every problem on stderr, exit 1, nothing created', async () => {
    const result = await patchbay('import', path.join(folder, 'bad.yaml'));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/bad\.yaml:\d+ msp\.timezone: .*CST/);
    expect(result.stderr).toMatch(/nothing was written/);
    if (backend === 'pglite') {
      // Opening it to look would create it, tables and all (it starts as a copy of the migrated image).
      expect(existsSync(path.join(folder, 'data', 'pglite'))).toBe(false);
      return;
    }
    const stored = await openStored();
    try {
      const tables = rowsOf<{ n: string | number }>(
        await stored.db.execute(sql`select count(*) as n from information_schema.tables where table_schema = 'public'`),
      );
      expect(Number(tables[0]?.n)).toBe(0);
    } finally {
      await stored.close();
    }
  });

  it('--dry-run on an empty database, then a real import, then a re-import that changes nothing', async () => {
    const dry = await patchbay('import', path.join(folder, 'good.yaml'), '--dry-run', '--json');
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, devices: { added: 6 } });

    const first = await patchbay('import', path.join(folder, 'good.yaml'));
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/imported/);
    expect(first.stdout).toMatch(/devices\s*│\s*6\s*│\s*0\s*│\s*0\s*│\s*0/);

    const again = await patchbay('import', path.join(folder, 'good.yaml'), '--json');
    expect(JSON.parse(again.stdout)).toMatchObject({ dryRun: false, devices: { added: 0, changed: 0, retired: 0, unchanged: 6 } });

    const stored = await openStored();
    try {
      expect(await stored.db.select().from(devices)).toHaveLength(6);
      expect((await stored.db.select().from(auditLog)).filter((row) => row.action === 'inventory.import')).toHaveLength(2);
    } finally {
      await stored.close();
    }
  });

  it('a statement the database refuses: one line naming the cause, never the SQL or the values', async () => {
    const inventory = smallInventory();
    inventory.clients[1]!.locations[0]!.devices.push(device('BLUE-REFUSED-01', { user: 'someone.private@blue.example' }));
    await writeFile(path.join(folder, 'refused.yaml'), inventoryToYaml(inventory));
    const { migrateDatabase } = await import('../../src/db/migrate.ts');
    const stored = await openStored();
    try {
      await migrateDatabase(stored);
      // Stands in for any failure on the server's side (a full disk, a constraint added by a DBA).
      await stored.db.execute(sql`alter table devices add constraint patchbay_test_refused check (name <> 'BLUE-REFUSED-01')`);
    } finally {
      await stored.close();
    }
    try {
      const result = await patchbay('import', path.join(folder, 'refused.yaml'));
      expect(result.code).toBe(1);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/^patchbay: import failed on .*: new row for relation "devices" violates check constraint "patchbay_test_refused"\n$/);
      expect(result.stderr).not.toMatch(/insert into|params|someone\.private/i);
    } finally {
      const again = await openStored();
      await again.db.execute(sql`alter table devices drop constraint patchbay_test_refused`).finally(() => again.close());
    }
  });

  it('patchbay migrate reports an up-to-date database as such', async () => {
    const result = await patchbay('migrate', '--json');
    expect(result.code).toBe(0);
    const outcome = JSON.parse(result.stdout) as { applied: string[]; alreadyApplied: number };
    expect(outcome.applied).toEqual([]);
    expect(outcome.alreadyApplied).toBeGreaterThanOrEqual(2);
  });
});
