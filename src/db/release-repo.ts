/**
 * Storing Microsoft's monthly releases, idempotently, and reading them back.
 *
 * A release row keeps the whole Release model (`model`), so a re-read is compared with what was stored through
 * diffReleases, and the updates/cves/update_cves rows exist for what points at them (decisions, holds, notes,
 * runs) and for queries. Everything one reading changes happens in ONE transaction, with the audit row and the
 * chat messages that report it (chat_outbox), so a crash never leaves a stored revision nobody was told about.
 * A revision that drops a CVE or an update marks its row `removed_at` rather than deleting it.
 */
import { createHash } from 'node:crypto';
import { asc, eq, isNull, sql } from 'drizzle-orm';
import { DateTime } from 'luxon';
import type { DigestFleet, DigestInput } from '../domain/digest.ts';
import type { Inventory, InventoryClient, InventoryDevice } from '../domain/inventory.ts';
import { classifyCve, diffReleases, latestRevision, type Release, type ReleaseChange } from '../domain/release.ts';
import { parseWindowSpec, type WindowRule } from '../domain/window-spec.ts';
import { rowsOf, type AppDatabase } from './client.ts';
import { loadKevIndex } from './kev-repo.ts';
import { listNotes } from './notes-repo.ts';
import { at, upsertRows } from './upsert.ts';
import { auditLog, clients, cves, devices, locations, msp, releaseChanges, releases, updates } from './schema.ts';

export type StoreOutcome = 'new' | 'unchanged' | 'revised';

export interface StoreOptions {
  /** Hash of the document as read; defaults to a hash of the model, which is what "changed" means to us. */
  documentHash?: string;
  /** When the document was read. */
  fetchedAt: Date;
  now: Date;
  actor?: string;
  source?: 'cli' | 'system';
  /** Queues the announcement's messages in the storing transaction; returns how many it queued. */
  announce: AnnounceRelease;
}

export interface StoreResult {
  outcome: StoreOutcome;
  /** What this reading changed against the stored one (empty for new and unchanged). */
  changes: ReleaseChange[];
  documentHash: string;
  /** Chat messages queued in chat_outbox by this call. */
  queued: number;
  /** Why no chat message was queued for a new release or a revision with changes, if so. */
  notQueued?: string;
}

export interface StoredReleaseSummary {
  id: string;
  title: string | null;
  revision: string;
  initialReleaseDate: Date;
  currentReleaseDate: Date;
  fetchedAt: Date;
  documentHash: string;
  cves: number;
  updates: number;
}

/** Hash of the model's canonical JSON: the same reading always hashes the same. */
export function releaseHash(release: Release): string {
  return createHash('sha256').update(JSON.stringify(release)).digest('hex');
}

export async function saveRelease(db: AppDatabase, release: Release, options: StoreOptions): Promise<StoreResult> {
  assertStorable(release);
  const documentHash = options.documentHash ?? releaseHash(release);
  const actor = options.actor ?? 'system';
  const source = options.source ?? 'system';
  return db.transaction(async (tx) => {
    // Two watchers (or a watcher and `digest --post`) storing the same month take turns; the second sees the first's row.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`patchbay:release:${release.id}`}, 0))`);
    const [stored] = await tx
      .select({ documentHash: releases.documentHash, model: releases.model, fetchedAt: releases.fetchedAt })
      .from(releases)
      .where(eq(releases.id, release.id));

    if (stored && stored.documentHash === documentHash) {
      if (stored.fetchedAt < options.fetchedAt) {
        await tx.update(releases).set({ fetchedAt: options.fetchedAt }).where(eq(releases.id, release.id));
      }
      return { outcome: 'unchanged' as const, changes: [], documentHash, queued: 0 };
    }

    const changes = stored ? diffReleases(stored.model as unknown as Release, release) : [];
    const outcome: StoreOutcome = stored ? 'revised' : 'new';
    await writeRows(tx, release, documentHash, options);

    if (outcome === 'revised') {
      await tx
        .insert(releaseChanges)
        .values({ releaseId: release.id, revision: latestRevision(release), documentHash, changes, detectedAt: options.now })
        .onConflictDoNothing();
    }

    const { queued, notQueued } = outcome === 'new' || changes.length > 0 ? await announce(tx, release, outcome, changes, documentHash, options) : { queued: 0 };

    await tx.insert(auditLog).values({
      at: options.now,
      actor,
      action: outcome === 'new' ? 'release.stored' : 'release.revised',
      subject: `release:${release.id}`,
      source,
      detail: {
        revision: latestRevision(release),
        currentReleaseDate: release.currentReleaseDate,
        documentHash,
        cves: release.cves.length,
        updates: release.updates.length,
        changes: changes.slice(0, 50).map((change) => change.message),
        changeCount: changes.length,
        queued,
        ...(notQueued ? { notQueued } : {}),
      },
    });
    return { outcome, changes, documentHash, queued, ...(notQueued ? { notQueued } : {}) };
  });
}

