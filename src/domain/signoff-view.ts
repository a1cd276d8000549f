import type { Gate } from './rollout.ts';

/** What a client's pilot sign-off shows (a Teams card, its text fallback): plain data, built by the pilot use-case. */
export type DeviceOutcome = 'updated' | 'failed' | 'missed' | 'nothing' | 'in_progress' | 'waiting';

export interface SignoffView {
  releaseId: string;
  clientId: string;
  clientName: string;
  zone: string;
  /** The pilot gate's state; `none` when the client has no pilot for this release. */
  gate: 'none' | 'scheduled' | 'running' | 'awaiting_confirmation' | 'confirmed' | 'problem' | 'finished';
  devices: Array<{ name: string; outcome: DeviceOutcome; reboots: number; error: string | null }>;
  updates: Array<{ kb: string | null; words: string }>;
  notes: Array<{ kb: string | null; body: string }>;
  answer:
    | { kind: 'confirmed'; by: string; as: 'champion' | 'engineer' | 'auto'; at: string }
    | { kind: 'problem'; by: string; at: string; text: string }
    | undefined;
  /** An active hold on the client (placed by an engineer, or by a reported problem). */
  hold: { by: string; at: string; reason: string } | undefined;
  /** Teams MRIs (`29:…`) of the client's champions seen so far: who the card refreshes for (Teams allows 60). */
  championIds: string[];
  /** '' for the release's first sign-off; for a later one (late updates), what it asks about: a card of its own. */
  round: string;
}

/** What a sign-off asks about; once answered, what the answer covered (a reopened pilot's card shows what was confirmed). */
export function signoffAsked(gate: Pick<Gate, 'asked' | 'confirmation'> | undefined): Set<string> {
  return new Set(gate?.asked?.length ? gate.asked : (gate?.confirmation?.updates ?? []));
}

/** The round of a pilot's sign-off: '' for the release's first, else what it asks about (a card of its own). */
export function signoffRound(gate: Pick<Gate, 'asked' | 'confirmation' | 'confirmed'> | undefined): string {
  return (gate?.confirmed ?? []).length > 0 ? [...signoffAsked(gate)].sort().join('+') : '';
}
