/**
 * CISA's Known Exploited Vulnerabilities catalog (schema: cisagov/kev-data). Only what the digest needs is
 * kept, keyed by CVE id.
 */
import { z } from 'zod';
import type { KevEntry, KevIndex } from '../../domain/digest.ts';
import { readText, type FetchOptions } from '../msrc/http.ts';
import { DocumentError, formatIssues, parseJsonText } from '../msrc/json-text.ts';

const date = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, { message: 'expected a date such as 2024-02-13' });

const catalogSchema = z.object({
  catalogVersion: z.string(),
  dateReleased: z.string(),
  count: z.number().int().optional(),
  vulnerabilities: z.array(
    z.object({
      cveID: z.string().regex(/^CVE-\d{4}-\d{4,19}$/, { message: 'expected a CVE id such as CVE-2024-21412' }),
      vulnerabilityName: z.string(),
      dateAdded: date,
      dueDate: date,
      knownRansomwareCampaignUse: z.string().optional(),
    }),
  ),
});

export function parseKevCatalog(text: string, source = 'KEV catalog'): KevIndex {
  const parsed = catalogSchema.safeParse(parseJsonText(text, source), { reportInput: true });
  if (!parsed.success) throw new DocumentError(source, formatIssues(parsed.error.issues));
  const entries = new Map<string, KevEntry>();
  for (const v of parsed.data.vulnerabilities) {
    entries.set(v.cveID, {
      cveId: v.cveID,
      vulnerabilityName: v.vulnerabilityName,
      dateAdded: v.dateAdded,
      dueDate: v.dueDate,
      knownRansomwareCampaignUse: v.knownRansomwareCampaignUse === 'Known' ? 'Known' : v.knownRansomwareCampaignUse === 'Unknown' ? 'Unknown' : undefined,
    });
  }
  return { version: parsed.data.catalogVersion, dateReleased: parsed.data.dateReleased, entries };
}

/** From KEV_URL (http(s) or file://) or a file path. */
export async function readKevCatalog(location: string, options: FetchOptions = {}): Promise<KevIndex> {
  return parseKevCatalog(await readText(location, options), location);
}
