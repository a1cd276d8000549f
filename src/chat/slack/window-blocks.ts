/**
 * A window's progress message and its end-of-window summary, as Block Kit. Device names and error text came
 * from devices and device managers: they are escaped like anything else we did not write. Lists are cut to what
 * fits one message, with a count of the rest, so the summary never breaks a Block Kit limit.
 */
import { kbLabel, progressBar, succeeded, total, type RollReason, type WindowTally } from '../../domain/window-report.ts';
import { formatWithZone } from '../../domain/zone-label.ts';
import { BLOCK_KIT_LIMITS, boundText, escapeMrkdwn, mrkdwn, plain, truncateMrkdwn, type Block, type SlackMessage } from './block-kit.ts';

/** Action ids the Slack app answers (the handlers live with the other engineers' actions). */
export const HOLD_CLIENT_ACTION = 'rollout_hold_client';
export const RETRY_FAILED_ACTION = 'rollout_retry_failed';
export const PROMOTE_ACTION = 'rollout_promote';
/** The modal "Hold this client" opens: a hold needs a reason, as every hold does. */
export const HOLD_CLIENT_CALLBACK = 'rollout.hold_client';

/** Lists show this many devices, then "…and N more": a summary is read, not searched. */
export const LIST_LIMIT = 10;

function ownerLabel(tally: WindowTally): string {
  return tally.who === 'msp' ? 'Our machines (ring msp)' : (tally.name ?? tally.who);
}

function when(iso: string, zone: string): string {
  return formatWithZone(iso, zone, 'ccc d LLL HH:mm');
}

const ROLL_WORDS: Record<RollReason, string> = {
  offline: 'off',
  window_ended: 'window ended first',
  deferred: 'put off by the user',
  other: 'rolled',
};

/** What the window did, in words: rolled runs are told apart by why, and none of them is "done". */
export function countsLine(tally: WindowTally): string {
  const c = tally.counts;
  const parts = [`${c.succeeded ?? 0} updated`];
  if (c.running) parts.push(`${c.running} running`);
  if (c.scheduled) parts.push(`${c.scheduled} waiting`);
  parts.push(`${c.failed ?? 0} failed`);
  const reasons = Object.entries(tally.rollReasons) as Array<[RollReason, number]>;
  const told = reasons.reduce((sum, [, n]) => sum + n, 0);
  const rolled = (c.offline ?? 0) + (c.rolled ?? 0);
  for (const reason of ['offline', 'window_ended', 'deferred', 'other'] as const) {
    const n = (tally.rollReasons[reason] ?? 0) + (reason === 'other' ? Math.max(0, rolled - told) : 0);
    if (n > 0) parts.push(`${n} ${ROLL_WORDS[reason]} (${tally.held ? 'waits for the hold' : 'next window'})`);
  }
  if (c.skipped) parts.push(`${c.skipped} held`);
  return parts.join(' · ');
}

export function progressMessage(tally: WindowTally, zone: string, closing: boolean): SlackMessage {
  const all = total(tally);
  const done = succeeded(tally);
  const title = `${ownerLabel(tally)}: window ${when(tally.windowStart, zone)}`;
  // The message is edited when a run moves, not as the clock does: "237 min left", read at 02:09 in a sandbox walk,
  // was an hour stale. The closing time stays true between edits.
  const state = closing ? 'Window closed.' : `Open until ${formatWithZone(tally.windowEnd, zone, 'HH:mm')}.`;
  return {
    text: boundText(escapeMrkdwn(`${title}: ${done}/${all} updated. ${state}`)),
    blocks: [
      { type: 'section', text: mrkdwn(`*${escapeMrkdwn(title)}*\n\`${progressBar(done, all)}\``) },
      { type: 'context', elements: [mrkdwn(`${escapeMrkdwn(countsLine(tally))}. ${state}`)] },
    ],
  };
}

function list<T>(items: T[], shown: number, line: (item: T) => string, more: number): string {
  const lines = items.slice(0, shown).map(line);
  const rest = Math.max(0, more - Math.min(shown, items.length));
  if (rest > 0) lines.push(`…and ${rest} more`);
  return lines.join('\n');
}

const kbs = (updates: readonly string[] | undefined): string => (updates && updates.length > 0 ? updates.map(kbLabel).join(', ') : '');

function section(text: string): Block {
  return { type: 'section', text: mrkdwn(truncateMrkdwn(text, BLOCK_KIT_LIMITS.sectionText)) };
}

