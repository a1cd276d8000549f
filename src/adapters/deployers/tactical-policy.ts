/**
 * Pure rules for driving Tactical RMM without it acting on its own (research §1.3, §1.7).
 *
 * Tactical's install installs every approved row on the agent, its policy can approve by severity, install on its
 * own schedule, and reboot the machine the moment the agent reports needs_reboot (apiv3 WinUpdates.put). Inside
 * patchbay's windows that would mean installs nobody approved and reboots outside any window, so an agent whose
 * effective policy would do any of it is refused, naming each setting.
 */

/** The fields of Tactical's WinUpdatePolicy that decide whether it acts by itself (winupdate/models.py). */
export interface TacticalPatchPolicy {
  critical?: string;
  important?: string;
  moderate?: string;
  low?: string;
  other?: string;
  run_time_frequency?: string;
  run_time_days?: number[] | null;
  run_time_day?: number;
  run_time_hour?: number;
  reboot_after_install?: string;
}

const SEVERITY_FIELDS = ['critical', 'important', 'moderate', 'low', 'other'] as const;

/**
 * What in an effective policy would make Tactical act on its own; empty when patchbay may drive the agent.
 * `inherit` left in an effective policy has nothing to inherit from and does nothing (Agent.approve_updates and
 * check_agent_update_schedule_task only act on `approve`, `daily` with days, `monthly`, `always`, `required`).
 */
export function policyProblems(policy: TacticalPatchPolicy): string[] {
  const problems: string[] = [];
  for (const field of SEVERITY_FIELDS) {
    if (policy[field] === 'approve') problems.push(`${field}: approve (auto-approves ${field} updates)`);
  }
  const days = policy.run_time_days ?? [];
  if (policy.run_time_frequency === 'daily' && days.length > 0) {
    problems.push(`run_time_frequency: daily on days ${days.join(',')} at ${policy.run_time_hour ?? '?'}h (auto-installs approved updates)`);
  }
  if (policy.run_time_frequency === 'monthly') {
    problems.push(`run_time_frequency: monthly on day ${policy.run_time_day ?? '?'} at ${policy.run_time_hour ?? '?'}h (auto-installs approved updates)`);
  }
  if (policy.reboot_after_install === 'always' || policy.reboot_after_install === 'required') {
    problems.push(`reboot_after_install: ${policy.reboot_after_install} (reboots the machine as soon as an install finishes)`);
  }
  return problems;
}

export function policyRefusal(hostname: string, problems: readonly string[]): string {
  return `refused: Tactical RMM would act on its own on ${hostname}: its effective patch policy has ${problems.join('; ')}. Set the agent's policy to manual approval, no install days and reboot_after_install never (patchbay devices check --fix does it).`;
}

/** The agent-level policy `devices check --fix` writes: nothing automatic. */
export const MANUAL_POLICY = {
  critical: 'manual',
  important: 'manual',
  moderate: 'manual',
  low: 'manual',
  other: 'manual',
  run_time_frequency: 'daily',
  run_time_days: [] as number[],
  reboot_after_install: 'never',
} as const;

/** A row of `GET /winupdate/{agent_id}/` (winupdate/models.py WinUpdate), the fields the adapter reads. */
export interface WinUpdateRow {
  id: number;
  kb: string | null;
  installed: boolean;
  action: string;
  result: string;
}

export const kbOf = (kb: string): string => (/^kb/i.test(kb) ? `KB${kb.slice(2)}` : `KB${kb}`);

export interface ApprovalPlan {
  /**
   * Row ids to set `approve` with `result` back to `n/a`: the wanted KBs not yet installed. Tactical never clears
   * a `failed` result when an install is retried, so without the reset a retry would read as failed at once
   * (WinUpdateSerializer takes every field, so the PUT may set `result`).
   */
  approve: number[];
  /** Row ids to set `nothing`: approved rows patchbay did not ask for (Tactical would install them too). */
  unapprove: number[];
  /** Wanted KBs that still need installing. */
  toInstall: string[];
  /** Wanted KBs the agent has no row for (not offered: superseded, or not applicable). */
  absent: string[];
}

/** Exactly the wanted KBs approved on the agent, every other pending approval withdrawn. */
export function approvalPlan(rows: readonly WinUpdateRow[], wanted: readonly string[]): ApprovalPlan {
  const want = new Set(wanted.map(kbOf));
  const plan: ApprovalPlan = { approve: [], unapprove: [], toInstall: [], absent: [] };
  const seen = new Set<string>();
  for (const row of rows) {
    const kb = row.kb ? kbOf(row.kb) : '';
    if (want.has(kb)) {
      seen.add(kb);
      if (!row.installed) {
        if (row.action !== 'approve' || row.result !== 'n/a') plan.approve.push(row.id);
        if (!plan.toInstall.includes(kb)) plan.toInstall.push(kb);
      }
    } else if (row.action === 'approve' && !row.installed) {
      plan.unapprove.push(row.id);
    }
  }
  plan.absent = [...want].filter((kb) => !seen.has(kb));
  return plan;
}

export type RowProgress = 'installed' | 'failed' | 'pending' | 'absent';

/** Where each wanted KB stands in the agent's rows (a row per revision: any installed one counts). */
export function progressOf(rows: readonly WinUpdateRow[], wanted: readonly string[]): Map<string, RowProgress> {
  const out = new Map<string, RowProgress>();
  for (const kb of wanted.map(kbOf)) {
    const mine = rows.filter((r) => r.kb !== null && kbOf(r.kb) === kb);
    if (mine.length === 0) out.set(kb, 'absent');
    else if (mine.some((r) => r.installed || r.result === 'success')) out.set(kb, 'installed');
    else if (mine.some((r) => r.result === 'failed')) out.set(kb, 'failed');
    else out.set(kb, 'pending');
  }
  return out;
}
