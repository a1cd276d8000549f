/**
 * The digest as data for scripts (`patchbay digest --json`). The first keys are the contract the issue
 * names; the lists hold the CVEs the headline counts. Unknown values are `null`, never a guess.
 */
import type { Digest, DigestCve, DigestUpdateLine } from '../domain/digest.ts';

function cveJson(c: DigestCve) {
  return {
    id: c.id,
    title: c.title ?? null,
    severity: c.severity ?? null,
    impact: c.impacts[0] ?? null,
    cvssBaseScore: c.cvssBaseScore ?? null,
    exploited: c.exploited ?? null,
    publiclyDisclosed: c.publiclyDisclosed ?? null,
    exploitability: c.exploitability ?? null,
    assigningCna: c.assigningCna ?? null,
    kev: c.kev ? { dateAdded: c.kev.dateAdded, dueDate: c.kev.dueDate, overdue: c.kev.overdue, knownRansomwareCampaignUse: c.kev.knownRansomwareCampaignUse ?? null } : null,
    addedAfterRelease: c.addedAfterRelease,
    changedAfterRelease: c.changedAfterRelease.map((r) => ({ number: r.number, date: r.date, description: r.description ?? null })),
  };
}

function updateJson(line: DigestUpdateLine, inFleet: boolean | null) {
  return {
    kb: line.kb ?? null,
    id: line.id,
    name: line.name,
    family: line.family,
    severity: line.severity ?? null,
    cves: line.cves,
    exploited: line.exploited,
    restartRequired: line.restartRequired,
    knownIssues: line.knownIssues.map((k) => ({ kb: k.kb, url: k.url ?? null })),
    supersedes: line.supersedes,
    subTypes: line.subTypes,
    inFleet,
    devices: line.devices,
    clients: line.clients,
    fleetProducts: line.fleetProducts,
    products: line.products,
    conflicts: line.conflicts.map((c) => ({ reason: c.reason, client: c.client ?? null, software: c.software ?? null, detail: c.detail })),
    notes: line.notes,
    cveIds: line.cveIds,
  };
}

export function digestToJson(digest: Digest) {
  const inFleet = digest.fleet.groups.flatMap((g) => g.lines);
  const ids = (list: DigestCve[]) => list.map((c) => c.id);
  return {
    month: digest.month,
    totals: digest.totals,
    critical: ids(digest.critical),
    exploited: ids(digest.exploited),
    publiclyDisclosed: ids(digest.publiclyDisclosed),
    updates: [
      ...inFleet.map((line) => updateJson(line, digest.fleet.hasInventory ? true : null)),
      ...digest.fleet.notInFleet.map((line) => updateJson(line, false)),
    ],
    separate: {
      edgeChromium: digest.separate.edgeChromium.length,
      azureLinux: digest.separate.azureLinux.length,
      otherVendors: digest.separate.otherVendors.length,
    },
    headlineRule: digest.headlineRule,
    title: digest.title ?? null,
    releaseDay: digest.releaseDay,
    revisionDate: digest.revisionDate,
    generatedAt: digest.generatedAt,
    kev: digest.kev.map(cveJson),
    kevCatalog: digest.kevCatalog ?? null,
    addedAfterRelease: ids(digest.addedAfterRelease),
    impacts: digest.impacts,
    cves: {
      critical: digest.critical.map(cveJson),
      exploited: digest.exploited.map(cveJson),
      publiclyDisclosed: digest.publiclyDisclosed.map(cveJson),
      addedAfterRelease: digest.addedAfterRelease.map(cveJson),
    },
    separateCves: {
      edgeChromium: digest.separate.edgeChromium.map(cveJson),
      azureLinux: digest.separate.azureLinux.map(cveJson),
      otherVendors: digest.separate.otherVendors.map(cveJson),
    },
    fleet: { hasInventory: digest.fleet.hasInventory, osMatches: digest.fleet.osMatches },
    unattachedNotes: digest.unattachedNotes,
  };
}

export function renderDigestJson(digest: Digest): string {
  return `${JSON.stringify(digestToJson(digest), null, 2)}\n`;
}
