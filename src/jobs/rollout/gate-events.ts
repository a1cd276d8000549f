/** Gate events from the engine, each batch in one transaction of its own. */
import type { AppDatabase } from '../../db/client.ts';
import type { RolloutEvent, RolloutTransition } from '../../domain/rollout.ts';
import { applyGateEvents } from '../../use-cases/gates.ts';
import { withTransaction } from '../../use-cases/transaction.ts';

export interface GateEvents {
  /** Applies one gate event in one transaction (compare-and-set on each gate's version), with its row effects. */
  apply(releaseId: string, event: RolloutEvent): Promise<RolloutTransition>;
  /** Applies events to one release's gates in order, in one transaction: a window opening for 400 clients at once. */
  applyAll(releaseId: string, events: readonly RolloutEvent[]): Promise<RolloutTransition[]>;
}

export function gateEvents(db: AppDatabase, clock: () => Date): GateEvents {
  const applyAll = async (releaseId: string, events: readonly RolloutEvent[]): Promise<RolloutTransition[]> => {
    const now = clock();
    // Another worker moving a gate between our read and write makes withTransaction read again and decide afresh.
    return withTransaction({ db }, async (tx) => (await applyGateEvents(tx, releaseId, events, now)).results);
  };
  return { applyAll, apply: async (releaseId, event) => (await applyAll(releaseId, [event]))[0]! };
}
