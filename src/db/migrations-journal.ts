/** Where the migrations are and the order drizzle applies them in (migrations/meta/_journal.json). */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** Resolved from this module, not the working directory, so `patchbay migrate` works from anywhere. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface JournalEntry {
  tag: string;
  when: number;
}

export async function readJournal(folder: string): Promise<JournalEntry[]> {
  const text = await readFile(`${folder}/meta/_journal.json`, 'utf8');
  const journal = JSON.parse(text) as { entries: JournalEntry[] };
  return journal.entries;
}
