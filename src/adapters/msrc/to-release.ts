/**
 * CVRF v3 JSON -> the domain's Release. Validation (shape, with paths) happens first; the mapping then only
 * has to decide meaning: which remediation is a KB, which severity applies to which update, what is unknown.
 */
import { createHash } from 'node:crypto';
import { DateTime } from 'luxon';
import { cvrfDocumentSchema, type CvrfBranch, type CvrfDocument, type CvrfVulnerability } from './cvrf-schema.ts';
import { DocumentError, formatIssues, parseJsonText } from './json-text.ts';
import {
  combineRestart,
  isSeverity,
  parseExploitStatus,
  worseSeverity,
  type Cve,
  type KnownIssue,
  type Product,
  type Release,
  type RestartRequired,
  type Revision,
  type Severity,
  type Update,
} from '../../domain/release.ts';

const NOTE_PRODUCT_TAG = 7;
const NOTE_ASSIGNING_CNA = 8;
const STATUS_KNOWN_AFFECTED = 3;
const THREAT_IMPACT = 0;
const THREAT_EXPLOIT_STATUS = 1;
const THREAT_SEVERITY = 3;
const REMEDIATION_VENDOR_FIX = 2;
const REMEDIATION_KNOWN_ISSUE = 5;

/** Reads a CVRF document's text; throws DocumentError naming what is wrong and where. */
export function parseCvrf(text: string, source = 'CVRF document'): Release {
  try {
    return cvrfToRelease(parseJsonText(text, source), source);
  } catch (error) {
    // Which document was refused: the same text refused again is no news (see the release watcher).
    if (error instanceof DocumentError) error.fingerprint ??= createHash('sha256').update(text).digest('hex');
    throw error;
  }
}

export function cvrfToRelease(json: unknown, source = 'CVRF document'): Release {
  const parsed = cvrfDocumentSchema.safeParse(json, { reportInput: true });
  if (!parsed.success) throw new DocumentError(source, formatIssues(parsed.error.issues));
  const problems: string[] = [];
  const release = mapDocument(parsed.data, problems);
  if (problems.length > 0) throw new DocumentError(source, problems.slice(0, 10));
  return release;
}

// A month repeats a handful of distinct timestamps thousands of times; parse each once.
const isoCache = new Map<string, string>();

/** CVRF dates carry no zone; MSRC means UTC. */
function isoUtc(value: string, where: string, problems: string[]): string {
  const cached = isoCache.get(value);
  if (cached !== undefined) return cached;
  const dt = DateTime.fromISO(value, { zone: 'utc' });
  if (!dt.isValid) {
    problems.push(`${where}: expected a date such as 2024-02-13T08:00:00, got ${JSON.stringify(value)}`);
    return value;
  }
  const iso = dt.toISO({ suppressMilliseconds: true }) ?? value;
  if (isoCache.size > 10_000) isoCache.clear();
  isoCache.set(value, iso);
  return iso;
}

function revisions(list: CvrfDocument['DocumentTracking']['RevisionHistory'], where: string, problems: string[]): Revision[] {
  return list
    .map((r, i) => ({ number: r.Number, date: isoUtc(r.Date, `${where}[${i}].Date`, problems), description: nonEmpty(r.Description?.Value) }))
    .sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : 0));
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

function slug(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'unnamed';
}

function productFamilies(branches: CvrfBranch[]): Map<string, string> {
  const families = new Map<string, string>();
  const walk = (node: CvrfBranch, family: string | undefined) => {
    // Type 1 is "Product Family" in CVRF's branch types.
    const here = node.Type === 1 && node.Name ? node.Name : family;
    if (node.ProductID && here) families.set(node.ProductID, here);
    for (const child of node.Items ?? []) walk(child, here);
  };
  for (const node of branches) walk(node, undefined);
  return families;
}

function restartOf(value: string | undefined): RestartRequired {
  return value === 'Yes' || value === 'No' || value === 'Maybe' ? value : 'unknown';
}

interface UpdateDraft {
  update: Update;
  restarts: RestartRequired[];
  products: Set<string>;
}

