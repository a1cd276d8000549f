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
import { championConversations, clientNamesAndZones, clientsWithChampionChats, gatesWithChampionNews } from '../db/audience-repo.ts';
import { windowTallies } from '../db/rollout-repo.ts';
import { reportFor } from '../domain/window-report.ts';
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
  const linked = await clientsWithChampionChats(db);
  if (linked.size === 0) return [];
  const messages = [...(await gateMessages(db, linked, now)), ...(await windowSummaries(db, linked, now))];
  if (messages.length === 0) return [];
  return db.transaction(async (tx) => {
    const audiences = await loadAudiences(tx);
    return notify(tx, messages, now, audiences);
  });
}

/** The sign-off card of a pilot awaiting its champions, the plan of a broad ring scheduled or running. */
async function gateMessages(db: AppDatabase, linked: ReadonlySet<string>, now: Date): Promise<Notice[]> {
  const messages: Notice[] = [];
  for (const gate of (await gatesWithChampionNews(db, now)).filter((g) => linked.has(g.clientId))) {
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

/** Each closed window's summary, for the client whose machines it patched. */
async function windowSummaries(db: AppDatabase, linked: ReadonlySet<string>, now: Date): Promise<Notice[]> {
  const tallies = (await windowTallies(db, now)).filter((t) => linked.has(t.who));
  if (tallies.length === 0) return [];
  const clients = await clientNamesAndZones(db);
  const messages: Notice[] = [];
  for (const tally of tallies) {
    const summary = reportFor(tally, now).find((r) => r.type === 'summary');
    const client = clients.get(tally.who);
    if (!summary || !client) continue;
    const conversations = await championConversations(db, tally.who);
    messages.push({ kind: 'client_window_summary', windowSubject: summary.subject, tally, clientName: client.name, zone: client.timezone, conversations });
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
