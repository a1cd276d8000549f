/**
 * What a client's Teams conversations are told, derived from Postgres on a tick: the sign-off card once the
 * pilot awaits its champions, the plan once broad is scheduled, each window's summary (their devices only). The
 * outbox key names the message and the conversation, so a tick that finds nothing new queues nothing and two
 * schedulers never post twice; a conversation linked late still gets what is current.
 *
 * Why a tick and not the gate's own transaction: the gates' thread messages (src/use-cases/gates.ts, `gateNotices`)
 * could queue these there, in applyGateEvents' transaction. Until then this lags by one tick.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import { clientsWithChampionChats } from '../db/audience-repo.ts';
import { enqueueOutbox, type OutboxItem } from '../db/outbox-repo.ts';
import { windowTallies } from '../db/rollout-repo.ts';
import { reportFor } from '../domain/window-report.ts';
import { clientConversations, loadSignoff, planItems, signoffItems } from '../use-cases/pilot.ts';
import { renderWindowSummaryCard } from '../bot/teams/window-card.ts';
import { OutboxNotifier } from './outbox.ts';
import type { JobContext, JobModule } from './context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';
import { subjects } from '../chat/subjects.ts';

export const TEAMS_QUEUE = 'teams-clients';

/** Queues whatever the client conversations have not been told yet; returns the new outbox row ids. */
export async function queueClientMessages(db: AppDatabase, now: Date): Promise<number[]> {
  // Clients a champion can be told in: a client reached only through its users' personal chats gets nothing here.
  const linked = await clientsWithChampionChats(db);
  if (linked.size === 0) return [];
  const items: OutboxItem[] = [];
  const gates = rowsOf<{ release_id: string; ring: string; client_id: string; state: string }>(
    await db.execute(sql`select release_id, ring, client_id, state from rollouts where client_id is not null
      and ((ring = 'pilot' and state = 'awaiting_confirmation') or (ring = 'broad' and state in ('scheduled', 'running')))
      and updated_at > ${now.toISOString()}::timestamptz - interval '45 days' order by id`),
  ).filter((g) => linked.has(g.client_id));
  for (const gate of gates) {
    if (gate.ring === 'pilot') {
      const view = await loadSignoff(db, gate.release_id, gate.client_id);
      if (view) items.push(...(await signoffItems(db, view, 'post', 'post')));
    } else {
      items.push(...(await planItems(db, gate.release_id, gate.client_id, now)));
    }
  }
  const tallies = (await windowTallies(db, now)).filter((t) => linked.has(t.who));
  if (tallies.length > 0) {
    const clients = new Map(
      rowsOf<{ id: string; name: string; timezone: string }>(await db.execute(sql`select id, name, timezone from clients`)).map((c) => [c.id, c]),
    );
    for (const tally of tallies) {
      const summary = reportFor(tally, now).find((r) => r.type === 'summary');
      const client = clients.get(tally.who);
      if (!summary || !client) continue;
      const card = renderWindowSummaryCard(tally, client.name, client.timezone);
      const text = `${client.name}: last night's updates: ${tally.counts.succeeded ?? 0} updated, ${tally.counts.failed ?? 0} did not, ${(tally.counts.offline ?? 0) + (tally.counts.rolled ?? 0)} will try again.`;
      for (const channel of await clientConversations(db, tally.who)) {
        items.push({
          key: `teams:${summary.subject}:${channel}:summary`,
          platform: 'teams',
          channel,
          action: 'post',
          subject: subjects.windowSummary(summary.subject),
          payload: { text, card },
        });
      }
    }
  }
  return enqueueOutbox(db, items, now);
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
