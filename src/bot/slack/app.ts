/**
 * The engineers' Slack front: a Bolt app whose listeners ack at once, turn the payload into a use-case call and
 * render the answer. HTTP mode mounts Bolt's receiver on our own server at /slack/events (Bolt verifies the
 * signature and the timestamp with SLACK_SIGNING_SECRET); with SLACK_APP_TOKEN it runs over Socket Mode.
 * Messages that report a change leave through the outbox; replies to the person who clicked (ephemeral) and
 * modals go straight out, since they are answers, not news.
 */
import { App, HTTPReceiver, LogLevel, type Logger as BoltLogger, type RespondFn } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import { sql } from 'drizzle-orm';
import { validateNote, validateReason } from '../../domain/approval.ts';
import { rowsOf, type Database } from '../../db/client.ts';
import type { Logger } from '../../log.ts';
import type { RequestHandler } from '../../runtime/http.ts';
import { parsePatchCommand, PATCH_USAGE } from '../patch-command.ts';
import {
  addResearchNote,
  approve,
  checkEngineer,
  currentReleaseId,
  findEngineer,
  hold,
  releaseHold,
  withdraw,
  type Actor,
  type DecisionResult,
  type UseCaseContext,
} from '../../use-cases/decisions.ts';
import { mspZone } from '../../use-cases/digest-refresh.ts';
import { createLinkCode } from '../../use-cases/teams-link.ts';
import { confirmPilot, PILOT_REPLY_CHAMPION_ACTION } from '../../use-cases/pilot.ts';
import { holdClientFromWindow, promoteRelease, retryFailed, skipRing } from '../../use-cases/rollout-actions.ts';
import { revokeNoticeWaiver, waiveNotice } from '../../use-cases/notice-waiver.ts';
import { HOLD_CLIENT_ACTION, HOLD_CLIENT_CALLBACK, holdClientModal, PROMOTE_ACTION, RETRY_FAILED_ACTION, type HoldClientTarget } from './window-blocks.ts';
import { formatDecisionTime } from '../../domain/approval.ts';
import { clientIds, clientWindows, notesOn, recentReleaseIds, releaseStatus, searchClients, statusNames } from '../../use-cases/status.ts';
import { escapeMrkdwn, escapeMrkdwnControls } from './block-kit.ts';
import { registerUserDmActions } from './user-dm-actions.ts';
import { unmatchedUsers } from '../../db/directory-repo.ts';
import { noticeWaivers } from '../../db/notice-repo.ts';
import { noticeStatusText } from '../notice-status.ts';
import {
  CLIENTS_ACTION,
  HOLD_CALLBACK,
  MAX_CLIENT_OPTIONS,
  NOTE_CALLBACK,
  clientOption,
  holdModal,
  holdModalErrors,
  homeView,
  noteModal,
  notesText,
  resultText,
  statusText,
  windowsText,
  type ModalTarget,
} from './views.ts';

export interface SlackAppOptions {
  botToken: string;
  signingSecret: string;
  /** Socket Mode when set. */
  appToken?: string | undefined;
  apiUrl: string;
  database: Database;
  log: Logger;
  now: () => Date;
  /** Told about outbox rows right after a use-case commits. */
  notifyOutbox?: (ids: number[]) => Promise<void>;
}

export interface SlackApp {
  app: App;
  /** The HTTP handler for /slack/events (undefined in Socket Mode). */
  handler: RequestHandler | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function boltLogger(log: Logger): BoltLogger {
  let level = LogLevel.INFO;
  const child = log.child({ component: 'slack' });
  const text = (msgs: unknown[]) => msgs.map((m) => (typeof m === 'string' ? m : m instanceof Error ? m.message : JSON.stringify(m))).join(' ');
  return {
    debug: (...m: unknown[]) => child.debug(text(m)),
    info: (...m: unknown[]) => child.info(text(m)),
    warn: (...m: unknown[]) => child.warn(text(m)),
    error: (...m: unknown[]) => child.error(text(m)),
    setLevel: (l: LogLevel) => void (level = l),
    getLevel: () => level,
    setName: () => {},
  };
}

/** Slack's tolerance; Bolt refuses only stale timestamps, not ones ahead of the clock (a replay kept for later). */
const MAX_REQUEST_SKEW_S = 5 * 60;

/**
 * What reaches Bolt's receiver: only POSTs (it throws on anything else, and a browser's GET or CORS preflight
 * must not cost more than a 405) with a timestamp within five minutes either way of real time. Real time, not the
 * sandbox's clock: Slack (and the sandbox page) sign with the wall clock.
 */
function receiverGate(receiver: HTTPReceiver, log: Logger): RequestHandler {
  return (req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST', 'content-type': 'text/plain; charset=utf-8' });
      res.end('POST only');
      return;
    }
    const stamp = Number(req.headers['x-slack-request-timestamp']);
    if (Number.isFinite(stamp) && Math.abs(Date.now() / 1000 - stamp) > MAX_REQUEST_SKEW_S) {
      log.warn({ timestamp: stamp }, 'slack request refused: its timestamp is more than 5 minutes from now');
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8' });
      res.end();
      return;
    }
    receiver.requestListener(req, res);
  };
}

