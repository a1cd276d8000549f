/** The digest as plain text: a terminal, an email, a log. Nothing is escaped because nothing is interpreted. */
import { headlineCount, productSummary, updateLabel, type Digest, type DigestCve, type DigestUpdateLine } from '../domain/digest.ts';

const LATE_MARK = '(added after release day)';

export function cveLine(c: DigestCve): string {
  const parts = [c.id, c.title ?? '(no title)'];
  if (c.severity) parts.push(c.severity);
  if (c.cvssBaseScore !== undefined) parts.push(`CVSS ${c.cvssBaseScore}`);
  if (c.kev) parts.push(`KEV due ${c.kev.dueDate}${c.kev.overdue ? ' (overdue)' : ''}`);
  if (c.addedAfterRelease) parts.push(LATE_MARK);
  return parts.join(' · ');
}

export function updateLineText(line: DigestUpdateLine): string {
  const facts = [
    line.severity ?? 'unrated',
    `${line.cves} CVE${line.cves === 1 ? '' : 's'}`,
    line.exploited > 0 ? `${line.exploited} exploited` : undefined,
    `restart: ${line.restartRequired}`,
    line.knownIssues.length > 0 ? `known issues: ${line.knownIssues.map((k) => `KB${k.kb}`).join(', ')}` : undefined,
    line.supersedes.length > 0 ? `supersedes ${line.supersedes.map((kb) => (/^\d+$/.test(kb) ? `KB${kb}` : kb)).join(', ')}` : undefined,
    line.devices > 0 ? `${line.devices} device${line.devices === 1 ? '' : 's'} (${line.clients.join(', ')})` : undefined,
  ].filter((x): x is string => x !== undefined);
  const out = [`${updateLabel(line)}: ${productSummary(line.fleetProducts.length > 0 ? line.fleetProducts : line.products)}`, `    ${facts.join(' · ')}`];
  for (const conflict of line.conflicts) {
    out.push(`    ! conflict${conflict.client ? ` (${conflict.client}: ${conflict.software})` : ''}: ${conflict.detail}`);
  }
  for (const note of line.notes) out.push(`    note [${note.tags.join(', ')}] ${note.author}: ${note.text}`);
  return out.join('\n');
}

function cveSection(title: string, list: DigestCve[]): string[] {
  if (list.length === 0) return [`${title}: none`];
  return [`${title} (${list.length}):`, ...list.map((c) => `  ${cveLine(c)}`)];
}

export function renderDigestText(digest: Digest): string {
  const t = digest.totals;
  const lines: string[] = [
    `${digest.title ?? digest.month} (${digest.month}), released ${digest.releaseDay}, revision of ${digest.revisionDate}`,
    `${headlineCount(t)} · ${t.critical} Critical · ${t.exploited} exploited · ${t.publiclyDisclosed} publicly disclosed · ${t.kev} in CISA KEV · ${t.updates} updates`,
    digest.headlineRule,
    '',
    ...cveSection('Critical', digest.critical),
    ...cveSection('Exploited', digest.exploited),
    ...cveSection('Publicly disclosed', digest.publiclyDisclosed),
    ...cveSection(`CISA KEV${digest.kevCatalog ? ` (catalog ${digest.kevCatalog.version})` : ' (no catalog given)'}`, digest.kev),
    ...cveSection('Added after release day (not in the headline)', digest.addedAfterRelease),
    '',
    `Impact: ${digest.impacts.map((i) => `${i.count} ${i.impact}`).join(', ')}`,
    '',
  ];
  if (digest.fleet.hasInventory) {
    lines.push('Your fleet:');
    for (const m of digest.fleet.osMatches) {
      lines.push(`  ${m.os} (${m.devices} device${m.devices === 1 ? '' : 's'}): ${m.how ? `${m.how} match, ${m.products.length} product(s)` : 'no MSRC product matches this name'}`);
    }
    lines.push('');
  }
  for (const group of digest.fleet.groups) {
    lines.push(`== ${group.family} (${group.lines.length}) ==`);
    for (const line of group.lines) lines.push(updateLineText(line));
    lines.push('');
  }
  if (digest.fleet.hasInventory) {
    const rest = digest.fleet.notInFleet;
    lines.push(`Not in your fleet (${rest.length} update${rest.length === 1 ? '' : 's'}): ${rest.map(updateLabel).join(', ') || 'none'}`, '');
  }
  lines.push(
    ...cveSection('Listed apart: Edge/Chromium', digest.separate.edgeChromium),
    ...cveSection('Listed apart: Azure Linux/Mariner', digest.separate.azureLinux),
    ...cveSection("Listed apart: other vendors'", digest.separate.otherVendors),
  );
  if (digest.unattachedNotes.length > 0) {
    lines.push('', 'Notes on KBs not in this release:');
    for (const note of digest.unattachedNotes) lines.push(`  KB${note.kb.replace(/^KB/i, '')} [${note.tags.join(', ')}] ${note.author}: ${note.text}`);
  }
  return `${lines.join('\n')}\n`;
}
