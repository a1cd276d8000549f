/**
 * The model's world: small enough that a sequence runs in about a second, varied enough to reach every rule of
 * issue 13. An MSP in Chicago (two desktops, one with a user, and a server on a Sunday window); three clients in
 * three zones with a night window that crosses midnight, a daytime window and an Auckland night; devices with
 * and without users; and one update (KB5034763, Windows 10) that no MSP machine runs, so it can only pass ring
 * msp by an engineer's audited skip.
 *
 * Everything goes in through the product's own repositories (inventory import, release store, Slack directory);
 * only the Teams conversations are inserted as rows, standing in for an install of the Teams app in each client.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from '../../../src/db/client.ts';
import { storeSlackDirectory } from '../../../src/db/directory-repo.ts';
import { applyInventory } from '../../../src/db/inventory-repo.ts';
import { storeRelease } from '../../../src/use-cases/store-release.ts';
import type { Inventory, InventoryClient, InventoryDevice, Ring } from '../../../src/domain/inventory.ts';
import type { Release } from '../../../src/domain/release.ts';
import { parseWindowSpec, type WindowRule } from '../../../src/domain/window-spec.ts';

export const RELEASE_ID = '2024-Feb';
export const ENGINEER = 'U_ENG';
export const WIN11 = 'Windows 11 Version 23H2 for x64-based Systems';
export const WIN10 = 'Windows 10 Version 22H2 for x64-based Systems';
export const SERVER = 'Windows Server 2022';

/** The release's updates: key -> the OS names it applies to (the world's OS names are the product names). */
export const UPDATES: Record<string, string[]> = {
  '5034765': [WIN11],
  '5034770': [SERVER],
  '5034439': [WIN11, SERVER],
  '5034763': [WIN10],
};
export const UPDATE_KEYS = Object.keys(UPDATES).sort();

/**
 * The Saturday after Patch Tuesday, 13:00 in Chicago: ring msp's desktops and its Sunday server window come the
 * same night, so a sequence of twenty-odd steps can reach every client's broad ring. The model's month ends
 * before Chicago's clocks change (10 March): windows across a DST change are the windows tests' business.
 */
export const START = new Date('2024-02-17T19:00:00Z');
export const END = new Date('2024-03-08T00:00:00Z');

