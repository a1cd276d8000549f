/**
 * The Patch Tuesday digest: what came out, what is being exploited, and what it means for this MSP's fleet.
 * Pure: the release, the KEV catalog, the inventory and the research notes come in; `now` is passed.
 * Renderers (Slack, Teams, text, JSON) only lay this out.
 */
import type { DateTime } from 'luxon';
import type { Inventory } from './inventory.ts';
import { matchOsToProducts, mentionsIn, type MatchHow } from './product-match.ts';
import {
  addedAfterRelease,
  classifyCve,
  compareSeverity,
  releaseDay,
  revisionsAfterRelease,
  worseSeverity,
  type Cve,
  type CveBucket,
  type KnownIssue,
  type Release,
  type RestartRequired,
  type Revision,
  type Severity,
  type Update,
} from './release.ts';

export interface KevEntry {
  cveId: string;
  vulnerabilityName: string;
  /** YYYY-MM-DD, as CISA writes it. */
  dateAdded: string;
  dueDate: string;
  knownRansomwareCampaignUse: 'Known' | 'Unknown' | undefined;
}

export interface KevIndex {
  version: string;
  dateReleased: string;
  entries: ReadonlyMap<string, KevEntry>;
}

/** An engineer's note on an update. Stored elsewhere with history; the digest shows the current text. */
export interface ResearchNote {
  /** The update's KB number (with or without "KB") or its id. */
  kb: string;
  text: string;
  /** e.g. `conflict`, `reboot-twice`, `extra-step`, `client-visible`. */
  tags: string[];
  author: string;
  /** ISO-8601. */
  at: string;
}

export interface DigestCve {
  id: string;
  title: string | undefined;
  severity: Severity | undefined;
  impacts: string[];
  cvssBaseScore: number | undefined;
  exploited: boolean | undefined;
  publiclyDisclosed: boolean | undefined;
  exploitability: string | undefined;
  assigningCna: string | undefined;
  tags: string[];
  kev: (KevEntry & { overdue: boolean }) | undefined;
  /** First published after release day. */
  addedAfterRelease: boolean;
  /** Revisions dated after release day (informational CVSS edits included: MSRC's own words say which). */
  changedAfterRelease: Revision[];
  updateIds: string[];
}

export type ConflictReason = 'product' | 'known-issue' | 'note';

export interface Conflict {
  reason: ConflictReason;
  /** The client whose software is touched; undefined for a note. */
  client: string | undefined;
  software: string | undefined;
  detail: string;
}

export interface DigestUpdateLine {
  id: string;
  kb: string | undefined;
  name: string;
  family: string;
  products: string[];
  /** Products this MSP runs (empty without an inventory). */
  fleetProducts: string[];
  devices: number;
  /** Clients (and the MSP itself) with a device this update applies to. */
  clients: string[];
  severity: Severity | undefined;
  cves: number;
  exploited: number;
  cveIds: string[];
  exploitedCveIds: string[];
  restartRequired: RestartRequired;
  knownIssues: KnownIssue[];
  supersedes: string[];
  subTypes: string[];
  conflicts: Conflict[];
  notes: ResearchNote[];
  url: string | undefined;
}

export interface DigestFamilyGroup {
  family: string;
  lines: DigestUpdateLine[];
}

