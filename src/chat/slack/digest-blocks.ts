/**
 * The digest as Slack messages: `[channel post, ...thread]`. The post is the summary; the thread has one
 * run of messages per product family with a section per update (`block_id` `update:<id>`, where the Slack
 * issue hangs Approve/Hold/Add note), then what is not in the fleet and what is listed apart.
 * Every piece of MSRC or human text is escaped; every message is within Block Kit's limits.
 */
import { headlineCount, productSummary, updateLabel, type Digest, type DigestCve, type DigestUpdateLine } from '../../domain/digest.ts';
import { BLOCK_KIT_LIMITS, MessageBuilder, escapeMrkdwn, mrkdwn, mrkdwnLink, plain, splitText, type Block, type ButtonElement, type SlackMessage } from './block-kit.ts';

export interface DigestBlocksOptions {
  /** Render Approve/Hold/Add note buttons (the Slack issue wires their actions). */
  interactive?: boolean;
}

const MSRC_CVE_URL = 'https://msrc.microsoft.com/update-guide/vulnerability/';

function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

/** `update:5034763`; an id too long for a block_id keeps its start and a hash, so it stays unique and stable. */
export function updateBlockId(updateId: string): string {
  const id = `update:${updateId}`;
  return id.length <= BLOCK_KIT_LIMITS.blockId ? id : `${id.slice(0, BLOCK_KIT_LIMITS.blockId - 9)}~${fnv1a(updateId)}`;
}

/** The block holding an update's Approve/Hold/Add note buttons; the digest's edits find the update's section by it. */
export function updateActionsBlockId(updateId: string): string {
  return `actions:${updateBlockId(updateId)}`.slice(0, BLOCK_KIT_LIMITS.blockId);
}

/** The block holding the release's own buttons, in the digest's channel post. */
export function releaseActionsBlockId(month: string): string {
  return `release:${month}`;
}

function header(text: string): Block {
  const max = BLOCK_KIT_LIMITS.headerText;
  return { type: 'header', text: plain(text.length <= max ? text : `${text.slice(0, max - 1)}…`) };
}

function cveMrkdwn(c: DigestCve): string {
  const bits = [`${mrkdwnLink(`${MSRC_CVE_URL}${c.id}`, c.id)} ${escapeMrkdwn(c.title ?? '(no title)')}`];
  const facts = [c.severity, c.cvssBaseScore !== undefined ? `CVSS ${c.cvssBaseScore}` : undefined].filter(Boolean);
  if (facts.length) bits.push(`(${facts.join(', ')})`);
  if (c.kev) bits.push(`· KEV due ${c.kev.dueDate}${c.kev.overdue ? ' *overdue*' : ''}`);
  if (c.addedAfterRelease) bits.push('· _added after release day_');
  return `• ${bits.join(' ')}`;
}

function cveList(title: string, list: DigestCve[]): string {
  return list.length === 0 ? `*${title}:* none` : `*${title} (${list.length}):*\n${list.map(cveMrkdwn).join('\n')}`;
}

function idList(list: DigestCve[]): string {
  return list.map((c) => c.id).join(', ');
}

function button(text: string, actionId: string, value: object, style?: 'primary' | 'danger'): ButtonElement {
  return { type: 'button', text: plain(text), action_id: actionId, value: JSON.stringify(value), ...(style ? { style } : {}) };
}

