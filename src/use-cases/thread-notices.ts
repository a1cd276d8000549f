/**
 * Lines in the release's engineers' thread for what a client's side decided, so the thread tells the whole story:
 * a champion (or an engineer on the client's behalf) confirmed the pilot, or nobody answered and auto-confirm did.
 * Written in the same transaction as the confirmation; the key makes each line once.
 */
import type { AppDatabase } from '../db/client.ts';
import { clientConfirmationSettings } from '../db/clients-repo.ts';
import { updateLabelsOf } from '../db/release-repo.ts';
import type { RolloutEffect } from '../domain/rollout.ts';
import { updateLabel } from '../domain/status.ts';
import type { PilotConfirmed } from '../chat/notices/digest.ts';
import { broadFirstNights } from './broad-night.ts';

export { confirmationText } from '../chat/notices/digest.ts';

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
 * The thread note for one confirmation, as a notice for `notify`: who confirmed, which updates (named as people
 * name them), and which night each class of the client's broad machines starts. Undefined for an unknown client.
 */
export async function pilotConfirmed(tx: AppDatabase, c: Confirmation, now: Date): Promise<PilotConfirmed | undefined> {
  const client = await clientConfirmationSettings(tx, c.clientId);
  if (!client) return undefined;
  const keys = [...(c.updates ?? [])].sort();
  const labelOf = new Map((await updateLabelsOf(tx, c.releaseId, keys)).map((u) => [u.key, updateLabel(u)]));
  return {
    kind: 'pilot_confirmed',
    releaseId: c.releaseId,
    clientId: c.clientId,
    clientName: client.name,
    as: c.as,
    ...(c.by !== undefined ? { by: c.by } : {}),
    updates: keys.map((key) => ({ key, label: labelOf.get(key) ?? updateLabel({ key, kb: null, title: null }) })),
    nights: await broadFirstNights(tx, { releaseId: c.releaseId, clientId: c.clientId, covered: keys }, now),
    autoConfirmHours: client.autoConfirmHours,
  };
}

/** The notices for pilots the rollout confirmed by itself (auto-confirm), read from a transition's effects. */
export async function autoConfirmed(tx: AppDatabase, releaseId: string, effects: readonly RolloutEffect[], now: Date): Promise<PilotConfirmed[]> {
  const notices: PilotConfirmed[] = [];
  for (const e of effects) {
    if (e.type !== 'audit' || e.action !== 'confirm_pilot' || e.detail.as !== 'auto') continue;
    const clientId = e.subject.slice(e.subject.indexOf('/') + 1);
    const updates = Array.isArray(e.detail.updates) ? (e.detail.updates as string[]) : [];
    const notice = await pilotConfirmed(tx, { releaseId, clientId, as: 'auto', updates }, now);
    if (notice) notices.push(notice);
  }
  return notices;
}
