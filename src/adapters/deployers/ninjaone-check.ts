/**
 * `patchbay devices check` with DEPLOYER=ninjaone: what patchbay can know before it drives NinjaOne's devices.
 *
 * Tactical's check reads each agent's effective patch policy and refuses the agents whose policy would patch on its
 * own. NinjaOne's public API cannot do that: a policy's OS patch schedule and approvals are not in it (`/v2/policies`
 * lists names only, policy overrides are read/delete only; research §2.5 and its open points). So the check says
 * so, and checks what it can: the API client's token, that the KB install script is in the library under the id
 * configured, and per device of the organizations the inventory links (or all, without a file) that its OS maps to
 * an MSRC product. Inside patchbay's own work the adapter holds the policy off with maintenance (PATCHING disabled);
 * outside it, the MSP's policy decides, which is why the README asks for the policy's patching to be off or manual.
 */
import type { NinjaOneClient } from './ninjaone-client.ts';
import { mapNinjaOneOs } from './ninjaone-os.ts';
import { isManagedNinjaDevice, type NinjaDeviceRow, type NinjaOrganizationRow } from './ninjaone-sync.ts';
import { readAllPages } from './ninjaone-sync-read.ts';
import type { TacticalOsMapping } from './tactical-os.ts';

export interface NinjaDeviceCheck {
  deviceId: number;
  systemName: string;
  organization: string;
  osMapping: TacticalOsMapping;
  offline: boolean;
}

export interface NinjaOneCheck {
  /** The install script's library id, and whether the library has it. */
  installScript: { id: number; found: boolean; name?: string };
  devices: NinjaDeviceCheck[];
}

export const POLICY_NOT_READABLE =
  "NinjaOne's API does not show a policy's OS patch schedule or approvals, so no device's policy could be checked: set OS patching in the policies of these devices to off (or approvals to manual) in NinjaOne. During patchbay's own work each device is put in maintenance with PATCHING disabled.";

export async function checkNinjaOne(client: NinjaOneClient, installScriptId: number): Promise<NinjaOneCheck> {
  const scripts = (await client.get<Array<{ id: number; name?: string }> | null>('v2/automation/scripts')) ?? [];
  const script = scripts.find((s) => s.id === installScriptId);
  const organizations = await readAllPages<NinjaOrganizationRow>(client, 'v2/organizations');
  const names = new Map(organizations.map((o) => [o.id, o.name]));
  const rows = await readAllPages<NinjaDeviceRow & { offline?: boolean }>(client, 'v2/devices-detailed');
  const devices = rows.filter(isManagedNinjaDevice).map((row) => ({
    deviceId: row.id,
    systemName: row.systemName,
    organization: names.get(row.organizationId) ?? `organization ${row.organizationId}`,
    osMapping: mapNinjaOneOs(row.os),
    offline: row.offline ?? false,
  }));
  return { installScript: { id: installScriptId, found: script !== undefined, ...(script?.name ? { name: script.name } : {}) }, devices };
}

export function renderNinjaOneCheck(check: NinjaOneCheck): string {
  const lines: string[] = [];
  const { installScript } = check;
  lines.push(
    installScript.found
      ? `install script: id ${installScript.id} (${installScript.name ?? 'unnamed'}) is in the NinjaOne library`
      : `install script: no script with id ${installScript.id} in the NinjaOne library: add integrations/ninjaone/Install-PatchbayKBs.ps1 and set NINJAONE_INSTALL_SCRIPT_ID to its id`,
  );
  const unmapped = check.devices.filter((d) => d.osMapping.kind === 'unmapped');
  for (const d of unmapped) if (d.osMapping.kind === 'unmapped') lines.push(`unmapped OS ${d.systemName} (${d.organization}): "${d.osMapping.os}": ${d.osMapping.reason}`);
  const offline = check.devices.filter((d) => d.offline).length;
  lines.push(`${check.devices.length} device${check.devices.length === 1 ? '' : 's'}: ${offline} offline now, ${unmapped.length} with an OS MSRC does not name`);
  lines.push(POLICY_NOT_READABLE);
  return `${lines.join('\n')}\n`;
}
