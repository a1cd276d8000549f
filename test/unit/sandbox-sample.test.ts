import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../../src/adapters/inventory/parse.ts';
import { parseKevCatalog } from '../../src/adapters/kev/catalog.ts';
import { monthlyReleases } from '../../src/adapters/msrc/client.ts';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import { renderDigestBlocks } from '../../src/chat/slack/digest-blocks.ts';
import { CARD_MAX_BYTES, renderDigestCard } from '../../src/chat/teams/digest-card.ts';
import { patchTuesday } from '../../src/domain/calendar.ts';
import { buildDigest, type Digest } from '../../src/domain/digest.ts';
import type { Inventory } from '../../src/domain/inventory.ts';
import { diffReleases, releaseDay, type Release } from '../../src/domain/release.ts';
import { renderDigestText } from '../../src/render/digest-text.ts';
import {
  SAMPLE_CONFLICT_SOFTWARE,
  SAMPLE_MAX_REVISION,
  sampleCvrf,
  sampleFacts,
  sampleKev,
  sampleRevisionAt,
  sampleRevisions,
  sampleUpdatesIndex,
} from '../../src/sandbox/sample-release.ts';
import { checkMessage } from '../support/block-kit-limits.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const inventoryFile = path.resolve(here, '../../examples/sandbox-inventory.yaml');

function sampleInventory(): Inventory {
  const parsed = parseInventory(readFileSync(inventoryFile, 'utf8'), inventoryFile);
  if (!parsed.ok) throw new Error(`sandbox inventory does not parse: ${JSON.stringify(parsed.problems)}`);
  return parsed.inventory;
}

/** Through text, as the watcher and `patchbay digest` read it. */
function release(month: string, revision = 1): Release {
  return parseCvrf(JSON.stringify(sampleCvrf(month, { revision })), `sample ${month}`);
}

function digestOf(month: string, revision = 1): Digest {
  const kev = parseKevCatalog(JSON.stringify(sampleKev(month, { revision })), 'sample KEV');
  const now = sampleFacts(month).patchTuesday.plus({ days: 1 });
  return buildDigest({ release: release(month, revision), kev, inventory: sampleInventory(), now });
}

const line = (digest: Digest, kb: string) => [...digest.fleet.groups.flatMap((g) => g.lines), ...digest.fleet.notInFleet].find((l) => l.kb === kb);

describe('the sandbox inventory', () => {
  it('parses, with 4 clients in distinct zones, pilots at every location, and a user on every desktop', () => {
    const inventory = sampleInventory();
    const clients = inventory.clients;
    expect(clients.map((c) => c.timezone)).toEqual(['America/Chicago', 'Europe/London', 'America/Phoenix', 'Pacific/Auckland']);
    const devices = [...inventory.msp.devices, ...clients.flatMap((c) => c.locations.flatMap((l) => l.devices))];
    expect(devices.length).toBeGreaterThanOrEqual(30);
    expect(devices.length).toBeLessThanOrEqual(45);
    for (const location of clients.flatMap((c) => c.locations)) {
      const pilots = location.devices.filter((d) => d.ring === 'pilot').length;
      expect(pilots, location.id).toBeGreaterThanOrEqual(1);
      expect(pilots, location.id).toBeLessThanOrEqual(2);
    }
    for (const device of devices.filter((d) => d.class !== 'server')) expect(device.user, device.name).toMatch(/@/);
    for (const client of clients) {
      expect(client.settings?.teamsTenantId, client.id).toBeDefined();
      for (const champion of client.champions) {
        expect(champion.email).toBeDefined();
        expect(champion.teamsId).toMatch(/^[0-9a-f-]{36}$/);
      }
    }
    expect(clients.find((c) => c.id === 'acme-dental')!.software).toContain(SAMPLE_CONFLICT_SOFTWARE);
  });
});

