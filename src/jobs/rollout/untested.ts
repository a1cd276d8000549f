/**
 * Updates a finished ring could not test (no device there runs them, or none installed them) wait for an engineer's
 * skip: the release's thread says which, once per ring, client and set of updates. Never silent.
 */
import type { OpenGateDevice } from '../../db/rollout-repo.ts';
import { passedMsp, untestedForDevices, type MspStanding, type ReleaseFacts } from '../../domain/eligibility.ts';
import type { Ring } from '../../domain/inventory.ts';
import { isHeld, type Hold } from '../../domain/rollout.ts';
import type { RolloutNotice } from '../../chat/notices/rollout.ts';
import type { Catalog } from './sweep-reads.ts';

export interface UntestedGate {
  releaseId: string;
  ring: Ring;
  clientId: string | null;
}

/** The notices for what `gate`'s ring could not test; `devices`: the gate's, for a pilot (whose OS ring msp tested). */
export function untestedNotices(
  gate: UntestedGate,
  catalog: Catalog,
  facts: ReleaseFacts,
  standings: readonly MspStanding[] | undefined,
  holds: readonly Hold[],
  devices: readonly OpenGateDevice[] = [],
): RolloutNotice[] {
  let keys: string[] = [];
  let waitingMsp: string[] = [];
  if (gate.ring === 'msp') keys = (standings ?? []).filter((st) => st.state === 'untested').map((st) => st.key);
  else if (gate.ring === 'pilot') {
    const installed = facts.installedPilot.get(gate.clientId!);
    const target = { releaseId: gate.releaseId, ring: 'pilot' as const, clientId: gate.clientId };
    keys = [...facts.promoted].filter(
      (k) => passedMsp(facts, k) && !installed?.has(k) && !facts.skippedPilot.get(gate.clientId!)?.has(k) && !isHeld(holds, { ...target, updateKey: k }),
    );
    // An update that installed on ring msp, but on no MSP machine running the OS of these pilots, waits for ring
    // msp (or its skip) for them: skipping the pilot would send it to broad machines nobody tested it on.
    const untestedOs = untestedForDevices(facts, catalog, devices);
    waitingMsp = keys.filter((k) => untestedOs.has(k));
    keys = keys.filter((k) => !untestedOs.has(k));
  }
  const kbsOf = (list: readonly string[]) => list.map((k) => (catalog.byKey.get(k)?.kb ? `KB${catalog.byKey.get(k)!.kb}` : k));
  const notices: RolloutNotice[] = [];
  for (const [waitsFor, list] of [['own_ring', keys.sort()], ['msp_os', waitingMsp.sort()]] as const) {
    if (list.length > 0) notices.push({ kind: 'updates_untested', releaseId: gate.releaseId, ring: gate.ring, clientId: gate.clientId, waitsFor, keys: list, kbs: kbsOf(list) });
  }
  return notices;
}
