/**
 * One month's Microsoft security release as the rest of patchbay sees it, independent of the CVRF document
 * it was read from. The shape maps onto tables: release -> update (KB) <-> cve, with `UpdateCve` as the link
 * (it carries the severity the CVE has on that update's products).
 *
 * Unknown stays unknown: a field MSRC leaves out is `undefined` (or `'unknown'` for restart), never a "No".
 * Dates are ISO-8601 strings in UTC so the model serialises and stores as is; compare them through luxon.
 */
import { DateTime } from 'luxon';

export const SEVERITIES = ['Critical', 'Important', 'Moderate', 'Low'] as const;
export type Severity = (typeof SEVERITIES)[number];

export type RestartRequired = 'Yes' | 'No' | 'Maybe' | 'unknown';

export interface Revision {
  number: string;
  /** ISO-8601, UTC. */
  date: string;
  description: string | undefined;
}

export interface Product {
  id: string;
  name: string;
  /** The product tree's family ("Windows", "Microsoft Office", ...); undefined when the tree leaves it out. */
  family: string | undefined;
}

export interface KnownIssue {
  /** The KB whose article documents the known issues. */
  kb: string;
  url: string | undefined;
  /** Whatever text MSRC gives with it (usually only the KB number). */
  text: string | undefined;
}

export interface UpdateCve {
  cveId: string;
  /** Worst severity this CVE has on the products this update fixes; undefined when MSRC rates none. */
  severity: Severity | undefined;
}

export interface Update {
  /** The KB number for a KB; otherwise a slug of the fix's name and family, e.g. `release-notes.developer-tools`. */
  id: string;
  kb: string | undefined;
  /** The fix's name as MSRC writes it: the KB number, or "Release Notes", "Click to Run", a package name. */
  name: string;
  family: string | undefined;
  productIds: string[];
  subTypes: string[];
  restartRequired: RestartRequired;
  supersedes: string[];
  fixedBuilds: string[];
  urls: string[];
  knownIssues: KnownIssue[];
  cves: UpdateCve[];
}

export interface ExploitStatus {
  publiclyDisclosed: boolean | undefined;
  exploited: boolean | undefined;
  /** Microsoft's exploitability assessment, e.g. "Exploitation More Likely". */
  latestRelease: string | undefined;
  olderRelease: string | undefined;
}

export interface Cve {
  id: string;
  title: string | undefined;
  severity: Severity | undefined;
  impacts: string[];
  cvssBaseScore: number | undefined;
  exploited: boolean | undefined;
  publiclyDisclosed: boolean | undefined;
  exploitability: { latestRelease: string | undefined; olderRelease: string | undefined };
  assigningCna: string | undefined;
  /** Notes of type 7: MSRC's product tag, e.g. "Windows Kernel", "Microsoft Edge (Chromium-based)", "Mariner". */
  tags: string[];
  productIds: string[];
  families: string[];
  updateIds: string[];
  /** Earliest revision date; undefined when the CVE has no revision history. */
  firstPublished: string | undefined;
  lastRevised: string | undefined;
  revisions: Revision[];
}

export interface Release {
  /** e.g. `2024-Feb`. */
  id: string;
  title: string | undefined;
  initialReleaseDate: string;
  currentReleaseDate: string;
  revisions: Revision[];
  products: Product[];
  updates: Update[];
  cves: Cve[];
}

const SEVERITY_RANK: Record<Severity, number> = { Critical: 4, Important: 3, Moderate: 2, Low: 1 };

export function isSeverity(value: unknown): value is Severity {
  return typeof value === 'string' && (SEVERITIES as readonly string[]).includes(value);
}

/** The worse of two severities; an unknown one never hides a known one. */
export function worseSeverity(a: Severity | undefined, b: Severity | undefined): Severity | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return SEVERITY_RANK[a] >= SEVERITY_RANK[b] ? a : b;
}

export function compareSeverity(a: Severity | undefined, b: Severity | undefined): number {
  return (a === undefined ? 0 : SEVERITY_RANK[a]) - (b === undefined ? 0 : SEVERITY_RANK[b]);
}

/**
 * Several remediation entries of one KB can disagree on restarts (one per product). A KB is "No" only when
 * every entry says No; one entry that says nothing makes the whole KB unknown unless another says Yes/Maybe.
 */
export function combineRestart(values: Array<RestartRequired>): RestartRequired {
  if (values.length === 0) return 'unknown';
  if (values.includes('Yes')) return 'Yes';
  if (values.includes('Maybe')) return 'Maybe';
  if (values.includes('unknown')) return 'unknown';
  return 'No';
}