function mapDocument(doc: CvrfDocument, problems: string[]): Release {
  const families = productFamilies(doc.ProductTree.Branch);
  const products: Product[] = doc.ProductTree.FullProductName.map((p) => ({ id: p.ProductID, name: p.Value, family: families.get(p.ProductID) }));
  const productsById = new Map(products.map((p) => [p.id, p]));
  const drafts = new Map<string, UpdateDraft>();
  const cves: Cve[] = [];

  doc.Vulnerability.forEach((v, index) => {
    cves.push(mapVulnerability(v, `Vulnerability[${index}]`, productsById, drafts, problems));
  });

  const updates = [...drafts.values()].map(({ update, restarts, products: ids }) => {
    update.restartRequired = combineRestart(restarts);
    update.productIds = [...ids];
    update.family = mostCommon(update.productIds.map((id) => productsById.get(id)?.family));
    return update;
  });
  updates.sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));

  const tracking = doc.DocumentTracking;
  return {
    id: tracking.Identification.ID.Value,
    title: nonEmpty(doc.DocumentTitle?.Value),
    initialReleaseDate: isoUtc(tracking.InitialReleaseDate, 'DocumentTracking.InitialReleaseDate', problems),
    currentReleaseDate: isoUtc(tracking.CurrentReleaseDate, 'DocumentTracking.CurrentReleaseDate', problems),
    revisions: revisions(tracking.RevisionHistory, 'DocumentTracking.RevisionHistory', problems),
    products,
    updates,
    cves,
  };
}

function mostCommon(values: Array<string | undefined>): string | undefined {
  const counts = new Map<string, number>();
  for (const value of values) if (value !== undefined) counts.set(value, (counts.get(value) ?? 0) + 1);
  let best: string | undefined;
  let bestCount = 0;
  for (const [value, count] of counts) {
    if (count > bestCount) {
      best = value;
      bestCount = count;
    }
  }
  return best;
}

function mapVulnerability(
  v: CvrfVulnerability,
  where: string,
  productsById: ReadonlyMap<string, Product>,
  drafts: Map<string, UpdateDraft>,
  problems: string[],
): Cve {
  const productIds = [...new Set(v.ProductStatuses.filter((s) => s.Type === STATUS_KNOWN_AFFECTED).flatMap((s) => s.ProductID))];
  const threats = readThreats(v);
  const status = parseExploitStatus(threats.exploitText);
  let cvss: number | undefined;
  for (const set of v.CVSSScoreSets) {
    if (set.BaseScore !== undefined && (cvss === undefined || set.BaseScore > cvss)) cvss = set.BaseScore;
  }
  const history = revisions(v.RevisionHistory, `${where}.RevisionHistory`, problems);
  const updateIds = new Set<string>();
  const knownIssues: KnownIssueEntry[] = [];
  v.Remediations.forEach((r, i) => {
    const name = nonEmpty(r.Description?.Value);
    if (r.Type === REMEDIATION_KNOWN_ISSUE) {
      if (name !== undefined) knownIssues.push({ issue: { kb: name.replace(/^KB/i, ''), url: nonEmpty(r.URL), text: name }, productIds: r.ProductID });
      return;
    }
    if (r.Type !== REMEDIATION_VENDOR_FIX) return;
    if (name === undefined) {
      problems.push(`${where}.Remediations[${i}].Description.Value: expected the KB number or the fix's name, got nothing`);
      return;
    }
    updateIds.add(addFix(r, name, v.CVE, threats.severityOn(r.ProductID), productsById, drafts));
  });
  attachKnownIssues(knownIssues, updateIds, drafts);

  const tags = v.Notes.filter((n) => n.Type === NOTE_PRODUCT_TAG).map((n) => nonEmpty(n.Value)).filter((x): x is string => x !== undefined);
  const cna = v.Notes.find((n) => n.Type === NOTE_ASSIGNING_CNA);
  const families = [...new Set(productIds.map((id) => productsById.get(id)?.family).filter((x): x is string => x !== undefined))];
  return {
    id: v.CVE,
    title: nonEmpty(v.Title?.Value),
    severity: threats.severity,
    impacts: [...threats.impacts],
    cvssBaseScore: cvss,
    exploited: status.exploited,
    publiclyDisclosed: status.publiclyDisclosed,
    exploitability: { latestRelease: status.latestRelease, olderRelease: status.olderRelease },
    assigningCna: nonEmpty(cna?.Value),
    tags: [...new Set(tags)],
    productIds,
    families,
    updateIds: [...updateIds],
    firstPublished: history[0]?.date,
    lastRevised: history.at(-1)?.date,
    revisions: history,
  };
}

