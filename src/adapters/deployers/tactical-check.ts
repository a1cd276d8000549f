/**
 * `patchbay devices check`: which Tactical RMM agents patchbay may drive, and why not the others. With `fix`,
 * agents whose effective patch policy would act on its own get an agent-level policy that does nothing by itself
 * (tactical-policy.ts MANUAL_POLICY), written the way Tactical's own agent edit form writes it
 * (`PUT /agents/{agent_id}/` with `winupdatepolicy: [policy]`, permission `can_edit_agent`), then read back.
 */
import { TacticalClient } from './tactical-client.ts';
import { mapTacticalOs, type TacticalOsMapping } from './tactical-os.ts';
import { MANUAL_POLICY, policyProblems, type TacticalPatchPolicy } from './tactical-policy.ts';

export interface AgentCheck {
  agentId: string;
  hostname: string;
  client: string;
  site: string;
  os: string;
  osMapping: TacticalOsMapping;
  /** What in the effective policy would act on its own (empty: patchbay may drive the agent). */
  problems: string[];
  /** Set when `fix` changed the agent: what its policy had before. */
  fixed?: { before: string[] };
}

interface AgentDetail {
  agent_id: string;
  hostname: string;
  client: string;
  site_name: string;
  operating_system: string;
  effective_patch_policy: TacticalPatchPolicy;
  winupdatepolicy: Array<TacticalPatchPolicy & { id: number }>;
}

export interface CheckOptions {
  fix: boolean;
  /** Called after each fix is confirmed, to audit it. */
  onFixed?: (check: AgentCheck) => Promise<void>;
}

export async function checkAgents(client: TacticalClient, options: CheckOptions): Promise<AgentCheck[]> {
  const agents = await client.get<Array<{ agent_id: string }>>('agents/?detail=false');
  const checks: AgentCheck[] = [];
  for (const { agent_id: agentId } of agents) {
    let detail = await client.get<AgentDetail>(`agents/${agentId}/`);
    let check = toCheck(detail);
    if (options.fix && check.problems.length > 0) {
      await client.put(`agents/${agentId}/`, { winupdatepolicy: [{ ...(detail.winupdatepolicy[0] ?? {}), ...MANUAL_POLICY }] });
      detail = await client.get<AgentDetail>(`agents/${agentId}/`);
      const after = toCheck(detail);
      if (after.problems.length > 0) throw new Error(`Tactical RMM kept ${after.hostname}'s policy acting on its own after the fix: ${after.problems.join('; ')}`);
      check = { ...after, fixed: { before: check.problems } };
      await options.onFixed?.(check);
    }
    checks.push(check);
  }
  return checks;
}

function toCheck(detail: AgentDetail): AgentCheck {
  return {
    agentId: detail.agent_id,
    hostname: detail.hostname,
    client: detail.client,
    site: detail.site_name,
    os: detail.operating_system,
    osMapping: mapTacticalOs(detail.operating_system ?? ''),
    problems: policyProblems(detail.effective_patch_policy ?? {}),
  };
}

/** The report a person reads: refused agents with each setting, unmapped OSes, and a count of the rest. */
export function renderCheck(checks: readonly AgentCheck[], fix: boolean): string {
  const lines: string[] = [];
  const refused = checks.filter((c) => c.problems.length > 0);
  const fixed = checks.filter((c) => c.fixed);
  const unmapped = checks.filter((c) => c.osMapping.kind === 'unmapped');
  for (const c of fixed) lines.push(`fixed ${c.hostname} (${c.client} / ${c.site}): was ${c.fixed!.before.join('; ')}; now manual approval, no install days, reboot_after_install never`);
  for (const c of refused) lines.push(`refused ${c.hostname} (${c.client} / ${c.site}): ${c.problems.join('; ')}`);
  for (const c of unmapped) if (c.osMapping.kind === 'unmapped') lines.push(`unmapped OS ${c.hostname} (${c.client} / ${c.site}): "${c.os}": ${c.osMapping.reason}`);
  const ok = checks.length - refused.length;
  lines.push(`${checks.length} agent${checks.length === 1 ? '' : 's'}: ${ok} patchbay may drive, ${refused.length} refused${fix ? `, ${fixed.length} fixed` : ''}, ${unmapped.length} with an OS MSRC does not name`);
  if (refused.length > 0 && !fix) lines.push('patchbay devices check --fix sets those agents to manual approval, no install days and reboot_after_install never (audited).');
  return `${lines.join('\n')}\n`;
}
