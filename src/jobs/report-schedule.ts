/**
 * The scheduled compliance reports (issue 17): a job scheduler ticks (every 5 minutes, on the context's clock);
 * a tick asks the pure src/domain/report-schedule.ts which reports are due and not yet archived, and sends each
 * through the use-case, whose archive insert is the exactly-once guarantee (two ticks racing, or a tick after a
 * crash, find the delivery key and send nothing more). A failed report does not stop the others; it is due again
 * at the next tick, within the schedule's horizon.
 */
import { archivedKeysSince, reportScheduleFacts } from '../db/report-archive-repo.ts';
import { mspTimezone } from '../db/msp-repo.ts';
import { currentMonth } from '../domain/report-period.ts';
import { DEFAULT_HORIZON_DAYS, dueReports } from '../domain/report-schedule.ts';
import type { Logger } from '../log.ts';
import { sendComplianceReport, sendKevWeekly, type ReportLinkSigner } from '../use-cases/report-delivery.ts';
import { reportLinkSigner } from '../runtime/report-links.ts';
import type { UseCaseContext } from '../use-cases/transaction.ts';
import type { JobModule } from './context.ts';
import { closeAll, createQueue, createWorker, KEEP_FEW } from './queues.ts';

const QUEUE = 'report-schedule';
const TICK = 'tick';
const DAY_MS = 86_400_000;

/** One tick: every report due now, sent once. Returns the keys sent. */
export async function sendDueReports(ctx: UseCaseContext, log: Logger, links?: ReportLinkSigner): Promise<string[]> {
  const now = ctx.now();
  const since = new Date(now.getTime() - (DEFAULT_HORIZON_DAYS + 1) * DAY_MS);
  const facts = await reportScheduleFacts(ctx.db, since);
  const sent = await archivedKeysSince(ctx.db, since, ['release', 'monthly', 'kev_weekly']);
  const due = dueReports({ now, ...facts, mspZone: await mspTimezone(ctx.db), sent });
  const done: string[] = [];
  for (const report of due) {
    try {
      const result =
        report.kind === 'kev_weekly'
          ? await sendKevWeekly(ctx, { week: report.periodId, period: currentMonth(now) })
          : await sendComplianceReport(ctx, { clientId: report.clientId!, period: report.period!, kind: report.kind, ...(links ? { links } : {}) });
      if (result.outcome === 'sent') done.push(report.key);
    } catch (error) {
      log.error({ err: error, report: report.key }, 'a scheduled compliance report failed; it is tried again at the next tick');
    }
  }
  return done;
}

export function reportScheduleModule(options: { tickMs?: number } = {}): JobModule {
  return async (context) => {
    const hasScheduler = context.roles.has('scheduler');
    const hasWorker = context.roles.has('worker');
    if (!hasScheduler && !hasWorker) return { close: async () => {} };
    const queue = createQueue(context, QUEUE, { ...KEEP_FEW, attempts: 1 });
    if (hasScheduler) {
      await queue.upsertJobScheduler('report-schedule-tick', { every: options.tickMs ?? context.pace?.tickMs ?? 5 * 60_000 }, { name: TICK, opts: { ...KEEP_FEW, attempts: 1 } });
    }
    const ctx: UseCaseContext = { db: context.database.db, now: context.now };
    const links = context.config.reportLinks ? reportLinkSigner(context.config.reportLinks) : undefined;
    const worker = hasWorker ? createWorker(context, QUEUE, async (job) => (job.name === TICK ? { sent: await sendDueReports(ctx, context.log, links) } : undefined)) : undefined;
    return { close: () => closeAll([worker], [queue]) };
  };
}

export const reportSchedule: JobModule = reportScheduleModule();
