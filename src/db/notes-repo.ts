/**
 * Engineers' research notes on an update. Text is stored exactly as typed (escaping is the renderer's job);
 * every version a note has had is kept in note_revisions (revision 1 is the text as first written), and a
 * deleted note is only marked, so the audit trail and the history still read. The Slack "Add note" modal and
 * its edit/delete actions call these.
 */
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type { ResearchNote } from '../domain/digest.ts';
import type { AppDatabase } from './client.ts';
import { auditLog, noteRevisions, researchNotes, updates } from './schema.ts';

/** Tags the digest and the pilot summaries act on; any other lower-case tag is allowed as a label. */
export const KNOWN_NOTE_TAGS = ['conflict', 'reboot-twice', 'extra-step', 'client-visible'] as const;
const TAG = /^[a-z0-9][a-z0-9-]{0,39}$/;
const MAX_BODY = 3000;

type Source = 'slack' | 'teams' | 'cli' | 'system';

export class NoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoteError';
  }
}

export interface StoredNote extends ResearchNote {
  id: number;
  updateKey: string;
  revision: number;
  createdAt: string;
}

export interface NoteRevision {
  revision: number;
  body: string;
  tags: string[];
  editedBy: string;
  editedAt: string;
}

/** Trimmed, lower-cased, de-duplicated; a tag that is not a short lower-case word is refused by name. */
export function normaliseTags(tags: readonly string[]): string[] {
  const out: string[] = [];
  const bad: string[] = [];
  for (const raw of tags) {
    const tag = raw.trim().toLowerCase();
    if (tag === '') continue;
    if (!TAG.test(tag)) bad.push(JSON.stringify(raw));
    else if (!out.includes(tag)) out.push(tag);
  }
  if (bad.length) {
    throw new NoteError(`tag ${bad.join(', ')} is not allowed: use ${KNOWN_NOTE_TAGS.join(', ')} or another short lower-case word (a-z, 0-9, -)`);
  }
  return out;
}

function checkBody(body: string): void {
  if (body.trim() === '') throw new NoteError('a note needs some text');
  if (body.length > MAX_BODY) throw new NoteError(`a note is at most ${MAX_BODY} characters (this one has ${body.length})`);
}

/** The update a note is about, by its key (`5034763`, `KB5034763`, or a slug such as `release-notes.developer-tools`). */
export async function findUpdateRow(db: AppDatabase, releaseId: string, key: string): Promise<{ id: number; updateKey: string } | undefined> {
  const trimmed = key.trim();
  for (const candidate of new Set([trimmed, trimmed.replace(/^KB/i, '')])) {
    const [row] = await db
      .select({ id: updates.id, updateKey: updates.updateKey })
      .from(updates)
      .where(and(eq(updates.releaseId, releaseId), eq(updates.updateKey, candidate)));
    if (row) return row;
  }
  return undefined;
}

export interface AddNoteInput {
  releaseId: string;
  updateKey: string;
  body: string;
  tags: readonly string[];
  author: string;
  source: Source;
  now: Date;
}

export async function addNote(db: AppDatabase, input: AddNoteInput): Promise<StoredNote> {
  checkBody(input.body);
  const tags = normaliseTags(input.tags);
  return db.transaction(async (tx) => {
    const update = await findUpdateRow(tx, input.releaseId, input.updateKey);
    if (!update) throw new NoteError(`${input.releaseId} has no update ${input.updateKey}`);
    const [note] = await tx
      .insert(researchNotes)
      .values({ updateId: update.id, body: input.body, tags, author: input.author, source: input.source, revision: 1, createdAt: input.now, updatedAt: input.now })
      .returning();
    await tx.insert(noteRevisions).values({ noteId: note!.id, revision: 1, body: input.body, tags, editedBy: input.author, editedAt: input.now });
    await audit(tx, input.now, input.author, input.source, 'note.add', note!.id, { releaseId: input.releaseId, updateKey: update.updateKey, tags });
    return toStored(note!, update.updateKey, update.updateKey);
  });
}

