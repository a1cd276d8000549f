/**
 * Lines in the release's engineers' thread for what a client's side decided, so the thread tells the whole story:
 * a champion (or an engineer on the client's behalf) confirmed the pilot, or nobody answered and auto-confirm did.
 * Written in the same transaction as the confirmation; the key makes each line once.
 */
import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import type { OutboxItem } from '../db/outbox-repo.ts';
import type { RolloutEffect } from '../domain/rollout.ts';
import { updateLabel } from '../domain/status.ts';
import { escapeMrkdwn } from '../bot/slack/block-kit.ts';
import { subjects } from '../chat/subjects.ts';
import { broadFirstNights } from './broad-night.ts';

export interface Confirmation {
  releaseId: string;
  clientId: string;
  as: 'champion' | 'engineer' | 'auto';
  /** The person's display name (absent for auto-confirm). */
  by?: string;
  /** The updates this confirmation covered (what its sign-off asked about). */
  updates?: readonly string[];
}

/**
 * "Harbour Accounting's champion Ana Silva confirmed the pilot of 2024-Feb (KB5034765 …)", in words people use,
 * then which night each class of its other machines starts (`nights`, one line each; none: "are scheduled").
 */
export function confirmationText(clientName: string, c: Confirmation, autoConfirmHours: number | undefined, what: readonly string[] = [], nights: readonly string[] = []): string {
  const covered = what.length > 0 ? ` (${what.join(', ')})` : '';
  const tail = nights.length > 0 ? `the rest of its machines start:\n${nights.join('\n')}` : 'the rest of its machines are scheduled.';
  if (c.as === 'auto') {
    const after = autoConfirmHours !== undefined ? ` after ${autoConfirmHours} h` : '';
    return `${clientName}'s pilot of ${c.releaseId}${covered} was auto-confirmed${after} without an answer from its champions; ${tail}`;
  }
  if (c.as === 'engineer') return `${c.by ?? 'An engineer'} confirmed ${clientName}'s pilot of ${c.releaseId}${covered} on its behalf; ${tail}`;
  return `${clientName}'s champion ${c.by ?? ''} confirmed the pilot of ${c.releaseId}${covered}; ${tail}`.replace('  ', ' ');
}

/**
 * One thread note per confirmation: who confirmed, what, and which night the broad ring runs. (It was two notes,
 * the confirmation and the nights, keyed per client, so a later confirmation of a late update posted neither.)
 * Keyed by the updates it covered: a retried click is one note; a later confirmation is a note of its own.
 */
export async function confirmationNotice(tx: AppDatabase, c: Confirmation, now: Date): Promise<OutboxItem[]> {
  const [msp] = rowsOf<{ channel: string | null }>(await tx.execute(sql`select channel from msp where id = 1`));
  const [client] = rowsOf<{ name: string; hours: string | null }>(
    await tx.execute(sql`select name, settings ->> 'autoConfirmHours' as hours from clients where id = ${c.clientId}`),
  );
  if (!msp?.channel || !client) return [];
  const keys = [...(c.updates ?? [])].sort();
  const labels = rowsOf<{ update_key: string; kb: string | null; title: string | null }>(
    await tx.execute(sql`select update_key, kb, title from updates where release_id = ${c.releaseId}
      and update_key in (select jsonb_array_elements_text(${JSON.stringify(keys)}::jsonb))`),
  );
  const labelOf = new Map(labels.map((u) => [u.update_key, updateLabel({ key: u.update_key, kb: u.kb, title: u.title })]));
  const what = keys.map((k) => escapeMrkdwn(labelOf.get(k) ?? updateLabel({ key: k, kb: null, title: null })));
  const nights = (await broadFirstNights(tx, c.clientId, now)).map(
    (n) => `• ${escapeMrkdwn(n.deviceClass)} (${n.count}): ${n.night}${n.users ? ', once their users have had the \u201csave your work\u201d message' : ''}`,
  );
  const text = `:white_check_mark: ${confirmationText(escapeMrkdwn(client.name), { ...c, ...(c.by !== undefined ? { by: escapeMrkdwn(c.by) } : {}) }, client.hours === null ? undefined : Number(client.hours), what, nights)}`;
  const key = `pilot-confirmed:${c.releaseId}:${c.clientId}${keys.length > 0 ? `:${createHash('sha1').update(keys.join(' ')).digest('hex').slice(0, 12)}` : ''}`;
  return [
    {
      key,
      platform: 'slack',
      channel: msp.channel,
      action: 'post',
      subject: subjects.pilotConfirmed(c.releaseId, c.clientId),
      payload: { text, threadSubject: subjects.digest(c.releaseId) },
    },
  ];
}

/** The thread lines for pilots the rollout confirmed by itself (auto-confirm), read from a transition's effects. */
export async function autoConfirmNotices(tx: AppDatabase, releaseId: string, effects: readonly RolloutEffect[], now: Date): Promise<OutboxItem[]> {
  const items: OutboxItem[] = [];
  for (const e of effects) {
    if (e.type !== 'audit' || e.action !== 'confirm_pilot' || e.detail.as !== 'auto') continue;
    const clientId = e.subject.slice(e.subject.indexOf('/') + 1);
    const updates = Array.isArray(e.detail.updates) ? (e.detail.updates as string[]) : [];
    items.push(...(await confirmationNotice(tx, { releaseId, clientId, as: 'auto', updates }, now)));
  }
  return items;
}