/** Queues the digest of a new release, or the changes of a revision, for the MSP channel (none before it has one). */
async function announce(
  tx: AppDatabase,
  release: Release,
  outcome: StoreOutcome,
  changes: ReleaseChange[],
  documentHash: string,
  options: StoreOptions,
): Promise<{ queued: number; notQueued?: string }> {
  const [mspRow] = await tx.select({ channel: msp.channel }).from(msp).where(eq(msp.id, 1));
  if (!mspRow || mspRow.channel.trim() === '') return { queued: 0, notQueued: 'no MSP channel imported yet (patchbay import): nothing posted' };
  const announcement: ReleaseAnnouncement =
    outcome === 'new'
      ? { kind: 'new', releaseId: release.id, digest: await loadDigestInput(tx, release.id, options.now) }
      : { kind: 'revised', release, documentHash, changes };
  return { queued: await options.announce(tx, announcement, options.now) };
}

/** Refuses a model no parser would give, before it can replace a good stored one. */
function assertStorable(release: Release): void {
  const problems: string[] = [];
  if (!/^\d{4}-[A-Z][a-z]{2}$/.test(release.id)) problems.push(`id "${release.id}" is not a release id such as 2024-Feb`);
  for (const field of ['initialReleaseDate', 'currentReleaseDate'] as const) {
    if (!DateTime.fromISO(release[field], { zone: 'utc' }).isValid) problems.push(`${field} "${release[field]}" is not an ISO date`);
  }
  const repeated = (ids: string[]) => ids.filter((id, i) => ids.indexOf(id) !== i);
  const cveDupes = repeated(release.cves.map((c) => c.id));
  if (cveDupes.length) problems.push(`CVEs listed twice: ${[...new Set(cveDupes)].slice(0, 5).join(', ')}`);
  const updateDupes = repeated(release.updates.map((u) => u.id));
  if (updateDupes.length) problems.push(`updates listed twice: ${[...new Set(updateDupes)].slice(0, 5).join(', ')}`);
  if (problems.length) throw new Error(`release ${release.id} cannot be stored: ${problems.join('; ')}`);
}

/** The release row, its updates and CVEs as this reading has them, and the links between them. */
async function writeRows(tx: AppDatabase, release: Release, documentHash: string, options: StoreOptions): Promise<void> {
  await writeReleaseRow(tx, release, documentHash, options);
  await writeUpdateRows(tx, release, options.now);
  await writeCveRows(tx, release, options.now);
  await writeUpdateCveLinks(tx, release);
}

async function writeReleaseRow(tx: AppDatabase, release: Release, documentHash: string, options: StoreOptions): Promise<void> {
  const now = options.now;
  const releaseRow = {
    id: release.id,
    title: release.title ?? null,
    initialReleaseDate: new Date(release.initialReleaseDate),
    currentReleaseDate: new Date(release.currentReleaseDate),
    revision: latestRevision(release),
    documentHash,
    summary: { cves: release.cves.length, updates: release.updates.length, products: release.products.length },
    model: release as unknown as Record<string, unknown>,
    fetchedAt: options.fetchedAt,
    createdAt: now,
    updatedAt: now,
  };
  const { id: _id, createdAt: _created, ...releaseUpdate } = releaseRow;
  await tx.insert(releases).values(releaseRow).onConflictDoUpdate({ target: releases.id, set: releaseUpdate });
}

