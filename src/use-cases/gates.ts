/**
 * The gates of one release, moved by events in the caller's transaction: `applyGateEvents` loads the book (locked),
 * runs the domain's `transition` for each event in order, saves the changed gates with compare-and-set (a
 * ConflictError when another writer got there first: run it inside `withTransaction`, which tries again), and writes
 * what the effects ask for: audit rows and holds, and the engineers' thread messages (notices, through `notify`).
 */
import type { AppDatabase } from '../db/client.ts';
import { loadBook, loadBooks, persistRowEffects, saveGates, saveGatesOfReleases, type StoredBook } from '../db/rollout-repo.ts';
import { gatesTouched, transition, type Book, type RolloutEffect, type RolloutEvent, type RolloutTransition } from '../domain/rollout.ts';
import { autoConfirmed } from './thread-notices.ts';
import { gateEffectNotices } from '../chat/notices/gates.ts';
import { notify } from '../chat/notify.ts';

export interface GateOptions {
  /** The book as the caller already loaded it (locked, in this transaction), so it is not read twice. */
  book?: StoredBook;
  /** Effects the caller tells people about itself, in its own words (a champion's problem, with a reply button). */
  told?: ReadonlyArray<RolloutEffect['type']>;
}

export interface GatesApplied {
  /** One per event, in order; a refused or no-op event changes nothing and the next is applied to the same book. */
  results: RolloutTransition[];
  /** The book after the events. */
  book: Book;
  /** Every applied event's effects, in order. */
  effects: RolloutEffect[];
  /** Outbox rows written for the effects: hand them to `AfterCommit.outbox`. */
  outboxIds: number[];
}

export async function applyGateEvents(
  tx: AppDatabase,
  releaseId: string,
  events: readonly RolloutEvent[],
  now: Date,
  options: GateOptions = {},
): Promise<GatesApplied> {
  const before = options.book ?? (await loadBook(tx, releaseId, true, touchedBy(events)));
  const moved = moveBook(before, events, now);
  if (moved.changed.length === 0) return { ...withoutChanged(moved), outboxIds: [] };
  // Versions went up once per transition; the stored row is compared with the version read above.
  await saveGates(tx, before, moved.book, moved.changed, now);
  return { ...withoutChanged(moved), outboxIds: await writeEffects(tx, releaseId, moved.effects, now, options.told) };
}

/**
 * Each release's events applied to its gates as applyGateEvents applies them, in a fixed number of statements
 * whatever the number of releases (a batch of decisions approves updates of many releases at once): the gates read
 * and locked in one, the changed ones written in one or two.
 */
export async function applyGateEventsPerRelease(tx: AppDatabase, events: ReadonlyMap<string, readonly RolloutEvent[]>, now: Date): Promise<GatesApplied[]> {
  const books = await loadBooks(tx, [...events.keys()], true, touchedBy([...events.values()].flat()));
  const moved = [...events].map(([releaseId, list]) => ({ releaseId, before: books.get(releaseId)!, ...moveBook(books.get(releaseId)!, list, now) }));
  const changed = moved.filter((m) => m.changed.length > 0);
  await saveGatesOfReleases(tx, changed.map((m) => ({ before: m.before, after: m.book, changed: m.changed })), now);
  // Settled, not all: a release that fails must not let the transaction end while others still send statements.
  const written = await Promise.allSettled(moved.map(async (m) => (m.changed.length > 0 ? writeEffects(tx, m.releaseId, m.effects, now) : [])));
  const failed = written.find((w) => w.status === 'rejected');
  if (failed) throw failed.reason;
  return moved.map((m, i) => ({ ...withoutChanged(m), outboxIds: (written[i] as PromiseFulfilledResult<number[]>).value }));
}

interface Moved {
  results: RolloutTransition[];
  book: Book;
  changed: string[];
  effects: RolloutEffect[];
}

const withoutChanged = (m: Moved) => ({ results: m.results, book: m.book, effects: m.effects });

/** The domain's transitions, one event after another on the book: what changed, and the effects, in order. */
function moveBook(before: Book, events: readonly RolloutEvent[], now: Date): Moved {
  let book: Book = before;
  const changed = new Set<string>();
  const effects: RolloutEffect[] = [];
  const results: RolloutTransition[] = [];
  for (const event of events) {
    const result = transition(book, event, now);
    results.push(result);
    if (result.outcome !== 'applied') continue;
    book = result.book;
    for (const key of result.changed) changed.add(key);
    effects.push(...result.effects);
  }
  return { results, book, changed: [...changed], effects };
}

/** The effects' rows (audit, holds) and the engineers' messages; returns the outbox rows. */
async function writeEffects(tx: AppDatabase, releaseId: string, effects: readonly RolloutEffect[], now: Date, told: ReadonlyArray<RolloutEffect['type']> = []): Promise<number[]> {
  await persistRowEffects(tx, releaseId, effects, now);
  const toldTypes = new Set(told);
  return tellEngineers(tx, releaseId, effects.filter((e) => !toldTypes.has(e.type)), now);
}

/** The gates the events can touch (load and lock only those); undefined: all of the release's. */
function touchedBy(events: readonly RolloutEvent[]): string[] | undefined {
  const touched = events.map(gatesTouched);
  return touched.some((k) => k === undefined) ? undefined : [...new Set(touched.flat() as string[])];
}

/** The engineers' thread messages for a transition's effects, auto-confirmations' notes after the gates' own. */
async function tellEngineers(tx: AppDatabase, releaseId: string, effects: readonly RolloutEffect[], now: Date): Promise<number[]> {
  return notify(tx, [...gateEffectNotices(releaseId, effects), ...(await autoConfirmed(tx, releaseId, effects, now))], now);
}