describe.each(['2026-Dec', '2027-Mar'])('the sample release %s', (month) => {
  const facts = sampleFacts(month);

  it('parses with the project parser, dated Patch Tuesday 10:00 Redmond', () => {
    const r = release(month);
    expect(r.id).toBe(month);
    expect(r.title).toBe(facts.title);
    const [year, monthNumber] = [facts.patchTuesday.year, facts.patchTuesday.month];
    const published = patchTuesday(year, monthNumber);
    expect(DateTime.fromISO(r.initialReleaseDate).toMillis()).toBe(published.toMillis());
    expect(published.setZone('America/Los_Angeles').hour).toBe(10);
    expect(releaseDay(r)).toBe(published.toISODate());
    expect(r.currentReleaseDate).toBe(r.initialReleaseDate);
    expect(r.cves).toHaveLength(facts.headlineCves.length + facts.edgeChromium.length);
    expect(r.updates.length).toBeGreaterThanOrEqual(8);
  });

  it('counts the headline, Critical, exploited and disclosed CVEs as intended, Edge apart', () => {
    const digest = digestOf(month);
    expect(digest.totals).toMatchObject({ cves: 16, critical: 2, exploited: 1, publiclyDisclosed: 1, kev: 1, addedAfterRelease: 0, updates: 8 });
    expect(digest.critical.map((c) => c.id)).toEqual([...facts.critical].sort());
    expect(digest.exploited.map((c) => c.id)).toEqual(facts.exploited);
    expect(digest.publiclyDisclosed.map((c) => c.id)).toEqual(facts.publiclyDisclosed);
    expect(digest.separate.edgeChromium.map((c) => c.id)).toEqual(facts.edgeChromium);
    expect(digest.separate.azureLinux).toEqual([]);
    expect(digest.separate.otherVendors).toEqual([]);
    expect(digest.headlineRule).toContain('1 Edge/Chromium');
    // The impact breakdown accounts for every headline CVE.
    expect(digest.impacts.reduce((n, i) => n + i.count, 0)).toBe(16);
  });

  it('matches every OS in the sample inventory, so the fleet lines are not empty', () => {
    const digest = digestOf(month);
    expect(digest.fleet.osMatches.length).toBeGreaterThanOrEqual(4);
    for (const match of digest.fleet.osMatches) expect(match, match.os).toMatchObject({ how: 'exact' });
    const inFleet = digest.fleet.groups.flatMap((g) => g.lines);
    for (const key of ['win10', 'win11_23h2', 'win11_24h2', 'server2019', 'server2022'] as const) {
      const l = inFleet.find((x) => x.kb === facts.kbs[key]);
      expect(l, key).toBeDefined();
      expect(l!.devices, key).toBeGreaterThan(0);
      expect(l!.restartRequired).toBe('Yes');
      expect(l!.supersedes).toEqual([sampleFacts(previousMonth(month)).kbs[key]]);
    }
    const windowsDevices = inFleet.filter((l) => l.family === 'Windows').reduce((n, l) => n + l.devices, 0);
    const inventory = sampleInventory();
    const allDevices = [...inventory.msp.devices, ...inventory.clients.flatMap((c) => c.locations.flatMap((l) => l.devices))];
    expect(windowsDevices).toBe(allDevices.length);
    expect(inFleet.find((l) => l.kb === facts.kbs.win11_23h2)!.clients).toEqual(['Acme Dental', 'Desert Family Law', 'Example IT', 'Harbour Accounting', 'Kiwi Physio']);

    // Office is in the fleet through a client's software list, and needs no restart.
    const office = inFleet.find((l) => l.family === 'Microsoft Office')!;
    expect(office.restartRequired).toBe('No');
    expect(office.conflicts).toEqual([expect.objectContaining({ reason: 'product', client: 'Harbour Accounting' })]);

    const notInFleet = digest.fleet.notInFleet;
    expect(notInFleet.map((l) => l.kb ?? l.id)).toEqual(expect.arrayContaining([facts.kbs.server2025, 'release-notes.developer-tools']));
    expect(notInFleet.find((l) => l.id === 'release-notes.developer-tools')!.restartRequired).toBe('Maybe');
  });

  it('flags the known issue naming a client’s software as a conflict', () => {
    const digest = digestOf(month);
    const l = line(digest, facts.conflictKb)!;
    expect(l.knownIssues).toHaveLength(1);
    expect(l.conflicts).toEqual([
      expect.objectContaining({ reason: 'known-issue', client: 'Acme Dental', software: SAMPLE_CONFLICT_SOFTWARE }),
    ]);
    expect(renderDigestText(digest)).toContain(`! conflict (Acme Dental: ${SAMPLE_CONFLICT_SOFTWARE})`);
  });

  it('has a KEV catalog that flags the exploited CVE, due three weeks after Patch Tuesday', () => {
    const digest = digestOf(month);
    const [zeroDay] = digest.kev;
    expect(digest.kev.map((c) => c.id)).toEqual(facts.exploited);
    const day = facts.patchTuesday.setZone('America/New_York');
    expect(zeroDay!.kev).toMatchObject({ dateAdded: day.toISODate(), dueDate: day.plus({ days: 21 }).toISODate(), overdue: false });
    const catalog = sampleKev(month);
    expect(catalog.count).toBe(catalog.vulnerabilities.length);
    expect(new Set(catalog.vulnerabilities.map((v) => v.cveID)).size).toBe(catalog.count);
  });

  it('renders within Block Kit limits and the Teams card budget', () => {
    const digest = digestOf(month);
    for (const interactive of [false, true]) {
      const messages = renderDigestBlocks(digest, { interactive });
      expect(messages.length).toBeGreaterThan(1);
      const problems = messages.map((m, i) => ({ i, check: checkMessage(m) })).filter(({ check }) => check.error !== undefined);
      expect(problems).toEqual([]);
      expect(JSON.stringify(messages)).toContain(facts.conflictKb);
    }
    expect(Buffer.byteLength(JSON.stringify(renderDigestCard(digest)))).toBeLessThan(CARD_MAX_BYTES);
  });

  it('is the same JSON for the same month and revision, and differs between months', () => {
    for (let revision = 1; revision <= SAMPLE_MAX_REVISION; revision++) {
      expect(JSON.stringify(sampleCvrf(month, { revision }))).toBe(JSON.stringify(sampleCvrf(month, { revision })));
      expect(JSON.stringify(sampleKev(month, { revision }))).toBe(JSON.stringify(sampleKev(month, { revision })));
    }
    expect(JSON.stringify(sampleUpdatesIndex([month]))).toBe(JSON.stringify(sampleUpdatesIndex([month])));
    const other = sampleFacts(previousMonth(month));
    expect(other.headlineCves.filter((id) => facts.headlineCves.includes(id))).toEqual([]);
    expect(Object.values(other.kbs).filter((kb) => Object.values(facts.kbs).includes(kb))).toEqual([]);
  });

  it('revises like MSRC does: a CVE turns exploited, then a CVE and a known issue are added', () => {
    const revisions = sampleRevisions(month);
    expect(revisions.map((r) => r.number)).toEqual([1, 2, 3]);
    expect(revisions[0]!.publishedAt.toMillis()).toBe(facts.patchTuesday.toMillis());
    expect(sampleRevisionAt(month, facts.patchTuesday.minus({ minutes: 1 }))).toBeUndefined();
    expect(sampleRevisionAt(month, facts.patchTuesday)).toBe(1);
    expect(sampleRevisionAt(month, revisions[1]!.publishedAt.plus({ hours: 1 }))).toBe(2);
    expect(sampleRevisionAt(month, revisions[2]!.publishedAt.plus({ days: 30 }))).toBe(3);

    const [r1, r2, r3] = [release(month, 1), release(month, 2), release(month, 3)];
    const second = sampleFacts(month, { revision: 2 });
    const newlyExploited = second.exploited.filter((id) => !facts.exploited.includes(id));
    expect(newlyExploited).toHaveLength(1);
    expect(diffReleases(r1, r2)).toEqual([expect.objectContaining({ kind: 'exploited', cve: newlyExploited[0] })]);
    expect(r2.currentReleaseDate > r1.currentReleaseDate).toBe(true);
    const d2 = digestOf(month, 2);
    expect(d2.totals).toMatchObject({ cves: 16, exploited: 2, kev: 2, changedAfterRelease: 1 });

    const third = sampleFacts(month, { revision: 3 });
    const added = third.headlineCves.filter((id) => !second.headlineCves.includes(id));
    expect(added).toHaveLength(1);
    const changes = diffReleases(r2, r3);
    expect(changes.map((c) => c.kind).sort()).toEqual(['cveAdded', 'knownIssueAdded']);
    expect(changes.find((c) => c.kind === 'cveAdded')).toMatchObject({ cve: added[0] });
    expect(changes.find((c) => c.kind === 'knownIssueAdded')).toMatchObject({ update: facts.kbs.server2019 });
    const d3 = digestOf(month, 3);
    // The CVE revision 3 adds came after release day: beside the headline, not in it.
    expect(d3.totals).toMatchObject({ cves: 16, exploited: 2, addedAfterRelease: 1 });
    expect(d3.addedAfterRelease.map((c) => c.id)).toEqual(added);
  });

  it('lists the month in an updates index the release watcher reads, once Patch Tuesday has come', () => {
    const base = 'http://127.0.0.1:4010/msrc/cvrf/v3.0/';
    const index = sampleUpdatesIndex([previousMonth(month), month], { baseUrl: base, revisionOf: (id) => (id === month ? 2 : 3) });
    const entry = index.value.find((e) => e.ID === month)!;
    expect(entry.CvrfUrl).toBe(`${base}cvrf/${month}`);
    expect(entry.CurrentReleaseDate).toBe(`${sampleCvrf(month, { revision: 2 }).DocumentTracking.CurrentReleaseDate}Z`);
    const json = JSON.parse(JSON.stringify(index)) as unknown;
    expect(monthlyReleases(json, facts.patchTuesday.minus({ minutes: 1 })).map((e) => e.id)).toEqual([previousMonth(month)]);
    expect(monthlyReleases(json, facts.patchTuesday).map((e) => e.id)).toEqual([previousMonth(month), month]);
  });
});