/** Upserts this reading's updates and marks the ones it no longer lists removed (decisions still point at them). */
async function writeUpdateRows(tx: AppDatabase, release: Release, now: Date): Promise<void> {
  const productsById = new Map(release.products.map((p) => [p.id, p]));
  const updateRows = release.updates.map((u) => ({
    releaseId: release.id,
    updateKey: u.id,
    kb: u.kb ?? null,
    title: u.name,
    family: u.family ?? null,
    products: u.productIds.map((id) => productsById.get(id)?.name ?? id),
    productIds: u.productIds,
    subtype: u.subTypes.length ? u.subTypes.join(', ') : null,
    restartRequired: u.restartRequired === 'unknown' ? null : u.restartRequired,
    supersedes: u.supersedes,
    fixedBuild: u.fixedBuilds.length ? u.fixedBuilds.join(', ') : null,
    url: u.urls[0] ?? null,
    knownIssueLinks: u.knownIssues.map((issue) => issue.url ?? `KB${issue.kb}`),
    removedAt: null,
    createdAt: now,
    updatedAt: now,
  }));
  await upsertRows(tx, updates, updateRows, [updates.releaseId, updates.updateKey], [
    updates.kb,
    updates.title,
    updates.family,
    updates.products,
    updates.productIds,
    updates.subtype,
    updates.restartRequired,
    updates.supersedes,
    updates.fixedBuild,
    updates.url,
    updates.knownIssueLinks,
    updates.removedAt,
  ]);
  const updateKeys = JSON.stringify(release.updates.map((u) => u.id));
  await tx.execute(sql`update updates set removed_at = ${at(now)}, updated_at = ${at(now)}
    where release_id = ${release.id} and removed_at is null
      and update_key not in (select jsonb_array_elements_text(${updateKeys}::jsonb))`);
}

/** Upserts this reading's CVEs and marks the ones it no longer lists removed. */
async function writeCveRows(tx: AppDatabase, release: Release, now: Date): Promise<void> {
  const productsById = new Map(release.products.map((p) => [p.id, p]));
  const cveRows = release.cves.map((c) => ({
    releaseId: release.id,
    cve: c.id,
    title: c.title ?? null,
    severity: c.severity ?? null,
    impacts: c.impacts,
    cvssBase: c.cvssBaseScore ?? null,
    exploited: c.exploited ?? null,
    publiclyDisclosed: c.publiclyDisclosed ?? null,
    exploitability: c.exploitability.latestRelease ?? null,
    assigningCna: c.assigningCna ?? null,
    category: categoryOf(classifyCve(c, productsById)),
    firstPublished: c.firstPublished ? new Date(c.firstPublished) : null,
    detail: { tags: c.tags, families: c.families, lastRevised: c.lastRevised ?? null, olderRelease: c.exploitability.olderRelease ?? null },
    removedAt: null,
    createdAt: now,
    updatedAt: now,
  }));
  await upsertRows(tx, cves, cveRows, [cves.releaseId, cves.cve], [
    cves.title,
    cves.severity,
    cves.impacts,
    cves.cvssBase,
    cves.exploited,
    cves.publiclyDisclosed,
    cves.exploitability,
    cves.assigningCna,
    cves.category,
    cves.firstPublished,
    cves.detail,
    cves.removedAt,
  ]);
  const cveIds = JSON.stringify(release.cves.map((c) => c.id));
  await tx.execute(sql`update cves set removed_at = ${at(now)}, updated_at = ${at(now)}
    where release_id = ${release.id} and removed_at is null
      and cve not in (select jsonb_array_elements_text(${cveIds}::jsonb))`);
}

