/**
 * Lines in the release's engineers' thread for what a client's side decided, so the thread tells the whole story:
 * a champion (or an engineer on the client's behalf) confirmed the pilot, or nobody answered and auto-confirm did.
 * Written in the same transaction as the confirmation; the key makes each line once.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import type { OutboxItem } from '../db/outbox-repo.ts';
import type { RolloutEffect } from '../domain/rollout.ts';
import { escapeMrkdwn } from '../bot/slack/block-kit.ts';
import { subjects } from '../chat/subjects.ts';

export interface Confirmation {
  releaseId: string;
  clientId: string;
  as: 'champion' | 'engineer' | 'auto';
  /** The person's display name (absent for auto-confirm). */
  by?: string;
}

/** "Harbour Accounting's champion Ana Silva confirmed the pilot of 2024-Feb", in words people use. */
export function confirmationText(clientName: string, c: Confirmation, autoConfirmHours: number | undefined): string {
  const tail = 'the rest of its machines are scheduled.';
  if (c.as === 'auto') {
    const after = autoConfirmHours !== undefined ? ` after ${autoConfirmHours} h` : '';
    return `${clientName}'s pilot of ${c.releaseId} was auto-confirmed${after} without an answer from its champions; ${tail}`;
  }
  if (c.as === 'engineer') return `${c.by ?? 'An engineer'} confirmed ${clientName}'s pilot of ${c.releaseId} on its behalf; ${tail}`;
  return `${clientName}'s champion ${c.by ?? ''} confirmed the pilot of ${c.releaseId}; ${tail}`.replace('  ', ' ');
}

export async function confirmationNotice(tx: AppDatabase, c: Confirmation): Promise<OutboxItem[]> {
  const [msp] = rowsOf<{ channel: string | null }>(await tx.execute(sql`select channel from msp where id = 1`));
  const [client] = rowsOf<{ name: string; hours: string | null }>(
    await tx.execute(sql`select name, settings ->> 'autoConfirmHours' as hours from clients where id = ${c.clientId}`),
  );
  if (!msp?.channel || !client) return [];
  const text = `:white_check_mark: ${escapeMrkdwn(confirmationText(client.name, c, client.hours === null ? undefined : Number(client.hours)))}`;
  return [
    {
      key: subjects.pilotConfirmed(c.releaseId, c.clientId),
      platform: 'slack',
      channel: msp.channel,
      action: 'post',
      subject: subjects.pilotConfirmed(c.releaseId, c.clientId),
      payload: { text, threadSubject: subjects.digest(c.releaseId) },
    },
  ];
}

/** The thread lines for pilots the rollout confirmed by itself (auto-confirm), read from a transition's effects. */
export async function autoConfirmNotices(tx: AppDatabase, releaseId: string, effects: readonly RolloutEffect[]): Promise<OutboxItem[]> {
  const items: OutboxItem[] = [];
  for (const e of effects) {
    if (e.type !== 'audit' || e.action !== 'confirm_pilot' || e.detail.as !== 'auto') continue;
    const clientId = e.subject.slice(e.subject.indexOf('/') + 1);
    items.push(...(await confirmationNotice(tx, { releaseId, clientId, as: 'auto' })));
  }
  return items;
}