type CvrfRemediation = CvrfVulnerability['Remediations'][number];
interface KnownIssueEntry {
  issue: KnownIssue;
  productIds: string[];
}

/** A CVE's severity (overall and per product), its impacts and Microsoft's exploitability text. */
function readThreats(v: CvrfVulnerability) {
  let severity: Severity | undefined;
  const severityByProduct = new Map<string, Severity>();
  const impacts = new Set<string>();
  let exploitText: string | undefined;
  for (const threat of v.Threats) {
    const value = nonEmpty(threat.Description?.Value);
    if (threat.Type === THREAT_SEVERITY && isSeverity(value)) {
      severity = worseSeverity(severity, value);
      for (const id of threat.ProductID) severityByProduct.set(id, worseSeverity(severityByProduct.get(id), value) ?? value);
    } else if (threat.Type === THREAT_IMPACT && value !== undefined) {
      impacts.add(value);
    } else if (threat.Type === THREAT_EXPLOIT_STATUS && value !== undefined && exploitText === undefined) {
      exploitText = value;
    }
  }
  /** The worst severity on these products (a fix for some products only is as severe as it is there). */
  const severityOn = (ids: readonly string[]): Severity | undefined => {
    if (severityByProduct.size === 0) return severity;
    let worst: Severity | undefined;
    for (const id of ids) worst = worseSeverity(worst, severityByProduct.get(id));
    return worst ?? severity;
  };
  return { severity, impacts, exploitText, severityOn };
}

/** Folds one vendor fix into its update (one update per KB across the release's CVEs); returns the update's id. */
function addFix(r: CvrfRemediation, name: string, cveId: string, severity: Severity | undefined, productsById: ReadonlyMap<string, Product>, drafts: Map<string, UpdateDraft>): string {
  const kb = /^(?:KB)?(\d{6,8})$/i.exec(name)?.[1];
  const family = mostCommon(r.ProductID.map((id) => productsById.get(id)?.family));
  const id = kb ?? `${slug(name)}.${slug(family ?? 'other')}`;
  const draft = drafts.get(id) ?? newDraft(id, kb, name, family);
  drafts.set(id, draft);
  const update = draft.update;
  for (const pid of r.ProductID) draft.products.add(pid);
  draft.restarts.push(restartOf(nonEmpty(r.RestartRequired?.Value)));
  addOnce(update.subTypes, nonEmpty(r.SubType));
  addOnce(update.fixedBuilds, nonEmpty(r.FixedBuild));
  addOnce(update.urls, nonEmpty(r.URL));
  for (const superseded of (r.Supercedence ?? '').split(/[\s,;]+/)) addOnce(update.supersedes, nonEmpty(superseded.replace(/^KB/i, '')));
  const link = update.cves.find((c) => c.cveId === cveId);
  if (link) link.severity = worseSeverity(link.severity, severity);
  else update.cves.push({ cveId, severity });
  return id;
}

function newDraft(id: string, kb: string | undefined, name: string, family: string | undefined): UpdateDraft {
  return {
    update: { id, kb, name, family, productIds: [], subTypes: [], restartRequired: 'unknown', supersedes: [], fixedBuilds: [], urls: [], knownIssues: [], cves: [] },
    restarts: [],
    products: new Set(),
  };
}

/**
 * A known-issue entry names the KB whose article lists the issues; when that KB is not one of this CVE's fixes,
 * it belongs to the fixes for the same products.
 */
function attachKnownIssues(knownIssues: readonly KnownIssueEntry[], updateIds: ReadonlySet<string>, drafts: ReadonlyMap<string, UpdateDraft>): void {
  for (const { issue, productIds: issueProducts } of knownIssues) {
    const targets = drafts.has(issue.kb) && updateIds.has(issue.kb)
      ? [issue.kb]
      : [...updateIds].filter((uid) => issueProducts.some((pid) => drafts.get(uid)?.products.has(pid)));
    for (const uid of targets) {
      const update = drafts.get(uid)?.update;
      if (update && !update.knownIssues.some((k) => k.kb === issue.kb)) update.knownIssues.push(issue);
    }
  }
}

function addOnce(list: string[], value: string | undefined): void {
  if (value !== undefined && !list.includes(value)) list.push(value);
}
