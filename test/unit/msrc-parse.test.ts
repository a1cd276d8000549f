import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import { DocumentError } from '../../src/adapters/msrc/json-text.ts';
import { addedAfterRelease, classifyCve, parseExploitStatus, revisionsAfterRelease, type Release } from '../../src/domain/release.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const shared = path.resolve(repoRoot, '../shared/fixtures');
const hasShared = existsSync(path.join(shared, 'msrc/2024-Feb.json'));
if (!hasShared) console.warn(`[msrc-parse] ${shared} is absent: the real-month tests are skipped`);

const edgeCasesText = readFileSync(path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json'), 'utf8');

function errorOf(fn: () => unknown): DocumentError {
  try {
    fn();
  } catch (error) {
    if (error instanceof DocumentError) return error;
    throw error;
  }
  throw new Error('expected a DocumentError');
}

function buckets(release: Release) {
  const products = new Map(release.products.map((p) => [p.id, p]));
  const out: Record<string, string[]> = {};
  for (const cve of release.cves) (out[classifyCve(cve, products)] ??= []).push(cve.id);
  return out;
}

describe('CVRF edge cases (own fixture)', () => {
  const release = parseCvrf(edgeCasesText, 'edge-cases.json');
  const cve = (id: string) => release.cves.find((c) => c.id === id)!;
  const update = (id: string) => release.updates.find((u) => u.id === id)!;

  it('reads the document header with UTC dates', () => {
    expect(release.id).toBe('2024-Jun');
    expect(release.title).toBe('June 2024 Security Updates');
    expect(release.initialReleaseDate).toBe('2024-06-11T07:00:00Z');
  });

  it('takes the worst severity across products and the highest CVSS base score', () => {
    expect(cve('CVE-2024-90001').severity).toBe('Critical');
    expect(cve('CVE-2024-90001').cvssBaseScore).toBe(9.8);
    expect(cve('CVE-2024-90001').exploited).toBe(true);
    expect(cve('CVE-2024-90001').publiclyDisclosed).toBe(true);
    expect(cve('CVE-2024-90001').exploitability.latestRelease).toBe('Exploitation Detected');
  });

  it('keeps the severity per update: the Windows 11 KB is Important, the Server 2022 KB Critical', () => {
    expect(update('5099001').cves).toEqual([{ cveId: 'CVE-2024-90001', severity: 'Important' }]);
    expect(update('5099002').cves.find((c) => c.cveId === 'CVE-2024-90001')?.severity).toBe('Critical');
  });

  it('leaves what MSRC leaves out unknown: no title, DOS:N/A, no RestartRequired', () => {
    const mariner = cve('CVE-2024-90002');
    expect(mariner.title).toBeUndefined();
    expect(mariner.severity).toBeUndefined();
    expect(mariner.exploited).toBeUndefined();
    expect(mariner.publiclyDisclosed).toBeUndefined();
    expect(cve('CVE-2024-90005').exploited).toBeUndefined();
    expect(update('5099003').restartRequired).toBe('unknown');
    // One entry says No, another says nothing: the KB is not "No".
    expect(update('5099002').restartRequired).toBe('unknown');
    expect(update('5099001').restartRequired).toBe('Yes');
  });

  it('reads supersedence, fixed builds, sub types and known issues', () => {
    const kb = update('5099001');
    expect(kb.supersedes).toEqual(['5098001']);
    expect(kb.fixedBuilds).toEqual(['10.0.22631.9999']);
    expect(kb.subTypes).toEqual(['Security Update']);
    expect(kb.knownIssues).toEqual([{ kb: '5099001', url: 'https://support.microsoft.com/help/5099001', text: '5099001' }]);
    expect(kb.family).toBe('Windows');
  });

  it('names the assigning CNA and sorts each bucket apart from the headline', () => {
    expect(cve('CVE-2023-90006').assigningCna).toBe('MITRE');
    expect(buckets(release)).toEqual({
      headline: ['CVE-2024-90001', 'CVE-2024-90005', 'CVE-2023-90006'],
      azureLinux: ['CVE-2024-90002'],
      edgeChromium: ['CVE-2024-90003'],
      otherVendors: ['CVE-2024-90004'],
    });
  });

  it('marks a CVE first published after release day, and revisions after it', () => {
    expect(addedAfterRelease(cve('CVE-2024-90005'), release)).toBe(true);
    expect(addedAfterRelease(cve('CVE-2024-90001'), release)).toBe(false);
    // Mariner entries are stamped at UTC midnight, the evening before in Redmond: not "after".
    expect(addedAfterRelease(cve('CVE-2024-90002'), release)).toBe(false);
    expect(revisionsAfterRelease(cve('CVE-2023-90006'), release).map((r) => r.number)).toEqual(['1.1']);
  });
});

describe('exploit status strings', () => {
  it('parses every field and leaves missing ones unknown', () => {
    expect(parseExploitStatus('Publicly Disclosed:No;Exploited:Yes;Latest Software Release:Exploitation Detected;Older Software Release:Exploitation Less Likely;DOS:N/A')).toEqual({
      publiclyDisclosed: false,
      exploited: true,
      latestRelease: 'Exploitation Detected',
      olderRelease: 'Exploitation Less Likely',
    });
    expect(parseExploitStatus('DOS:N/A')).toEqual({ publiclyDisclosed: undefined, exploited: undefined, latestRelease: undefined, olderRelease: undefined });
    expect(parseExploitStatus(undefined).exploited).toBeUndefined();
  });
});

describe('bad documents say what is wrong and where', () => {
  const good = JSON.parse(edgeCasesText);

  it('names the path of a wrong type', () => {
    const doc = structuredClone(good);
    doc.Vulnerability[3].Threats = 'none';
    expect(errorOf(() => parseCvrf(JSON.stringify(doc), 'x.json')).message).toContain('Vulnerability[3].Threats: expected an array, got a string "none"');
  });

  it('names a missing release id and a missing vulnerability list', () => {
    const doc = structuredClone(good);
    delete doc.DocumentTracking.Identification;
    delete doc.Vulnerability;
    const problems = errorOf(() => parseCvrf(JSON.stringify(doc), 'x.json')).problems;
    expect(problems).toContain('DocumentTracking.Identification: expected an object, got nothing');
    expect(problems).toContain('Vulnerability: expected an array, got nothing');
  });

  it('refuses an invalid date and a remediation without a name', () => {
    const doc = structuredClone(good);
    doc.DocumentTracking.InitialReleaseDate = 'soon';
    delete doc.Vulnerability[0].Remediations[0].Description;
    const problems = errorOf(() => parseCvrf(JSON.stringify(doc), 'x.json')).problems;
    expect(problems.some((p) => p.startsWith('DocumentTracking.InitialReleaseDate: expected a date'))).toBe(true);
    expect(problems.some((p) => p.startsWith('Vulnerability[0].Remediations[0].Description.Value'))).toBe(true);
  });

  it('says a cut-short download is truncated', () => {
    const error = errorOf(() => parseCvrf(edgeCasesText.slice(0, 5000), 'cut.json'));
    expect(error.message).toMatch(/^cut\.json: truncated JSON/);
  });

  it('names where a document nests too deep, instead of overflowing the stack', () => {
    const nested = (depth: number) => {
      const doc = structuredClone(good);
      let node: Record<string, unknown> = { Type: 2, Name: 'leaf', ProductID: doc.ProductTree.FullProductName[0].ProductID };
      for (let i = 0; i < depth; i++) node = { Type: 0, Name: `level ${i}`, Items: [node] };
      doc.ProductTree.Branch = [node];
      return JSON.stringify(doc);
    };
    // Each level is two in JSON (the branch and its Items): far deeper than any real month (about 8), and still read.
    expect(parseCvrf(nested(25), 'deep-but-fine.json').id).toBe('2024-Jun');
    const error = errorOf(() => parseCvrf(nested(1000), 'deep.json'));
    expect(error.message).toBe("deep.json: ProductTree.Branch[0].Items[0].Items[0].Items…: nested more than 64 levels deep (MSRC's and CISA's documents nest about 8)");
  });

  it('says non-JSON is not JSON, with a line and column', () => {
    expect(errorOf(() => parseCvrf('<html>502 Bad Gateway</html>', 'page')).message).toMatch(/^page: not valid JSON at line 1 column 1/);
    expect(errorOf(() => parseCvrf('', 'empty')).message).toBe('empty: empty document (expected JSON)');
  });
});

describe.skipIf(!hasShared)('real months against the press', () => {
  const read = (month: string) => parseCvrf(readFileSync(path.join(shared, `msrc/${month}.json`), 'utf8'), month);

  it('2024-Feb: 73 in the headline, Edge and Mariner apart, KB5034763 as MSRC lists it', () => {
    const release = read('2024-Feb');
    const b = buckets(release);
    expect(release.cves).toHaveLength(99);
    expect(Math.abs(b.headline!.length - 73)).toBeLessThanOrEqual(1);
    expect(b.edgeChromium).toContain('CVE-2024-1283');
    expect(b.edgeChromium).toContain('CVE-2024-21399');
    expect(b.azureLinux).toContain('CVE-2014-0069');
    expect(b.headline).toContain('CVE-2023-50387');
    const kb = release.updates.find((u) => u.id === '5034763')!;
    expect(kb.restartRequired).toBe('Yes');
    expect(kb.supersedes).toContain('5034122');
    expect(kb.family).toBe('Windows');
    expect(kb.cves.map((c) => c.cveId)).toContain('CVE-2024-21412');
    expect(kb.knownIssues.map((k) => k.kb)).toContain('5034763');
    const exchange = release.cves.find((c) => c.id === 'CVE-2024-21410')!;
    expect(exchange.severity).toBe('Critical');
    expect(exchange.exploited).toBe(true);
    expect(exchange.firstPublished).toBe('2024-02-13T08:00:00Z');
    expect(exchange.lastRevised).toBe('2024-03-01T08:00:00Z');
  });

  it('2024-May: 61 ±1, CVE-2024-30060 published after release day', () => {
    const release = read('2024-May');
    const b = buckets(release);
    expect(release.cves).toHaveLength(180);
    expect(Math.abs(b.headline!.length - 61)).toBeLessThanOrEqual(1);
    expect(b.azureLinux!.length).toBeGreaterThan(90);
    const late = release.cves.filter((c) => b.headline!.includes(c.id) && addedAfterRelease(c, release)).map((c) => c.id);
    expect(late).toEqual(['CVE-2024-30060']);
    const sharepoint = release.cves.find((c) => c.id === 'CVE-2024-30044')!;
    expect(sharepoint.severity).toBe('Critical');
    expect(sharepoint.updateIds.sort()).toEqual(['5002596', '5002598', '5002599']);
    expect(release.updates.find((u) => u.id === '5037848')?.subTypes).toEqual(['SecurityHotpatchUpdate']);
  });
});
