/**
 * The rollout gates' notices: what the engineers are told when a release's gates move (src/use-cases/gates.ts),
 * and the pure renderer that turns each into its thread post.
 */
import { createHash } from 'node:crypto';
import type { OutboxItem } from '../../db/outbox-repo.ts';
import type { RolloutEffect } from '../../domain/rollout.ts';
import { escapeMrkdwn } from '../slack/block-kit.ts';
import { promotionOffer } from '../slack/window-blocks.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

export type GateNotice =
  /** Ring msp is done (for `updates`, when only some of the release's updates are ready): offer the Promote button. */
  | { kind: 'promotion_offered'; releaseId: string; updates?: readonly string[]; round?: number; amends?: true }
  /** A champion reported a pilot problem and the client is held (the champion's words are posted by pilot.ts). */
  | { kind: 'pilot_problem_held'; releaseId: string; clientId: string }
  /** A client's pilot night ended with nothing installed: nothing to sign off, the client waits. */
  | { kind: 'pilot_waiting'; releaseId: string; clientId: string; at: string }
  /** A client's pilot finished; its champion is asked to sign off. */
  | { kind: 'pilot_finished'; releaseId: string; clientId: string };

/** The notices a gate transition's effects call for; effects nobody is told about here give none. */
export function gateEffectNotices(releaseId: string, effects: readonly RolloutEffect[]): GateNotice[] {
  return effects.flatMap((effect): GateNotice[] => {
    switch (effect.type) {
      case 'offer_promotion':
        return [{ kind: 'promotion_offered', releaseId, ...(effect.updates ? { updates: effect.updates } : {}), ...(effect.round ? { round: effect.round } : {}), ...(effect.amends ? { amends: true as const } : {}) }];
      case 'alert_engineers':
        return [{ kind: 'pilot_problem_held', releaseId, clientId: effect.clientId }];
      case 'pilot_waiting':
        return [{ kind: 'pilot_waiting', releaseId, clientId: effect.clientId, at: effect.at }];
      case 'ask_confirmation':
        return [{ kind: 'pilot_finished', releaseId, clientId: effect.clientId }];
      default:
        return [];
    }
  });
}

/** A notice as a post in the release's thread in the engineers' channel. Pure: same notice, same row. */
export function renderGateNotice(notice: GateNotice, audiences: Audiences): OutboxItem[] {
  const audience = audiences.engineers;
  if (!audience) return [];
  return [engineersPost(notice, audience.channel, audiences.clientName)];
}

function engineersPost(notice: GateNotice, channel: string, clientName: (clientId: string) => string): OutboxItem {
  const { releaseId } = notice;
  const thread = { threadSubject: subjects.digest(releaseId) };
  const post = (key: string, subject: string, payload: OutboxItem['payload']): OutboxItem => ({ key, channel, action: 'post', subject, payload });
  if (notice.kind === 'promotion_offered') {
    // Each update is offered once. One Promote button per round: an offer while one is unanswered edits it (a second
    // post would share its subject, so no later edit could reach it); after a promotion the next is its own message.
    const batch = notice.updates ? `:${createHash('sha1').update(notice.updates.join(' ')).digest('hex').slice(0, 12)}` : '';
    const offer = { ...promotionOffer(releaseId, notice.updates), ...thread };
    const subject = subjects.promote(releaseId, notice.round);
    const key = `rollout:${releaseId}:offer-promotion${batch}`;
    return notice.amends ? { key, channel, action: 'update', subject, payload: offer } : post(key, subject, offer);
  }
  const client = escapeMrkdwn(clientName(notice.clientId));
  switch (notice.kind) {
    case 'pilot_problem_held':
      return post(subjects.gateProblem(releaseId, notice.clientId), subjects.gateProblem(releaseId, notice.clientId), {
        text: `${releaseId}: ${client} reported a pilot problem; the client is held.`,
        ...thread,
      });
    case 'pilot_waiting':
      return post(`rollout:${releaseId}:pilot-waiting:${notice.clientId}:${notice.at}`, subjects.gatePilot(releaseId, notice.clientId), {
        text: `${releaseId}: nothing installed on ${client}'s pilot machines, so there is nothing to sign off and ${client} waits: an update reaches its broad machines only after it installed on a pilot machine (or an engineer skips the pilot for it: \`/patch skip pilot KB… ${escapeMrkdwn(notice.clientId)}\`).`,
        ...thread,
      });
    case 'pilot_finished':
      return post(`rollout:${releaseId}:pilot-finished:${notice.clientId}`, subjects.gatePilot(releaseId, notice.clientId), {
        text: `${releaseId}: pilot finished for ${client}; waiting for the champion.`,
        ...thread,
      });
  }
}