export interface Digest {
  month: string;
  title: string | undefined;
  /** YYYY-MM-DD in America/Los_Angeles. */
  releaseDay: string;
  revisionDate: string;
  generatedAt: string;
  /** What the headline counts, in words, so a reader can compare it with the press. */
  headlineRule: string;
  totals: {
    /** The headline: Microsoft-rated CVEs published on release day, what the press counts. */
    cves: number;
    critical: number;
    exploited: number;
    publiclyDisclosed: number;
    kev: number;
    /** Microsoft-rated CVEs first published after release day: listed and marked, shown beside the headline. */
    addedAfterRelease: number;
    changedAfterRelease: number;
    updates: number;
  };
  critical: DigestCve[];
  exploited: DigestCve[];
  publiclyDisclosed: DigestCve[];
  kev: DigestCve[];
  addedAfterRelease: DigestCve[];
  impacts: Array<{ impact: string; count: number }>;
  separate: { edgeChromium: DigestCve[]; azureLinux: DigestCve[]; otherVendors: DigestCve[] };
  fleet: {
    hasInventory: boolean;
    groups: DigestFamilyGroup[];
    notInFleet: DigestUpdateLine[];
    osMatches: Array<{ os: string; how: MatchHow | undefined; products: string[]; devices: number }>;
  };
  /** Notes whose KB is not an update of this release: shown, not dropped. */
  unattachedNotes: ResearchNote[];
  kevCatalog: { version: string; dateReleased: string } | undefined;
}

export interface DigestInput {
  release: Release;
  now: DateTime;
  kev?: KevIndex | undefined;
  inventory?: Inventory | undefined;
  /**
   * What the digest reads of the fleet, when the caller has it without the whole inventory (the database sums it
   * in SQL: a decision's redraw then costs the same for three devices as for a hundred thousand). Wins over
   * `inventory` when both are given.
   */
  fleet?: DigestFleet | undefined;
  notes?: readonly ResearchNote[] | undefined;
}

/** The fleet as the digest sees it: how many devices each owner runs per OS, and each client's listed software. */
export interface DigestFleet {
  devices: ReadonlyArray<{ owner: string; os: string | undefined; count: number }>;
  clients: ReadonlyArray<{ name: string; software: readonly string[] }>;
}

/** The inventory summed as the digest reads it (the database computes the same from its tables). */
export function digestFleetOf(inventory: Inventory): DigestFleet {
  const counts = new Map<string, { owner: string; os: string | undefined; count: number }>();
  const count = (owner: string, os: string | undefined) => {
    const key = JSON.stringify([owner, os ?? null]);
    const group = counts.get(key) ?? { owner, os, count: 0 };
    group.count += 1;
    counts.set(key, group);
  };
  for (const d of inventory.msp.devices) count(inventory.msp.name, d.os);
  for (const c of inventory.clients) for (const l of c.locations) for (const d of l.devices) count(c.name, d.os);
  return { devices: [...counts.values()], clients: inventory.clients.map((c) => ({ name: c.name, software: c.software })) };
}

const OTHER_FAMILY = 'Other products';

function normaliseKb(kb: string): string {
  return kb.trim().replace(/^KB/i, '');
}

export function buildDigest(input: DigestInput): Digest {
  const { release, now, kev } = input;
  const owned = input.fleet ?? (input.inventory ? digestFleetOf(input.inventory) : undefined);
  const notes = input.notes ?? [];
  const productsById = new Map(release.products.map((p) => [p.id, p]));
  const cves = sortCves(release, productsById, kev, now.toISODate() ?? '');
  const { headline, late, onReleaseDay, separate } = cves;
  const critical = headline.filter((c) => c.severity === 'Critical').sort(byCveId);
  const exploited = headline.filter((c) => c.exploited === true).sort(byCveId);
  const publiclyDisclosed = headline.filter((c) => c.publiclyDisclosed === true).sort(byCveId);
  const kevMatches = [...cves.digestCves.values()].filter((c) => c.kev !== undefined).sort(byCveId);
  const changed = onReleaseDay.filter((c) => c.changedAfterRelease.length > 0);

  const fleet = fleetOf(owned, release);
  const { lines, usedNoteKeys } = updateLines(release, notes, { productsById, digestCves: cves.digestCves, osByProduct: fleet.osByProduct, devices: fleet.devices, owned }, cves.bucketOf);
  // A client's listed software (Exchange, SharePoint) is part of what the MSP runs, even without an OS match.
  const runs = (line: DigestUpdateLine) => line.fleetProducts.length > 0 || line.conflicts.some((c) => c.reason === 'product');
  const inFleet = owned ? lines.filter(runs) : lines;
  const notInFleet = owned ? lines.filter((line) => !runs(line)) : [];

  return {
    month: release.id,
    title: release.title,
    releaseDay: releaseDay(release),
    revisionDate: release.currentReleaseDate,
    generatedAt: now.toUTC().toISO() ?? '',
    headlineRule: headlineRule(onReleaseDay.length, late.length, separate),
    totals: {
      cves: onReleaseDay.length,
      critical: critical.length,
      exploited: exploited.length,
      publiclyDisclosed: publiclyDisclosed.length,
      kev: kevMatches.length,
      addedAfterRelease: late.length,
      changedAfterRelease: changed.length,
      updates: lines.length,
    },
    critical,
    exploited,
    publiclyDisclosed,
    kev: kevMatches,
    addedAfterRelease: late,
    impacts: impactBreakdown(onReleaseDay),
    separate,
    fleet: {
      hasInventory: owned !== undefined,
      groups: groupByFamily(inFleet),
      notInFleet,
      osMatches: fleet.osMatches.map((m) => ({ os: m.os, how: m.how, products: m.productIds.map((id) => productsById.get(id)?.name ?? id), devices: m.devices })),
    },
    unattachedNotes: notes.filter((note) => !usedNoteKeys.has(normaliseKb(note.kb))),
    kevCatalog: kev ? { version: kev.version, dateReleased: kev.dateReleased } : undefined,
  };
}