/**
 * Parses MSRC's exploit-status string, `Publicly Disclosed:No;Exploited:Yes;Latest Software Release:
 * Exploitation Detected;DOS:N/A`. Third-party entries carry only `DOS:N/A`: every field then stays unknown.
 */
export function parseExploitStatus(text: string | undefined): ExploitStatus {
  const status: ExploitStatus = { publiclyDisclosed: undefined, exploited: undefined, latestRelease: undefined, olderRelease: undefined };
  if (!text) return status;
  for (const part of text.split(';')) {
    const colon = part.indexOf(':');
    if (colon < 0) continue;
    const key = part.slice(0, colon).trim().toLowerCase();
    const value = part.slice(colon + 1).trim();
    const yesNo = /^yes$/i.test(value) ? true : /^no$/i.test(value) ? false : undefined;
    if (key === 'publicly disclosed') status.publiclyDisclosed = yesNo;
    else if (key === 'exploited') status.exploited = yesNo;
    else if (key === 'latest software release') status.latestRelease = value === '' || value === 'N/A' ? undefined : value;
    else if (key === 'older software release') status.olderRelease = value === '' || value === 'N/A' ? undefined : value;
  }
  return status;
}

/**
 * Which bucket a CVE belongs to. The press headline counts what Microsoft rates in its own products; the rest
 * is listed apart: Edge's Chromium ingests (and Edge's own CVEs, which ship on the browser's cadence, not on
 * Patch Tuesday), Azure Linux/CBL-Mariner package CVEs, and other vendors' CVEs Microsoft only documents
 * (a non-Microsoft CNA and no Microsoft severity, e.g. runc in 2024-Feb).
 * A third-party CNA's CVE that Microsoft rates in its product (MITRE's DNSSEC CVE-2023-50387 in Windows DNS,
 * GitHub's Git CVEs in Visual Studio) is in the headline: that is how the published counts add up.
 */
export type CveBucket = 'headline' | 'edgeChromium' | 'azureLinux' | 'otherVendors';

const EDGE = /\bMicrosoft Edge\b|\bChromium\b/i;
const AZURE_LINUX = /\bMariner\b|\bAzure Linux\b/i;

export function classifyCve(cve: Cve, productsById: ReadonlyMap<string, Product>): CveBucket {
  const productNames = cve.productIds.map((id) => productsById.get(id)?.name ?? '');
  const allProducts = (pattern: RegExp) => productNames.length > 0 && productNames.every((name) => pattern.test(name));
  if (cve.assigningCna?.toLowerCase() === 'chrome' || cve.tags.some((tag) => EDGE.test(tag)) || allProducts(EDGE)) {
    return 'edgeChromium';
  }
  if (cve.tags.some((tag) => AZURE_LINUX.test(tag)) || cve.families.some((family) => AZURE_LINUX.test(family)) || allProducts(AZURE_LINUX)) {
    return 'azureLinux';
  }
  const microsoftAssigned = cve.assigningCna === undefined || cve.assigningCna.toLowerCase() === 'microsoft';
  if (!microsoftAssigned && cve.severity === undefined) return 'otherVendors';
  return 'headline';
}

/**
 * Release day is the calendar day of the initial release in Redmond: MSRC stamps documents at local midnight
 * (07:00 or 08:00 UTC) and publishes them at 10:00 the same day.
 */
export const RELEASE_ZONE = 'America/Los_Angeles';

export function releaseDay(release: Pick<Release, 'initialReleaseDate'>): string {
  return dayInRedmond(release.initialReleaseDate) ?? release.initialReleaseDate.slice(0, 10);
}

// Memoised: a digest asks for the same few timestamps hundreds of times, and the answer never changes.
const redmondDays = new Map<string, string | undefined>();

function dayInRedmond(iso: string): string | undefined {
  if (redmondDays.has(iso)) return redmondDays.get(iso);
  const dt = utc(iso);
  const day = dt.isValid ? (dt.setZone(RELEASE_ZONE).toISODate() ?? undefined) : undefined;
  if (redmondDays.size > 10_000) redmondDays.clear();
  redmondDays.set(iso, day);
  return day;
}

/** A CVE first published after release day was added later (e.g. CVE-2024-30060 two days into May 2024). */
export function addedAfterRelease(cve: Cve, release: Pick<Release, 'initialReleaseDate'>): boolean {
  const first = cve.firstPublished === undefined ? undefined : dayInRedmond(cve.firstPublished);
  return first !== undefined && first > releaseDay(release);
}

