/**
 * The evidence appendix of a compliance report (issue 17): what an auditor asks to see behind the numbers. Who
 * decided what and why, the holds with who placed and released them, the client champion's pilot sign-offs, and
 * each maintenance window's runs with their reboots. Pure: src/db/evidence-repo.ts loads the rows, this groups them.
 */

export interface DecisionFact {
  kind: string;
  releaseId: string | null;
  updateKey: string | null;
  ring: string | null;
  device: string | null;
  actor: string;
  /** The person behind the actor id, when the directory knows them. */
  actorName: string | null;
  source: string;
  reason: string | null;
  at: string;
}

export interface HoldEvidence {
  scope: string;
  releaseId: string | null;
  updateKey: string | null;
  ring: string | null;
  reason: string;
  placedBy: string;
  placedAt: string;
  releasedBy: string | null;
  releasedAt: string | null;
}

export interface SignoffFact {
  releaseId: string;
  /** `champion:<id>`, `engineer:<id>` or the auto-confirm, as the gate stored it. */
  confirmedBy: string;
  confirmedByName: string | null;
  confirmedAt: string;
}

export interface WindowRunFact {
  device: string;
  releaseId: string | null;
  ring: string | null;
  windowStart: string;
  windowEnd: string;
  state: string;
  result: string | null;
  reboots: number;
  /** When the device manager was asked to reboot (recorded by the Tactical and NinjaOne adapters). */
  rebootTimes: readonly string[];
  startedAt: string | null;
  finishedAt: string | null;
}

export interface EvidenceFacts {
  decisions: readonly DecisionFact[];
  holds: readonly HoldEvidence[];
  signoffs: readonly SignoffFact[];
  runs: readonly WindowRunFact[];
}

export interface WindowEvidence {
  releaseId: string | null;
  ring: string | null;
  windowStart: string;
  windowEnd: string;
  devices: number;
  byState: Record<string, number>;
  reboots: number;
  firstStart: string | null;
  lastFinish: string | null;
  runs: WindowRunFact[];
}

export interface EvidenceAppendix {
  decisions: DecisionFact[];
  holds: HoldEvidence[];
  signoffs: SignoffFact[];
  windows: WindowEvidence[];
}

const byTime = <T>(at: (item: T) => string | null) => (a: T, b: T): number => (at(a) ?? '').localeCompare(at(b) ?? '');

function windowOf(runs: WindowRunFact[]): WindowEvidence {
  const first = runs[0]!;
  const byState: Record<string, number> = {};
  let firstStart: string | null = null;
  let lastFinish: string | null = null;
  for (const run of runs) {
    byState[run.state] = (byState[run.state] ?? 0) + 1;
    if (run.startedAt !== null && (firstStart === null || run.startedAt < firstStart)) firstStart = run.startedAt;
    if (run.finishedAt !== null && (lastFinish === null || run.finishedAt > lastFinish)) lastFinish = run.finishedAt;
  }
  return {
    releaseId: first.releaseId,
    ring: first.ring,
    windowStart: first.windowStart,
    windowEnd: first.windowEnd,
    devices: new Set(runs.map((r) => r.device)).size,
    byState,
    reboots: runs.reduce((sum, r) => sum + r.reboots, 0),
    firstStart,
    lastFinish,
    runs: [...runs].sort((a, b) => a.device.localeCompare(b.device)),
  };
}

/** Runs grouped into their windows (release, ring, start, end), in time order; everything else in time order. */
export function evidenceAppendix(facts: EvidenceFacts): EvidenceAppendix {
  const groups = new Map<string, WindowRunFact[]>();
  for (const run of facts.runs) {
    const key = [run.releaseId, run.ring, run.windowStart, run.windowEnd].join('\u0000');
    const list = groups.get(key);
    if (list) list.push(run);
    else groups.set(key, [run]);
  }
  return {
    decisions: [...facts.decisions].sort(byTime((d) => d.at)),
    holds: [...facts.holds].sort(byTime((h) => h.placedAt)),
    signoffs: [...facts.signoffs].sort(byTime((s) => s.confirmedAt)),
    windows: [...groups.values()].map(windowOf).sort(byTime((w) => w.windowStart)),
  };
}
