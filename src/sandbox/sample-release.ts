/**
 * Made-up Microsoft security releases for the sandbox and `patchbay demo`: an MSRC CVRF v3 document, the CISA KEV
 * catalog and MSRC's `/updates` index, for any month, in the shapes the real endpoints answer with. The sandbox
 * serves them from a fake MSRC so the real release watcher, parser and digest run on them unchanged; the real
 * documents under ../shared/fixtures stay out of the repository, and the sandbox never needs the network.
 *
 * A month is small (17 CVEs, 8 updates) but has everything the digest has a rule for: a cumulative update per
 * Windows version with restart and supersedence, an exploited zero-day, a publicly disclosed CVE, two Critical, a
 * known issue that names software a sample client runs, an Office and a .NET fix that need no restart, updates for
 * products the sample fleet does not run, and a Chromium CVE the headline must leave out. The products are the ones
 * examples/sandbox-inventory.yaml names. Which component each CVE is in varies from month to month (seeded by the
 * month, so the same month is always the same document); the counts do not, so tests and the demo can rely on them.
 *
 * Revisions let the watcher's revision path be shown: 2 marks a second CVE exploited two days after release,
 * 3 adds a CVE and a known issue a week later. Each revision's publication time is in {@link sampleRevisions}.
 */
import { DateTime } from 'luxon';
import { Prng } from '../adapters/inventory/prng.ts';
import { parseReleaseId, releaseIdFor, type ReleaseMonth } from '../domain/calendar.ts';

export const SAMPLE_MAX_REVISION = 3;
/** Software a sample client runs (Acme Dental) that a sample known issue names, so the digest flags a conflict. */
export const SAMPLE_CONFLICT_SOFTWARE = 'Dentrix';