const byCveId = (a: DigestCve, b: DigestCve) => a.id.localeCompare(b.id, 'en', { numeric: true });

/** Each CVE as the digest shows it, and the buckets the headline count and the "listed apart" lists come from. */
function sortCves(release: Release, productsById: Map<string, Release['products'][number]>, kev: KevIndex | undefined, today: string) {
  const bucketOf = new Map<string, CveBucket>();
  const digestCves = new Map<string, DigestCve>();
  for (const cve of release.cves) {
    bucketOf.set(cve.id, classifyCve(cve, productsById));
    digestCves.set(cve.id, toDigestCve(cve, release, kev, today));
  }
  const inBucket = (bucket: CveBucket) => release.cves.filter((c) => bucketOf.get(c.id) === bucket).map((c) => digestCves.get(c.id)!);
  const headline = inBucket('headline');
  return {
    bucketOf,
    digestCves,
    headline,
    late: headline.filter((c) => c.addedAfterRelease).sort(byCveId),
    onReleaseDay: headline.filter((c) => !c.addedAfterRelease),
    separate: {
      edgeChromium: inBucket('edgeChromium').sort(byCveId),
      azureLinux: inBucket('azureLinux').sort(byCveId),
      otherVendors: inBucket('otherVendors').sort(byCveId),
    },
  };
}

/** The breakdown by impact adds up to the headline, as the press's does. */
function impactBreakdown(onReleaseDay: readonly DigestCve[]): Array<{ impact: string; count: number }> {
  const impactCounts = new Map<string, number>();
  for (const cve of onReleaseDay) {
    const impact = cve.impacts[0] ?? 'Not stated';
    impactCounts.set(impact, (impactCounts.get(impact) ?? 0) + 1);
  }
  return [...impactCounts].map(([impact, count]) => ({ impact, count })).sort((a, b) => b.count - a.count || a.impact.localeCompare(b.impact));
}

/** Which products this MSP runs, and on how many devices of whom. */
function fleetOf(fleet: DigestFleet | undefined, release: Release) {
  const devices = fleet?.devices ?? [];
  const osNames = [...new Set(devices.map((d) => d.os).filter((os): os is string => os !== undefined && os.trim() !== ''))].sort();
  const osMatches = osNames.map((os) => {
    const match = matchOsToProducts(os, release.products);
    return { ...match, devices: sumCounts(devices.filter((d) => d.os === os)) };
  });
  const osByProduct = new Map<string, string[]>();
  for (const match of osMatches) for (const pid of match.productIds) osByProduct.set(pid, [...(osByProduct.get(pid) ?? []), match.os]);
  return { devices, osMatches, osByProduct };
}