/** Links are facts of the current reading only: nothing points at them, so stale ones are simply deleted. */
async function writeUpdateCveLinks(tx: AppDatabase, release: Release): Promise<void> {
  const links = JSON.stringify(release.updates.flatMap((u) => u.cves.map((link) => ({ update_key: u.id, cve: link.cveId }))));
  await tx.execute(sql`with wanted as (
      select u.id as update_id, c.id as cve_id
      from jsonb_to_recordset(${links}::jsonb) as l(update_key text, cve text)
      join updates u on u.release_id = ${release.id} and u.update_key = l.update_key
      join cves c on c.release_id = ${release.id} and c.cve = l.cve
    ), removed as (
      delete from update_cves uc using updates u
      where uc.update_id = u.id and u.release_id = ${release.id}
        and not exists (select 1 from wanted w where w.update_id = uc.update_id and w.cve_id = uc.cve_id)
    )
    insert into update_cves (update_id, cve_id) select update_id, cve_id from wanted on conflict do nothing`);
}

function categoryOf(bucket: ReturnType<typeof classifyCve>): string {
  return bucket === 'headline' ? 'microsoft' : bucket === 'otherVendors' ? 'otherVendor' : bucket;
}

/** What a stored release is announced with: the digest of a new month, or what a revision changed. */
export type ReleaseAnnouncement =
  | { kind: 'new'; releaseId: string; digest: DigestInput }
  | { kind: 'revised'; release: Release; documentHash: string; changes: ReleaseChange[] };

/**
 * Passed in by the caller (the store-release use-case, which hands it to `notify`): src/db knows no chat platform,
 * so it says what to announce and the caller renders and queues it in the same transaction.
 */
export type AnnounceRelease = (tx: AppDatabase, announcement: ReleaseAnnouncement, now: Date) => Promise<number>;

/** The stored Release model, or undefined when the month was never stored. */
export async function loadRelease(db: AppDatabase, id: string): Promise<Release | undefined> {
  const [row] = await db.select({ model: releases.model }).from(releases).where(eq(releases.id, id));
  return row ? (row.model as unknown as Release) : undefined;
}

export async function listReleases(db: AppDatabase): Promise<StoredReleaseSummary[]> {
  const rows = await db
    .select({
      id: releases.id,
      title: releases.title,
      revision: releases.revision,
      initialReleaseDate: releases.initialReleaseDate,
      currentReleaseDate: releases.currentReleaseDate,
      fetchedAt: releases.fetchedAt,
      documentHash: releases.documentHash,
      summary: releases.summary,
    })
    .from(releases)
    .orderBy(asc(releases.initialReleaseDate));
  return rows.map(({ summary, ...row }) => ({ ...row, cves: Number(summary.cves ?? 0), updates: Number(summary.updates ?? 0) }));
}

/** What a caller drawing several digests in a row already read: the KEV catalog and the fleet are the same for all. */
export interface DigestShared {
  kev?: DigestInput['kev'];
  fleet?: DigestInput['fleet'];
  notes?: DigestInput['notes'];
}

/**
 * Everything the digest needs, from the database: the stored release, the KEV catalog, the research notes and
 * the inventory as imported (retired clients and devices left out). Undefined when the release is not stored.
 */
export async function loadDigestInput(db: AppDatabase, releaseId: string, now: Date | DateTime, known: DigestShared = {}): Promise<DigestInput> {
  const release = await loadRelease(db, releaseId);
  if (!release) throw new Error(`release ${releaseId} is not stored (known: ${(await listReleases(db)).map((r) => r.id).join(', ') || 'none'})`);
  const [kev, notes, fleet] = await Promise.all([
    'kev' in known ? known.kev : loadKevIndex(db),
    known.notes ?? listNotes(db, releaseId),
    'fleet' in known ? known.fleet : loadDigestFleet(db),
  ]);
  const instant = now instanceof Date ? DateTime.fromJSDate(now, { zone: 'utc' }) : now;
  return { release, now: instant, kev, notes, fleet };
}

