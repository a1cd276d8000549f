/**
 * What a client's Teams conversations are told, derived from Postgres on a tick: the sign-off card once the
 * pilot awaits its champions, the plan once broad is scheduled, each window's summary (their devices only). The
 * outbox key names the message and the conversation, so a tick that finds nothing new queues nothing and two
 * schedulers never post twice; a conversation linked late still gets what is current.
 *
 * Why a tick and not the gate's own transaction: the gates' thread messages (src/use-cases/gates.ts, `gateNotices`)
 * could queue these there, in applyGateEvents' transaction. Until then this lags by one tick.
 */
import type { AppDatabase } from '../db/client.ts';
import { championConversationsByClient, clientNamesAndZones, gatesWithChampionNews, type ChampionNewsGate } from '../db/audience-repo.ts';
import { withUnqueuedKeys } from '../db/outbox-repo.ts';
import { recentWindows, windowTallies } from '../db/rollout-repo.ts';
import { reportFor, windowSubject } from '../domain/window-report.ts';
import { signoffRound } from '../domain/signoff-view.ts';
import { planPostKey, signoffPostKey } from '../chat/notices/pilot.ts';
import { windowSummaryKey } from '../chat/notices/client-chats.ts';
import { loadSignoff, signoffNotice } from '../use-cases/pilot.ts';
import { broadPlanNotice } from '../use-cases/audience.ts';
import { loadAudiences } from '../chat/audiences.ts';
import type { Notice } from '../chat/notices.ts';
import { notify } from '../chat/notify.ts';
import { OutboxNotifier } from './outbox.ts';
import type { JobContext, JobModule } from './context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';

export const TEAMS_QUEUE = 'teams-clients';


/** Queues whatever the client conversations have not been told yet; returns the new outbox row ids. */
export async function queueClientMessages(db: AppDatabase, now: Date): Promise<number[]> {
  // Clients a champion can be told in: a client reached only through its users' personal chats gets nothing here.
  const chats = await championConversationsByClient(db);
  if (chats.size === 0) return [];
  const messages = [...(await gateMessages(db, chats, now)), ...(await windowSummaries(db, chats, now))];
  if (messages.length === 0) return [];
  return db.transaction(async (tx) => {
    const audiences = await loadAudiences(tx);
    return notify(tx, messages, now, audiences);
  });
}

type Chats = ReadonlyMap<string, readonly string[]>;

/**
 * What is owed to some conversation of its client: those with a key not in the outbox yet. The tick runs every 15 s
 * for every client: what every conversation was told is left out before anything is built (a broad plan reads
 * the release's outcomes). The outbox keys still make each message once; this only saves building it again.
 */
function untold<T extends { clientId: string }>(db: AppDatabase, items: readonly T[], chats: Chats, keyOf: (item: T, channel: string) => string): Promise<T[]> {
  return withUnqueuedKeys(db, items, (item) => (chats.get(item.clientId) ?? []).map((channel) => keyOf(item, channel)));
}

/** The sign-off card of a pilot awaiting its champions, the plan of a broad ring scheduled or running. */
async function gateMessages(db: AppDatabase, chats: Chats, now: Date): Promise<Notice[]> {
  const gates = (await gatesWithChampionNews(db, now)).filter((g) => chats.has(g.clientId));
  const keyOf = (g: ChampionNewsGate, channel: string) =>
    g.ring === 'pilot' ? signoffPostKey(g.releaseId, g.clientId, channel, signoffRound(g.gate)) : planPostKey(g.releaseId, g.clientId, channel);
  const messages: Notice[] = [];
  for (const gate of await untold(db, gates, chats, keyOf)) {
    if (gate.ring === 'pilot') {
      const view = await loadSignoff(db, gate.releaseId, gate.clientId);
      if (view) messages.push(await signoffNotice(db, view, 'post', 'post'));
    } else {
      const plan = await broadPlanNotice(db, gate.releaseId, gate.clientId, now);
      if (plan) messages.push(plan);
    }
  }
  return messages;
}

/** Each closed window's summary, for the client whose machines it patched; only windows some conversation lacks are tallied. */
async function windowSummaries(db: AppDatabase, chats: Chats, now: Date): Promise<Notice[]> {
  const closed = (await recentWindows(db, now)).filter((w) => w.ended && chats.has(w.who)).map((w) => ({ ...w, clientId: w.who }));
  const owed = await untold(db, closed, chats, (w, channel) => windowSummaryKey(windowSubject(w.who, w.windowStart), channel));
  if (owed.length === 0) return [];
  const tallies = await windowTallies(db, now, owed.map(({ who, windowStart }) => ({ who, windowStart })));
  const clients = await clientNamesAndZones(db);
  const messages: Notice[] = [];
  for (const tally of tallies) {
    const summary = reportFor(tally, now).find((r) => r.type === 'summary');
    const client = clients.get(tally.who);
    if (!summary || !client) continue;
    messages.push({ kind: 'client_window_summary', windowSubject: summary.subject, tally, clientName: client.name, zone: client.timezone, conversations: chats.get(tally.who) ?? [] });
  }
  return messages;
}

export const teamsClients: JobModule = async (context: JobContext) => {
  if (!context.config.teams.appId || (!context.roles.has('worker') && !context.roles.has('scheduler'))) return { close: async () => {} };
  const queue = createQueue(context, TEAMS_QUEUE, { ...KEEP_FEW, attempts: 1 });
  if (context.roles.has('scheduler')) {
    await queue.upsertJobScheduler('teams-clients-tick', { every: context.pace?.tickMs ?? 15_000 }, { name: 'tick', opts: { ...KEEP_FEW, attempts: 1 } });
  }
  const notifier = new OutboxNotifier(context.redis, context.prefix);
  const workers = context.roles.has('worker')
    ? [
        createWorker(context, TEAMS_QUEUE, async () => {
          const ids = await queueClientMessages(context.database.db, context.now());
          await notifier.notify(ids);
          return { queued: ids.length };
        }, { concurrency: 1 }),
      ]
    : [];
  return {
    async close() {
      await closeAll(workers, [queue]);
      await notifier.close();
    },
  };
};
