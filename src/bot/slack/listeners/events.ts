/**
 * Events, and what runs before every listener: Slack's retries of an event are dropped (the first delivery wins),
 * App Home is rendered when opened, and a listener's failure is logged.
 */
import type { App } from '@slack/bolt';
import { claimOnce } from '../../../db/idempotency-repo.ts';
import { currentReleaseId, findEngineer } from '../../../use-cases/decisions.ts';
import { mspZone } from '../../../use-cases/digest-refresh.ts';
import { releaseStatus, statusNames } from '../../../use-cases/status.ts';
import { homeView } from '../../../chat/slack/views.ts';
import { slackActor, type ListenerDeps } from './deps.ts';

const EVENT_ID_KEPT_MS = 86_400_000;

/** Registered first: the retry filter is global middleware. */
export function registerRetryFilter(app: App, { db, log, now }: ListenerDeps): void {
  // Slack retries an event it thinks we missed; the first delivery wins, later ones stop here.
  app.use(async ({ body, next }) => {
    const eventId = (body as { event_id?: unknown }).event_id;
    if (typeof eventId === 'string' && !(await claimOnce(db, { key: `slack-event:${eventId}`, scope: 'slack-event', now: now(), keepMs: EVENT_ID_KEPT_MS }))) {
      log.debug({ eventId }, 'slack event seen before; ignored');
      return;
    }
    await next();
  });
}

export function register(app: App, { db, log, now }: ListenerDeps): void {
  app.event('app_home_opened', async ({ event, client }) => {
    if (event.tab !== 'home') return;
    const engineer = await findEngineer(db, slackActor(event.user));
    const release = engineer ? await currentReleaseId(db) : undefined;
    const status = release ? await releaseStatus(db, release) : undefined;
    await client.views.publish({ user_id: event.user, view: homeView(status, engineer !== undefined, engineer?.zone ?? (await mspZone(db)), now(), await statusNames(db)) as never });
  });

  app.error(async (error) => {
    log.error({ err: error }, 'slack listener failed');
  });
}
