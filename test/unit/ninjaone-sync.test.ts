/**
 * The NinjaOne sync's merge (pure): organizations → clients, locations → locations, nodeClass → class, OS → MSRC,
 * the last logged-in user linked, no device time zone (the client's from the YAML), new devices broad and listed.
 */
import { describe, expect, it } from 'vitest';
import { mergeNinjaOne, type NinjaDeviceRow, type NinjaOneFleet } from '../../src/adapters/deployers/ninjaone-sync.ts';
import type { Inventory, InventoryClient } from '../../src/domain/inventory.ts';
import type { WindowRule } from '../../src/domain/window-spec.ts';

// The sync reads only which classes have a window, never the rule itself.
const RULE = {} as WindowRule;
const WIN11 = { name: 'Windows 11 Professional Edition', architecture: '64-bit', buildNumber: '22631' };

function client(over: Partial<InventoryClient>): InventoryClient {
  return { id: 'contoso', name: 'Contoso', timezone: 'America/New_York', windows: { desktop: RULE, server: RULE }, software: [], champions: [], locations: [], ...over };
}

function inventory(clients: InventoryClient[]): Inventory {
  return { msp: { name: 'Example IT', engineers: [], channel: 'C1', timezone: 'America/Chicago', windows: {}, devices: [{ name: 'EXIT-01', class: 'desktop', ring: 'msp', os: undefined, user: undefined }] }, clients } as Inventory;
}

function device(id: number, systemName: string, over: Partial<NinjaDeviceRow> = {}): NinjaDeviceRow {
  return { id, systemName, organizationId: 1, locationId: 10, nodeClass: 'WINDOWS_WORKSTATION', approvalStatus: 'APPROVED', os: WIN11, ...over };
}

const fleet = (devices: NinjaDeviceRow[]): NinjaOneFleet => ({
  organizations: [
    { id: 1, name: 'Contoso Ltd' },
    { id: 2, name: 'Someone Else' },
  ],
  locations: [
    { id: 10, name: 'Main Office', organizationId: 1 },
    { id: 11, name: 'Data Center', organizationId: 1 },
    { id: 20, name: 'Elsewhere', organizationId: 2 },
  ],
  devices,
});

const linked = client({
  ninjaoneOrganization: 'contoso ltd',
  champions: [{ email: 'sam@contoso.example', teamsId: undefined, name: 'Sam' }],
  locations: [{ id: 'main-office', name: 'Main office (HQ)', devices: [{ name: 'CON-PC-01', class: 'desktop', ring: 'pilot', os: undefined, user: 'jane@contoso.example' }, { name: 'CON-OLD-01', class: 'desktop', ring: 'broad', os: undefined, user: undefined }] }],
} as Partial<InventoryClient>);

