import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { addNote, deleteNote, editNote, listNotes, noteHistory, normaliseTags } from '../../src/db/notes-repo.ts';
import { loadDigestInput } from '../../src/db/release-repo.ts';
import { storeRelease } from '../../src/use-cases/store-release.ts';
import { buildDigest } from '../../src/domain/digest.ts';
import type { Release } from '../../src/domain/release.ts';
import { openTestDatabase, testBackend, type TestDatabase } from '../support/db.ts';

const T0 = new Date('2024-02-13T19:00:00Z');
const T1 = new Date('2024-02-13T20:00:00Z');
const T2 = new Date('2024-02-14T09:00:00Z');

/** A tiny release written in code: one KB and one fix without a KB number. */
function tinyRelease(): Release {
  const cve = (id: string) => ({
    id,
    title: `${id} title`,
    severity: 'Important' as const,
    impacts: ['Remote Code Execution'],
    cvssBaseScore: 8.8,
    exploited: false,
    publiclyDisclosed: false,
    exploitability: { latestRelease: undefined, olderRelease: undefined },
    assigningCna: 'Microsoft',
    tags: ['Windows Kernel'],
    productIds: ['11929'],
    families: ['Windows'],
    updateIds: [],
    firstPublished: '2024-02-13T08:00:00Z',
    lastRevised: '2024-02-13T08:00:00Z',
    revisions: [{ number: '1.0', date: '2024-02-13T08:00:00Z', description: 'Information published.' }],
  });
  const update = (id: string, kb: string | undefined, cveId: string) => ({
    id,
    kb,
    name: kb ?? 'Release Notes',
    family: 'Windows',
    productIds: ['11929'],
    subTypes: ['Security Update'],
    restartRequired: 'Yes' as const,
    supersedes: [],
    fixedBuilds: [],
    urls: [],
    knownIssues: [],
    cves: [{ cveId, severity: 'Important' as const }],
  });
  return {
    id: '2024-Feb',
    title: 'February 2024 Security Updates',
    initialReleaseDate: '2024-02-13T08:00:00Z',
    currentReleaseDate: '2024-02-13T08:00:00Z',
    revisions: [{ number: '1.0', date: '2024-02-13T08:00:00Z', description: undefined }],
    products: [{ id: '11929', name: 'Windows 11 Version 23H2 for x64-based Systems', family: 'Windows' }],
    updates: [update('5034765', '5034765', 'CVE-2024-00001'), update('release-notes.windows', undefined, 'CVE-2024-00002')],
    cves: [cve('CVE-2024-00001'), cve('CVE-2024-00002')],
  };
}