describe('sample release arguments', () => {
  it('refuses a month id or revision it cannot make', () => {
    expect(() => sampleCvrf('2026-13')).toThrow(RangeError);
    expect(() => sampleCvrf('December 2026')).toThrow(/release id/);
    expect(() => sampleCvrf('2026-Dec', { revision: 0 })).toThrow(RangeError);
    expect(() => sampleKev('2026-Dec', { revision: SAMPLE_MAX_REVISION + 1 })).toThrow(RangeError);
    // Month ids are read the way people type them, and written the way MSRC spells them.
    expect(sampleCvrf('2026-dec').DocumentTracking.Identification.ID.Value).toBe('2026-Dec');
  });

  it('crosses a year boundary for supersedence and the KEV history', () => {
    const jan = sampleFacts('2027-Jan');
    const digest = digestOf('2027-Jan');
    expect(line(digest, jan.kbs.win10)!.supersedes).toEqual([sampleFacts('2026-Dec').kbs.win10]);
    const cves = sampleKev('2027-Jan').vulnerabilities.map((v) => v.cveID);
    expect(cves).toEqual(expect.arrayContaining([...sampleFacts('2026-Nov', { revision: 3 }).exploited, ...sampleFacts('2026-Dec', { revision: 3 }).exploited]));
  });
});

function previousMonth(month: string): string {
  const ids = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const [year, name] = month.split('-') as [string, string];
  const i = ids.indexOf(name);
  return i === 0 ? `${Number(year) - 1}-Dec` : `${year}-${ids[i - 1]}`;
}
