/**
 * Tactical's OS string -> MSRC's product name. Inputs are built the way the agent builds them (rmmagent
 * agent/agent_windows.go osString, from go-sysinfo's registry reads); expected names are MSRC's own, checked
 * against the real MSRC documents in ../shared/fixtures/msrc where those months already had the product.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mapTacticalOs, tacticalOsFor } from '../../src/adapters/deployers/tactical-os.ts';

/** osString(): `%s, %s v%s (build %s)`, or without ` v%s` when PlatVer() fails; arch named only for x86_64 and x86. */
function agentOsString(productName: string, architecture: string, platVer: string | undefined, build: string): string {
  const arch = architecture === 'x86_64' ? '64 bit' : architecture === 'x86' ? '32 bit' : '';
  return platVer === undefined ? `${productName}, ${arch} (build ${build})` : `${productName}, ${arch} v${platVer} (build ${build})`;
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = path.resolve(repoRoot, '../shared/fixtures/msrc');
const msrcNames = new Set<string>();
for (const file of ['2024-Feb.json', '2024-May.json']) {
  const full = path.join(FIXTURES, file);
  if (!fs.existsSync(full)) {
    console.warn(`[tactical-os] ${full} is absent: the names are not checked against MSRC's`);
    continue;
  }
  const doc = JSON.parse(fs.readFileSync(full, 'utf8')) as { ProductTree: { FullProductName: Array<{ Value: string }> } };
  for (const p of doc.ProductTree.FullProductName) msrcNames.add(p.Value);
}

// [ProductName, Architecture, DisplayVersion or ReleaseId, CurrentBuild.UBR, Server Core?, MSRC product]
const TABLE: Array<[string, string, string | undefined, string, boolean, string]> = [
  ['Windows 10 Pro', 'x86_64', '22H2', '19045.3930', false, 'Windows 10 Version 22H2 for x64-based Systems'],
  ['Windows 10 Pro', 'x86', '22H2', '19045.3930', false, 'Windows 10 Version 22H2 for 32-bit Systems'],
  ['Windows 10 Enterprise LTSC 2021', 'x86_64', '21H2', '19044.3930', false, 'Windows 10 Version 21H2 for x64-based Systems'],
  ['Windows 10 Enterprise LTSC 2019', 'x86_64', '1809', '17763.5329', false, 'Windows 10 Version 1809 for x64-based Systems'],
  ['Windows 10 Enterprise 2016 LTSB', 'x86_64', '1607', '14393.6614', false, 'Windows 10 Version 1607 for x64-based Systems'],
  ['Windows 10 Enterprise 2015 LTSB', 'x86_64', undefined, '10240.20402', false, 'Windows 10 for x64-based Systems'],
  ['Windows 11 Pro', 'x86_64', '22H2', '22621.3007', false, 'Windows 11 Version 22H2 for x64-based Systems'],
  ['Windows 11 Pro', 'x86_64', '23H2', '22631.3007', false, 'Windows 11 Version 23H2 for x64-based Systems'],
  ['Windows 11 Pro', 'arm64', '23H2', '22631.3007', false, 'Windows 11 Version 23H2 for ARM64-based Systems'],
  // An agent built before go-sysinfo fixed the name still reads ProductName "Windows 10 …" on Windows 11.
  ['Windows 10 Pro', 'x86_64', '23H2', '22631.3007', false, 'Windows 11 Version 23H2 for x64-based Systems'],
  ['Windows 11 Enterprise', 'x86_64', '24H2', '26100.2605', false, 'Windows 11 Version 24H2 for x64-based Systems'],
  ['Windows 11 Pro', 'x86_64', '25H2', '26200.6584', false, 'Windows 11 Version 25H2 for x64-based Systems'],
  ['Windows Server 2016 Standard', 'x86_64', '1607', '14393.6614', false, 'Windows Server 2016'],
  ['Windows Server 2016 Datacenter', 'x86_64', '1607', '14393.6614', true, 'Windows Server 2016 (Server Core installation)'],
  ['Windows Server 2019 Datacenter', 'x86_64', '1809', '17763.5329', false, 'Windows Server 2019'],
  ['Windows Server 2019 Standard', 'x86_64', '1809', '17763.5329', true, 'Windows Server 2019 (Server Core installation)'],
  ['Windows Server 2022 Standard', 'x86_64', '21H2', '20348.2227', false, 'Windows Server 2022'],
  ['Windows Server 2022 Datacenter', 'x86_64', '21H2', '20348.2227', true, 'Windows Server 2022 (Server Core installation)'],
  ['Windows Server Datacenter', 'x86_64', '23H2', '25398.643', false, 'Windows Server 2022, 23H2 Edition (Server Core installation)'],
  ['Windows Server 2025 Standard', 'x86_64', '24H2', '26100.2605', false, 'Windows Server 2025'],
  ['Windows Server 2025 Datacenter', 'x86_64', '24H2', '26100.2605', true, 'Windows Server 2025 (Server Core installation)'],
];

// Released after the stored MSRC months (2024-Feb, 2024-May): named as MSRC names their siblings.
const LATER = new Set([
  'Windows 11 Version 24H2 for x64-based Systems',
  'Windows 11 Version 25H2 for x64-based Systems',
  'Windows Server 2025',
  'Windows Server 2025 (Server Core installation)',
]);

describe('Tactical OS -> MSRC product', () => {
  it('the example from the issue', () => {
    expect(mapTacticalOs('Windows 11 Pro, 64 bit v23H2 (build 22631.3007)')).toMatchObject({ kind: 'mapped', product: 'Windows 11 Version 23H2 for x64-based Systems' });
  });

  it.each(TABLE)('%s %s v%s build %s (core: %s) -> %s', (name, arch, ver, build, core, product) => {
    const os = agentOsString(name, arch, ver, build);
    expect(mapTacticalOs(os, { serverCore: core })).toMatchObject({ kind: 'mapped', product });
    if (msrcNames.size > 0 && !LATER.has(product)) expect(msrcNames.has(product), `${product} is an MSRC product name`).toBe(true);
  });

  it.skipIf(msrcNames.size === 0)('the MSRC documents were read (the names above were checked against them)', () => {
    expect(msrcNames.size).toBeGreaterThan(100);
    expect(msrcNames.has('Windows 11 Version 23H2 for x64-based Systems')).toBe(true);
    expect(msrcNames.has('Windows Server 2022 (Server Core installation)')).toBe(true);
  });

  it.each([
    [agentOsString('Windows 11 Pro', 'x86', '23H2', '22631.3007'), /no 32-bit/],
    [agentOsString('Windows 11 Pro', 'x86_64', '24H2', '27686.1000'), /build 27686/],
    [agentOsString('Windows 8.1 Pro', 'x86_64', undefined, '9600.21563'), /build 9600/],
    [agentOsString('Windows Server 2012 R2 Standard', 'x86_64', undefined, '9600.21563'), /Server build 9600/],
    // agent/agent_unix.go: "%s %s %s %s" of platform, version, kernel arch, kernel version.
    ['Ubuntu 22.04 x86_64 5.15.0-91-generic', /not a Windows agent/],
    ['', /not a Windows agent/],
  ])('unmapped, with the reason: %s', (os, reason) => {
    const mapped = mapTacticalOs(os);
    expect(mapped).toMatchObject({ kind: 'unmapped', os });
    expect(mapped.kind === 'unmapped' && mapped.reason).toMatch(reason);
  });
});

describe('the other way, for emulated fleets', () => {
  it.each(TABLE.filter(([, , , , core]) => !core).map((row) => row[5]))('%s -> an agent string that maps back to it', (product) => {
    const os = tacticalOsFor(product);
    expect(os).toBeDefined();
    expect(mapTacticalOs(os!)).toMatchObject({ kind: 'mapped', product });
  });
});