export function updateSectionText(line: DigestUpdateLine): string {
  const products = line.fleetProducts.length > 0 ? line.fleetProducts : line.products;
  const label = line.url ? mrkdwnLink(line.url, updateLabel(line)) : `*${escapeMrkdwn(updateLabel(line))}*`;
  const facts = [
    `*${line.severity ?? 'Unrated'}*`,
    `${line.cves} CVE${line.cves === 1 ? '' : 's'}`,
    line.exploited > 0 ? `*${line.exploited} exploited* (${line.exploitedCveIds.join(', ')})` : undefined,
    `restart: ${line.restartRequired}`,
    line.supersedes.length > 0 ? `supersedes ${line.supersedes.map((kb) => (/^\d+$/.test(kb) ? `KB${kb}` : escapeMrkdwn(kb))).join(', ')}` : undefined,
  ].filter((x): x is string => x !== undefined);
  const out = [`${label} ${escapeMrkdwn(productSummary(products))}`, facts.join(' · ')];
  if (line.devices > 0) out.push(`${line.devices} device${line.devices === 1 ? '' : 's'}: ${escapeMrkdwn(line.clients.join(', '))}`);
  if (line.knownIssues.length > 0) {
    out.push(`Known issues: ${line.knownIssues.map((k) => (k.url ? mrkdwnLink(k.url, `KB${k.kb}`) : `KB${escapeMrkdwn(k.kb)}`)).join(', ')}`);
  }
  for (const c of line.conflicts) {
    out.push(`:warning: *Conflict*${c.client ? ` (${escapeMrkdwn(c.client)}: ${escapeMrkdwn(c.software ?? '')})` : ''}: ${escapeMrkdwn(c.detail)}`);
  }
  for (const note of line.notes) {
    out.push(`> ${escapeMrkdwn(note.author)}${note.tags.length ? ` [${escapeMrkdwn(note.tags.join(', '))}]` : ''}: ${escapeMrkdwn(note.text).replace(/\n/g, '\n> ')}`);
  }
  return out.join('\n');
}

