/**
 * Tactical RMM's `operating_system` as MSRC names the product. Pure.
 *
 * The agent builds the string in rmmagent `agent/agent_windows.go` osString():
 *   `fmt.Sprintf("%s, %s v%s (build %s)", osInf.Name, arch, platver, osInf.Build)`, or without ` v%s` when
 *   the registry has neither DisplayVersion nor ReleaseId;
 * - Name is the registry's ProductName (go-sysinfo; since v1.10 "Windows 10" is rewritten to "Windows 11" from
 *   build 22000, older agents still say Windows 10 on Windows 11), e.g. `Windows 11 Pro`, `Windows Server 2022
 *   Standard`;
 * - arch is `64 bit` for x86_64, `32 bit` for x86 and empty for anything else, which on Windows 10/11 can only be
 *   ARM64 (so `Windows 11 Pro,  v23H2 (build 22631.3007)`, two spaces);
 * - Build is CurrentBuild.UBR.
 *
 * The build number decides the release (the ProductName can lag, DisplayVersion is absent on old releases);
 * the name only says client or server. Server Core cannot be seen in the string (ProductName is the same), so the
 * caller says whether the machine is a Server Core installation when it knows. Anything else is `unmapped` with
 * the reason: it is listed for the engineers, never silently left unpatched.
 */

export type TacticalOsMapping =
  | { kind: 'mapped'; product: string; release: string; build: number }
  | { kind: 'unmapped'; os: string; reason: string };

/** Client releases Microsoft still ships (LTSC included), by build. MSRC writes 11 21H2 with a lower-case "version". */
const CLIENT_BUILDS: Record<number, string> = {
  10240: 'Windows 10',
  14393: 'Windows 10 Version 1607',
  17763: 'Windows 10 Version 1809',
  19044: 'Windows 10 Version 21H2',
  19045: 'Windows 10 Version 22H2',
  22000: 'Windows 11 version 21H2',
  22621: 'Windows 11 Version 22H2',
  22631: 'Windows 11 Version 23H2',
  26100: 'Windows 11 Version 24H2',
  26200: 'Windows 11 Version 25H2',
};

const SERVER_BUILDS: Record<number, { product: string; coreOnly?: boolean }> = {
  14393: { product: 'Windows Server 2016' },
  17763: { product: 'Windows Server 2019' },
  20348: { product: 'Windows Server 2022' },
  // The annual-channel release ships only as Server Core.
  25398: { product: 'Windows Server 2022, 23H2 Edition', coreOnly: true },
  26100: { product: 'Windows Server 2025' },
};

const ARCH_SUFFIX: Record<string, string> = {
  '64 bit': 'for x64-based Systems',
  '32 bit': 'for 32-bit Systems',
  '': 'for ARM64-based Systems',
};

interface ParsedOs {
  name: string;
  arch: string;
  version: string | undefined;
  build: number;
}

/** Reads the agent's format back; undefined when the string is not the Windows agent's. */
export function parseTacticalOs(os: string): ParsedOs | undefined {
  const match = /^(.+?), (64 bit|32 bit|) ?(?:v(\S+) )?\(build (\d+)(?:\.\d+)?\)$/.exec(os.trim());
  if (!match) return undefined;
  return { name: match[1]!, arch: match[2]!, version: match[3], build: Number(match[4]) };
}

export function mapTacticalOs(os: string, options: { serverCore?: boolean } = {}): TacticalOsMapping {
  const parsed = parseTacticalOs(os);
  if (!parsed || !/^(Microsoft )?Windows\b/.test(parsed.name)) return { kind: 'unmapped', os, reason: 'not a Windows agent (no Windows updates to map)' };
  const { name, arch, build } = parsed;
  if (/\bServer\b/.test(name)) {
    const server = SERVER_BUILDS[build];
    if (!server) return { kind: 'unmapped', os, reason: `Windows Server build ${build} is not a release MSRC publishes updates for` };
    const core = server.coreOnly || options.serverCore === true;
    return { kind: 'mapped', product: core ? `${server.product} (Server Core installation)` : server.product, release: server.product, build };
  }
  const release = CLIENT_BUILDS[build];
  if (!release) return { kind: 'unmapped', os, reason: `Windows build ${build} is not a release MSRC publishes updates for (an Insider or retired build?)` };
  if (release.startsWith('Windows 11') && arch === '32 bit') return { kind: 'unmapped', os, reason: 'Windows 11 has no 32-bit release' };
  return { kind: 'mapped', product: `${release} ${ARCH_SUFFIX[arch]!}`, release, build };
}

/**
 * The string a Tactical agent on a machine running this MSRC product would report (for emulated fleets: the
 * sandbox gives its inventory's machines to the Tactical emulator). Undefined for products not in the tables.
 */
export function tacticalOsFor(product: string): string | undefined {
  for (const [build, release] of Object.entries(CLIENT_BUILDS)) {
    for (const [arch, suffix] of Object.entries(ARCH_SUFFIX)) {
      if (product !== `${release} ${suffix}`) continue;
      const version = /Version (\S+)$/i.exec(release)?.[1];
      const name = release.startsWith('Windows 11') ? 'Windows 11 Pro' : 'Windows 10 Pro';
      return `${name}, ${arch}${version ? ` v${version}` : ''} (build ${build}.1000)`;
    }
  }
  for (const [build, server] of Object.entries(SERVER_BUILDS)) {
    if (product !== server.product && product !== `${server.product} (Server Core installation)`) continue;
    return `${server.product.replace(/, .*$/, '')} Standard, 64 bit (build ${build}.1000)`;
  }
  return undefined;
}