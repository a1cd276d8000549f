/**
 * The gates of one release, moved by events in the caller's transaction: `applyGateEvents` loads the book (locked),
 * runs the domain's `transition` for each event in order, saves the changed gates with compare-and-set (a
 * ConflictError when another writer got there first: run it inside `withTransaction`, which tries again), and writes
 * what the effects ask for: audit rows and holds, and the engineers' thread messages (notices, through `notify`).
 */
import type { AppDatabase } from '../db/client.ts';
import { loadBook, persistRowEffects, saveGates, type StoredBook } from '../db/rollout-repo.ts';
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
  if (changed.size === 0) return { results, book, effects, outboxIds: [] };
  // Versions went up once per transition; the stored row is compared with the version read above.
  await saveGates(tx, before, book, [...changed], now);
  await persistRowEffects(tx, releaseId, effects, now);
  const told = new Set(options.told ?? []);
  const outboxIds = await tellEngineers(tx, releaseId, effects.filter((e) => !told.has(e.type)), now);
  return { results, book, effects, outboxIds };
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