interface ButtonValue {
  release: string;
  kb?: string;
}

function parseValue(value: unknown): ButtonValue | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<ButtonValue>;
    return typeof parsed.release === 'string' ? { release: parsed.release, ...(typeof parsed.kb === 'string' ? { kb: parsed.kb } : {}) } : undefined;
  } catch {
    return undefined;
  }
}

export function createSlackApp(options: SlackAppOptions): SlackApp {
  const { database, log } = options;
  const db = database.db;
  const logger = boltLogger(log);
  const ctx: UseCaseContext = { db, now: options.now, ...(options.notifyOutbox ? { onCommitted: options.notifyOutbox } : {}) };
  const clientOptions = { slackApiUrl: options.apiUrl, logger };

  let receiver: HTTPReceiver | undefined;
  let app: App;
  if (options.appToken) {
    app = new App({ token: options.botToken, appToken: options.appToken, socketMode: true, logger, clientOptions });
  } else {
    receiver = new HTTPReceiver({ signingSecret: options.signingSecret, endpoints: '/slack/events', logger, unhandledRequestTimeoutMillis: 3000 });
    app = new App({ token: options.botToken, receiver, logger, clientOptions });
  }
  const slackActor = (user: string): Actor => ({ platform: 'slack', id: user });

  // Slack retries an event it thinks we missed; the first delivery wins, later ones stop here.
  app.use(async ({ body, next }) => {
    const eventId = (body as { event_id?: unknown }).event_id;
    if (typeof eventId === 'string') {
      const claimed = rowsOf(
        await db.execute(sql`insert into idempotency_keys (key, scope, created_at, expires_at)
          values (${`slack-event:${eventId}`}, 'slack-event', ${options.now().toISOString()}::timestamptz, ${new Date(options.now().getTime() + 86_400_000).toISOString()}::timestamptz)
          on conflict do nothing returning key`),
      );
      if (claimed.length === 0) {
        log.debug({ eventId }, 'slack event seen before; ignored');
        return;
      }
    }
    await next();
  });

  const reply = async (respond: RespondFn, result: DecisionResult, quietWhenApplied = true) => {
    if (result.outcome === 'applied' && quietWhenApplied) return;
    await respond({ response_type: 'ephemeral', replace_original: false, text: resultText(result) });
  };

  const ephemeral = async (client: WebClient, channel: string | undefined, user: string, text: string) => {
    if (!channel) return;
    try {
      await client.chat.postEphemeral({ channel, user, text });
    } catch (error) {
      log.warn({ err: error, channel, user }, 'could not show an ephemeral reply');
    }
  };

  for (const [pattern, kind] of [
    [/^update\.approve$/, 'update'],
    [/^release\.approve$/, 'release'],
  ] as const) {
    app.action(pattern, async ({ ack, body, action, respond }) => {
      await ack();
      const value = parseValue((action as { value?: unknown }).value);
      if (!value) return;
      const result = await approve(ctx, { actor: slackActor(body.user.id), releaseId: value.release, updateKey: kind === 'release' ? null : (value.kb ?? null) });
      await reply(respond, result);
    });
  }

  for (const [pattern, kind] of [
    [/^update\.hold$/, 'update'],
    [/^release\.hold$/, 'release'],
  ] as const) {
    app.action(pattern, async ({ ack, body, action, client, respond }) => {
      await ack();
      const value = parseValue((action as { value?: unknown }).value);
      if (!value) return;
      const refused = await checkEngineer(ctx, slackActor(body.user.id));
      if (refused) return reply(respond, refused);
      const target: ModalTarget = { release: value.release, kb: kind === 'release' ? null : (value.kb ?? null), channel: (body as { channel?: { id: string } }).channel?.id };
      await client.views.open({ trigger_id: (body as { trigger_id: string }).trigger_id, view: holdModal(target, await clientIds(db)) as never });
    });
  }

  // The Hold modal's client picker when the MSP has more clients than a static select can list. Client names are
  // the MSP's business: only an engineer gets any back.
  app.options({ type: 'block_suggestion', action_id: CLIENTS_ACTION, block_id: CLIENTS_ACTION }, async ({ ack, body }) => {
    const suggestion = body as { user?: { id?: string }; value?: string; view?: { callback_id?: string } };
    const user = suggestion.user?.id;
    if (suggestion.view?.callback_id !== HOLD_CALLBACK || !user || !(await findEngineer(db, slackActor(user)))) {
      await ack({ options: [] });
      return;
    }
    const found = await searchClients(db, (suggestion.value ?? '').slice(0, 100), MAX_CLIENT_OPTIONS);
    await ack({ options: found.map(clientOption) as never });
  });

  app.action('update.note', async ({ ack, body, action, client, respond }) => {
    await ack();
    const value = parseValue((action as { value?: unknown }).value);
    if (!value?.kb) return;
    const refused = await checkEngineer(ctx, slackActor(body.user.id));
    if (refused) return reply(respond, refused);
    const target = { release: value.release, kb: value.kb, channel: (body as { channel?: { id: string } }).channel?.id };
    await client.views.open({ trigger_id: (body as { trigger_id: string }).trigger_id, view: noteModal(target) as never });
  });

  // The rollout's buttons: Promote to pilot (the release's thread), Hold this client and Retry failed (window summaries).
  const jsonValue = (action: unknown): Record<string, unknown> | undefined => {
    try {
      const parsed = JSON.parse(String((action as { value?: unknown }).value)) as unknown;
      return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };

  app.action(PROMOTE_ACTION, async ({ ack, body, action, respond }) => {
    await ack();
    const value = jsonValue(action);
    if (typeof value?.release !== 'string') return;
    await reply(respond, await promoteRelease(ctx, { actor: slackActor(body.user.id), releaseId: value.release }));
  });

  app.action(HOLD_CLIENT_ACTION, async ({ ack, body, action, client, respond }) => {
    await ack();
    const value = jsonValue(action);
    if (typeof value?.clientId !== 'string' || typeof value.windowStart !== 'string') return;
    const refused = await checkEngineer(ctx, slackActor(body.user.id));
    if (refused) return reply(respond, refused);
    const target: HoldClientTarget = { clientId: value.clientId, windowStart: value.windowStart, channel: (body as { channel?: { id: string } }).channel?.id };
    const name = (await clientIds(db)).find((c) => c.id === value.clientId)?.name;
    await client.views.open({ trigger_id: (body as { trigger_id: string }).trigger_id, view: holdClientModal({ ...target, ...(name ? { clientName: name } : {}) }) as never });
  });

  app.action(RETRY_FAILED_ACTION, async ({ ack, body, action, respond }) => {
    await ack();
    const value = jsonValue(action);
    if (typeof value?.who !== 'string' || typeof value.windowStart !== 'string') return;
    await reply(respond, await retryFailed(ctx, { actor: slackActor(body.user.id), who: value.who, windowStart: value.windowStart }));
  });

  // "Reply to champion" is a link button (a Teams chat opens in the engineer's browser). Slack still sends the
  // click here and shows the engineer a warning unless it is acked within 3 s; there is nothing else to do.
  app.action(PILOT_REPLY_CHAMPION_ACTION, async ({ ack, body, action }) => {
    await ack();
    const value = jsonValue(action);
    log.info({ user: body.user.id, release: value?.release, client: value?.client }, 'engineer opened a chat with the champion who reported a pilot problem');
  });

  type Values = Record<string, Record<string, { value?: string | null; selected_option?: { value: string } | null; selected_options?: Array<{ value: string }> }>>;

  app.view(HOLD_CALLBACK, async ({ ack, body, view, client }) => {
    const values = view.state.values as Values;
    const target = JSON.parse(view.private_metadata) as ModalTarget;
    const reason = values.reason?.reason?.value ?? '';
    const scope = values.scope?.scope?.selected_option?.value ?? 'all';
    const chosen = (values.clients?.clients?.selected_options ?? []).map((o) => o.value);
    // Checked before the ack so the problem shows next to the field, and the modal stays open to fix it.
    const errors = holdModalErrors({ reason, scope, chosen, hasPicker: values.clients !== undefined });
    if (Object.keys(errors).length > 0) {
      await ack({ response_action: 'errors', errors });
      return;
    }
    await ack();
    const result = await hold(ctx, {
      actor: slackActor(body.user.id),
      releaseId: target.release,
      updateKey: target.kb,
      clients: scope === 'chosen' ? chosen : 'all',
      reason,
      requestId: view.id,
    });
    if (result.outcome !== 'applied') await ephemeral(client, target.channel, body.user.id, resultText(result));
  });

  app.view(HOLD_CLIENT_CALLBACK, async ({ ack, body, view, client }) => {
    const values = view.state.values as Values;
    const target = JSON.parse(view.private_metadata) as HoldClientTarget;
    const reason = values.reason?.reason?.value ?? '';
    const problem = validateReason(reason);
    if (problem) {
      await ack({ response_action: 'errors', errors: { reason: problem.message } });
      return;
    }
    await ack();
    const result = await holdClientFromWindow(ctx, { actor: slackActor(body.user.id), clientId: target.clientId, windowStart: target.windowStart, reason, requestId: view.id });
    if (result.outcome !== 'applied') await ephemeral(client, target.channel, body.user.id, resultText(result));
  });

  app.view(NOTE_CALLBACK, async ({ ack, body, view, client }) => {
    const values = view.state.values as Values;
    const target = JSON.parse(view.private_metadata) as ModalTarget & { kb: string };
    const text = values.text?.text?.value ?? '';
    const tags = (values.tags?.tags?.selected_options ?? []).map((o) => o.value);
    const problem = validateNote(text, tags);
    if (problem) {
      await ack({ response_action: 'errors', errors: { text: problem.message } });
      return;
    }
    await ack();
    const result = await addResearchNote(ctx, { actor: slackActor(body.user.id), releaseId: target.release, updateKey: target.kb, text, tags, requestId: view.id });
    if (result.outcome !== 'applied') await ephemeral(client, target.channel, body.user.id, resultText(result));
  });

  registerUserDmActions(app, ctx, log);

  app.command('/patch', async ({ ack, command, respond }) => {
    await ack();
    const actor = slackActor(command.user_id);
    const parsed = parsePatchCommand(command.text ?? '');
    const say = (text: string) => respond({ response_type: 'ephemeral', text });
    if (parsed.kind === 'help') return void (await say(PATCH_USAGE));
    // The problem is patchbay's words with `code` around what was typed, where formatting shows as typed anyway.
    if (parsed.kind === 'unknown') return void (await say(`${escapeMrkdwnControls(parsed.problem)}.\n\n${PATCH_USAGE}`));
    const engineer = await findEngineer(db, actor);
    if (!engineer) return void (await say(':no_entry_sign: /patch is for the MSP\u2019s engineers.'));
    const now = options.now();
    switch (parsed.kind) {
      case 'status': {
        const ids = await recentReleaseIds(db, 3);
        const statuses = (await Promise.all(ids.map((id) => releaseStatus(db, id)))).filter((s) => s !== undefined);
        const notice = noticeStatusText(await unmatchedUsers(db), await noticeWaivers(db, now), engineer.zone, now);
        return void (await say(`${statusText(statuses, engineer.zone, now, await statusNames(db))}${notice ? `\n\n${notice}` : ''}`));
      }
      case 'windows': {
        const w = await clientWindows(db, parsed.client, now);
        return void (await say(w ? windowsText(w, engineer.zone) : `No client ${escapeMrkdwn(parsed.client)} in the inventory.`));
      }
      case 'notes': {
        const release = await currentReleaseId(db);
        if (!release) return void (await say('No release is stored yet.'));
        return void (await say(notesText(release, parsed.update, await notesOn(db, release, parsed.update), engineer.zone)));
      }
      case 'link': {
        const code = await createLinkCode(ctx, { actor, clientId: parsed.client });
        if (code.outcome === 'refused') return void (await say(escapeMrkdwn(code.message)));
        return void (await say(
          `Ask ${escapeMrkdwn(code.clientName)}\u2019s champion to send \`${code.code}\` to the patchbay bot in Teams (in the chat or team to link). It works once, until ${formatDecisionTime(code.expiresAt, engineer.zone)}.`,
        ));
      }
      case 'promote': {
        const result = await promoteRelease(ctx, { actor, releaseId: parsed.release });
        return void (await say(resultText(result)));
      }
      case 'confirm': {
        // The Teams side's use-case: an engineer confirming is the same event as a champion's, marked as theirs.
        const release = await currentReleaseId(db);
        if (!release) return void (await say('No release is stored yet.'));
        const result = await confirmPilot(ctx, { actor, releaseId: release, clientId: parsed.client, requestId: command.trigger_id });
        const text = result.outcome === 'applied' ? `Pilot for ${parsed.client} confirmed on the champion\u2019s behalf; its broad ring is scheduled.` : result.message;
        return void (await say(`${result.outcome === 'refused' ? ':no_entry_sign: ' : ''}${escapeMrkdwn(text)}`));
      }
      case 'skip': {
        const release = await currentReleaseId(db);
        if (!release) return void (await say('No release is stored yet.'));
        const result = await skipRing(ctx, { actor, releaseId: release, ring: parsed.ring, update: parsed.update, clientId: parsed.client, reason: parsed.reason });
        return void (await say(resultText(result)));
      }
      case 'notice_waive':
        return void (await say(resultText(await waiveNotice(ctx, { actor, target: parsed.target, reason: parsed.reason }))));
      case 'notice_revoke':
        return void (await say(resultText(await revokeNoticeWaiver(ctx, { actor, target: parsed.target }))));
      case 'withdraw': {
        const release = await currentReleaseId(db);
        if (!release) return void (await say('No release is stored yet.'));
        const result = await withdraw(ctx, { actor, releaseId: release, updateKey: parsed.target.toLowerCase() === 'all' ? null : parsed.target });
        return void (await say(resultText(result)));
      }
      case 'hold_ring':
      case 'release_ring': {
        const release = await currentReleaseId(db);
        if (!release) return void (await say('No release is stored yet.'));
        const result =
          parsed.kind === 'hold_ring'
            ? await hold(ctx, { actor, releaseId: release, updateKey: null, clients: 'all', ring: parsed.ring, reason: parsed.reason, requestId: command.trigger_id })
            : await releaseHold(ctx, { actor, releaseId: release, target: { kind: 'ring', ring: parsed.ring }, requestId: command.trigger_id });
        return void (await say(resultText(result)));
      }
      case 'hold':
      case 'release': {
        const release = await currentReleaseId(db);
        if (!release) return void (await say('No release is stored yet.'));
        const target = parsed.target;
        const isClient = (await clientIds(db)).some((c) => c.id === target);
        const requestId = command.trigger_id;
        let result: DecisionResult;
        if (parsed.kind === 'hold') {
          result = await hold(ctx, {
            actor,
            releaseId: release,
            updateKey: target.toLowerCase() === 'all' || isClient ? null : target,
            clients: isClient ? [target] : 'all',
            reason: parsed.reason,
            requestId,
          });
        } else {
          result = await releaseHold(ctx, {
            actor,
            releaseId: release,
            target: target.toLowerCase() === 'all' ? { kind: 'all' } : isClient ? { kind: 'client', clientId: target } : { kind: 'update', updateKey: target },
            requestId,
          });
        }
        return void (await say(resultText(result)));
      }
    }
  });

  app.event('app_home_opened', async ({ event, client }) => {
    if (event.tab !== 'home') return;
    const engineer = await findEngineer(db, slackActor(event.user));
    const release = engineer ? await currentReleaseId(db) : undefined;
    const status = release ? await releaseStatus(db, release) : undefined;
    await client.views.publish({ user_id: event.user, view: homeView(status, engineer !== undefined, engineer?.zone ?? (await mspZone(db)), options.now(), await statusNames(db)) as never });
  });

  app.error(async (error) => {
    log.error({ err: error }, 'slack listener failed');
  });

  return {
    app,
    handler: receiver ? receiverGate(receiver, log) : undefined,
    async start() {
      if (options.appToken) await app.start();
    },
    async stop() {
      if (options.appToken) await app.stop();
    },
  };
}