describe(`research notes (${testBackend()})`, () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await openTestDatabase();
    await storeRelease(database.db, tinyRelease(), { fetchedAt: T0, now: T0 });
  }, 60_000);
  afterAll(async () => database?.close());

  it('adds a note as typed, edits keep every revision, delete hides it but keeps history', async () => {
    const typed = 'Breaks <Dentrix> & the scanner driver — reboot *twice*';
    const note = await addNote(database.db, {
      releaseId: '2024-Feb',
      updateKey: 'KB5034765',
      body: typed,
      tags: ['Conflict', 'reboot-twice', 'dentrix'],
      author: 'U0ENG1',
      source: 'slack',
      now: T0,
    });
    expect(note).toMatchObject({ kb: '5034765', updateKey: '5034765', text: typed, tags: ['conflict', 'reboot-twice', 'dentrix'], revision: 1 });

    const edited = await editNote(database.db, { noteId: note.id, body: 'Fixed by the vendor patch 7.2', editor: 'U0ENG2', source: 'slack', now: T1 });
    expect(edited).toMatchObject({ text: 'Fixed by the vendor patch 7.2', tags: ['conflict', 'reboot-twice', 'dentrix'], revision: 2, at: T1.toISOString() });
    const retagged = await editNote(database.db, { noteId: note.id, tags: ['client-visible'], editor: 'U0ENG1', source: 'teams', now: T2 });
    expect(retagged).toMatchObject({ text: 'Fixed by the vendor patch 7.2', tags: ['client-visible'], revision: 3 });

    expect(await noteHistory(database.db, note.id)).toEqual([
      { revision: 1, body: typed, tags: ['conflict', 'reboot-twice', 'dentrix'], editedBy: 'U0ENG1', editedAt: T0.toISOString() },
      { revision: 2, body: 'Fixed by the vendor patch 7.2', tags: ['conflict', 'reboot-twice', 'dentrix'], editedBy: 'U0ENG2', editedAt: T1.toISOString() },
      { revision: 3, body: 'Fixed by the vendor patch 7.2', tags: ['client-visible'], editedBy: 'U0ENG1', editedAt: T2.toISOString() },
    ]);

    const slugNote = await addNote(database.db, {
      releaseId: '2024-Feb',
      updateKey: 'release-notes.windows',
      body: 'Read the release notes first',
      tags: ['extra-step'],
      author: 'U0ENG2',
      source: 'cli',
      now: T1,
    });
    expect((await listNotes(database.db, '2024-Feb')).map((n) => n.id)).toEqual([note.id, slugNote.id]);

    // The digest built from the database shows the notes on their updates.
    const digest = buildDigest(await loadDigestInput(database.db, '2024-Feb', T2));
    const lines = [...digest.fleet.groups.flatMap((g) => g.lines), ...digest.fleet.notInFleet];
    expect(lines.find((l) => l.id === '5034765')?.notes.map((n) => n.text)).toEqual(['Fixed by the vendor patch 7.2']);
    expect(lines.find((l) => l.id === 'release-notes.windows')?.notes.map((n) => n.tags)).toEqual([['extra-step']]);
    expect(digest.unattachedNotes).toEqual([]);

    expect(await deleteNote(database.db, { noteId: note.id, by: 'U0ENG1', source: 'slack', now: T2 })).toBe(true);
    expect(await deleteNote(database.db, { noteId: note.id, by: 'U0ENG1', source: 'slack', now: T2 })).toBe(false);
    expect((await listNotes(database.db, '2024-Feb')).map((n) => n.id)).toEqual([slugNote.id]);
    expect(await noteHistory(database.db, note.id)).toHaveLength(3);
    await expect(editNote(database.db, { noteId: note.id, body: 'x', editor: 'U0ENG1', source: 'slack', now: T2 })).rejects.toThrow(/deleted/);

    const audit = rowsOf<{ action: string; subject: string }>(
      await database.db.execute(sql`select action, subject from audit_log where action like 'note.%' order by id`),
    );
    expect(audit.map((row) => `${row.action} ${row.subject}`)).toEqual([
      `note.add note:${note.id}`,
      `note.edit note:${note.id}`,
      `note.edit note:${note.id}`,
      `note.add note:${slugNote.id}`,
      `note.delete note:${note.id}`,
    ]);
  });

  it('refuses bad input with a message that says what to fix, writing nothing', async () => {
    const before = rowsOf<{ n: string | number }>(await database.db.execute(sql`select count(*) as n from research_notes`))[0]!.n;
    const base = { releaseId: '2024-Feb', updateKey: '5034765', body: 'ok', tags: [], author: 'U1', source: 'slack' as const, now: T0 };
    await expect(addNote(database.db, { ...base, updateKey: 'KB0000000' })).rejects.toThrow('2024-Feb has no update KB0000000');
    await expect(addNote(database.db, { ...base, body: '   ' })).rejects.toThrow(/needs some text/);
    await expect(addNote(database.db, { ...base, tags: ['needs review!'] })).rejects.toThrow(/"needs review!" is not allowed/);
    await expect(editNote(database.db, { noteId: 999_999, body: 'x', editor: 'U1', source: 'slack', now: T0 })).rejects.toThrow(/note 999999 does not exist/);
    const after = rowsOf<{ n: string | number }>(await database.db.execute(sql`select count(*) as n from research_notes`))[0]!.n;
    expect(Number(after)).toBe(Number(before));
  });

  it('normalises tags: trimmed, lower-cased, repeated ones once', () => {
    expect(normaliseTags([' Conflict ', 'conflict', 'EXTRA-STEP', ''])).toEqual(['conflict', 'extra-step']);
    expect(() => normaliseTags(['a'.repeat(41)])).toThrow(/not allowed/);
  });
});
