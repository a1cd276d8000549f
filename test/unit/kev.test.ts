import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseKevCatalog, readKevCatalog } from '../../src/adapters/kev/catalog.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const shared = path.resolve(here, '../../../shared/fixtures');
const catalogFile = path.join(shared, 'kev/known_exploited_vulnerabilities.json');
const hasShared = existsSync(catalogFile);
if (!hasShared) console.warn(`[kev] ${shared} is absent: the real catalog test is skipped`);

const small = {
  catalogVersion: '2024.02.14',
  dateReleased: '2024-02-14T17:00:00.000Z',
  count: 2,
  vulnerabilities: [
    { cveID: 'CVE-2024-21412', vendorProject: 'Microsoft', product: 'Windows', vulnerabilityName: 'Microsoft Windows Internet Shortcut Files SFB', dateAdded: '2024-02-13', shortDescription: '', requiredAction: '', dueDate: '2024-03-05', knownRansomwareCampaignUse: 'Known' },
    { cveID: 'CVE-2024-21351', vendorProject: 'Microsoft', product: 'Windows', vulnerabilityName: 'SmartScreen SFB', dateAdded: '2024-02-13', shortDescription: '', requiredAction: '', dueDate: '2024-03-05' },
  ],
};

describe('KEV catalog', () => {
  it('maps cveID to dates, ransomware use and name', () => {
    const kev = parseKevCatalog(JSON.stringify(small));
    expect(kev.version).toBe('2024.02.14');
    expect(kev.entries.get('CVE-2024-21412')).toEqual({
      cveId: 'CVE-2024-21412',
      vulnerabilityName: 'Microsoft Windows Internet Shortcut Files SFB',
      dateAdded: '2024-02-13',
      dueDate: '2024-03-05',
      knownRansomwareCampaignUse: 'Known',
    });
    expect(kev.entries.get('CVE-2024-21351')?.knownRansomwareCampaignUse).toBeUndefined();
  });

  it('names what is wrong and where', () => {
    const bad = structuredClone(small) as { vulnerabilities: Array<Record<string, unknown>> };
    bad.vulnerabilities[1]!.dueDate = '5 March';
    expect(() => parseKevCatalog(JSON.stringify(bad), 'kev.json')).toThrow('kev.json: vulnerabilities[1].dueDate: expected a date such as 2024-02-13');
    expect(() => parseKevCatalog('{"catalogVersion":', 'kev.json')).toThrow(/kev\.json: truncated JSON/);
  });

  it.skipIf(!hasShared)('reads the real catalog: 1404 entries, CVE-2024-21412 due 2024-03-05', async () => {
    const kev = await readKevCatalog(catalogFile);
    const raw = JSON.parse(readFileSync(catalogFile, 'utf8')) as { count: number };
    expect(kev.entries.size).toBe(raw.count);
    expect(kev.entries.size).toBe(1404);
    expect(kev.entries.get('CVE-2024-21412')?.dueDate).toBe('2024-03-05');
    expect(kev.entries.get('CVE-2024-21412')?.dateAdded).toBe('2024-02-13');
  });
});