/**
 * The fleet as the digest reads it, summed by the database: devices per owner and OS, and each client's software.
 * Decisions have the digest redrawn (after their commit, a pass of redraws reading this once), so this must not
 * grow with the fleet the way `loadInventory` does. The same rows as `loadInventory` count (nothing retired, a client's devices only in its
 * live locations); undefined before the first import.
 */
export async function loadDigestFleet(db: AppDatabase): Promise<DigestFleet | undefined> {
  const [mspRow] = rowsOf<{ name: string }>(await db.execute(sql`select name from msp where id = 1`));
  if (!mspRow) return undefined;
  const groups = rowsOf<{ owner: string; os: string | null; count: number }>(
    await db.execute(sql`select coalesce(c.name, ${mspRow.name}) as owner, d.os, count(*)::int as count
      from devices d
      left join clients c on c.id = d.client_id
      left join locations l on l.client_id = d.client_id and l.id = d.location_id
      where d.retired_at is null
        and (d.client_id is null or (c.retired_at is null and l.retired_at is null and l.id is not null))
      group by 1, 2 order by 1, 2`),
  );
  const clientRows = rowsOf<{ name: string; software: string[] }>(
    await db.execute(sql`select name, software from clients where retired_at is null order by id`),
  );
  return {
    devices: groups.map((g) => ({ owner: g.owner, os: g.os ?? undefined, count: Number(g.count) })),
    clients: clientRows.map((c) => ({ name: c.name, software: c.software })),
  };
}

/** The inventory as stored; undefined before the first import. Windows that no longer parse are left out. */
export async function loadInventory(db: AppDatabase): Promise<Inventory | undefined> {
  const [mspRow] = await db.select().from(msp).where(eq(msp.id, 1));
  if (!mspRow) return undefined;
  const clientRows = await db.select().from(clients).where(isNull(clients.retiredAt)).orderBy(asc(clients.id));
  const locationRows = await db.select().from(locations).where(isNull(locations.retiredAt));
  const deviceRows = await db.select().from(devices).where(isNull(devices.retiredAt)).orderBy(asc(devices.name));
  const toDevice = (d: (typeof deviceRows)[number]): InventoryDevice => ({
    name: d.name,
    class: d.class,
    ring: d.ring,
    os: d.os ?? undefined,
    user: d.userEmail ?? undefined,
  });
  const toClient = (c: (typeof clientRows)[number]): InventoryClient => ({
    id: c.id,
    name: c.name,
    timezone: c.timezone,
    windows: windowRules(c.windows),
    software: c.software,
    champions: [],
    locations: locationRows
      .filter((l) => l.clientId === c.id)
      .map((l) => ({
        id: l.id,
        name: l.name ?? undefined,
        devices: deviceRows.filter((d) => d.clientId === c.id && d.locationId === l.id).map(toDevice),
      })),
  });
  return {
    msp: {
      name: mspRow.name,
      engineers: [],
      channel: mspRow.channel,
      timezone: mspRow.timezone,
      windows: windowRules(mspRow.windows),
      devices: deviceRows.filter((d) => d.clientId === null).map(toDevice),
    },
    clients: clientRows.map(toClient),
  };
}

function windowRules(specs: Record<string, string>): Record<string, WindowRule> {
  const rules: Record<string, WindowRule> = {};
  for (const [deviceClass, spec] of Object.entries(specs)) {
    const parsed = parseWindowSpec(spec);
    if (parsed.ok) rules[deviceClass] = parsed.value;
  }
  return rules;
}

/** The most recent releases' ids (by Microsoft's release date), newest first. */
export async function latestReleaseIds(db: AppDatabase, limit: number): Promise<string[]> {
  return rowsOf<{ id: string }>(await db.execute(sql`select id from releases order by initial_release_date desc, id desc limit ${limit}`)).map((r) => r.id);
}

