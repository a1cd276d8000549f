/**
 * After a decision, the digest messages that show the decided updates are edited. The decision's transaction only
 * marks the release's digest as waiting for a redraw (digest-refresh-repo); the redraw runs after the commit, outside
 * the release lock, and one redraw covers every decision committed on the release since the last one: a burst of
 * clicks costs a few redraws per release, not one per click, and never holds a decision behind a render.
 *
 * Each edit is the message drawn again from the release model as it was posted plus the standings as they now are
 * (the `digest_changed` notice, src/chat/notices/digest.ts), never a patch of what was stored or last sent, so the
 * last redraw shows the latest state whatever happened to the ones before. Nothing is lost to a race: a decision
 * committed while a redraw reads marks the release again (a newer `gen`), so that redraw leaves the mark and the
 * decision's own after-commit request runs another pass; a mark left by a crash is found by the next pass.
 */
import { standingOf, type ReleaseDecisionState } from '../domain/approval.ts';
import { buildDigest } from '../domain/digest.ts';
import type { AppDatabase } from '../db/client.ts';
import { claimDigestRedraw, clearDigestDirty, dirtyDigests, markDigestDirty, markDigestsDirty, type DirtyDigest } from '../db/digest-refresh-repo.ts';
import { loadDecisionState } from '../db/decisions-repo.ts';
import { loadKevIndex } from '../db/kev-repo.ts';
import { listNotes, type StoredNote } from '../db/notes-repo.ts';
import { digestPosts, loadDigestFleet, loadDigestInput, type DigestShared } from '../db/release-repo.ts';
import { loadAudiences, type Audiences } from '../chat/audiences.ts';
import type { DigestChanged } from '../chat/notices/digest.ts';
import { notify } from '../chat/notify.ts';
import { subjects } from '../chat/subjects.ts';
import { withTransaction, type UseCaseContext } from './transaction.ts';

/** The MSP's zone (kept under its old name for the use-cases that ask it here). */
export { mspTimezone as mspZone } from '../db/msp-repo.ts';

/**
 * The notice that edits the release's digest messages showing `keys` (null = the release as a whole, which every
 * update's line reflects); undefined when no digest was posted.
 */
export async function digestChanged(
  tx: AppDatabase,
  state: ReleaseDecisionState,
  keys: ReadonlyArray<string | null>,
  now: Date,
  cause: string,
  shared: DigestShared = {},
): Promise<DigestChanged | undefined> {
  const releaseId = state.releaseId;
  const posted = await digestPosts(tx, subjects.digest(releaseId));
  if (posted.length === 0) return undefined;
  // The digest's messages are queued in one transaction, so they share one time: the notes written by then are in
  // their text (drawn as the digest was then), later ones are shown under their update.
  const postedAt = posted[0]!.postedAt.getTime();
  const notes = await listNotes(tx, releaseId);
  const isLater = (n: StoredNote) => new Date(n.createdAt).getTime() > postedAt;
  const input = await loadDigestInput(tx, releaseId, posted[0]!.postedAt, { ...shared, notes });
  const digest = buildDigest({ ...input, notes: notes.filter((n) => !isLater(n)) });
  const updates = Object.fromEntries(
    Object.keys(state.updates).map((key) => {
      const later = notes.filter((n) => n.updateKey === key && isLater(n)).map((n) => ({ author: n.author, text: n.text, tags: n.tags }));
      return [key, { standing: standingOf(state, key), notes: later }];
    }),
  );
  return {
    kind: 'digest_changed',
    releaseId,
    cause,
    changed: keys,
    digest,
    posted: posted.map((p) => ({ outboxId: p.outboxId, channel: p.channel, subject: p.subject })),
    release: standingOf(state, null),
    updates,
    at: now.toISOString(),
  };
}

/** Marks the release's digest for a redraw of the messages showing `keys`, in the deciding transaction. */
export async function requestDigestRefresh(tx: AppDatabase, releaseId: string, keys: ReadonlyArray<string | null>, now: Date): Promise<void> {
  await markDigestDirty(tx, releaseId, keys, now);
}