function deviceSections(tally: WindowTally, zone: string): Block[] {
  const c = tally.counts;
  const blocks: Block[] = [];
  const updatedCount = c.succeeded ?? 0;
  if (updatedCount > 0) {
    const text = list(tally.updated, LIST_LIMIT, (u) => `• ${escapeMrkdwn(u.device)}: ${escapeMrkdwn(kbs(u.updates))}`, updatedCount);
    blocks.push(section(`*Updated (${updatedCount})*\n${text}`));
  }
  const failedCount = c.failed ?? 0;
  if (failedCount > 0) {
    // Error text is cut after escaping (which lengthens it), and the list as a whole still has to fit a section.
    const line = (f: WindowTally['failed'][number]) =>
      `• ${escapeMrkdwn(f.device)}${f.updates?.length ? ` (${escapeMrkdwn(kbs(f.updates))})` : ''}: ${truncateMrkdwn(escapeMrkdwn(f.error ?? 'no error text'), 150)}`;
    blocks.push(section(`*Failed (${failedCount})*\n${list(tally.failed, LIST_LIMIT, line, failedCount)}`));
  }
  const rolledCount = (c.offline ?? 0) + (c.rolled ?? 0);
  if (rolledCount > 0) {
    const line = (r: WindowTally['rolled'][number]) =>
      `• ${escapeMrkdwn(r.device)} (${ROLL_WORDS[r.reason ?? (r.offline ? 'offline' : 'other')]})${tally.held ? '' : ` → ${r.rolledTo ? when(r.rolledTo, zone) : 'next window'}`}`;
    const heading = tally.held ? 'Waiting for the hold to be lifted' : 'Rolled to the next window';
    blocks.push(section(`*${heading} (${rolledCount})*\n${list(tally.rolled, LIST_LIMIT, line, rolledCount)}`));
  }
  if (tally.rebootedTwice.length > 0) {
    blocks.push(section(`*Rebooted twice*\n${list(tally.rebootedTwice, LIST_LIMIT, (d) => `• ${escapeMrkdwn(d)}`, tally.rebootedTwice.length)}`));
  }
  return blocks;
}

export function summaryMessage(tally: WindowTally, zone: string): SlackMessage {
  const c = tally.counts;
  const title = `${ownerLabel(tally)}: window ${when(tally.windowStart, zone)} finished`;
  const blocks: Block[] = [
    { type: 'header', text: plain(title.slice(0, 150)) },
    { type: 'section', text: mrkdwn(`\`${progressBar(succeeded(tally), total(tally))}\`\n${escapeMrkdwn(countsLine(tally))}`) },
    ...deviceSections(tally, zone),
  ];
  const buttons = [];
  if (tally.who !== 'msp') {
    buttons.push({ type: 'button' as const, text: plain('Hold this client'), action_id: HOLD_CLIENT_ACTION, value: JSON.stringify({ clientId: tally.who, windowStart: tally.windowStart }), style: 'danger' as const });
  }
  if ((c.failed ?? 0) > 0) {
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

/**
 * Ring msp finished and soaked: the offer in the release's thread, with the button that promotes it. With
 * `updates`, only those are ready (each update is offered once its own soak ends), and the offer names them: the
 * ring itself may still be at work on others.
 */
export function promotionOffer(releaseId: string, updates?: readonly string[]): SlackMessage {
  const kbs = (updates ?? []).map((k) => (/^\d+$/.test(k) ? `KB${k}` : k));
  const what = kbs.length > 0 ? `${kbs.join(', ')} installed on our machines (ring msp) and soaked` : 'ring msp finished and soaked';
  const text = `${releaseId}: ${what}. Ready to promote to pilot.`;
  return {
    text: boundText(escapeMrkdwn(text)),
    blocks: [
      { type: 'section', text: mrkdwn(truncateMrkdwn(`*${escapeMrkdwn(releaseId)}*: ${escapeMrkdwn(what)}. Promote to pilot schedules each client\u2019s pilot machines in its next window.`, BLOCK_KIT_LIMITS.sectionText)) },
      { type: 'actions', elements: [{ type: 'button', text: plain('Promote to pilot'), action_id: PROMOTE_ACTION, value: JSON.stringify({ release: releaseId }), style: 'primary' }] },
    ],
  };
}

export interface HoldClientTarget {
  clientId: string;
  /** The client's name, for the modal's text (the id stands in when absent). */
  clientName?: string;
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
      { type: 'context', elements: [plain(`Hold ${(target.clientName ?? target.clientId).slice(0, 100)}: nothing new starts for it until the hold is released.`)] },
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