describe('mergeNinjaOne', () => {
  const result = mergeNinjaOne(
    inventory([linked, client({ id: 'fabrikam', name: 'Fabrikam', locations: [{ id: 'main', name: undefined, devices: [{ name: 'FAB-PC-01', class: 'desktop', ring: 'broad', os: undefined, user: undefined }] }] })]),
    fleet([
      device(101, 'CON-PC-01', { lastLoggedInUser: 'CONTOSO\\someone' }),
      device(102, 'CON-PC-02', { lastLoggedInUser: 'CONTOSO\\sam' }),
      device(103, 'CON-SRV-01', { nodeClass: 'WINDOWS_SERVER', locationId: 11, os: { name: 'Windows Server 2022 Standard Edition', architecture: '64-bit', buildNumber: '20348' } }),
      device(104, 'CON-MAC-01', { nodeClass: 'MAC', os: { name: 'macOS Sonoma', architecture: 'arm64', buildNumber: '23G93' } }),
      device(105, 'CON-PC-03', { lastLoggedInUser: 'CONTOSO\\nobody-here' }),
      device(106, 'CON-NEW-01', { approvalStatus: 'PENDING' }),
      device(107, 'CON-SWITCH-01', { nodeClass: 'NMS_SWITCH', os: null }),
      device(108, 'CON-GONE-01', { approvalStatus: 'DECOMMISSIONED' }),
      device(201, 'OTHER-01', { organizationId: 2, locationId: 20 }),
    ]),
  );
  const contoso = result.inventory.clients.find((c) => c.id === 'contoso')!;
  const byName = new Map(contoso.locations.flatMap((l) => l.devices.map((d) => [d.name, { ...d, location: l.id }] as const)));

  it('takes the linked organization’s approved computers, keeping the YAML’s ring, class and user', () => {
    expect([...byName.keys()].sort()).toEqual(['CON-MAC-01', 'CON-PC-01', 'CON-PC-02', 'CON-PC-03', 'CON-SRV-01']);
    expect(byName.get('CON-PC-01')).toMatchObject({ ring: 'pilot', class: 'desktop', user: 'jane@contoso.example', os: 'Windows 11 Version 23H2 for x64-based Systems', location: 'main-office', syncedFrom: 'ninjaone' });
    expect(contoso.locations.find((l) => l.id === 'main-office')!.name).toBe('Main office (HQ)');
  });

  it('gives new devices ring broad, servers the server class, and lists them', () => {
    expect(result.added.sort()).toEqual(['contoso/CON-MAC-01', 'contoso/CON-PC-02', 'contoso/CON-PC-03', 'contoso/CON-SRV-01']);
    expect(byName.get('CON-SRV-01')).toMatchObject({ ring: 'broad', class: 'server', os: 'Windows Server 2022', location: 'data-center' });
    expect(byName.get('CON-PC-02')).toMatchObject({ ring: 'broad', class: 'desktop' });
  });

  it('gives no device a zone of its own: NinjaOne has none, so the client’s zone rules', () => {
    for (const d of byName.values()) expect(d).not.toHaveProperty('timezone');
  });

  it('lists an OS MSRC does not name and leaves it unset, never patched on a guess', () => {
    expect(byName.get('CON-MAC-01')!.os).toBeUndefined();
    expect(result.unmapped).toEqual([{ client: 'contoso', device: 'CON-MAC-01', os: 'macOS Sonoma, arm64, build 23G93', reason: expect.stringMatching(/not a Windows device/) }]);
  });

  it('links the last logged-in user when the YAML names none, and lists a name that links nobody', () => {
    expect(byName.get('CON-PC-02')!.user).toBe('sam@contoso.example');
    expect(byName.get('CON-PC-03')!.user).toBeUndefined();
    expect(result.unlinked).toEqual([{ client: 'contoso', device: 'CON-PC-03', username: 'CONTOSO\\nobody-here', why: 'unknown' }]);
  });

  it('leaves clients without a link, and the MSP’s machines, as the YAML has them', () => {
    expect(result.inventory.clients.find((c) => c.id === 'fabrikam')!.locations[0]!.devices.map((d) => d.name)).toEqual(['FAB-PC-01']);
    expect(result.inventory.msp.devices.map((d) => d.name)).toEqual(['EXIT-01']);
    expect(result.problems).toEqual([]);
  });

  it('links an organization by id too; an unknown link is a problem and the client keeps its YAML devices', () => {
    const byId = mergeNinjaOne(inventory([{ ...linked, ninjaoneOrganization: '1' }]), fleet([device(101, 'CON-PC-09')]));
    expect(byId.added).toEqual(['contoso/CON-PC-09']);
    const unknown = mergeNinjaOne(inventory([{ ...linked, ninjaoneOrganization: 'Nope Inc' }]), fleet([device(101, 'CON-PC-09')]));
    expect(unknown.problems).toEqual([expect.stringMatching(/^contoso: ninjaone_organization "Nope Inc" is not an organization in NinjaOne/)]);
    expect(unknown.inventory.clients[0]!.locations[0]!.devices.map((d) => d.name)).toEqual(['CON-PC-01', 'CON-OLD-01']);
  });

  it('leaves out a device named like another patchbay manages, and says so', () => {
    const clash = mergeNinjaOne(inventory([linked]), fleet([device(101, 'exit-01')]));
    expect(clash.problems).toEqual([expect.stringMatching(/NinjaOne device exit-01 has the name of another device/)]);
    expect(clash.added).toEqual([]);
  });
});
