/**
 * Inventory OS names against MSRC product names. People write "Windows 11 23H2 x64" where MSRC writes
 * "Windows 11 Version 23H2 for x64-based Systems": an exact match first, then the same words once filler is
 * dropped, then (marked `partial`) every product that has all of the inventory's words, so "Windows Server
 * 2022" also covers its Server Core installation only when nothing matches more closely.
 */
import type { Product } from './release.ts';

const FILLER = new Set(['for', 'systems', 'system', 'version', 'edition', 'the', 'based', 'bit']);

export function normaliseProductName(name: string): string[] {
  return name
    .toLowerCase()
    .replace(/(\d+)-bit/g, '$1bit')
    .replace(/[^a-z0-9]+/g, ' ')
    .split(' ')
    .filter((word) => word !== '' && !FILLER.has(word));
}

export type MatchHow = 'exact' | 'normalised' | 'partial';

export interface OsMatch {
  os: string;
  how: MatchHow | undefined;
  productIds: string[];
}

export function matchOsToProducts(os: string, products: readonly Product[]): OsMatch {
  const exact = products.filter((p) => p.name === os || p.name.toLowerCase() === os.trim().toLowerCase());
  if (exact.length > 0) return { os, how: 'exact', productIds: exact.map((p) => p.id) };
  const wanted = normaliseProductName(os);
  if (wanted.length === 0) return { os, how: undefined, productIds: [] };
  const key = wanted.join(' ');
  const normalised = products.filter((p) => normaliseProductName(p.name).join(' ') === key);
  if (normalised.length > 0) return { os, how: 'normalised', productIds: normalised.map((p) => p.id) };
  const partial = products.filter((p) => {
    const words = new Set(normaliseProductName(p.name));
    return wanted.every((word) => words.has(word));
  });
  return { os, how: partial.length > 0 ? 'partial' : undefined, productIds: partial.map((p) => p.id) };
}

/** Does a piece of text (a product name, a known issue) mention a client's software? Case and punctuation aside. */
export function mentions(text: string, software: string): boolean {
  return mentionsIn(text)(software);
}

/**
 * `mentions(text, …)` with the text normalised once: a digest asks it of every client's software for every update
 * line, and normalising the same product names and known-issue texts again for each was most of a redraw's time.
 */
export function mentionsIn(text: string): (software: string) => boolean {
  const haystack = ` ${normaliseProductName(text).join(' ')} `;
  return (software) => {
    const needle = normaliseProductName(software).join(' ');
    return needle !== '' && haystack.includes(` ${needle} `);
  };
}
