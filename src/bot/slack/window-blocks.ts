/**
 * A window's progress message and its end-of-window summary, as Block Kit. Device names and error text came
 * from devices and device managers: they are escaped like anything else we did not write. Lists are cut to what
 * fits one message, with a count of the rest, so the summary never breaks a Block Kit limit.
 */
import { DateTime } from 'luxon';
import { minutesLeft, progressBar, total, unfinished, type WindowTally } from '../../domain/window-report.ts';
import { BLOCK_KIT_LIMITS, boundText, escapeMrkdwn, mrkdwn, plain, truncateMrkdwn, type Block, type SlackMessage } from './block-kit.ts';

/** Action ids the Slack app answers (the handlers live with the other engineers' actions). */
export const HOLD_CLIENT_ACTION = 'rollout_hold_client';
export const RETRY_FAILED_ACTION = 'rollout_retry_failed';
export const PROMOTE_ACTION = 'rollout_promote';
/** The modal "Hold this client" opens: a hold needs a reason, as every hold does. */
export const HOLD_CLIENT_CALLBACK = 'rollout.hold_client';

const LIST_LIMIT = 15;

function ownerLabel(tally: WindowTally): string {
  return tally.who === 'msp' ? 'Our machines (ring msp)' : (tally.name ?? tally.who);
}

function when(iso: string, zone: string): string {
  return DateTime.fromISO(iso, { zone: 'utc' }).setZone(zone).toFormat('ccc d LLL HH:mm ZZZZ');
}

function countsLine(tally: WindowTally): string {
  const c = tally.counts;
  const parts = [
    `${c.succeeded ?? 0} done`,
    `${c.running ?? 0} running`,
    `${c.scheduled ?? 0} waiting`,
    `${c.failed ?? 0} failed`,
    `${(c.offline ?? 0) + (c.rolled ?? 0)} rolled to next window`,
  ];
  if (c.skipped) parts.push(`${c.skipped} skipped (held)`);
  return parts.join(' · ');
}

export function progressMessage(tally: WindowTally, now: Date, zone: string, closing: boolean): SlackMessage {
  const all = total(tally);
  const done = all - unfinished(tally);
  const title = `${ownerLabel(tally)}: window ${when(tally.windowStart, zone)}`;
  const state = closing ? 'Window closed.' : `${minutesLeft(tally, now)} min left in the window.`;
  return {
    text: boundText(escapeMrkdwn(`${title}: ${done}/${all} finished. ${state}`)),
    blocks: [
      { type: 'section', text: mrkdwn(`*${escapeMrkdwn(title)}*\n\`${progressBar(done, all)}\``) },
      { type: 'context', elements: [mrkdwn(`${countsLine(tally)}. ${state}`)] },
    ],
  };
}

function list<T>(items: T[], shown: number, line: (item: T) => string, more: number): string {
  const lines = items.slice(0, shown).map(line);
  const rest = Math.max(0, more - Math.min(shown, items.length));
  if (rest > 0) lines.push(`…and ${rest} more`);
  return lines.join('\n');
}

export function summaryMessage(tally: WindowTally, zone: string): SlackMessage {
  const c = tally.counts;
  const title = `${ownerLabel(tally)}: window ${when(tally.windowStart, zone)} finished`;
  const blocks: Block[] = [
    { type: 'header', text: plain(title.slice(0, 150)) },
    { type: 'section', text: mrkdwn(countsLine(tally)) },
  ];
  const failedCount = c.failed ?? 0;
  if (failedCount > 0) {
    // Error text is cut after escaping (which lengthens it), and the list as a whole still has to fit a section.
    const text = list(tally.failed, LIST_LIMIT, (f) => `• ${escapeMrkdwn(f.device)}: ${truncateMrkdwn(escapeMrkdwn(f.error ?? 'no error text'), 150)}`, failedCount);
    blocks.push({ type: 'section', text: mrkdwn(truncateMrkdwn(`*Failed*\n${text}`, BLOCK_KIT_LIMITS.sectionText)) });
  }
  const rolledCount = (c.offline ?? 0) + (c.rolled ?? 0);
  if (rolledCount > 0) {
    const text = list(
      tally.rolled,
      LIST_LIMIT,
      (r) => `• ${escapeMrkdwn(r.device)}${r.offline ? ' (offline)' : ''} → ${r.rolledTo ? when(r.rolledTo, zone) : 'next window'}`,
      rolledCount,
    );
    blocks.push({ type: 'section', text: mrkdwn(`*Rolled to the next window*\n${text}`) });
  }
  if (tally.rebootedTwice.length > 0) {
    blocks.push({ type: 'section', text: mrkdwn(`*Rebooted twice*\n${list(tally.rebootedTwice, LIST_LIMIT, (d) => `• ${escapeMrkdwn(d)}`, tally.rebootedTwice.length)}`) });
  }
  const buttons = [];
  if (tally.who !== 'msp') {
    buttons.push({ type: 'button' as const, text: plain('Hold this client'), action_id: HOLD_CLIENT_ACTION, value: JSON.stringify({ clientId: tally.who, windowStart: tally.windowStart }), style: 'danger' as const });
  }
  if (failedCount > 0) {
    buttons.push({
      type: 'button' as const,
      text: plain('Retry failed'),
      action_id: RETRY_FAILED_ACTION,
      value: JSON.stringify({ who: tally.who, windowStart: tally.windowStart }),
    });
  }
  if (buttons.length > 0) blocks.push({ type: 'actions', elements: buttons });
  return { text: boundText(escapeMrkdwn(`${title}: ${countsLine(tally)}`)), blocks };
}

/** Ring msp finished and soaked: the offer in the release's thread, with the button that promotes it. */
export function promotionOffer(releaseId: string): SlackMessage {
  const text = `${releaseId}: ring msp finished and soaked. Ready to promote to pilot.`;
  return {
    text: boundText(escapeMrkdwn(text)),
    blocks: [
      { type: 'section', text: mrkdwn(`*${escapeMrkdwn(releaseId)}*: ring msp finished and soaked. Promote to pilot schedules each client\u2019s pilot machines in its next window.`) },
      { type: 'actions', elements: [{ type: 'button', text: plain('Promote to pilot'), action_id: PROMOTE_ACTION, value: JSON.stringify({ release: releaseId }), style: 'primary' }] },
    ],
  };
}

export interface HoldClientTarget {
  clientId: string;
  windowStart: string;
  channel: string | undefined;
}

/** The reason form for "Hold this client"; the target rides in private_metadata. */
export function holdClientModal(target: HoldClientTarget): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: HOLD_CLIENT_CALLBACK,
    private_metadata: JSON.stringify(target),
    title: plain('Hold this client'),
    submit: plain('Hold'),
    close: plain('Cancel'),
    blocks: [
      { type: 'context', elements: [plain(`Hold ${target.clientId.slice(0, 100)}: nothing new starts for it until the hold is released.`)] },
      {
        type: 'input',
        block_id: 'reason',
        label: plain('Reason'),
        hint: plain('Required. What is wrong, so whoever releases it knows what to check.'),
        element: { type: 'plain_text_input', action_id: 'reason', multiline: true, max_length: 500 },
      },
    ],
  };
}
