/**
 * A decision's digest edit is drawn from the release model and the standings, not from what was stored when the
 * digest was posted: a stored post that no longer reads like the digest is still edited to the digest as the
 * renderer draws it, with the decision (and notes written since) under the update.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import { digestMessages } from '../../src/chat/slack/release-messages.ts';
import { rowsOf } from '../../src/db/client.ts';
import { loadDigestInput } from '../../src/db/release-repo.ts';
import { clients, devices, locations, msp } from '../../src/db/schema.ts';
import { addResearchNote, approve } from '../../src/use-cases/decisions.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { openTestDatabase, type TestDatabase } from '../support/db.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const release = parseCvrf(readFileSync(path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json'), 'utf8'));
const postedAt = new Date('2024-02-13T18:00:00Z');
const pat = { platform: 'cli' as const, id: 'pat' };

let database: TestDatabase;
let posted: ReturnType<typeof digestMessages>;

interface OutboxRow {
  key: string;
  subject: string;
  channel: string;
  payload: { text: string; blocks: unknown[] };
}
const edits = async (): Promise<OutboxRow[]> =>
  rowsOf<OutboxRow>(await database.db.execute(sql`select idempotency_key as key, subject, channel, payload from chat_outbox where action = 'update' order by id`));

beforeAll(async () => {
  database = await openTestDatabase();
  await database.db.insert(msp).values({ id: 1, name: 'Test MSP', timezone: 'America/Chicago', channel: 'C0PATCH', windows: {} });
  // A machine running what the fixture's KBs patch, so those updates are in the fleet and get buttons.
  await database.db.insert(clients).values({ id: 'acme-dental', name: 'Acme Dental', timezone: 'America/Chicago', windows: { desktop: 'daily 01:00-05:00' } });
  await database.db.insert(locations).values({ clientId: 'acme-dental', id: 'main', name: 'Main office' });
  await database.db.insert(devices).values({ name: 'ACME-WS1', clientId: 'acme-dental', locationId: 'main', class: 'desktop', ring: 'pilot', os: 'Windows 11 Version 23H2 for x64-based Systems' });
  await storeRelease(database.db, release, { fetchedAt: postedAt, now: postedAt });
  posted = digestMessages(release.id, await loadDigestInput(database.db, release.id, postedAt));
  // What was stored no longer says which update a message shows: an edit patched from it would find nothing.
  await database.db.execute(sql`update chat_outbox set payload = '{"text": "stored", "blocks": []}'::jsonb where subject like ${`digest:${release.id}%`}`);
});

afterAll(async () => {
  await database?.close();
});

describe('digest edits after a decision', () => {
  // An update the digest lists with buttons (Edge and other vendors' are listed apart, without).
  const shows = (m: (typeof posted)[number], id: string) => JSON.stringify(m.message.blocks).includes(`"actions:update:${id}"`);
  let key = '';
  const showing = () => posted.find((m) => shows(m, key))!;
  beforeAll(() => {
    key = release.updates.find((u) => posted.some((m) => shows(m, u.id)))!.id;
  });

  it('redraws the message showing the approved update from the model, with the approval under it', async () => {
    const at = new Date('2024-02-13T20:00:00Z');
    expect(await approve({ db: database.db, now: () => at }, { actor: pat, releaseId: release.id, updateKey: key })).toMatchObject({ outcome: 'applied' });
    const [edit, ...more] = await edits();
    expect(more).toEqual([]);
    expect(edit).toMatchObject({ subject: showing().subject, channel: 'C0PATCH' });
    // Keyed by the redraw (the release's mark: since when, which generation), not by one decision.
    expect(edit!.key).toMatch(new RegExp(`^refresh:${release.id}@\\d+#\\d+:\\d+$`));
    expect(edit!.payload.text).toBe(showing().message.text);
    const blocks = JSON.stringify(edit!.payload.blocks);
    expect(blocks).toContain('*Approved* by pat at 14:00 CST');
    // Apart from the status line, the edit is the message as the renderer draws it (jsonb keeps no key order).
    expect(JSON.parse(blocks.replace(/\\n:white_check_mark: \*Approved\*[^"]*/, ''))).toEqual(showing().message.blocks);
  });

  it('shows a note written after the digest was posted under its update, with the approval still there', async () => {
    const at = new Date('2024-02-13T21:00:00Z');
    const note = { actor: pat, releaseId: release.id, updateKey: key, text: 'Breaks the label printer', tags: ['conflict'], requestId: 'n1' };
    expect(await addResearchNote({ db: database.db, now: () => at }, note)).toMatchObject({ outcome: 'applied' });
    const edit = (await edits()).at(-1)!;
    expect(edit.subject).toBe(showing().subject);
    const blocks = JSON.stringify(edit.payload.blocks);
    expect(blocks).toContain('*Approved* by pat at 14:00 CST\\n> pat [conflict]: Breaks the label printer');
    expect(blocks).not.toContain('stored');
  });
});