export interface SampleOptions {
  /** 1 (release day, the default) to {@link SAMPLE_MAX_REVISION}; each includes the changes of the ones before. */
  revision?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Output shapes: the parts of MSRC's and CISA's JSON that are generated (the real documents carry more).

export interface CvrfText {
  Value?: string;
}

export interface CvrfRevision {
  Number: string;
  Date: string;
  Description: CvrfText;
}

export interface CvrfProductName {
  ProductID: string;
  Value: string;
}

export interface CvrfBranchJson {
  Type: number;
  Name: string;
  Items: Array<CvrfBranchJson | CvrfProductName>;
}

export interface CvrfRemediationJson {
  Description: CvrfText;
  URL: string;
  Supercedence?: string;
  ProductID: string[];
  Type: number;
  RestartRequired?: CvrfText;
  SubType?: string;
  FixedBuild?: string;
}

export interface CvrfVulnerabilityJson {
  Title: CvrfText;
  Notes: Array<{ Title: string; Type: number; Ordinal: string; Value?: string }>;
  CVE: string;
  ProductStatuses: Array<{ ProductID: string[]; Type: number }>;
  Threats: Array<{ Description: CvrfText; ProductID?: string[]; Type: number }>;
  CVSSScoreSets: Array<{ BaseScore: number; TemporalScore: number; Vector: string; ProductID: string[] }>;
  Remediations: CvrfRemediationJson[];
  Ordinal: string;
  RevisionHistory: CvrfRevision[];
}

export interface SampleCvrfDocument {
  DocumentTitle: CvrfText;
  DocumentType: CvrfText;
  DocumentPublisher: { ContactDetails: CvrfText; IssuingAuthority: CvrfText; Type: number };
  DocumentTracking: {
    Identification: { ID: CvrfText; Alias: CvrfText };
    Status: number;
    Version: string;
    RevisionHistory: CvrfRevision[];
    InitialReleaseDate: string;
    CurrentReleaseDate: string;
  };
  DocumentNotes: Array<{ Title: string; Audience: string; Type: number; Ordinal: string; Value: string }>;
  ProductTree: { Branch: CvrfBranchJson[]; FullProductName: CvrfProductName[] };
  Vulnerability: CvrfVulnerabilityJson[];
}

export interface SampleKevEntry {
  cveID: string;
  vendorProject: string;
  product: string;
  vulnerabilityName: string;
  dateAdded: string;
  shortDescription: string;
  requiredAction: string;
  dueDate: string;
  knownRansomwareCampaignUse: 'Known' | 'Unknown';
  notes: string;
  cwes: string[];
}

export interface SampleKevCatalog {
  title: string;
  catalogVersion: string;
  dateReleased: string;
  count: number;
  vulnerabilities: SampleKevEntry[];
}

export interface SampleIndexEntry {
  ID: string;
  Alias: string;
  DocumentTitle: string;
  Severity: null;
  InitialReleaseDate: string;
  CurrentReleaseDate: string;
  CvrfUrl: string;
}

export interface SampleUpdatesIndex {
  '@odata.context': string;
  value: SampleIndexEntry[];
}

// ---------------------------------------------------------------------------------------------------------------
// The product tree. IDs and names follow MSRC's; names are exactly what the sample inventory's `os:` says.

const WIN11_23H2 = '12243';
const WIN11_23H2_ARM = '12242';
const WIN11_24H2 = '12390';
const WIN11_24H2_ARM = '12389';
const WIN10_22H2 = '12097';
const WIN10_22H2_32 = '12099';
const SERVER_2019 = '11571';
const SERVER_2019_CORE = '11572';
const SERVER_2022 = '11923';
const SERVER_2022_CORE = '11924';
const SERVER_2025 = '12436';
const SERVER_2025_CORE = '12437';
const M365_32 = '11762';
const M365_64 = '11763';
const DOTNET_8 = '12322';
const EDGE = '11655';

const FAMILIES: Array<{ name: string; products: CvrfProductName[] }> = [
  { name: 'Browser', products: [{ ProductID: EDGE, Value: 'Microsoft Edge (Chromium-based)' }] },
  { name: 'Developer Tools', products: [{ ProductID: DOTNET_8, Value: '.NET 8.0' }] },
  {
    name: 'Windows',
    products: [
      { ProductID: WIN10_22H2, Value: 'Windows 10 Version 22H2 for x64-based Systems' },
      { ProductID: WIN10_22H2_32, Value: 'Windows 10 Version 22H2 for 32-bit Systems' },
      { ProductID: WIN11_23H2, Value: 'Windows 11 Version 23H2 for x64-based Systems' },
      { ProductID: WIN11_23H2_ARM, Value: 'Windows 11 Version 23H2 for ARM64-based Systems' },
      { ProductID: WIN11_24H2, Value: 'Windows 11 Version 24H2 for x64-based Systems' },
      { ProductID: WIN11_24H2_ARM, Value: 'Windows 11 Version 24H2 for ARM64-based Systems' },
      { ProductID: SERVER_2019, Value: 'Windows Server 2019' },
      { ProductID: SERVER_2019_CORE, Value: 'Windows Server 2019 (Server Core installation)' },
      { ProductID: SERVER_2022, Value: 'Windows Server 2022' },
      { ProductID: SERVER_2022_CORE, Value: 'Windows Server 2022 (Server Core installation)' },
      { ProductID: SERVER_2025, Value: 'Windows Server 2025' },
      { ProductID: SERVER_2025_CORE, Value: 'Windows Server 2025 (Server Core installation)' },
    ],
  },
  {
    name: 'Microsoft Office',
    products: [
      { ProductID: M365_32, Value: 'Microsoft 365 Apps for Enterprise for 32-bit Systems' },
      { ProductID: M365_64, Value: 'Microsoft 365 Apps for Enterprise for 64-bit Systems' },
    ],
  },
];

/** One installable fix: a monthly KB for a Windows version, or a named fix ("Click to Run", "Release Notes"). */
interface Fix {
  key: FixKey;
  products: string[];
  restart: 'Yes' | 'No' | 'Maybe';
  /** Offset of this fix's KB from the month's base KB; undefined for a named fix. */
  kbOffset?: number;
  name?: string;
  url?: string;
  /** The build line the cumulative update moves, e.g. 10.0.22631; its revision grows month by month. */
  build?: { prefix: string; base: number };
}

type FixKey = 'win10' | 'win11_23h2' | 'win11_24h2' | 'server2019' | 'server2022' | 'server2025' | 'office' | 'dotnet' | 'edge';

const FIXES: Record<FixKey, Fix> = {
  win10: { key: 'win10', products: [WIN10_22H2, WIN10_22H2_32], restart: 'Yes', kbOffset: 4, build: { prefix: '10.0.19045', base: 4000 } },
  server2019: { key: 'server2019', products: [SERVER_2019, SERVER_2019_CORE], restart: 'Yes', kbOffset: 6, build: { prefix: '10.0.17763', base: 5400 } },
  server2022: { key: 'server2022', products: [SERVER_2022, SERVER_2022_CORE], restart: 'Yes', kbOffset: 8, build: { prefix: '10.0.20348', base: 2200 } },
  win11_23h2: { key: 'win11_23h2', products: [WIN11_23H2, WIN11_23H2_ARM], restart: 'Yes', kbOffset: 13, build: { prefix: '10.0.22631', base: 3100 } },
  win11_24h2: { key: 'win11_24h2', products: [WIN11_24H2, WIN11_24H2_ARM], restart: 'Yes', kbOffset: 17, build: { prefix: '10.0.26100', base: 1000 } },
  server2025: { key: 'server2025', products: [SERVER_2025, SERVER_2025_CORE], restart: 'Yes', kbOffset: 21, build: { prefix: '10.0.26100', base: 1000 } },
  office: { key: 'office', products: [M365_32, M365_64], restart: 'No', name: 'Click to Run', url: 'https://learn.microsoft.com/en-us/officeupdates/microsoft365-apps-security-updates' },
  dotnet: { key: 'dotnet', products: [DOTNET_8], restart: 'Maybe', name: 'Release Notes', url: 'https://dotnet.microsoft.com/download/dotnet/8.0' },
  edge: { key: 'edge', products: [EDGE], restart: 'No', name: 'Release Notes', url: '' },
};

const DESKTOPS: FixKey[] = ['win10', 'win11_23h2', 'win11_24h2'];
const SERVERS: FixKey[] = ['server2019', 'server2022', 'server2025'];
const WINDOWS: FixKey[] = [...DESKTOPS, ...SERVERS];
const MODERN: FixKey[] = ['win11_23h2', 'win11_24h2', 'server2022', 'server2025'];

// ---------------------------------------------------------------------------------------------------------------
// The CVEs. Each slot is one CVE of every month; the month picks one of its variants.

type Impact =
  | 'Remote Code Execution'
  | 'Elevation of Privilege'
  | 'Security Feature Bypass'
  | 'Information Disclosure'
  | 'Denial of Service'
  | 'Spoofing';

interface Variant {
  title: string;
  tag: string;
  impact?: Impact;
}

interface Slot {
  key: string;
  variants: Variant[];
  impact: Impact;
  severity: 'Critical' | 'Important' | 'Moderate';
  cvss: number;
  vector: string;
  fixes: FixKey[];
  exploitability: string;
  exploited?: boolean;
  disclosed?: boolean;
  /** The revision that first lists this CVE (default 1, release day). */
  from?: number;
  /** The revision from which Microsoft marks it exploited. */
  exploitedFrom?: number;
  faq?: string;
}

const LOCAL_EOP = 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H';

const SLOTS: Slot[] = [
  {
    key: 'zero-day',
    variants: [
      { title: 'Windows Kernel Elevation of Privilege Vulnerability', tag: 'Windows Kernel' },
      { title: 'Windows DWM Core Library Elevation of Privilege Vulnerability', tag: 'Windows DWM Core Library' },
      { title: 'Windows Ancillary Function Driver for WinSock Elevation of Privilege Vulnerability', tag: 'Windows Ancillary Function Driver for WinSock' },
    ],
    impact: 'Elevation of Privilege',
    severity: 'Important',
    cvss: 7.8,
    vector: `${LOCAL_EOP}/E:F/RL:O/RC:C`,
    fixes: WINDOWS,
    exploitability: 'Exploitation Detected',
    exploited: true,
    faq: 'What privileges could be gained by an attacker who successfully exploited this vulnerability? An attacker who successfully exploited this vulnerability could gain SYSTEM privileges.',
  },
  {
    key: 'disclosed',
    variants: [
      { title: 'Windows Mark of the Web Security Feature Bypass Vulnerability', tag: 'Windows Mark of the Web (MOTW)' },
      { title: 'Windows SmartScreen Security Feature Bypass Vulnerability', tag: 'Windows SmartScreen' },
      { title: 'Windows NTLM Hash Disclosure Spoofing Vulnerability', tag: 'Windows NTLM', impact: 'Spoofing' },
    ],
    impact: 'Security Feature Bypass',
    severity: 'Important',
    cvss: 6.5,
    vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:H/A:N/E:P/RL:O/RC:C',
    fixes: WINDOWS,
    exploitability: 'Exploitation More Likely',
    disclosed: true,
    faq: 'According to the CVSS metric, user interaction is required (UI:R). What interaction would the user have to do? An attacker must send the user a malicious file and convince them to open it.',
  },
  {
    key: 'critical-ldap',
    variants: [
      { title: 'Windows Lightweight Directory Access Protocol (LDAP) Remote Code Execution Vulnerability', tag: 'Windows Lightweight Directory Access Protocol (LDAP)' },
      { title: 'Windows Message Queuing Remote Code Execution Vulnerability', tag: 'Windows Message Queuing' },
    ],
    impact: 'Remote Code Execution',
    severity: 'Critical',
    cvss: 9.8,
    vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C',
    fixes: WINDOWS,
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'critical-server',
    variants: [
      { title: 'Windows Remote Desktop Services Remote Code Execution Vulnerability', tag: 'Windows Remote Desktop Services' },
      { title: 'Windows DHCP Server Remote Code Execution Vulnerability', tag: 'Windows DHCP Server' },
    ],
    impact: 'Remote Code Execution',
    severity: 'Critical',
    cvss: 8.1,
    vector: 'CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C',
    fixes: SERVERS,
    exploitability: 'Exploitation More Likely',
  },
  {
    key: 'clfs',
    variants: [{ title: 'Windows Common Log File System Driver Elevation of Privilege Vulnerability', tag: 'Windows Common Log File System Driver' }],
    impact: 'Elevation of Privilege',
    severity: 'Important',
    cvss: 7.8,
    vector: `${LOCAL_EOP}/E:U/RL:O/RC:C`,
    fixes: WINDOWS,
    exploitability: 'Exploitation More Likely',
    exploitedFrom: 2,
  },
  {
    key: 'telephony',
    variants: [
      { title: 'Windows Telephony Service Remote Code Execution Vulnerability', tag: 'Windows Telephony Service' },
      { title: 'Windows Mobile Broadband Driver Remote Code Execution Vulnerability', tag: 'Windows Mobile Broadband' },
    ],
    impact: 'Remote Code Execution',
    severity: 'Important',
    cvss: 8.8,
    vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C',
    fixes: WINDOWS,
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'info',
    variants: [
      { title: 'Windows Kerberos Information Disclosure Vulnerability', tag: 'Windows Kerberos' },
      { title: 'Windows Cryptographic Services Information Disclosure Vulnerability', tag: 'Windows Cryptographic Services' },
    ],
    impact: 'Information Disclosure',
    severity: 'Important',
    cvss: 5.5,
    vector: 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N/E:U/RL:O/RC:C',
    fixes: WINDOWS,
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'hyper-v',
    variants: [{ title: 'Windows Hyper-V Denial of Service Vulnerability', tag: 'Windows Hyper-V' }],
    impact: 'Denial of Service',
    severity: 'Important',
    cvss: 6.5,
    vector: 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:C/C:N/I:N/A:H/E:U/RL:O/RC:C',
    fixes: MODERN,
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'bitlocker',
    variants: [
      { title: 'Windows BitLocker Security Feature Bypass Vulnerability', tag: 'Windows BitLocker' },
      { title: 'Windows Secure Boot Security Feature Bypass Vulnerability', tag: 'Windows Secure Boot' },
    ],
    impact: 'Security Feature Bypass',
    severity: 'Important',
    cvss: 6.8,
    vector: 'CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C',
    fixes: DESKTOPS,
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'tcpip',
    variants: [
      { title: 'Windows TCP/IP Denial of Service Vulnerability', tag: 'Windows TCP/IP' },
      { title: 'Windows Routing and Remote Access Service (RRAS) Denial of Service Vulnerability', tag: 'Windows Routing and Remote Access Service (RRAS)' },
    ],
    impact: 'Denial of Service',
    severity: 'Important',
    cvss: 7.5,
    vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H/E:U/RL:O/RC:C',
    fixes: WINDOWS,
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'win32k',
    variants: [
      { title: 'Win32k Elevation of Privilege Vulnerability', tag: 'Windows Win32K - GRFX' },
      { title: 'Windows Win32 Kernel Subsystem Elevation of Privilege Vulnerability', tag: 'Windows Win32K - ICOMP' },
    ],
    impact: 'Elevation of Privilege',
    severity: 'Important',
    cvss: 7.0,
    vector: 'CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C',
    fixes: WINDOWS,
    exploitability: 'Exploitation More Likely',
  },
  {
    key: 'server-rce',
    variants: [
      { title: 'Windows Routing and Remote Access Service (RRAS) Remote Code Execution Vulnerability', tag: 'Windows Routing and Remote Access Service (RRAS)' },
      { title: 'Windows DNS Server Remote Code Execution Vulnerability', tag: 'Windows DNS Server' },
    ],
    impact: 'Remote Code Execution',
    severity: 'Important',
    cvss: 8.8,
    vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C',
    fixes: SERVERS,
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'desktop-eop',
    variants: [
      { title: 'Windows Bluetooth Service Elevation of Privilege Vulnerability', tag: 'Windows Bluetooth Service' },
      { title: 'Windows Print Spooler Elevation of Privilege Vulnerability', tag: 'Windows Print Spooler Components' },
    ],
    impact: 'Elevation of Privilege',
    severity: 'Important',
    cvss: 7.8,
    vector: `${LOCAL_EOP}/E:U/RL:O/RC:C`,
    fixes: DESKTOPS,
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'office-rce',
    variants: [
      { title: 'Microsoft Excel Remote Code Execution Vulnerability', tag: 'Microsoft Office Excel' },
      { title: 'Microsoft Word Remote Code Execution Vulnerability', tag: 'Microsoft Office Word' },
    ],
    impact: 'Remote Code Execution',
    severity: 'Important',
    cvss: 7.8,
    vector: 'CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C',
    fixes: ['office'],
    exploitability: 'Exploitation Less Likely',
    faq: 'Is the Preview Pane an attack vector for this vulnerability? No, the Preview Pane is not an attack vector.',
  },
  {
    key: 'office-other',
    variants: [
      { title: 'Microsoft Outlook Spoofing Vulnerability', tag: 'Microsoft Office Outlook' },
      { title: 'Microsoft Office Elevation of Privilege Vulnerability', tag: 'Microsoft Office', impact: 'Elevation of Privilege' },
    ],
    impact: 'Spoofing',
    severity: 'Important',
    cvss: 6.5,
    vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:N/A:N/E:U/RL:O/RC:C',
    fixes: ['office'],
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'dotnet',
    variants: [{ title: '.NET Denial of Service Vulnerability', tag: '.NET' }],
    impact: 'Denial of Service',
    severity: 'Important',
    cvss: 7.5,
    vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H/E:U/RL:O/RC:C',
    fixes: ['dotnet'],
    exploitability: 'Exploitation Less Likely',
  },
  {
    key: 'late',
    variants: [
      { title: 'Windows Secure Kernel Mode Elevation of Privilege Vulnerability', tag: 'Windows Secure Kernel Mode' },
      { title: 'Windows Storage Port Driver Elevation of Privilege Vulnerability', tag: 'Windows Storage Port Driver' },
    ],
    impact: 'Elevation of Privilege',
    severity: 'Important',
    cvss: 6.7,
    vector: 'CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C',
    fixes: MODERN,
    exploitability: 'Exploitation Less Likely',
    from: 3,
  },
];

const CHROMIUM_FLAWS = [
  'Type Confusion in V8',
  'Use after free in Mojo',
  'Heap buffer overflow in Skia',
  'Inappropriate implementation in Extensions',
  'Out of bounds memory access in ANGLE',
  'Use after free in Media',
];

// ---------------------------------------------------------------------------------------------------------------
// Month arithmetic: everything numbered (KBs, builds, CVE ids) grows with the month so months look like a series.

interface MonthFacts {
  month: ReleaseMonth;
  /** Months since 2024-Jan; negative before. */
  index: number;
  kbBase: number;
  prng: Prng;
}

function monthFacts(id: string): MonthFacts {
  const parsed = parseReleaseId(id);
  if (!parsed.ok) throw new RangeError(parsed.error);
  const month = parsed.value;
  const index = (month.year - 2024) * 12 + (month.month - 1);
  return { month, index, kbBase: 5034000 + index * 60, prng: new Prng(month.year * 100 + month.month) };
}

function previousMonthId(month: ReleaseMonth): string {
  return month.month === 1 ? releaseIdFor(month.year - 1, 12) : releaseIdFor(month.year, month.month - 1);
}

function parseReleaseIdOrThrow(id: string): ReleaseMonth {
  const parsed = parseReleaseId(id);
  if (!parsed.ok) throw new RangeError(parsed.error);
  return parsed.value;
}

function kbOf(facts: MonthFacts, fix: Fix): string | undefined {
  return fix.kbOffset === undefined ? undefined : String(facts.kbBase + fix.kbOffset);
}

/** CVRF writes UTC without a zone. */
function cvrfDate(dt: DateTime): string {
  return dt.toUTC().toFormat("yyyy-LL-dd'T'HH:mm:ss");
}

function validRevision(revision: number | undefined): number {
  const r = revision ?? 1;
  if (!Number.isInteger(r) || r < 1 || r > SAMPLE_MAX_REVISION) {
    throw new RangeError(`revision ${String(revision)} is not 1..${SAMPLE_MAX_REVISION}`);
  }
  return r;
}

export interface SampleRevision {
  number: number;
  /** When the revision is published: release day and later, 10:00 America/Los_Angeles, as Microsoft publishes. */
  publishedAt: DateTime;
  description: string;
}

const REVISION_DAYS = [0, 2, 8];

/** Every revision of a sample month with its publication time, so a fake MSRC can serve each when it is due. */
export function sampleRevisions(month: string): SampleRevision[] {
  const { month: m } = monthFacts(month);
  const cves = describeMonth(monthFacts(month));
  const clfs = cves.find((c) => c.slot.key === 'clfs')!.id;
  const late = cves.find((c) => c.slot.key === 'late')!.id;
  const descriptions = [
    `${monthName(m)} Security Updates`,
    `${clfs} is now marked exploited`,
    `${late} was added; known issues listed for the Windows Server 2019 update`,
  ];
  return REVISION_DAYS.map((days, i) => ({ number: i + 1, publishedAt: m.publishedAt.plus({ days }), description: descriptions[i]! }));
}

/** The revision of a month that is current at `now`, or undefined before release day's publication. */
export function sampleRevisionAt(month: string, now: DateTime): number | undefined {
  let current: number | undefined;
  for (const revision of sampleRevisions(month)) if (revision.publishedAt.toMillis() <= now.toMillis()) current = revision.number;
  return current;
}

function monthName(m: ReleaseMonth): string {
  return `${DateTime.fromObject({ year: m.year, month: m.month, day: 1 }).toFormat('LLLL', { locale: 'en-US' })} ${m.year}`;
}

interface PlannedCve {
  id: string;
  slot: Slot;
  variant: Variant;
}

/** The month's CVE ids and variants, before any revision is applied (the prng is consumed in a fixed order). */
function describeMonth(facts: MonthFacts): PlannedCve[] {
  const { month, prng } = facts;
  // Microsoft's CVE numbers this year, spaced so that months of the same year never share one.
  const base = 20000 + (month.month - 1) * 800;
  return SLOTS.map((slot, i) => {
    const variant = prng.pick(slot.variants);
    const id = `CVE-${month.year}-${base + i * 40 + prng.int(0, 39)}`;
    return { id, slot, variant };
  });
}

function chromium(facts: MonthFacts): { id: string; flaw: string; edgeVersion: string } {
  const prng = new Prng(facts.month.year * 1000 + facts.month.month * 7 + 1);
  const flaw = prng.pick(CHROMIUM_FLAWS);
  const id = `CVE-${facts.month.year}-${1000 + (facts.month.month - 1) * 400 + prng.int(0, 399)}`;
  // Edge ships a major version about every four weeks; 121 was current in February 2024.
  const major = 121 + Math.round(((facts.index - 1) * 13) / 12);
  return { id, flaw, edgeVersion: `${major}.0.${2277 + (facts.index - 1) * 43}.${prng.int(50, 130)}` };
}

// ---------------------------------------------------------------------------------------------------------------
// The CVRF document.

const PUBLISHED = '<p>Information published.</p>\n';

/** A small MSRC CVRF v3 document for any month id ("2026-Dec"), the same for the same month and revision. */
export function sampleCvrf(month: string, options: SampleOptions = {}): SampleCvrfDocument {
  const revision = validRevision(options.revision);
  const facts = monthFacts(month);
  const m = facts.month;
  const revisions = sampleRevisions(m.id).slice(0, revision);
  const released = revisions[0]!.publishedAt;
  const previous = monthFacts(previousMonthId(m));

  const planned = describeMonth(facts).filter((c) => (c.slot.from ?? 1) <= revision);
  const knownIssueKb23h2 = kbOf(facts, FIXES.win11_23h2)!;
  const vulnerabilities = planned.map((cve, ordinal) => {
    const firstRevision = revisions[(cve.slot.from ?? 1) - 1]!;
    const history: CvrfRevision[] = [{ Number: '1.0', Date: cvrfDate(firstRevision.publishedAt), Description: { Value: PUBLISHED } }];
    const exploitedNow = cve.slot.exploited === true || (cve.slot.exploitedFrom !== undefined && revision >= cve.slot.exploitedFrom);
    if (cve.slot.exploitedFrom !== undefined && revision >= cve.slot.exploitedFrom) {
      history.push({
        Number: '1.1',
        Date: cvrfDate(revisions[cve.slot.exploitedFrom - 1]!.publishedAt),
        Description: { Value: '<p>Updated the exploitability assessment to Exploitation Detected and the Exploited flag to Yes.</p>\n' },
      });
    }
    return vulnerability({
      id: cve.id,
      ordinal,
      title: cve.variant.title,
      tag: cve.variant.tag,
      impact: cve.variant.impact ?? cve.slot.impact,
      severity: cve.slot.severity,
      cvss: cve.slot.cvss,
      vector: cve.slot.vector,
      fixes: cve.slot.fixes.map((key) => FIXES[key]),
      exploitStatus: `Publicly Disclosed:${cve.slot.disclosed ? 'Yes' : 'No'};Exploited:${exploitedNow ? 'Yes' : 'No'};Latest Software Release:${exploitedNow ? 'Exploitation Detected' : cve.slot.exploitability}`,
      faq: cve.slot.faq,
      history,
      facts,
      previous,
      knownIssues: knownIssuesFor(cve.slot.fixes, facts, revision, knownIssueKb23h2),
    });
  });

  const edge = chromium(facts);
  vulnerabilities.push(chromiumVulnerability(edge, planned.length, released));

  const documentRevisions: CvrfRevision[] = revisions.map((r) => ({ Number: String(r.number), Date: cvrfDate(r.publishedAt), Description: { Value: r.description } }));
  const title = `${monthName(m)} Security Updates`;
  const headline = planned.length;
  return {
    DocumentTitle: { Value: title },
    DocumentType: { Value: 'Security Update' },
    DocumentPublisher: {
      ContactDetails: { Value: 'secure@microsoft.com' },
      IssuingAuthority: { Value: 'Sample data generated by patchbay for its sandbox; not a Microsoft document.' },
      Type: 0,
    },
    DocumentTracking: {
      Identification: { ID: { Value: m.id }, Alias: { Value: m.id } },
      Status: 2,
      Version: `${revision}.0`,
      // Newest first: MSRC's revision lists are not in date order either, and readers must not assume one.
      RevisionHistory: documentRevisions.reverse(),
      InitialReleaseDate: cvrfDate(released),
      CurrentReleaseDate: cvrfDate(revisions.at(-1)!.publishedAt),
    },
    DocumentNotes: [
      {
        Title: 'Release Notes',
        Audience: 'Public',
        Type: 1,
        Ordinal: '0',
        Value: `<p>This release consists of the following ${headline} Microsoft CVEs, and 1 non-Microsoft CVE ingested by Microsoft Edge (Chromium-based). Sample data for the patchbay sandbox.</p>\n`,
      },
    ],
    ProductTree: {
      Branch: [{ Type: 0, Name: 'Microsoft', Items: FAMILIES.map((f) => ({ Type: 1, Name: f.name, Items: f.products })) }],
      FullProductName: FAMILIES.flatMap((f) => f.products).sort((a, b) => a.ProductID.localeCompare(b.ProductID)),
    },
    Vulnerability: vulnerabilities,
  };
}

interface KnownIssue {
  fix: FixKey;
  text: string;
  url: string;
}

/**
 * MSRC's known-issue entries usually say only the KB number. The one on the Windows 11 23H2 update names the
 * software it affects, because that text is all the digest can match against a client's software list; it starts
 * with the KB so it still reads as one in the digest ("KB5036113: after installing, …").
 */
function knownIssuesFor(fixes: FixKey[], facts: MonthFacts, revision: number, kb23h2: string): KnownIssue[] {
  const out: KnownIssue[] = [];
  const help = (kb: string) => `https://support.microsoft.com/help/${kb}`;
  if (fixes.includes('win11_23h2')) {
    out.push({
      fix: 'win11_23h2',
      text: `KB${kb23h2}: after installing, the ${SAMPLE_CONFLICT_SOFTWARE} imaging bridge might not open new X-ray captures until the PC restarts again`,
      url: help(kb23h2),
    });
  }
  if (fixes.includes('server2022')) {
    const kb = kbOf(facts, FIXES.server2022)!;
    out.push({ fix: 'server2022', text: kb, url: help(kb) });
  }
  if (revision >= 3 && fixes.includes('server2019')) {
    const kb = kbOf(facts, FIXES.server2019)!;
    out.push({ fix: 'server2019', text: kb, url: help(kb) });
  }
  return out;
}

interface VulnerabilityInput {
  id: string;
  ordinal: number;
  title: string;
  tag: string;
  impact: Impact;
  severity: string;
  cvss: number;
  vector: string;
  fixes: Fix[];
  exploitStatus: string;
  faq: string | undefined;
  history: CvrfRevision[];
  facts: MonthFacts;
  previous: MonthFacts;
  knownIssues: KnownIssue[];
}

function vulnerability(input: VulnerabilityInput): CvrfVulnerabilityJson {
  const products = input.fixes.flatMap((fix) => fix.products);
  const perProduct = (type: number, value: string) => products.map((id) => ({ Description: { Value: value }, ProductID: [id], Type: type }));
  const temporal = Math.round(input.cvss * 0.9 * 10) / 10;
  const remediations: CvrfRemediationJson[] = input.fixes.map((fix) => {
    const kb = kbOf(input.facts, fix);
    const build = fix.build ? `${fix.build.prefix}.${fix.build.base + input.facts.index * 70}` : undefined;
    return {
      Description: { Value: kb ?? fix.name! },
      URL: kb ? `https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB${kb}` : (fix.url ?? ''),
      ...(kb ? { Supercedence: kbOf(input.previous, fix)! } : {}),
      ProductID: fix.products,
      Type: 2,
      RestartRequired: { Value: fix.restart },
      SubType: 'Security Update',
      ...(build ? { FixedBuild: build } : {}),
    };
  });
  for (const issue of input.knownIssues) {
    remediations.push({ Description: { Value: issue.text }, URL: issue.url, ProductID: FIXES[issue.fix].products, Type: 5 });
  }
  const notes: CvrfVulnerabilityJson['Notes'] = [{ Title: 'Description', Type: 2, Ordinal: '0' }];
  if (input.faq) notes.push({ Title: 'FAQ', Type: 4, Ordinal: '10', Value: `<p>${input.faq}</p>\n` });
  notes.push({ Title: input.tag, Type: 7, Ordinal: '20', Value: input.tag }, { Title: 'Microsoft', Type: 8, Ordinal: '30', Value: 'Microsoft' });
  return {
    Title: { Value: input.title },
    Notes: notes,
    CVE: input.id,
    ProductStatuses: [{ ProductID: products, Type: 3 }],
    Threats: [...perProduct(0, input.impact), ...perProduct(3, input.severity), { Description: { Value: `${input.exploitStatus};DOS:N/A` }, Type: 1 }],
    CVSSScoreSets: products.map((id) => ({ BaseScore: input.cvss, TemporalScore: temporal, Vector: input.vector, ProductID: [id] })),
    Remediations: remediations,
    Ordinal: String(input.ordinal),
    RevisionHistory: input.history,
  };
}

/** As MSRC documents Chrome's CVEs: assigned by Chrome, no Microsoft severity, fixed by Edge's release notes. */
function chromiumVulnerability(edge: ReturnType<typeof chromium>, ordinal: number, released: DateTime): CvrfVulnerabilityJson {
  const note = 'This CVE was assigned by Chrome. Microsoft Edge (Chromium-based) ingests Chromium, which addresses this vulnerability.';
  return {
    Title: { Value: `Chromium: ${edge.id} ${edge.flaw}` },
    Notes: [
      { Title: 'Description', Type: 2, Ordinal: '0', Value: `<p>${note}</p>\n` },
      { Title: 'Microsoft Edge (Chromium-based)', Type: 7, Ordinal: '20', Value: 'Microsoft Edge (Chromium-based)' },
      { Title: 'Chrome', Type: 8, Ordinal: '30', Value: 'Chrome' },
    ],
    CVE: edge.id,
    ProductStatuses: [{ ProductID: [EDGE], Type: 3 }],
    Threats: [
      { Description: {}, ProductID: [EDGE], Type: 0 },
      { Description: {}, ProductID: [EDGE], Type: 3 },
      { Description: { Value: 'DOS:N/A' }, Type: 1 },
    ],
    CVSSScoreSets: [],
    Remediations: [
      {
        Description: { Value: FIXES.edge.name! },
        URL: '',
        ProductID: [EDGE],
        Type: 2,
        RestartRequired: { Value: 'No' },
        SubType: 'Security Update',
        FixedBuild: edge.edgeVersion,
      },
    ],
    Ordinal: String(ordinal),
    // Edge ships Chromium fixes on its own cadence, usually in the week before Patch Tuesday.
    RevisionHistory: [{ Number: '1.0', Date: cvrfDate(released.minus({ days: 5 }).startOf('day')), Description: { Value: PUBLISHED } }],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// What a sample month contains, for tests and the demo script (which KB to write a note on, what to expect).

export interface SampleFacts {
  id: string;
  title: string;
  patchTuesday: DateTime;
  revision: number;
  /** Microsoft-rated CVEs: what the digest's headline counts. */
  headlineCves: string[];
  critical: string[];
  exploited: string[];
  publiclyDisclosed: string[];
  /** Listed apart from the headline. */
  edgeChromium: string[];
  /** KB numbers (digits only) of the monthly updates, by the Windows version they are for. */
  kbs: Record<'win10' | 'win11_23h2' | 'win11_24h2' | 'server2019' | 'server2022' | 'server2025', string>;
  /** The KB whose known issue names {@link SAMPLE_CONFLICT_SOFTWARE}. */
  conflictKb: string;
}

export function sampleFacts(month: string, options: SampleOptions = {}): SampleFacts {
  const revision = validRevision(options.revision);
  const facts = monthFacts(month);
  const planned = describeMonth(facts).filter((c) => (c.slot.from ?? 1) <= revision);
  const exploited = (s: Slot) => s.exploited === true || (s.exploitedFrom !== undefined && revision >= s.exploitedFrom);
  const kb = (key: FixKey) => kbOf(facts, FIXES[key])!;
  return {
    id: facts.month.id,
    title: `${monthName(facts.month)} Security Updates`,
    patchTuesday: facts.month.publishedAt,
    revision,
    headlineCves: planned.map((c) => c.id),
    critical: planned.filter((c) => c.slot.severity === 'Critical').map((c) => c.id),
    exploited: planned.filter((c) => exploited(c.slot)).map((c) => c.id),
    publiclyDisclosed: planned.filter((c) => c.slot.disclosed === true).map((c) => c.id),
    edgeChromium: [chromium(facts).id],
    kbs: {
      win10: kb('win10'),
      win11_23h2: kb('win11_23h2'),
      win11_24h2: kb('win11_24h2'),
      server2019: kb('server2019'),
      server2022: kb('server2022'),
      server2025: kb('server2025'),
    },
    conflictKb: kb('win11_23h2'),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The CISA KEV catalog.

const KEV_REQUIRED_ACTION =
  'Apply mitigations per vendor instructions, follow applicable BOD 22-01 guidance for cloud services, or discontinue use of the product if mitigations are unavailable.';

/** CISA gives federal agencies three weeks for a Microsoft zero-day. */
const KEV_DUE_DAYS = 21;

function kevEntries(month: string, revision: number): SampleKevEntry[] {
  const facts = monthFacts(month);
  const revisions = sampleRevisions(month);
  return describeMonth(facts)
    .filter((c) => c.slot.exploited === true || (c.slot.exploitedFrom !== undefined && revision >= c.slot.exploitedFrom))
    .map((c) => {
      const added = revisions[(c.slot.exploitedFrom ?? 1) - 1]!.publishedAt.setZone('America/New_York').startOf('day');
      const component = c.variant.title.replace(/^Windows /, '').replace(/ Vulnerability$/, '').replace('Elevation of Privilege', 'Privilege Escalation');
      const id = c.id;
      return {
        cveID: id,
        vendorProject: 'Microsoft',
        product: 'Windows',
        vulnerabilityName: `Microsoft Windows ${component} Vulnerability`,
        dateAdded: added.toISODate()!,
        shortDescription: `Microsoft Windows ${component.replace(/ Privilege Escalation$/, '')} contains a vulnerability that could allow a local attacker to gain SYSTEM privileges.`,
        requiredAction: KEV_REQUIRED_ACTION,
        dueDate: added.plus({ days: KEV_DUE_DAYS }).toISODate()!,
        knownRansomwareCampaignUse: 'Unknown' as const,
        notes: `https://msrc.microsoft.com/update-guide/en-US/vulnerability/${id} ; https://nvd.nist.gov/vuln/detail/${id}`,
        cwes: ['CWE-416'],
      };
    });
}

/**
 * A small KEV catalog as CISA publishes it at `month`'s revision: this month's exploited CVEs (added on the day
 * Microsoft marked them) after the two months before's, so the catalog reads like a running one.
 */
export function sampleKev(month: string, options: SampleOptions = {}): SampleKevCatalog {
  const revision = validRevision(options.revision);
  const m = monthFacts(month).month;
  const before = previousMonthId(parseReleaseIdOrThrow(previousMonthId(m)));
  const older = [before, previousMonthId(m)].flatMap((id) => kevEntries(id, SAMPLE_MAX_REVISION));
  const vulnerabilities = [...older, ...kevEntries(m.id, revision)];
  const latest = vulnerabilities.map((v) => v.dateAdded).sort().at(-1)!;
  return {
    title: 'CISA Catalog of Known Exploited Vulnerabilities',
    catalogVersion: latest.replaceAll('-', '.'),
    dateReleased: `${latest}T19:00:00.000Z`,
    count: vulnerabilities.length,
    // CISA lists the newest first.
    vulnerabilities: vulnerabilities.reverse(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// MSRC's /updates index.

export interface SampleIndexOptions {
  /** The fake MSRC's base URL, used for CvrfUrl (the client itself builds `cvrf/<id>` from MSRC_API_URL). */
  baseUrl?: string;
  /** The revision each month is at (default 1); sets CurrentReleaseDate. */
  revisionOf?: (month: string) => number;
}

export function sampleUpdatesIndex(months: readonly string[], options: SampleIndexOptions = {}): SampleUpdatesIndex {
  const base = options.baseUrl ?? 'https://api.msrc.microsoft.com/cvrf/v3.0/';
  const slash = base.endsWith('/') ? base : `${base}/`;
  const zoned = (dt: DateTime) => `${cvrfDate(dt)}Z`;
  return {
    '@odata.context': `${slash}$metadata#updates`,
    value: months.map((id) => {
      const m = parseReleaseIdOrThrow(id);
      const revision = validRevision(options.revisionOf?.(m.id) ?? 1);
      const revisions = sampleRevisions(m.id);
      return {
        ID: m.id,
        Alias: m.id,
        DocumentTitle: `${monthName(m)} Security Updates`,
        Severity: null,
        InitialReleaseDate: zoned(revisions[0]!.publishedAt),
        CurrentReleaseDate: zoned(revisions[revision - 1]!.publishedAt),
        CvrfUrl: `${slash}cvrf/${m.id}`,
      };
    }),
  };
}