export interface EditNoteInput {
  noteId: number;
  body?: string;
  tags?: readonly string[];
  editor: string;
  source: Source;
  now: Date;
}

/** A new revision; the one before stays in note_revisions. Editing a deleted note is refused. */
export async function editNote(db: AppDatabase, input: EditNoteInput): Promise<StoredNote> {
  if (input.body !== undefined) checkBody(input.body);
  const tags = input.tags === undefined ? undefined : normaliseTags(input.tags);
  return db.transaction(async (tx) => {
    // Bumping the revision in the UPDATE itself serialises two concurrent edits: each gets its own number.
    const [note] = await tx
      .update(researchNotes)
      .set({
        ...(input.body !== undefined ? { body: input.body } : {}),
        ...(tags !== undefined ? { tags } : {}),
        revision: sql`${researchNotes.revision} + 1`,
        updatedAt: input.now,
      })
      .where(and(eq(researchNotes.id, input.noteId), isNull(researchNotes.deletedAt)))
      .returning();
    if (!note) throw new NoteError(`note ${input.noteId} does not exist or was deleted`);
    await tx.insert(noteRevisions).values({ noteId: note.id, revision: note.revision, body: note.body, tags: note.tags, editedBy: input.editor, editedAt: input.now });
    await audit(tx, input.now, input.editor, input.source, 'note.edit', note.id, { revision: note.revision, tags: note.tags });
    const [update] = await tx.select({ updateKey: updates.updateKey, kb: updates.kb }).from(updates).where(eq(updates.id, note.updateId));
    return toStored(note, update!.updateKey, update!.kb ?? update!.updateKey);
  });
}

/** Soft delete: the note leaves the digest; its revisions and the audit trail stay. Deleting twice is a no-op. */
export async function deleteNote(db: AppDatabase, input: { noteId: number; by: string; source: Source; now: Date }): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [note] = await tx
      .update(researchNotes)
      .set({ deletedAt: input.now, updatedAt: input.now })
      .where(and(eq(researchNotes.id, input.noteId), isNull(researchNotes.deletedAt)))
      .returning({ id: researchNotes.id });
    if (!note) return false;
    await audit(tx, input.now, input.by, input.source, 'note.delete', note.id, {});
    return true;
  });
}

/** The release's live notes, oldest first, in the digest's shape (plus id, key and revision). */
export async function listNotes(db: AppDatabase, releaseId: string): Promise<StoredNote[]> {
  const rows = await db
    .select({ note: researchNotes, updateKey: updates.updateKey, kb: updates.kb })
    .from(researchNotes)
    .innerJoin(updates, eq(updates.id, researchNotes.updateId))
    .where(and(eq(updates.releaseId, releaseId), isNull(researchNotes.deletedAt)))
    .orderBy(asc(researchNotes.createdAt), asc(researchNotes.id));
  return rows.map((row) => toStored(row.note, row.updateKey, row.kb ?? row.updateKey));
}

/** Every version of a note, first to last. */
export async function noteHistory(db: AppDatabase, noteId: number): Promise<NoteRevision[]> {
  const rows = await db.select().from(noteRevisions).where(eq(noteRevisions.noteId, noteId)).orderBy(asc(noteRevisions.revision));
  return rows.map((row) => ({ revision: row.revision, body: row.body, tags: row.tags, editedBy: row.editedBy, editedAt: row.editedAt.toISOString() }));
}

function toStored(note: typeof researchNotes.$inferSelect, updateKey: string, kb: string): StoredNote {
  return {
    id: note.id,
    updateKey,
    kb,
    text: note.body,
    tags: note.tags,
    author: note.author,
    // The time of the text shown: an edited note reads as of its last edit.
    at: note.updatedAt.toISOString(),
    revision: note.revision,
    createdAt: note.createdAt.toISOString(),
  };
}

async function audit(tx: AppDatabase, at: Date, actor: string, source: Source, action: string, noteId: number, detail: Record<string, unknown>) {
  await tx.insert(auditLog).values({ at, actor, action, subject: `note:${noteId}`, source, detail });
}