/** One line per update that fixes a headline CVE, worst first, with the research notes written for it. */
function updateLines(release: Release, notes: readonly ResearchNote[], fleet: Omit<LineContext, 'notes'>, bucketOf: ReadonlyMap<string, CveBucket>) {
  const notesByKb = new Map<string, ResearchNote[]>();
  for (const note of notes) notesByKb.set(normaliseKb(note.kb), [...(notesByKb.get(normaliseKb(note.kb)) ?? []), note]);
  const usedNoteKeys = new Set<string>();
  const lines: DigestUpdateLine[] = [];
  for (const update of release.updates) {
    const headlineCves = update.cves.filter((link) => bucketOf.get(link.cveId) === 'headline');
    if (headlineCves.length === 0) continue;
    const noteKey = [update.kb, update.id].find((key) => key !== undefined && notesByKb.has(key));
    if (noteKey) usedNoteKeys.add(noteKey);
    lines.push(toLine(update, headlineCves, { ...fleet, notes: noteKey ? (notesByKb.get(noteKey) ?? []) : [] }));
  }
  lines.sort(
    (a, b) =>
      -compareSeverity(a.severity, b.severity) ||
      b.exploited - a.exploited ||
      b.cves - a.cves ||
      a.id.localeCompare(b.id, 'en', { numeric: true }),
  );
  return { lines, usedNoteKeys };
}

function headlineRule(counted: number, late: number, separate: { edgeChromium: unknown[]; azureLinux: unknown[]; otherVendors: unknown[] }): string {
  const separateTotal = separate.edgeChromium.length + separate.azureLinux.length + separate.otherVendors.length;
  return (
    `Headline: the ${counted} CVEs Microsoft rates in its own products, published on release day` +
    (late > 0 ? `; +${late} since release day, not counted in it (listed, marked)` : '') +
    `. Not counted, listed apart: ${separate.edgeChromium.length} Edge/Chromium, ${separate.azureLinux.length} Azure Linux/Mariner, ` +
    `${separate.otherVendors.length} other vendors' (${separateTotal} in all).`
  );
}

function toDigestCve(cve: Cve, release: Release, kev: KevIndex | undefined, today: string): DigestCve {
  const entry = kev?.entries.get(cve.id);
  return {
    id: cve.id,
    title: cve.title,
    severity: cve.severity,
    impacts: cve.impacts,
    cvssBaseScore: cve.cvssBaseScore,
    exploited: cve.exploited,
    publiclyDisclosed: cve.publiclyDisclosed,
    exploitability: cve.exploitability.latestRelease,
    assigningCna: cve.assigningCna,
    tags: cve.tags,
    kev: entry ? { ...entry, overdue: today !== '' && entry.dueDate < today } : undefined,
    addedAfterRelease: addedAfterRelease(cve, release),
    changedAfterRelease: revisionsAfterRelease(cve, release),
    updateIds: cve.updateIds,
  };
}

const sumCounts = (groups: ReadonlyArray<{ count: number }>) => groups.reduce((sum, g) => sum + g.count, 0);

interface LineContext {
  productsById: ReadonlyMap<string, { name: string; family: string | undefined }>;
  digestCves: ReadonlyMap<string, DigestCve>;
  osByProduct: ReadonlyMap<string, string[]>;
  devices: DigestFleet['devices'];
  owned: DigestFleet | undefined;
  notes: ResearchNote[];
}

