/**
 * NinjaOne's `os` block of an agent device (`AgentDevice.os`: `name`, `architecture`, `buildNumber`, `releaseId`)
 * as MSRC names the product. Pure.
 *
 * NinjaOne writes the edition into the name (`Windows 11 Professional Edition`, `Windows Server 2022 Standard
 * Edition`), the architecture apart (`64-bit`, `32-bit`, ARM machines `ARM 64-bit Processor`), and the build as a
 * string (`22631`, sometimes with its revision, `22631.4169`). As for Tactical, the build decides the release and
 * the name only says client or server, so the Windows build → MSRC tables are Tactical's (tactical-os.ts): the
 * fields are put in the Tactical agent's own format and mapped by the same code, one table for both managers.
 * Anything else (a Mac, Linux, no build, an unknown architecture) is `unmapped` with the reason.
 */
import { mapTacticalOs, type TacticalOsMapping } from './tactical-os.ts';

export interface NinjaOsFields {
  name?: string | null;
  architecture?: string | null;
  buildNumber?: string | null;
  releaseId?: string | null;
}

/** NinjaOne's architecture as the Tactical string's arch part; undefined: not one Windows ships on. */
function archOf(architecture: string): string | undefined {
  const a = architecture.toLowerCase();
  if (/arm/.test(a)) return '';
  if (/64/.test(a)) return '64 bit';
  if (/32|86/.test(a)) return '32 bit';
  return undefined;
}

export function mapNinjaOneOs(os: NinjaOsFields | null | undefined): TacticalOsMapping {
  const name = (os?.name ?? '').trim();
  const shown = [name, os?.architecture, os?.buildNumber && `build ${os.buildNumber}`].filter(Boolean).join(', ') || '(no OS reported)';
  if (!/^(Microsoft )?Windows\b/.test(name)) return { kind: 'unmapped', os: shown, reason: 'not a Windows device (no Windows updates to map)' };
  const build = /^(\d+)(?:\.\d+)?$/.exec((os?.buildNumber ?? '').trim())?.[1];
  if (build === undefined) return { kind: 'unmapped', os: shown, reason: 'NinjaOne reports no Windows build number for it, and the build decides the release' };
  const arch = archOf(os?.architecture ?? '');
  if (arch === undefined) return { kind: 'unmapped', os: shown, reason: `architecture "${os?.architecture ?? ''}" is not one Windows updates are published for` };
  const mapped = mapTacticalOs(`${name}, ${arch} (build ${build})`);
  return mapped.kind === 'mapped' ? mapped : { ...mapped, os: shown };
}
