/**
 * Brings the stored world in line with an inventory file, in one transaction.
 *
 * Rows are upserted in multi-row batches whose ON CONFLICT update only fires when something differs, so the
 * database itself tells us what was added (a fresh row) or changed (an updated row) and a re-import of the
 * same file writes nothing. Whatever left the file is retired, never deleted: runs, decisions and the audit
 * trail keep pointing at it, and it is brought back (un-retired) if it returns.
 */
import { getTableName, sql, type SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import { CLIENT_SETTING_KEYS, MSP_SETTING_KEYS, type Inventory, type InventoryDevice } from '../domain/inventory.ts';
import { rowsOf, type AppDatabase } from './client.ts';
import { traceMemory } from '../runtime/memory-trace.ts';
import { auditLog, chatIdentities, clients, devices, locations, msp, people, type WindowsByClass } from './schema.ts';

export interface KindCounts {
  added: number;
  changed: number;
  retired: number;
  unchanged: number;
}

export interface InventoryChanges {
  msp: 'added' | 'changed' | 'unchanged';
  clients: KindCounts;
  locations: KindCounts;
  devices: KindCounts;
  people: KindCounts;
  retiredClients: string[];
  retiredDevices: string[];
  /** Retired before this import and back in the file now (counted under `changed`). */
  restoredClients: string[];
  restoredDevices: string[];
}

export interface ApplyOptions {
  /** Who ran the import, for the audit row. */
  actor?: string;
  source?: 'cli' | 'slack' | 'system';
  /** What was imported (the file name), for the audit row. */
  subject?: string;
  /** Work out every change, then roll the transaction back so nothing is written. */
  dryRun?: boolean;
}

/**
 * Rows per statement, each batch one JSON document of about half a megabyte. PGlite works on a statement inside
 * its WebAssembly memory, which keeps every page it ever touched: at 5,000 rows a statement took 15 MiB of it,
 * at 2,500 6 MiB. PostgreSQL hardly notices the extra round trips (40 at 100,000 devices).
 */
const ROWS_PER_STATEMENT = 2500;

class DryRunRollback extends Error {
  constructor(readonly changes: InventoryChanges) {
    super('dry run: rolled back');
  }
}

export async function applyInventory(db: AppDatabase, inventory: Inventory, now: Date, options: ApplyOptions = {}): Promise<InventoryChanges> {
  assertUniqueKeys(inventory);
  try {
    return await db.transaction(async (tx) => {
      // Two imports at once would interleave their retirements; the second waits for the first instead.
      await tx.execute(sql`select pg_advisory_xact_lock(7261636862021002)`);
      const changes = await applyWithin(tx, inventory, now);
      await tx.insert(auditLog).values({
        at: now,
        actor: options.actor ?? 'cli',
        action: 'inventory.import',
        subject: options.subject ?? 'inventory',
        source: options.source ?? 'cli',
        detail: auditDetail(changes),
      });
      if (options.dryRun) throw new DryRunRollback(changes);
      return changes;
    });
  } catch (error) {
    if (error instanceof DryRunRollback) return error.changes;
    throw error;
  }
}

async function applyWithin(tx: AppDatabase, inventory: Inventory, now: Date): Promise<InventoryChanges> {
  const mspOutcome = await applyMsp(tx, inventory, now);
  traceMemory('applied msp');
  // Clients before their locations, locations before their devices: each level's rows name the one above.
  const clientsApplied = await applyClients(tx, inventory, now);
  traceMemory('applied clients');
  const locationCounts = await applyLocations(tx, inventory, now);
  traceMemory('applied locations');
  const devicesApplied = await applyDevices(tx, inventory, now);
  traceMemory('applied devices');
  const peopleCounts = await applyPeople(tx, inventory, now);
  traceMemory('applied people');
  return {
    msp: mspOutcome,
    clients: clientsApplied.counts,
    locations: locationCounts,
    devices: devicesApplied.counts,
    people: peopleCounts,
    retiredClients: clientsApplied.retired,
    retiredDevices: devicesApplied.retired,
    restoredClients: clientsApplied.restored,
    restoredDevices: devicesApplied.restored,
  };
}

/** One level of the inventory applied: its counts, and the keys it retired and brought back from retirement. */
interface LevelApplied {
  counts: KindCounts;
  retired: string[];
  restored: string[];
}

async function applyClients(tx: AppDatabase, inventory: Inventory, now: Date): Promise<LevelApplied> {
  const clientRows = inventory.clients
    .map((client) => ({
      id: client.id,
      name: client.name,
      timezone: client.timezone,
      windows: windowSpecs(client.windows),
      software: client.software,
      settings: client.settings ?? {},
      createdAt: now,
      updatedAt: now,
      retiredAt: null,
    }))
    .sort(byKey((row) => row.id));
  const clientIds = clientRows.map((row) => row.id);
  const clientsRetiredBefore = await retiredKeys(tx, sql`select id as key from clients where retired_at is not null`);
  // The file owns only its own settings keys; anything else in settings (set by the bot itself) is kept.
  const clientCounts = await upsertInBatches(tx, clients, chunks(clientRows, ROWS_PER_STATEMENT), [clients.id], [clients.name, clients.timezone, clients.windows, clients.software, clients.retiredAt], {
    settings: sql`(${clients.settings} - ${sql.raw(`array[${CLIENT_SETTING_KEYS.map((key) => `'${key}'`).join(', ')}]`)}) || excluded."settings"`,
  });
  const retiredClients = await retireMissing(tx, sql`update clients set retired_at = ${at(now)}, updated_at = ${at(now)}
    where retired_at is null and id not in (select jsonb_array_elements_text(${JSON.stringify(clientIds)}::jsonb))
    returning id as key`);
  return {
    counts: withUnchanged(clientCounts, retiredClients.length, clientRows.length),
    retired: retiredClients,
    restored: clientIds.filter((id) => clientsRetiredBefore.has(id)),
  };
}

async function applyLocations(tx: AppDatabase, inventory: Inventory, now: Date): Promise<KindCounts> {
  const locationRows = inventory.clients
    .flatMap((client) =>
      client.locations.map((location) => ({
        clientId: client.id,
        id: location.id,
        name: location.name ?? null,
        createdAt: now,
        updatedAt: now,
        retiredAt: null,
      })),
    )
    .sort(byKey((row) => `${row.clientId}/${row.id}`));
  const locationKeys = locationRows.map((row) => `${row.clientId}/${row.id}`);
  const locationCounts = await upsertInBatches(tx, locations, chunks(locationRows, ROWS_PER_STATEMENT), [locations.clientId, locations.id], [locations.name, locations.retiredAt]);
  const retiredLocations = await retireMissing(tx, sql`update locations set retired_at = ${at(now)}, updated_at = ${at(now)}
    where retired_at is null and client_id || '/' || id not in (select jsonb_array_elements_text(${JSON.stringify(locationKeys)}::jsonb))
    returning client_id || '/' || id as key`);
  return withUnchanged(locationCounts, retiredLocations.length, locationRows.length);
}

/**
 * 100,000 devices: their rows are built a batch at a time from an order of indexes, never all at once, and the
 * database's answers are only counted (unlike people, no one needs the device names written).
 */
async function applyDevices(tx: AppDatabase, inventory: Inventory, now: Date): Promise<LevelApplied> {
  const owned = ownedDevices(inventory);
  const names = owned.devices.map((device) => device.name);
  const order = Uint32Array.from(names.keys()).sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
  const sortedNames = Array.from(order, (index) => names[index]!);
  const devicesRetiredBefore = await retiredKeys(tx, sql`select name as key from devices where retired_at is not null`);
  const rowBatches = mapBatches(order, (index) => deviceRow(owned.devices[index]!, owned.clientIds[index]!, owned.locationIds[index]!, now));
  const compared = [devices.clientId, devices.locationId, devices.class, devices.ring, devices.os, devices.userEmail, devices.timezone, devices.syncedFrom, devices.retiredAt];
  const deviceCounts = await upsertInBatches(tx, devices, rowBatches, [devices.name], compared, {}, 'count');
  const retiredDevices = await retireDevicesNotIn(tx, new Set(sortedNames), now);
  return {
    counts: withUnchanged(deviceCounts, retiredDevices.length, sortedNames.length),
    retired: retiredDevices,
    restored: devicesRetiredBefore.size === 0 ? [] : sortedNames.filter((name) => devicesRetiredBefore.has(name)),
  };
}

/**
 * Retires the devices in service that the file no longer has. The stored names come a page at a time to be looked
 * up in the file's, rather than the file's 100,000 going to the database to be looked up there: PGlite built that
 * lookup in its WebAssembly memory, which keeps every page it ever touched (14 MiB of it at 100,000 devices).
 */
async function retireDevicesNotIn(tx: AppDatabase, inFile: Set<string>, now: Date): Promise<string[]> {
  const missing: string[] = [];
  for (let after: string | undefined; ; ) {
    // Retired rows come too: filtered here, with no statistics yet on what this transaction wrote the planner
    // judged too few rows in service to be worth the index, and sorted the whole table for every page.
    const from = after === undefined ? sql`` : sql`where name > ${after}`;
    const page = rowsOf<{ name: string; retired: boolean }>(
      await tx.execute(sql`select name, retired_at is not null as retired from devices ${from} order by name limit ${ROWS_PER_STATEMENT}`),
    );
    for (const { name, retired } of page) if (!retired && !inFile.has(name)) missing.push(name);
    if (page.length < ROWS_PER_STATEMENT) break;
    after = page[page.length - 1]!.name;
  }
  const retired: string[] = [];
  for (const batch of chunks(missing, ROWS_PER_STATEMENT)) {
    retired.push(
      ...(await retireMissing(tx, sql`update devices set retired_at = ${at(now)}, updated_at = ${at(now)}
        where retired_at is null and name in (select jsonb_array_elements_text(${JSON.stringify(batch)}::jsonb))
        returning name as key`)),
    );
  }
  return retired.sort();
}

/** Every device with its client and location (null for the MSP's own), as parallel arrays rather than a row each. */
function ownedDevices(inventory: Inventory): { devices: InventoryDevice[]; clientIds: Array<string | null>; locationIds: Array<string | null> } {
  const owned = { devices: [...inventory.msp.devices], clientIds: inventory.msp.devices.map(() => null), locationIds: inventory.msp.devices.map(() => null) } as {
    devices: InventoryDevice[];
    clientIds: Array<string | null>;
    locationIds: Array<string | null>;
  };
  for (const client of inventory.clients) {
    for (const location of client.locations) {
      for (const device of location.devices) {
        owned.devices.push(device);
        owned.clientIds.push(client.id);
        owned.locationIds.push(location.id);
      }
    }
  }
  return owned;
}

async function applyMsp(tx: AppDatabase, inventory: Inventory, now: Date): Promise<InventoryChanges['msp']> {
  const row = {
    id: 1,
    name: inventory.msp.name,
    timezone: inventory.msp.timezone,
    channel: inventory.msp.channel,
    windows: windowSpecs(inventory.msp.windows),
    settings: inventory.msp.settings ?? {},
    createdAt: now,
    updatedAt: now,
  };
  // As for clients: the file owns its settings keys only, so the bot's own (directorySyncedAt) survive an import.
  const counts = await upsertInBatches(tx, msp, [[row]], [msp.id], [msp.name, msp.timezone, msp.channel, msp.windows], {
    settings: sql`(${msp.settings} - ${sql.raw(`array[${MSP_SETTING_KEYS.map((key) => `'${key}'`).join(', ')}]`)}) || excluded."settings"`,
  });
  return counts.added > 0 ? 'added' : counts.changed > 0 ? 'changed' : 'unchanged';
}

type RoleName = 'engineer' | 'champion' | 'user';

/** One person of the file. At 100,000 devices there are about as many people, so a plan stays small. */
interface PersonPlan {
  key: string;
  email: string | null;
  displayName: string | null;
  /** `role/clientId` (clientId empty for the MSP), each string shared by every plan with that grant. */
  roles: string[];
  identities?: Array<{ platform: 'slack' | 'teams'; externalId: string }>;
}

/** Engineers, champions and device users, merged by identity: one person can be a champion and a user. */
function planPeople(inventory: Inventory): Map<string, PersonPlan> {
  const plans = new Map<string, PersonPlan>();
  const roleKeys = new Map<string, string>();
  const personFor = (key: string, email: string | null): PersonPlan => {
    let plan = plans.get(key);
    if (!plan) {
      plan = { key, email, displayName: null, roles: [] };
      plans.set(key, plan);
    }
    return plan;
  };
  const addRole = (plan: PersonPlan, role: RoleName, clientId: string | null) => {
    const fresh = `${role}/${clientId ?? ''}`;
    const roleKey = roleKeys.get(fresh) ?? (roleKeys.set(fresh, fresh), fresh);
    if (!plan.roles.includes(roleKey)) plan.roles.push(roleKey);
  };
  const addIdentity = (plan: PersonPlan, platform: 'slack' | 'teams', externalId: string) => {
    (plan.identities ??= []).push({ platform, externalId });
  };

  for (const slackId of inventory.msp.engineers) {
    const plan = personFor(`slack:${slackId}`, null);
    addRole(plan, 'engineer', null);
    addIdentity(plan, 'slack', slackId);
  }
  for (const device of inventory.msp.devices) {
    if (device.user) addRole(personFor(device.user.toLowerCase(), device.user.toLowerCase()), 'user', null);
  }
  for (const client of inventory.clients) {
    for (const champion of client.champions) {
      const email = champion.email?.toLowerCase() ?? null;
      const key = email ?? (champion.teamsId ? `teams:${champion.teamsId}` : undefined);
      if (!key) continue;
      const plan = personFor(key, email);
      if (champion.name) plan.displayName = champion.name;
      addRole(plan, 'champion', client.id);
      if (champion.teamsId) addIdentity(plan, 'teams', champion.teamsId);
    }
    for (const location of client.locations) {
      for (const device of location.devices) {
        if (device.user) addRole(personFor(device.user.toLowerCase(), device.user.toLowerCase()), 'user', client.id);
      }
    }
  }
  return plans;
}

async function applyPeople(tx: AppDatabase, inventory: Inventory, now: Date): Promise<KindCounts> {
  const plans = [...planPeople(inventory).values()].sort(byKey((plan) => plan.key));

  // The directory (or a chat) may fill in a name or email the file does not give; the file never erases one.
  const rows = mapBatches(plans, (plan) => ({
    key: plan.key,
    email: plan.email,
    displayName: plan.displayName,
    source: 'inventory' as const,
    createdAt: now,
    updatedAt: now,
    retiredAt: null,
  }));
  const keepKnown = (column: PgColumn) => sql`coalesce(excluded.${sql.identifier(column.name)}, ${sql.raw(qualified(people, column))})`;
  // Answered as ids, not keys: 100,000 numbers in a set cost a fraction of 100,000 email addresses.
  const counts = await upsertInBatches(tx, people, rows, [people.key], [people.source, people.retiredAt], {
    email: keepKnown(people.email),
    displayName: keepKnown(people.displayName),
  }, 'ids');
  const changedPeople = new Set(counts.changedKeys);
  const addedPeople = new Set(counts.addedKeys);

  await stageGrants(tx, plans);
  // Every person of the file has a grant, so the staged grants name everyone in the file.
  const retiredPeople = await retireMissing(tx, sql`update people set retired_at = ${at(now)}, updated_at = ${at(now)}
    where retired_at is null and source = 'inventory' and not exists (select 1 from import_grants g where g.key = people.key)
    returning key`);
  for (const id of await replaceRoles(tx, now)) {
    if (!addedPeople.has(id)) changedPeople.add(id);
  }
  // Dropped now rather than at commit: a caller's outer transaction (device sync) may apply again before it ends.
  await tx.execute(sql`drop table import_grants`);
  await applyIdentities(tx, plans, now);
  return {
    added: addedPeople.size,
    changed: changedPeople.size,
    retired: retiredPeople.length,
    unchanged: plans.length - addedPeople.size - changedPeople.size,
  };
}

/**
 * The file's grants, into a table of this transaction a batch at a time, so the database can compare them with
 * the stored ones without either side's 100,000 grants ever being held here.
 */
async function stageGrants(tx: AppDatabase, plans: PersonPlan[]): Promise<void> {
  await tx.execute(sql`create temp table import_grants (key text not null, role text not null, client_id text not null) on commit drop`);
  for (const batch of mapBatches(plans, (plan) => plan)) {
    const grants = JSON.stringify(batch.flatMap((plan) => plan.roles.map((roleKey) => [plan.key, ...roleKey.split('/', 2)])));
    await tx.execute(sql`insert into import_grants (key, role, client_id)
      select g->>0, g->>1, g->>2 from jsonb_array_elements(${grants}::jsonb) as g`);
  }
  // Tables filled in this same transaction have no statistics yet: without the index the planner may compare
  // every person with every grant (hours at 100,000 of each).
  await tx.execute(sql`create index on import_grants (key)`);
  await tx.execute(sql`analyze import_grants`);
}

/**
 * Roles are the current grants, not history (decisions record who acted), so they are replaced by the file's:
 * every stored grant the file does not give goes, every one it gives and is missing comes. Answers the ids of
 * the people of the file whose grants changed. The MSP's grants have an empty client_id in import_grants.
 */
async function replaceRoles(tx: AppDatabase, now: Date): Promise<number[]> {
  const stale = rowsOf<{ person_id: number; in_file: boolean }>(
    await tx.execute(sql`delete from person_roles r using people p
      where p.id = r.person_id
        and not exists (select 1 from import_grants g where g.key = p.key and g.role = r.role and g.client_id = coalesce(r.client_id, ''))
      returning r.person_id, exists (select 1 from import_grants g where g.key = p.key) as in_file`),
  ).filter((row) => row.in_file);
  // One array rather than a row per person: a first import grants all 100,000, and a row each cost 25 MiB of heap.
  const [added] = rowsOf<{ ids: number[] }>(
    await tx.execute(sql`with inserted as (
        insert into person_roles (person_id, role, client_id, created_at)
        select p.id, g.role, nullif(g.client_id, ''), ${at(now)} from import_grants g join people p on p.key = g.key
        on conflict do nothing
        returning person_id)
      select coalesce(array_agg(distinct person_id), '{}') as ids from inserted`),
  );
  return [...stale.map((row) => Number(row.person_id)), ...(added?.ids ?? []).map(Number)];
}

/** Chat identities the file names: the engineers' Slack ids and champions' Teams ids, a few hundred at most. */
async function applyIdentities(tx: AppDatabase, plans: PersonPlan[], now: Date): Promise<void> {
  const withIdentities = plans.filter((plan) => plan.identities !== undefined);
  if (withIdentities.length === 0) return;
  const keys = JSON.stringify(withIdentities.map((plan) => plan.key));
  const idsByKey = new Map(
    rowsOf<{ id: number; key: string }>(
      await tx.execute(sql`select id, key from people where key in (select jsonb_array_elements_text(${keys}::jsonb))`),
    ).map((row) => [row.key, Number(row.id)]),
  );
  const identityRows = withIdentities.flatMap((plan) =>
    plan.identities!.map((identity) => ({
      personId: idsByKey.get(plan.key)!,
      platform: identity.platform,
      externalId: identity.externalId,
      source: 'inventory' as const,
      createdAt: now,
      updatedAt: now,
    })),
  );
  await upsertInBatches(tx, chatIdentities, chunks(identityRows, ROWS_PER_STATEMENT), [chatIdentities.platform, chatIdentities.externalId], [chatIdentities.personId]);
}

function deviceRow(device: InventoryDevice, clientId: string | null, locationId: string | null, now: Date) {
  return {
    name: device.name,
    clientId,
    locationId,
    class: device.class,
    ring: device.ring,
    os: device.os ?? null,
    userEmail: device.user?.toLowerCase() ?? null,
    timezone: device.timezone ?? null,
    syncedFrom: device.syncedFrom ?? null,
    createdAt: now,
    updatedAt: now,
    retiredAt: null,
  };
}

interface UpsertCounts {
  added: number;
  changed: number;
  /** The conflict target as text, or the row's id when answered by id; empty when only counted. */
  addedKeys: Array<string | number>;
  changedKeys: Array<string | number>;
}

function qualified(table: PgTable, column: PgColumn): string {
  return `"${getTableName(table)}"."${column.name}"`;
}

/**
 * INSERT … ON CONFLICT DO UPDATE, batch by batch, touching a stored row only when one of `compared` differs
 * (plus `updated_at`). RETURNING reports only the rows written; `xmax = 0` tells a fresh row from an update.
 * `overrides` replaces the plain `excluded.column` for columns that merge rather than overwrite.
 *
 * Each batch travels as ONE jsonb parameter unpacked by jsonb_to_recordset, rather than a VALUES list with a
 * parameter per cell: building and binding 200,000 parameters costs more than the database's work, and
 * one parameter per statement also keeps clear of PostgreSQL's 65,535-parameter limit.
 */
async function upsertInBatches<TRow extends Record<string, unknown>>(
  tx: AppDatabase,
  table: PgTable,
  batches: Iterable<TRow[]>,
  conflictTarget: PgColumn[],
  compared: PgColumn[],
  overrides: Record<string, SQL> = {},
  answer: 'keys' | 'ids' | 'count' = 'keys',
): Promise<UpsertCounts> {
  const result: UpsertCounts = { added: 0, changed: 0, addedKeys: [], changedKeys: [] };
  let statement: ((batch: TRow[]) => SQL) | undefined;
  for (const batch of batches) {
    if (batch.length === 0) continue;
    statement ??= upsertStatement(table, Object.keys(batch[0]!), conflictTarget, compared, overrides, answer);
    for (const row of rowsOf<{ key?: string; inserted: boolean }>(await tx.execute(statement(batch)))) {
      if (row.inserted) result.added++;
      else result.changed++;
      if (answer !== 'count') (row.inserted ? result.addedKeys : result.changedKeys).push(answer === 'ids' ? Number(row.key) : row.key!);
    }
  }
  return result;
}

/** The statement for one batch of rows with these properties; see upsertInBatches. */
function upsertStatement<TRow extends Record<string, unknown>>(
  table: PgTable,
  properties: string[],
  conflictTarget: PgColumn[],
  compared: PgColumn[],
  overrides: Record<string, SQL>,
  answer: 'keys' | 'ids' | 'count',
): (batch: TRow[]) => SQL {
  const tableName = getTableName(table);
  const columns = properties.map((property) => columnByProperty(table, property));
  const quoted = (name: string) => `"${name.replace(/"/g, '""')}"`;
  const columnList = sql.raw(columns.map((column) => quoted(column.name)).join(', '));
  const recordType = sql.raw(columns.map((column) => `${quoted(column.name)} ${column.getSQLType()}`).join(', '));

  const propertyOf = propertyNames(table);
  const incoming = (column: PgColumn): SQL => overrides[propertyOf.get(column.name)!] ?? sql.raw(`excluded.${quoted(column.name)}`);
  const comparedAll = [...compared, ...Object.keys(overrides).map((property) => columnByProperty(table, property))];
  const assignments = sql.join(
    [...comparedAll.map((column) => sql`${sql.raw(quoted(column.name))} = ${incoming(column)}`), sql.raw(`"updated_at" = excluded."updated_at"`)],
    sql`, `,
  );
  const stored = sql.join(comparedAll.map((column) => sql.raw(qualified(table, column))), sql`, `);
  const proposed = sql.join(comparedAll.map(incoming), sql`, `);
  const conflictList = sql.raw(conflictTarget.map((column) => quoted(column.name)).join(', '));
  const keyExpression = sql.raw(conflictTarget.map((column) => `${qualified(table, column)}::text`).join(` || '/' || `));
  const returning =
    answer === 'keys' ? sql`${keyExpression} as key, (xmax = 0) as inserted`
    : answer === 'ids' ? sql`${sql.raw(`"${tableName}"."id"`)} as key, (xmax = 0) as inserted`
    : sql`(xmax = 0) as inserted`;

  return (batch) => {
    const payload = JSON.stringify(batch.map((row) => Object.fromEntries(columns.map((column, i) => [column.name, row[properties[i]!]]))));
    return sql`insert into ${sql.raw(quoted(tableName))} (${columnList})
        select ${columnList} from jsonb_to_recordset(${payload}::jsonb) as incoming(${recordType})
        on conflict (${conflictList}) do update set ${assignments}
        where (${stored}) is distinct from (${proposed})
        returning ${returning}`;
  };
}

function propertyNames(table: PgTable): Map<string, string> {
  const columns = (table as unknown as Record<symbol, Record<string, PgColumn>>)[Symbol.for('drizzle:Columns')];
  if (!columns) throw new Error(`cannot read the columns of ${getTableName(table)}`);
  return new Map(Object.entries(columns).map(([property, column]) => [column.name, property]));
}

function columnByProperty(table: PgTable, property: string): PgColumn {
  const column = (table as unknown as Record<string, PgColumn | undefined>)[property];
  if (!column) throw new Error(`${getTableName(table)} has no column ${property}`);
  return column;
}

async function retiredKeys(tx: AppDatabase, query: SQL): Promise<Set<string>> {
  return new Set(rowsOf<{ key: string }>(await tx.execute(query)).map((row) => row.key));
}

async function retireMissing(tx: AppDatabase, query: SQL): Promise<string[]> {
  return rowsOf<{ key: string }>(await tx.execute(query))
    .map((row) => row.key)
    .sort();
}

/** Raw SQL gets no column type to map a Date with, and postgres.js will not guess: pass the instant as text. */
function at(instant: Date): SQL {
  return sql`${instant.toISOString()}::timestamptz`;
}

function withUnchanged(counts: UpsertCounts, retired: number, total: number): KindCounts {
  return { added: counts.added, changed: counts.changed, retired, unchanged: total - counts.added - counts.changed };
}

function windowSpecs(windows: Record<string, { spec: string }>): WindowsByClass {
  return Object.fromEntries(Object.entries(windows).map(([deviceClass, rule]) => [deviceClass, rule.spec]));
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}

/** Rows built a batch at a time, so only one batch of them is ever alive. */
function* mapBatches<T, R>(items: ArrayLike<T>, row: (item: T) => R): Generator<R[]> {
  for (let start = 0; start < items.length; start += ROWS_PER_STATEMENT) {
    const batch: R[] = [];
    for (let i = start; i < Math.min(items.length, start + ROWS_PER_STATEMENT); i++) batch.push(row(items[i]!));
    yield batch;
  }
}

/** Sorted batches lock rows in one order, so two writers never deadlock on each other's rows. */
function byKey<T>(key: (item: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
}

/** The parser guarantees these; a caller that built an Inventory by hand gets a plain error, not a SQL one. */
function assertUniqueKeys(inventory: Inventory): void {
  const duplicates = (values: string[]) => values.filter((value, index) => values.indexOf(value) !== index);
  const problems: string[] = [];
  const clientDupes = duplicates(inventory.clients.map((client) => client.id));
  if (clientDupes.length) problems.push(`client ids repeated: ${[...new Set(clientDupes)].join(', ')}`);
  const names = [...inventory.msp.devices, ...inventory.clients.flatMap((c) => c.locations.flatMap((l) => l.devices))].map((d) => d.name);
  const seen = new Set<string>();
  const deviceDupes = new Set<string>();
  for (const name of names) (seen.has(name) ? deviceDupes : seen).add(name);
  if (deviceDupes.size) problems.push(`device names repeated: ${[...deviceDupes].slice(0, 10).join(', ')}`);
  for (const client of inventory.clients) {
    const locationDupes = duplicates(client.locations.map((location) => location.id));
    if (locationDupes.length) problems.push(`client ${client.id}: location ids repeated: ${[...new Set(locationDupes)].join(', ')}`);
  }
  if (problems.length) throw new Error(`inventory cannot be applied: ${problems.join('; ')}`);
}

function auditDetail(changes: InventoryChanges): Record<string, unknown> {
  const FIRST = 50;
  return {
    msp: changes.msp,
    clients: changes.clients,
    locations: changes.locations,
    devices: changes.devices,
    people: changes.people,
    retiredClients: changes.retiredClients.slice(0, FIRST),
    retiredDevices: changes.retiredDevices.slice(0, FIRST),
    restoredClients: changes.restoredClients.slice(0, FIRST),
    restoredDevices: changes.restoredDevices.slice(0, FIRST),
  };
}

/** What an import into an empty database would do: everything added. For a dry run before the first migrate. */
export function changesIntoEmptyDatabase(inventory: Inventory): InventoryChanges {
  const added = (count: number): KindCounts => ({ added: count, changed: 0, retired: 0, unchanged: 0 });
  const clientDevices = inventory.clients.flatMap((client) => client.locations.flatMap((location) => location.devices));
  return {
    msp: 'added',
    clients: added(inventory.clients.length),
    locations: added(inventory.clients.reduce((sum, client) => sum + client.locations.length, 0)),
    devices: added(inventory.msp.devices.length + clientDevices.length),
    people: added(planPeople(inventory).size),
    retiredClients: [],
    retiredDevices: [],
    restoredClients: [],
    restoredDevices: [],
  };
}