/** The same for several releases (each named once) in one statement: a batch of decisions marks all of its releases. */
export async function requestDigestRefreshes(tx: AppDatabase, marks: ReadonlyArray<{ releaseId: string; keys: ReadonlyArray<string | null> }>, now: Date): Promise<void> {
  await markDigestsDirty(tx, marks, now);
}

/** What a pass reads once for every digest it redraws. */
interface PassShared {
  digest: DigestShared;
  audiences: Audiences;
}

/** Redraws one release's digest if it is still marked; clears the mark unless a decision marked it again meanwhile. */
async function redraw(ctx: UseCaseContext, releaseId: string, shared: PassShared): Promise<void> {
  const now = ctx.now();
  await withTransaction(ctx, async (tx, after) => {
    const mark = await claimDigestRedraw(tx, releaseId);
    if (!mark) return;
    const loaded = await loadDecisionState(tx, releaseId, { lock: false });
    const notice = loaded ? await digestChanged(tx, loaded.state, mark.keys, now, redrawCause(mark), shared.digest) : undefined;
    if (notice) after.outbox(await notify(tx, [notice], now, shared.audiences));
    await clearDigestDirty(tx, mark);
  });
}

/** Names one redraw (its outbox keys carry it): the mark's start and generation are never drawn twice. */
const redrawCause = (mark: DirtyDigest) => `${mark.releaseId}@${mark.since}#${mark.gen}`;

/** One pass: every marked digest, one transaction each, the fleet, KEV catalog and audiences read once. */
async function redrawPass(ctx: UseCaseContext): Promise<void> {
  const marked = await dirtyDigests(ctx.db);
  if (marked.length === 0) return;
  const [kev, fleet, audiences] = await Promise.all([loadKevIndex(ctx.db), loadDigestFleet(ctx.db), loadAudiences(ctx.db)]);
  for (const { releaseId } of marked) await redraw(ctx, releaseId, { digest: { kev, fleet }, audiences });
}

/**
 * A pass waits until requests have been quiet this long (a burst of clicks is drawn once, after it, not while its
 * decisions still compete with the redraws for the pool and the event loop), but never longer than MAX_WAIT_MS after
 * the first request it serves: a steady stream of decisions still sees the digest follow within about a second.
 */
const QUIET_MS = 100;
const MAX_WAIT_MS = 1000;

/** The pass that has not started reading yet: every request made until it starts is served by it. */
interface NextPass {
  promise: Promise<void>;
  first: number;
  last: number;
}

/** Per database: the pass running, and the one waiting to start (which every request made meanwhile shares). */
interface Passes {
  running?: Promise<void> | undefined;
  next?: NextPass | undefined;
}
const passesByDb = new WeakMap<AppDatabase, Passes>();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function quietFor(next: NextPass): Promise<void> {
  for (;;) {
    const wait = Math.min(next.last + QUIET_MS, next.first + MAX_WAIT_MS) - Date.now();
    if (wait <= 0) return;
    await sleep(wait);
  }
}

/**
 * Redraws every digest marked so far; resolves once a pass that started after this call has finished. A request
 * joins the pass waiting to start if there is one (its decision committed before that pass reads the marks), else
 * queues one behind the running pass (which may have read before this decision committed): however many decisions
 * arrive meanwhile, one more pass covers them all.
 */
export function refreshDigests(ctx: UseCaseContext): Promise<void> {
  let passes = passesByDb.get(ctx.db);
  if (!passes) passesByDb.set(ctx.db, (passes = {}));
  const p = passes;
  const now = Date.now();
  if (p.next) {
    p.next.last = now;
    return p.next.promise;
  }
  const next: NextPass = { promise: Promise.resolve(), first: now, last: now };
  next.promise = (async () => {
    await p.running?.catch(() => undefined);
    await quietFor(next);
    // From here on a request needs a pass of its own: this one may read the marks before its decision commits.
    p.next = undefined;
    const running = redrawPass(ctx);
    p.running = running;
    try {
      await running;
    } finally {
      if (p.running === running) p.running = undefined;
    }
  })();
  p.next = next;
  return next.promise;
}
