/**
 * NinjaOne's `os` block → MSRC product names. NinjaOne writes the edition into `os.name` ("… Professional Edition",
 * "… Standard Edition"), the architecture apart ("64-bit") and the build as a string, sometimes with its revision.
 */
import { describe, expect, it } from 'vitest';
import { mapNinjaOneOs, type NinjaOsFields } from '../../src/adapters/deployers/ninjaone-os.ts';

const mapped: Array<[NinjaOsFields, string]> = [
  [{ name: 'Windows 11 Professional Edition', architecture: '64-bit', buildNumber: '22631', releaseId: '23H2' }, 'Windows 11 Version 23H2 for x64-based Systems'],
  [{ name: 'Windows 11 Enterprise Edition', architecture: '64-bit', buildNumber: '26100.2314', releaseId: '24H2' }, 'Windows 11 Version 24H2 for x64-based Systems'],
  // The name lags on machines upgraded in place; the build decides.
  [{ name: 'Windows 10 Professional Edition', architecture: '64-bit', buildNumber: '22621', releaseId: '22H2' }, 'Windows 11 Version 22H2 for x64-based Systems'],
  [{ name: 'Windows 10 Enterprise Edition', architecture: '64-bit', buildNumber: '19045' }, 'Windows 10 Version 22H2 for x64-based Systems'],
  [{ name: 'Windows 10 Professional Edition', architecture: '32-bit', buildNumber: '19045' }, 'Windows 10 Version 22H2 for 32-bit Systems'],
  [{ name: 'Windows 10 Enterprise LTSC Edition', architecture: '64-bit', buildNumber: '17763' }, 'Windows 10 Version 1809 for x64-based Systems'],
  [{ name: 'Windows 11 Professional Edition', architecture: 'ARM 64-bit Processor', buildNumber: '26100' }, 'Windows 11 Version 24H2 for ARM64-based Systems'],
  [{ name: 'Windows Server 2022 Standard Edition', architecture: '64-bit', buildNumber: '20348' }, 'Windows Server 2022'],
  [{ name: 'Windows Server 2019 Datacenter Edition', architecture: '64-bit', buildNumber: '17763' }, 'Windows Server 2019'],
  [{ name: 'Windows Server 2016 Standard Edition', architecture: '64-bit', buildNumber: '14393.7428' }, 'Windows Server 2016'],
  [{ name: 'Windows Server 2025 Standard Edition', architecture: '64-bit', buildNumber: '26100' }, 'Windows Server 2025'],
];

describe('mapNinjaOneOs', () => {
  it.each(mapped)('%o is %s', (os, product) => {
    expect(mapNinjaOneOs(os)).toMatchObject({ kind: 'mapped', product });
  });

  it.each<[NinjaOsFields | null, RegExp]>([
    [{ name: 'macOS Sonoma', architecture: 'arm64', buildNumber: '23G93' }, /not a Windows device/],
    [{ name: 'Ubuntu 22.04.4 LTS', architecture: '64-bit', buildNumber: '' }, /not a Windows device/],
    [null, /not a Windows device/],
    [{ name: 'Windows 11 Professional Edition', architecture: '64-bit', buildNumber: '26120' }, /build 26120 is not a release MSRC publishes/],
    [{ name: 'Windows 11 Professional Edition', architecture: '32-bit', buildNumber: '22631' }, /no 32-bit release/],
    [{ name: 'Windows Server 2012 R2 Standard Edition', architecture: '64-bit', buildNumber: '9600' }, /Server build 9600/],
    [{ name: 'Windows 11 Professional Edition', architecture: '64-bit' }, /no Windows build number/],
    [{ name: 'Windows 11 Professional Edition', architecture: 'Itanium', buildNumber: '22631' }, /architecture "Itanium"/],
  ])('%o is unmapped, with the reason', (os, reason) => {
    const result = mapNinjaOneOs(os);
    expect(result.kind).toBe('unmapped');
    expect(result.kind === 'unmapped' && result.reason).toMatch(reason);
  });

  it('names the unmapped OS from the fields NinjaOne gave, for the engineers to recognise', () => {
    expect(mapNinjaOneOs({ name: 'Windows 11 Professional Edition', architecture: '64-bit', buildNumber: '26120' })).toMatchObject({ os: 'Windows 11 Professional Edition, 64-bit, build 26120' });
  });
});
