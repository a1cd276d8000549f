/**
 * MSRC's CVRF v3 API: the updates index and one month's document, from MSRC_API_URL (http(s) or file://)
 * or from a single file for offline use.
 */
import { DateTime } from 'luxon';
import { z } from 'zod';
import { parseReleaseId } from '../../domain/calendar.ts';
import type { Release } from '../../domain/release.ts';
import { readConditional, readText, type FetchOptions, type Validators } from './http.ts';
import { DocumentError, formatIssues, parseJsonText } from './json-text.ts';
import { parseCvrf } from './to-release.ts';

const indexSchema = z.object({
  value: z.array(
    z.object({
      ID: z.string(),
      DocumentTitle: z.union([z.string(), z.object({ Value: z.string().optional() })]).optional(),
      InitialReleaseDate: z.string().optional(),
      CurrentReleaseDate: z.string().optional(),
      CvrfUrl: z.string().optional(),
    }),
  ),
});

export interface IndexEntry {
  id: string;
  title: string;
  /** When Microsoft publishes it (Patch Tuesday, 10:00 America/Los_Angeles). */
  patchTuesday: DateTime;
  currentReleaseDate: string | undefined;
  cvrfUrl: string | undefined;
}

const MONTHLY_TITLE = /^(January|February|March|April|May|June|July|August|September|October|November|December) (\d{4}) Security Updates$/;

/**
 * The monthly releases published by `now`. Other documents (Mariner release notes, "Early Security
 * Updates", out-of-band ones) are skipped, and so is a month whose Patch Tuesday has not come yet even when
 * MSRC has already listed it.
 */
export function monthlyReleases(indexJson: unknown, now: DateTime, source = 'updates index'): IndexEntry[] {
  const parsed = indexSchema.safeParse(indexJson, { reportInput: true });
  if (!parsed.success) throw new DocumentError(source, formatIssues(parsed.error.issues));
  const entries: IndexEntry[] = [];
  for (const entry of parsed.data.value) {
    const title = typeof entry.DocumentTitle === 'string' ? entry.DocumentTitle : entry.DocumentTitle?.Value;
    if (!title || !MONTHLY_TITLE.test(title.trim())) continue;
    const month = parseReleaseId(entry.ID);
    if (!month.ok) continue;
    if (month.value.publishedAt > now) continue;
    entries.push({
      id: month.value.id,
      title: title.trim(),
      patchTuesday: month.value.publishedAt,
      currentReleaseDate: entry.CurrentReleaseDate,
      cvrfUrl: entry.CvrfUrl,
    });
  }
  return entries.sort((a, b) => a.patchTuesday.toMillis() - b.patchTuesday.toMillis());
}

function joinUrl(base: string, path: string): string {
  return new URL(path, base.endsWith('/') ? base : `${base}/`).toString();
}

export type Changed<T> = { notModified: true; validators: Validators } | { notModified: false; value: T; validators: Validators };

export class MsrcClient {
  constructor(
    private readonly baseUrl: string,
    private readonly options: FetchOptions = {},
  ) {}

  async listReleases(now: DateTime): Promise<IndexEntry[]> {
    const url = joinUrl(this.baseUrl, 'updates');
    return monthlyReleases(parseJsonText(await readText(url, this.options), url), now, url);
  }

  /** The index, or "not modified" (nothing read, nothing parsed) when `validators` still match MSRC's answer. */
  async listReleasesIfChanged(now: DateTime, validators?: Validators): Promise<Changed<IndexEntry[]>> {
    const url = joinUrl(this.baseUrl, 'updates');
    const read = await readConditional(url, validators, this.options);
    if (read.notModified) return read;
    return { notModified: false, value: monthlyReleases(parseJsonText(read.text, url), now, url), validators: read.validators };
  }

  /** The month's document; throws FetchError or DocumentError, never returns a partial release. */
  async getRelease(id: string): Promise<Release> {
    const read = await this.getReleaseIfChanged(id);
    if (read.notModified) throw new Error('unreachable: an unconditional read answered 304');
    return read.value;
  }

  /** As getRelease; with `validators`, a 304 comes back as "not modified" and the document is neither read nor parsed. */
  async getReleaseIfChanged(id: string, validators?: Validators): Promise<Changed<Release>> {
    const month = parseReleaseId(id);
    if (!month.ok) throw new Error(month.error);
    const url = joinUrl(this.baseUrl, `cvrf/${month.value.id}`);
    const read = await readConditional(url, validators, this.options);
    if (read.notModified) return read;
    return { notModified: false, value: parseCvrf(read.text, url), validators: read.validators };
  }
}

/** A CVRF document from a path, file:// or http(s) URL. */
export async function readRelease(location: string, options: FetchOptions = {}): Promise<Release> {
  return parseCvrf(await readText(location, options), location);
}
