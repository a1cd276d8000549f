/**
 * May the sandbox use this database? It writes a made-up release, fake Teams conversations and audit rows, and
 * its page acts as anyone in the directory: on a real installation's database that turns a click into a real
 * decision by a real engineer. So it runs only on a database it claimed while it was empty, and never on one that
 * has since carried real chat.
 */
import type { Database } from '../db/client.ts';
import { claimForSandbox, databaseOwner } from '../db/sandbox-repo.ts';

export type SandboxVerdict = { ok: true } | { ok: false; why: string };

/** Claims an empty database for the sandbox; refuses one with history the sandbox did not write. */
export async function checkSandboxDatabase(database: Database, now: Date): Promise<SandboxVerdict> {
  const found = await databaseOwner(database.db);
  if (found.owner === 'other') {
    const why = found.wentLive ? 'this database has run with real Slack or Teams credentials' : `this database has history the sandbox did not write (${found.history})`;
    return { ok: false, why };
  }
  if (found.owner === 'empty' || !found.claimed) await claimForSandbox(database.db, now);
  return { ok: true };
}