function rule(spec: string): WindowRule {
  const parsed = parseWindowSpec(spec);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

export interface WorldDevice {
  name: string;
  clientId: string | null;
  ring: Ring;
  class: 'desktop' | 'server';
  os: string;
  user?: string;
}

export interface WorldClient {
  id: string;
  name: string;
  timezone: string;
  desktop: string;
  champion: string;
  autoConfirmHours?: number;
}

export const MSP = { timezone: 'America/Chicago', desktop: 'daily 01:00-05:00', server: 'sun 01:00-05:00' };

export const CLIENTS: WorldClient[] = [
  // A night window across midnight: a confirmation at 23:08 lands inside it (finding 2).
  { id: 'acme', name: 'Acme Dental', timezone: 'America/Chicago', desktop: 'daily 22:00-02:00', champion: 'T_ACME' },
  // A daytime window (finding 9), and a client that opted in to auto-confirm.
  { id: 'bistro', name: 'Bistro Ltd', timezone: 'Europe/London', desktop: 'daily 12:00-14:00', champion: 'T_BISTRO', autoConfirmHours: 12 },
  { id: 'kiwi', name: 'Kiwi Accounting', timezone: 'Pacific/Auckland', desktop: 'daily 01:00-05:00', champion: 'T_KIWI' },
];

export const INITIAL_DEVICES: WorldDevice[] = [
  { name: 'MSP-PC-001', clientId: null, ring: 'msp', class: 'desktop', os: WIN11, user: 'eng1@example-it.com' },
  { name: 'MSP-PC-002', clientId: null, ring: 'msp', class: 'desktop', os: WIN11 },
  { name: 'MSP-SRV-01', clientId: null, ring: 'msp', class: 'server', os: SERVER },
  { name: 'ACME-PILOT-1', clientId: 'acme', ring: 'pilot', class: 'desktop', os: WIN11, user: 'ana@acme.example' },
  { name: 'ACME-PILOT-2', clientId: 'acme', ring: 'pilot', class: 'desktop', os: WIN10 },
  { name: 'ACME-PC-1', clientId: 'acme', ring: 'broad', class: 'desktop', os: WIN11, user: 'ben@acme.example' },
  { name: 'ACME-PC-2', clientId: 'acme', ring: 'broad', class: 'desktop', os: WIN10, user: 'cora@acme.example' },
  { name: 'ACME-SRV-1', clientId: 'acme', ring: 'broad', class: 'server', os: SERVER },
  { name: 'BISTRO-PILOT-1', clientId: 'bistro', ring: 'pilot', class: 'desktop', os: WIN11 },
  { name: 'BISTRO-PC-1', clientId: 'bistro', ring: 'broad', class: 'desktop', os: WIN11, user: 'dan@bistro.example' },
  { name: 'BISTRO-PC-2', clientId: 'bistro', ring: 'broad', class: 'desktop', os: WIN11 },
  { name: 'KIWI-PILOT-1', clientId: 'kiwi', ring: 'pilot', class: 'desktop', os: WIN11, user: 'eve@kiwi.example' },
  { name: 'KIWI-PC-1', clientId: 'kiwi', ring: 'broad', class: 'desktop', os: WIN11, user: 'fay@kiwi.example' },
  { name: 'KIWI-PC-2', clientId: 'kiwi', ring: 'broad', class: 'desktop', os: WIN11 },
];

/** Devices a re-import may add: one per ring and client, some with users. */
export const EXTRA_DEVICES: WorldDevice[] = [
  { name: 'MSP-PC-003', clientId: null, ring: 'msp', class: 'desktop', os: WIN11 },
  { name: 'ACME-PC-3', clientId: 'acme', ring: 'broad', class: 'desktop', os: WIN11, user: 'gil@acme.example' },
  { name: 'BISTRO-PILOT-2', clientId: 'bistro', ring: 'pilot', class: 'desktop', os: WIN11, user: 'hal@bistro.example' },
  { name: 'KIWI-PC-3', clientId: 'kiwi', ring: 'broad', class: 'desktop', os: WIN10, user: 'ivy@kiwi.example' },
];

const inventoryDevice = (d: WorldDevice): InventoryDevice => ({ name: d.name, class: d.class, ring: d.ring, os: d.os, user: d.user });

/** The inventory file for a given set of live devices (a re-import is this with a device more or fewer). */
export function worldInventory(devices: readonly WorldDevice[]): Inventory {
  const clients: InventoryClient[] = CLIENTS.map((c) => ({
    id: c.id,
    name: c.name,
    timezone: c.timezone,
    windows: { desktop: rule(c.desktop), server: rule('sun 01:00-05:00') },
    software: [],
    champions: [{ email: `champion@${c.id}.example`, teamsId: c.champion, name: `Champion of ${c.name}` }],
    locations: [{ id: 'main', name: 'Main', devices: devices.filter((d) => d.clientId === c.id).map(inventoryDevice) }],
    ...(c.autoConfirmHours !== undefined ? { settings: { autoConfirmHours: c.autoConfirmHours } } : {}),
  }));
  return {
    msp: {
      name: 'Example IT',
      engineers: [ENGINEER],
      channel: 'C_ENG',
      timezone: MSP.timezone,
      windows: { desktop: rule(MSP.desktop), server: rule(MSP.server) },
      devices: devices.filter((d) => d.clientId === null).map(inventoryDevice),
      // A short soak (the product's default is longer) so a promotion can follow the same night's MSP installs.
      settings: { soakHours: 2 },
    },
    clients,
  };
}

export function worldRelease(): Release {
  const products = [
    { id: '12242', name: WIN11, family: 'Windows' },
    { id: '11923', name: SERVER, family: 'Windows' },
    { id: '11926', name: WIN10, family: 'Windows' },
  ];
  const idOf = new Map(products.map((p) => [p.name, p.id]));
  return {
    id: RELEASE_ID,
    title: 'February 2024 Security Updates',
    initialReleaseDate: '2024-02-13T08:00:00Z',
    currentReleaseDate: '2024-02-13T08:00:00Z',
    revisions: [{ number: '1', date: '2024-02-13T08:00:00Z', description: 'Information published.' }],
    products,
    updates: UPDATE_KEYS.map((key) => ({
      id: key,
      kb: key,
      name: `Cumulative update ${key}`,
      family: 'Windows',
      productIds: UPDATES[key]!.map((os) => idOf.get(os)!),
      subTypes: ['Security Update'],
      restartRequired: 'Yes' as const,
      supersedes: [],
      fixedBuilds: [],
      urls: [],
      knownIssues: [],
      cves: [],
    })),
    cves: [],
  };
}

/** Every user in the world, as the Slack directory lists them (so every DM has somewhere to go). */
function directoryMembers() {
  const users = [...INITIAL_DEVICES, ...EXTRA_DEVICES].map((d) => d.user).filter((u): u is string => u !== undefined);
  return [...new Set(users)].map((email, i) => ({ id: `U_USER${i + 1}`, email, tz: undefined, realName: email.split('@')[0] }));
}

export async function seedWorld(db: AppDatabase, now: Date): Promise<void> {
  await applyInventory(db, worldInventory(INITIAL_DEVICES), now);
  await storeRelease(db, worldRelease(), { fetchedAt: now, now });
  await refreshDirectory(db, now);
  for (const c of CLIENTS) {
    await db.execute(sql`insert into teams_conversations (conversation_id, tenant_id, kind, client_id, reference, created_at, updated_at)
      values (${`19:${c.id}@thread.tacv2`}, ${`tenant-${c.id}`}, 'channel', ${c.id}, ${JSON.stringify({ conversation: { id: `19:${c.id}@thread.tacv2` } })}::jsonb,
        ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz)`);
  }
}

/** The directory sync the DM job runs daily; after a re-import a new user is matched the same way. */
export async function refreshDirectory(db: AppDatabase, now: Date): Promise<void> {
  await storeSlackDirectory(db, directoryMembers(), now);
}

/** The tables a sequence writes, emptied between sequences (identities restart so ids repeat across replays). */
export async function resetDatabase(db: AppDatabase): Promise<void> {
  await db.transaction(async (tx) => {
    // audit_log refuses TRUNCATE by trigger (it is evidence); a scratch database between sequences is not.
    await tx.execute(sql`set local session_replication_role = replica`);
    const tables = rowsOf<{ tablename: string }>(await tx.execute(sql`select tablename from pg_tables where schemaname = 'public'`)).map((r) => r.tablename);
    // DELETE, not TRUNCATE: on a few dozen rows it is many times faster (no new files to create and sync).
    for (const t of tables) await tx.execute(sql.raw(`delete from "${t}"`));
    const sequences = rowsOf<{ name: string }>(await tx.execute(sql`select sequence_name as name from information_schema.sequences where sequence_schema = 'public'`));
    for (const q of sequences) await tx.execute(sql.raw(`alter sequence "${q.name}" restart`));
  });
}