function toLine(update: Update, links: Update['cves'], ctx: LineContext): DigestUpdateLine {
  const products = update.productIds.map((id) => ctx.productsById.get(id)?.name ?? id);
  const fleetOs = new Set(update.productIds.flatMap((id) => ctx.osByProduct.get(id) ?? []));
  const fleetProducts = update.productIds.filter((id) => ctx.osByProduct.has(id)).map((id) => ctx.productsById.get(id)?.name ?? id);
  const affected = ctx.devices.filter((d) => d.os !== undefined && fleetOs.has(d.os));

  let severity: Severity | undefined;
  for (const link of links) severity = worseSeverity(severity, link.severity);
  const cveIds = links.map((l) => l.cveId);
  const exploitedCveIds = cveIds.filter((id) => ctx.digestCves.get(id)?.exploited === true);

  const conflicts: Conflict[] = [];
  const productMentions = products.map((name) => ({ name, mentions: mentionsIn(name) }));
  const issueMentions = update.knownIssues.map((issue) => ({ issue, mentions: issue.text !== undefined ? mentionsIn(issue.text) : () => false }));
  for (const client of ctx.owned?.clients ?? []) {
    for (const software of client.software) {
      const product = productMentions.find((p) => p.mentions(software))?.name;
      if (product) {
        conflicts.push({ reason: 'product', client: client.name, software, detail: `updates ${product}` });
        continue;
      }
      const issue = issueMentions.find((i) => i.mentions(software))?.issue;
      if (issue) conflicts.push({ reason: 'known-issue', client: client.name, software, detail: `known issue KB${issue.kb} mentions it` });
    }
  }
  for (const note of ctx.notes) {
    if (note.tags.some((tag) => tag.toLowerCase() === 'conflict')) {
      conflicts.push({ reason: 'note', client: undefined, software: undefined, detail: `note by ${note.author}: ${note.text}` });
    }
  }

  return {
    id: update.id,
    kb: update.kb,
    name: update.name,
    family: update.family ?? OTHER_FAMILY,
    products,
    fleetProducts,
    devices: sumCounts(affected),
    clients: [...new Set(affected.map((d) => d.owner))].sort(),
    severity,
    cves: links.length,
    exploited: exploitedCveIds.length,
    cveIds,
    exploitedCveIds,
    restartRequired: update.restartRequired,
    knownIssues: update.knownIssues,
    supersedes: update.supersedes,
    subTypes: update.subTypes,
    conflicts,
    notes: ctx.notes,
    url: update.urls[0],
  };
}

function groupByFamily(lines: DigestUpdateLine[]): DigestFamilyGroup[] {
  const groups = new Map<string, DigestUpdateLine[]>();
  for (const line of lines) groups.set(line.family, [...(groups.get(line.family) ?? []), line]);
  // Families with the worst updates first, so the thread reads in order of urgency.
  return [...groups]
    .map(([family, familyLines]) => ({ family, lines: familyLines }))
    .sort((a, b) => {
      const worst = (g: DigestFamilyGroup) => g.lines.reduce<Severity | undefined>((acc, l) => worseSeverity(acc, l.severity), undefined);
      return -compareSeverity(worst(a), worst(b)) || a.family.localeCompare(b.family);
    });
}

/** `60 (+2 since release day)`: the headline number, with the CVEs that came later beside it, never inside it. */
export function headlineNumber(totals: Pick<Digest['totals'], 'cves' | 'addedAfterRelease'>): string {
  return totals.addedAfterRelease > 0 ? `${totals.cves} (+${totals.addedAfterRelease} since release day)` : String(totals.cves);
}

/** `60 CVEs (+2 since release day)`, as every render's headline shows it. */
export function headlineCount(totals: Pick<Digest['totals'], 'cves' | 'addedAfterRelease'>): string {
  const since = totals.addedAfterRelease > 0 ? ` (+${totals.addedAfterRelease} since release day)` : '';
  return `${totals.cves} CVE${totals.cves === 1 ? '' : 's'}${since}`;
}

/** Short label for an update: `KB5034763` or the fix's own name. */
export function updateLabel(line: Pick<DigestUpdateLine, 'kb' | 'name' | 'family'>): string {
  return line.kb ? `KB${line.kb}` : `${line.name} (${line.family})`;
}

/** Product names shortened for a one-line summary: the first few, then how many more. */
export function productSummary(products: string[], max = 3): string {
  if (products.length <= max) return products.join('; ');
  return `${products.slice(0, max).join('; ')}; +${products.length - max} more`;
}
