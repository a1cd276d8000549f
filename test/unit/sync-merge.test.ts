// The parts of a device sync both managers share (src/adapters/deployers/sync-merge.ts), through Tactical's merge:
// sites whose names slug alike stay two locations, and a hostname another device already has is left out.
import { describe, expect, it } from 'vitest';
import { mergeTactical, type TacticalAgentRow } from '../../src/adapters/deployers/tactical-sync.ts';
import type { Inventory } from '../../src/domain/inventory.ts';
import { parseWindowSpec } from '../../src/domain/window-spec.ts';

const daily = parseWindowSpec('daily 01:00-05:00');
if (!daily.ok) throw new Error(daily.error);

const yaml: Inventory = {
  msp: { name: 'x', engineers: [], channel: 'C1', timezone: 'UTC', windows: {}, devices: [{ name: 'EXIT-01', class: 'desktop', ring: 'msp', os: undefined, user: undefined }] },
  clients: [{ id: 'a', name: 'A', timezone: 'UTC', windows: { desktop: daily.value }, software: [], champions: [], locations: [], tacticalClient: 'Alpha' }],
};

const agent = (hostname: string, site: string): TacticalAgentRow =>
  ({ agent_id: hostname, hostname, client_name: 'Alpha', site_name: site, monitoring_type: 'workstation', operating_system: 'Windows 11 Pro, 64 bit v23H2 (build 22631.3007)' });

describe('device sync merge', () => {
  it('two sites whose names slug alike are two locations; a hostname the MSP already uses is left out, said once', () => {
    const merged = mergeTactical(yaml, [{ id: 7, name: 'Alpha', sites: [{ id: 1, name: 'Main St' }, { id: 2, name: 'Main-St' }] }], [agent('A-1', 'Main St'), agent('A-2', 'Main-St'), agent('exit-01', 'Main St')]);
    const locations = merged.inventory.clients[0]!.locations;
    expect(locations.map((l) => [l.id, l.name, l.devices.map((d) => d.name)])).toEqual([
      ['main-st', 'Main St', ['A-1']],
      ['main-st-2', 'Main-St', ['A-2']],
    ]);
    expect(merged.problems).toEqual(['a: the Tactical agent exit-01 has the name of another device patchbay manages; it is left out until one is renamed']);
    expect(merged.added).toEqual(['a/A-1', 'a/A-2']);
  });
});