/** Revisions of a CVE dated after release day: what changed since the release (empty when nothing did). */
export function revisionsAfterRelease(cve: Cve, release: Pick<Release, 'initialReleaseDate'>): Revision[] {
  const day = releaseDay(release);
  return cve.revisions.filter((revision) => {
    const d = dayInRedmond(revision.date);
    return d !== undefined && d > day;
  });
}

export function utc(iso: string): DateTime {
  return DateTime.fromISO(iso, { zone: 'utc' });
}

/** What changed between two readings of the same release; the watcher posts each as a thread reply. */
export type ReleaseChange =
  | { kind: 'cveAdded'; cve: string; title: string | undefined; severity: Severity | undefined; message: string }
  | { kind: 'cveRemoved'; cve: string; message: string }
  | { kind: 'exploited'; cve: string; message: string }
  | { kind: 'publiclyDisclosed'; cve: string; message: string }
  | { kind: 'severityChanged'; cve: string; from: Severity | undefined; to: Severity | undefined; message: string }
  | { kind: 'updateAdded'; update: string; message: string }
  | { kind: 'knownIssueAdded'; update: string; kb: string; url: string | undefined; message: string }
  | { kind: 'restartChanged'; update: string; from: RestartRequired; to: RestartRequired; message: string };

/** Pure: compares two readings of one release (old first). Plain text in `message`: renderers escape it. */
export function diffReleases(previous: Release, current: Release): ReleaseChange[] {
  const changes: ReleaseChange[] = [];
  const oldCves = new Map(previous.cves.map((cve) => [cve.id, cve]));
  const newCves = new Map(current.cves.map((cve) => [cve.id, cve]));
  for (const cve of current.cves) {
    const before = oldCves.get(cve.id);
    if (!before) {
      const label = cve.title ? `${cve.id} (${cve.title})` : cve.id;
      changes.push({
        kind: 'cveAdded',
        cve: cve.id,
        title: cve.title,
        severity: cve.severity,
        message: `${label} was added${cve.severity ? `, rated ${cve.severity}` : ''}${cve.exploited ? ', already marked exploited' : ''}`,
      });
      continue;
    }
    if (cve.exploited === true && before.exploited !== true) {
      changes.push({ kind: 'exploited', cve: cve.id, message: `${cve.id} is now marked exploited` });
    }
    if (cve.publiclyDisclosed === true && before.publiclyDisclosed !== true) {
      changes.push({ kind: 'publiclyDisclosed', cve: cve.id, message: `${cve.id} is now marked publicly disclosed` });
    }
    if (cve.severity !== before.severity) {
      changes.push({
        kind: 'severityChanged',
        cve: cve.id,
        from: before.severity,
        to: cve.severity,
        message: `${cve.id} severity changed from ${before.severity ?? 'unrated'} to ${cve.severity ?? 'unrated'}`,
      });
    }
  }
  for (const cve of previous.cves) {
    if (!newCves.has(cve.id)) changes.push({ kind: 'cveRemoved', cve: cve.id, message: `${cve.id} is no longer in the release` });
  }
  const oldUpdates = new Map(previous.updates.map((update) => [update.id, update]));
  for (const update of current.updates) {
    const label = update.kb ? `KB${update.kb}` : update.name;
    const before = oldUpdates.get(update.id);
    if (!before) {
      changes.push({ kind: 'updateAdded', update: update.id, message: `${label} was added` });
      continue;
    }
    const knownBefore = new Set(before.knownIssues.map((issue) => issue.kb));
    for (const issue of update.knownIssues) {
      if (!knownBefore.has(issue.kb)) {
        changes.push({
          kind: 'knownIssueAdded',
          update: update.id,
          kb: issue.kb,
          url: issue.url,
          message: `${label} now lists known issues (KB${issue.kb})`,
        });
      }
    }
    if (update.restartRequired !== before.restartRequired) {
      changes.push({
        kind: 'restartChanged',
        update: update.id,
        from: before.restartRequired,
        to: update.restartRequired,
        message: `${label} restart required changed from ${before.restartRequired} to ${update.restartRequired}`,
      });
    }
  }
  return changes;
}

/** The release's current revision number, e.g. '1.2'. */
export function latestRevision(release: Release): string {
  // MSRC's revision history is not in date order; the highest number is the current one.
  const numbers = release.revisions.map((r) => r.number).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  return numbers.at(-1) ?? '1.0';
}