/** The release Microsoft published next after this one, if it is stored. */
export async function newerReleaseId(db: AppDatabase, releaseId: string): Promise<string | undefined> {
  const [row] = rowsOf<{ id: string }>(
    await db.execute(sql`select n.id from releases n join releases r on r.id = ${releaseId}
      where n.initial_release_date > r.initial_release_date order by n.initial_release_date, n.id limit 1`),
  );
  return row?.id;
}

/** The release's title as stored (undefined when the release is not). */
export async function releaseTitle(db: AppDatabase, releaseId: string): Promise<{ title: string | null } | undefined> {
  const [row] = rowsOf<{ title: string | null }>(await db.execute(sql`select title from releases where id = ${releaseId}`));
  return row;
}

export interface UpdateLabelRow {
  key: string;
  kb: string | null;
  title: string | null;
  /** The product family, which tells apart fixes without a KB that share a title ("Release Notes"). */
  family: string | null;
}

/** The updates this reading of the release lists (not those a revision dropped), by key. */
export async function liveUpdateLabels(db: AppDatabase, releaseId: string): Promise<UpdateLabelRow[]> {
  return rowsOf<UpdateLabelRow>(
    await db.execute(sql`select update_key as key, kb, title, family from updates where release_id = ${releaseId} and removed_at is null order by update_key`),
  );
}

/** The named updates of the release, dropped ones included (what a past sign-off covered stays nameable). */
export async function updateLabelsOf(db: AppDatabase, releaseId: string, keys: readonly string[]): Promise<UpdateLabelRow[]> {
  return rowsOf<UpdateLabelRow>(
    await db.execute(sql`select update_key as key, kb, title, family from updates where release_id = ${releaseId}
      and update_key in (select jsonb_array_elements_text(${JSON.stringify(keys)}::jsonb))`),
  );
}

/** Every update of the release ever stored (dropped ones too): update key -> updates.id. */
export async function updateIdsByKey(db: AppDatabase, releaseId: string): Promise<Map<string, number>> {
  const rows = rowsOf<{ id: number; update_key: string }>(await db.execute(sql`select id, update_key from updates where release_id = ${releaseId}`));
  return new Map(rows.map((r) => [r.update_key, Number(r.id)]));
}

export interface RingState {
  ring: string;
  clientId: string | null;
  state: string;
  skips: Array<{ updateKey: string; by: string; at: string; reason: string }>;
}

/** Where each of the release's rollouts stands: ring msp, then the pilots, then broad; the MSP's before clients'. */
export async function releaseRingStates(db: AppDatabase, releaseId: string): Promise<RingState[]> {
  const rows = rowsOf<{ ring: string; client_id: string | null; state: string; skips: RingState['skips'] | null }>(
    await db.execute(sql`select ring, client_id, state, state_detail -> 'skips' as skips from rollouts where release_id = ${releaseId}
      order by case ring when 'msp' then 0 when 'pilot' then 1 else 2 end, client_id nulls first`),
  );
  return rows.map((r) => ({ ring: r.ring, clientId: r.client_id, state: r.state, skips: r.skips ?? [] }));
}

export interface DigestPost {
  outboxId: number;
  channel: string;
  subject: string;
  postedAt: Date;
}

/**
 * The digest's messages as queued for Slack (the parent `subject` and its `<subject>:thread:<n>` continuations),
 * oldest first: where each was posted and when. Their payloads are not read: an edit is drawn from the model.
 */
export async function digestPosts(db: AppDatabase, parentSubject: string): Promise<DigestPost[]> {
  const rows = rowsOf<{ id: number; channel: string; subject: string; created_at: unknown }>(
    await db.execute(sql`select id, channel, subject, created_at from chat_outbox
      where action = 'post' and platform = 'slack' and (subject = ${parentSubject} or subject like ${`${parentSubject}:thread:%`}) order by id`),
  );
  return rows.map((r) => ({ outboxId: Number(r.id), channel: r.channel, subject: r.subject, postedAt: new Date(r.created_at instanceof Date ? r.created_at.toISOString() : String(r.created_at)) }));
}
