/** What every step of a sweep is handed: one clock reading, the holds and release inputs read once, the gate mover. */
import type { AppDatabase } from '../../db/client.ts';
import type { OpenGateDevice } from '../../db/rollout-repo.ts';
import type { Hold } from '../../domain/rollout.ts';
import type { GateEvents } from './gate-events.ts';
import type { SweepReads } from './sweep-reads.ts';

export interface SweepStep {
  db: AppDatabase;
  now: Date;
  /** The holds as the sweep read them at its start. */
  holds: readonly Hold[];
  /** The holds as stored now: moving a gate on (finishing, ticking) reads them again, as a hold may have just come. */
  holdsNow(): Promise<readonly Hold[]>;
  reads: SweepReads;
  gates: GateEvents;
}

/** Unflagged devices by gate id: a flagged device no longer holds its ring up. */
export function unflaggedByGate(devices: readonly OpenGateDevice[]): Map<number, OpenGateDevice[]> {
  const byGate = new Map<number, OpenGateDevice[]>();
  for (const d of devices) {
    if (d.flagged) continue;
    const list = byGate.get(d.gateId);
    if (list) list.push(d);
    else byGate.set(d.gateId, [d]);
  }
  return byGate;
}
