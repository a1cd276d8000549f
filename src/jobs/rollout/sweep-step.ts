/** What every step of a sweep is handed: one clock reading, the holds and release inputs read once, the gate mover. */
import type { AppDatabase } from '../../db/client.ts';
import { openGateDevices, type DeviceCursor, type DeviceScope, type OpenGateDevice, type SweepGateCount } from '../../db/rollout-repo.ts';
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
  /** Hands on some gates' devices a chunk of gates at a time (`gateChunks`): what the gate steps plan over. */
  inGateChunks<G extends { id: number }>(gates: readonly G[], each: (chunk: G[], devices: OpenGateDevice[]) => Promise<void>): Promise<void>;
}

/**
 * Cuts gates into chunks of about `batch` devices (a gate larger than that is a chunk of its own: the gate steps
 * decide over a gate's devices together), by the counts the sweep read at its start (`devicesOf`).
 */
export function gateChunks<G extends { id: number }>(gates: readonly G[], devicesOf: (gateId: number) => number, batch: number): G[][] {
  const chunks: G[][] = [];
  let chunk: G[] = [];
  let size = 0;
  for (const gate of gates) {
    const n = devicesOf(gate.id);
    if (chunk.length > 0 && size + n > batch) {
      chunks.push(chunk);
      chunk = [];
      size = 0;
    }
    chunk.push(gate);
    size += n;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * The devices of the gates that may get runs now, a page of at most `batch` at a time in (gate, device) order,
 * with a keyset cursor: a sweep holds one page, however large the fleet. Each page is read when the one before is
 * planned and its gates opened, so it sees the gates that page opened as running.
 */
export async function* devicePages(db: AppDatabase, gates: readonly SweepGateCount[], batch: number, skipPlanned?: DeviceScope['skipPlanned']): AsyncGenerator<OpenGateDevice[]> {
  let i = 0;
  let after: DeviceCursor | undefined;
  while (i < gates.length) {
    let j = i + 1;
    for (let n = gates[i]!.devices; j < gates.length && n + gates[j]!.devices <= batch; j++) n += gates[j]!.devices;
    const page = await openGateDevices(db, { gateIds: gates.slice(i, j).map((g) => g.id), ...(after ? { after } : {}), limit: batch, ...(skipPlanned ? { skipPlanned } : {}) });
    if (page.length > 0) yield page;
    if (page.length < batch) {
      i = j;
      after = undefined;
    } else {
      // A full page may end inside a gate: the next one goes on from the last device read.
      const last = page.at(-1)!;
      after = { gateId: last.gateId, deviceId: last.id };
      while (gates[i]!.id < last.gateId) i++;
    }
  }
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
