/**
 * A small, real world for rollout tests: an MSP and clients imported through the inventory repository, a
 * release stored through the release repository, the whole release approved, and gates opened the way the
 * engine opens them. Everything goes through the product's own code except the approval row.
 */
import { sql } from 'drizzle-orm';
import type { AppDatabase } from '../../src/db/client.ts';
import { applyInventory } from '../../src/db/inventory-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { loadBook, saveGates } from '../../src/db/rollout-repo.ts';
import type { Inventory, InventoryDevice, MspInventorySettings } from '../../src/domain/inventory.ts';
import type { Release } from '../../src/domain/release.ts';
import { gateKey, type Gate } from '../../src/domain/rollout.ts';
import { parseWindowSpec, type WindowRule } from '../../src/domain/window-spec.ts';
import type { Ring } from '../../src/domain/inventory.ts';

export const WIN11 = 'Windows 11 Version 23H2 for x64-based Systems';
export const SERVER = 'Windows Server 2022';

function rule(spec: string): WindowRule {
  const parsed = parseWindowSpec(spec);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

export interface WorldOptions {
  mspDevices?: number;
  clients?: Array<{ id: string; timezone?: string; pilot?: number; broad?: number; desktopWindow?: string; /** The pilot machines' OS (default Windows 11). */ pilotOs?: string; /** Each pilot machine has a user (who must be DM'd before a window). */ pilotUsers?: boolean }>;
  mspWindow?: string;
  mspTimezone?: string;
  /** More MSP machines, e.g. a server (Sunday window) or one whose OS no update applies to. */
  mspExtra?: InventoryDevice[];
  /** The inventory's msp soak_hours / run_concurrency / missed_window_limit. */
  mspSettings?: MspInventorySettings;
}

export function worldInventory(options: WorldOptions): Inventory {
  const desktop = (name: string, ring: Ring): InventoryDevice => ({ name, class: 'desktop', ring, os: WIN11, user: undefined });
  return {
    msp: {
      name: 'Example IT',
      engineers: ['U_ENG'],
      channel: 'C_ENG',
      timezone: options.mspTimezone ?? 'America/Chicago',
      windows: { desktop: rule(options.mspWindow ?? 'daily 01:00-05:00'), server: rule('sun 01:00-05:00') },
      devices: [
        ...Array.from({ length: options.mspDevices ?? 4 }, (_, i) => desktop(`MSP-PC-${String(i + 1).padStart(3, '0')}`, 'msp')),
        ...(options.mspExtra ?? []),
      ],
      ...(options.mspSettings ? { settings: options.mspSettings } : {}),
    },
    clients: (options.clients ?? []).map((c) => ({
      id: c.id,
      name: c.id,
      timezone: c.timezone ?? 'America/Chicago',
      windows: { desktop: rule(c.desktopWindow ?? 'daily 01:00-05:00'), server: rule('sun 01:00-05:00') },
      software: [],
      champions: [],
      locations: [
        {
          id: 'main',
          name: 'Main',
          devices: [
            ...Array.from({ length: c.pilot ?? 1 }, (_, i) => ({ ...desktop(`${c.id.toUpperCase()}-PILOT-${i + 1}`, 'pilot'), os: c.pilotOs ?? WIN11, user: c.pilotUsers ? `pilot${i + 1}@${c.id}.example` : undefined })),
            ...Array.from({ length: c.broad ?? 3 }, (_, i) => desktop(`${c.id.toUpperCase()}-PC-${String(i + 1).padStart(5, '0')}`, 'broad')),
          ],
        },
      ],
    })),
  };
}

export function worldRelease(): Release {
  const update = (id: string, productIds: string[]) => ({
    id,
    kb: id,
    name: id,
    family: 'Windows',
    productIds,
    subTypes: ['Security Update'],
    restartRequired: 'Yes' as const,
    supersedes: [],
    fixedBuilds: [],
    urls: [],
    knownIssues: [],
    cves: [],
  });
  return {
    id: '2024-Feb',
    title: 'February 2024 Security Updates',
    initialReleaseDate: '2024-02-13T08:00:00Z',
    currentReleaseDate: '2024-02-13T08:00:00Z',
    revisions: [{ number: '1', date: '2024-02-13T08:00:00Z', description: 'Information published.' }],
    products: [
      { id: '12242', name: WIN11, family: 'Windows' },
      { id: '11923', name: SERVER, family: 'Windows' },
    ],
    updates: [update('5034765', ['12242']), update('5034770', ['11923']), update('5034439', ['12242', '11923'])],
    cves: [],
  };
}

export async function seedWorld(db: AppDatabase, options: WorldOptions, now: Date): Promise<void> {
  await applyInventory(db, worldInventory(options), now);
  await storeRelease(db, worldRelease(), { fetchedAt: now, now });
  await db.execute(sql`insert into decisions (kind, release_id, actor, source, idempotency_key, created_at)
    values ('approve', '2024-Feb', 'U_ENG', 'slack', 'test-approve-release', ${now.toISOString()}::timestamptz)`);
}

/**
 * Puts a gate in `scheduled` directly, for tests that start past the earlier gates. Each update goes through every
 * ring on its own, so the earlier rings are passed the only way that needs no install: every update of the world
 * promoted with ring msp skipped (and, for a broad gate, the client's pilot skipped), as an engineer would record.
 * Seed such a world without MSP machines that run the updates: a skip lets an update past ring msp, but an MSP
 * machine that runs it still owes it, and the sweep reopens a resting ring msp that has eligible work.
 */
export async function scheduleGate(db: AppDatabase, ring: Ring, clientId: string | null, now: Date): Promise<void> {
  const book = await loadBook(db, '2024-Feb');
  const at = now.toISOString();
  const keys = worldRelease().updates.map((u) => u.id);
  const skips = keys.map((updateKey) => ({ updateKey, by: 'U_ENG', at, reason: 'test starts past this ring' }));
  const passed: Gate[] = [];
  const earlier = (r: Ring, c: string | null): Gate => ({ ...blankGate(r, c), state: r === 'msp' ? 'promoted' : 'confirmed', skips });
  if (ring !== 'msp' && !book.gates.msp) passed.push({ ...earlier('msp', null), promotions: [{ id: 'test-promote', by: 'U_ENG', at, updates: keys }] });
  const pilot = book.gates[gateKey('pilot', clientId)];
  if (ring === 'broad') passed.push(pilot ? { ...pilot, skips } : earlier('pilot', clientId));
  const gates = [...passed, { ...blankGate(ring, clientId), state: 'scheduled' as const }];
  const next = { ...book, gates: { ...book.gates } };
  for (const gate of gates) next.gates[gateKey(gate.ring, gate.clientId)] = gate;
  await saveGates(db, book, next, gates.map((g) => gateKey(g.ring, g.clientId)), now);
}

function blankGate(ring: Ring, clientId: string | null): Gate {
  return {
    ring,
    clientId,
    state: 'scheduled',
    version: 0,
    lastWindowStart: null,
    finishedAt: null,
    soakUntil: null,
    promotedAt: null,
    promotedBy: null,
    autoConfirmAt: null,
    confirmation: null,
    problem: null,
    applied: [],
  };
}