export function renderDigestBlocks(digest: Digest, options: DigestBlocksOptions = {}): SlackMessage[] {
  const t = digest.totals;
  const month = digest.month;
  const summaryText = `Patch Tuesday ${month}: ${headlineCount(t)}, ${t.critical} Critical, ${t.exploited} exploited, ${t.publiclyDisclosed} publicly disclosed`;
  const messages: SlackMessage[] = [];

  // The channel post.
  const post = new MessageBuilder(escapeMrkdwn(summaryText), (n) => `${escapeMrkdwn(summaryText)} (summary, part ${n})`);
  post.add(header(`Patch Tuesday ${month}: ${headlineCount(t)} · ${t.critical} Critical · ${t.exploited} exploited`));
  post.add({ type: 'context', elements: [mrkdwn(escapeMrkdwn(`${digest.title ?? month}, released ${digest.releaseDay}, revision of ${digest.revisionDate}. ${digest.headlineRule}`))] });
  post.addSection(cveList('Exploited', digest.exploited));
  post.addSection(cveList('Publicly disclosed', digest.publiclyDisclosed));
  post.addSection(cveList('Critical', digest.critical));
  post.addSection(cveList(`CISA KEV${digest.kevCatalog ? ` (catalog ${escapeMrkdwn(digest.kevCatalog.version)})` : ' (no catalog given)'}`, digest.kev));
  if (digest.addedAfterRelease.length > 0) post.addSection(`*Added after release day (not in the headline):* ${idList(digest.addedAfterRelease)}`);
  post.addSection(`*Impact:* ${digest.impacts.map((i) => `${i.count} ${escapeMrkdwn(i.impact)}`).join(' · ')}`);
  const fleetLines = digest.fleet.groups.map((g) => `• ${escapeMrkdwn(g.family)}: ${g.lines.length} update${g.lines.length === 1 ? '' : 's'}`);
  const conflicts = digest.fleet.groups.flatMap((g) => g.lines).filter((l) => l.conflicts.length > 0);
  post.addSection(
    [
      `*${digest.fleet.hasInventory ? 'Your fleet' : 'Updates by family'}:*`,
      ...fleetLines,
      digest.fleet.hasInventory ? `• Not in your fleet: ${digest.fleet.notInFleet.length}` : undefined,
      conflicts.length > 0 ? `:warning: Conflicts flagged on ${conflicts.map((l) => escapeMrkdwn(updateLabel(l))).join(', ')}` : undefined,
    ]
      .filter((x): x is string => x !== undefined)
      .join('\n'),
  );
  const sep = digest.separate;
  post.add({
    type: 'context',
    elements: [mrkdwn(`Listed apart in the thread: ${sep.edgeChromium.length} Edge/Chromium · ${sep.azureLinux.length} Azure Linux/Mariner · ${sep.otherVendors.length} other vendors'. Details per product family in the thread.`)],
  });
  if (options.interactive) {
    post.add({
      type: 'actions',
      block_id: releaseActionsBlockId(month),
      elements: [
        button('Approve release', 'release.approve', { release: month }, 'primary'),
        button('Hold release', 'release.hold', { release: month }, 'danger'),
      ],
    });
  }
  messages.push(...post.build());

  // The thread: one run of messages per family.
  for (const group of digest.fleet.groups) {
    const title = `${month} · ${group.family}: ${group.lines.length} update${group.lines.length === 1 ? '' : 's'}`;
    const thread = new MessageBuilder(escapeMrkdwn(title), (n) => `${escapeMrkdwn(title)} (part ${n})`);
    thread.add(header(title));
    for (const line of group.lines) {
      const blockId = updateBlockId(line.id);
      const text = updateSectionText(line);
      const sections: Block[] = [];
      const pieces = splitText(text, BLOCK_KIT_LIMITS.sectionText);
      pieces.forEach((piece, i) => sections.push({ type: 'section', block_id: i === 0 ? blockId : `${blockId}:${i}`, text: mrkdwn(piece) }));
      if (options.interactive) {
        const value = { release: month, kb: line.kb ?? line.id };
        sections.push({
          type: 'actions',
          block_id: updateActionsBlockId(line.id),
          elements: [
            button('Approve', 'update.approve', value, 'primary'),
            button('Hold', 'update.hold', value, 'danger'),
            button('Add note', 'update.note', value),
          ],
        });
      }
      // A note of many thousand characters could outgrow one message: then its pieces travel alone.
      if (JSON.stringify(sections).length < BLOCK_KIT_LIMITS.messageBlocksChars - 500) thread.addGroup(sections);
      else for (const block of sections) thread.add(block);
    }
    messages.push(...thread.build());
  }

  if (digest.fleet.hasInventory) {
    const rest = digest.fleet.notInFleet;
    const title = `${month} · not in your fleet: ${rest.length} update${rest.length === 1 ? '' : 's'}`;
    const b = new MessageBuilder(escapeMrkdwn(title), (n) => `${escapeMrkdwn(title)} (part ${n})`);
    b.add(header(title));
    const byFamily = new Map<string, DigestUpdateLine[]>();
    for (const line of rest) byFamily.set(line.family, [...(byFamily.get(line.family) ?? []), line]);
    const text = [...byFamily]
      .map(([family, lines]) => `*${escapeMrkdwn(family)}:* ${lines.map((l) => `${escapeMrkdwn(updateLabel(l))} (${l.severity ?? 'unrated'}, ${l.cves})`).join(', ')}`)
      .join('\n');
    b.addSection(text === '' ? 'Every update of this release applies to your fleet.' : text);
    messages.push(...b.build());
  }

  const apartTitle = `${month} · listed apart (not in the headline)`;
  const apart = new MessageBuilder(escapeMrkdwn(apartTitle), (n) => `${escapeMrkdwn(apartTitle)} (part ${n})`);
  apart.add(header(apartTitle));
  const apartSection = (label: string, list: DigestCve[]) => {
    apart.addSection(`*${label} (${list.length}):* ${list.length === 0 ? 'none' : list.map((c) => `${c.id}${c.addedAfterRelease ? '+' : ''}`).join(', ')}`);
  };
  apartSection('Edge/Chromium', sep.edgeChromium);
  apartSection('Azure Linux/Mariner', sep.azureLinux);
  apartSection("Other vendors' CVEs Microsoft documents", sep.otherVendors);
  apart.add({ type: 'context', elements: [mrkdwn('+ = added after release day')] });
  if (digest.unattachedNotes.length > 0) {
    apart.addSection(
      `*Notes on KBs not in this release:*\n${digest.unattachedNotes.map((n) => `• KB${escapeMrkdwn(n.kb.replace(/^KB/i, ''))} ${escapeMrkdwn(n.author)}: ${escapeMrkdwn(n.text)}`).join('\n')}`,
    );
  }
  messages.push(...apart.build());
  return messages;
}
