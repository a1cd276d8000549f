/**
 * The digest summary as an Adaptive Card 1.5 for Teams. A card is a summary, not the full list: long lists
 * show their first entries and say how many more there are, so the card stays well under Teams' ~28 KB.
 */
import { headlineNumber, updateLabel, type Digest, type DigestCve } from '../../domain/digest.ts';

export const CARD_VERSION = '1.5';
export const CARD_MAX_BYTES = 28 * 1024;
const LIST_MAX = 12;

type CardElement = Record<string, unknown>;

/**
 * TextBlock text is markdown in Teams: a title or note could carry a link or emphasis. Backslash-escaping
 * the markdown characters shows them as written.
 */
export function escapeCardText(text: string): string {
  return text.replace(/([\\*_[\]`~])/g, '\\$1').replace(/^([-+#>])/gm, '\\$1');
}

function text(value: string, extra: CardElement = {}): CardElement {
  return { type: 'TextBlock', text: value, wrap: true, ...extra };
}

function cveItems(title: string, list: DigestCve[]): CardElement[] {
  if (list.length === 0) return [];
  const shown = list.slice(0, LIST_MAX).map((c) => {
    const facts = [c.severity, c.kev ? `KEV due ${c.kev.dueDate}` : undefined, c.addedAfterRelease ? 'added after release day' : undefined].filter(Boolean);
    return text(`${c.id} ${escapeCardText(c.title ?? '(no title)')}${facts.length ? ` (${facts.join(', ')})` : ''}`, { spacing: 'None', size: 'Small' });
  });
  if (list.length > LIST_MAX) shown.push(text(`and ${list.length - LIST_MAX} more`, { isSubtle: true, spacing: 'None', size: 'Small' }));
  return [{ type: 'Container', spacing: 'Medium', items: [text(`${title} (${list.length})`, { weight: 'Bolder' }), ...shown] }];
}

export function renderDigestCard(digest: Digest): Record<string, unknown> {
  const t = digest.totals;
  const lines = digest.fleet.groups.flatMap((g) => g.lines);
  const conflicts = lines.filter((l) => l.conflicts.length > 0);
  const body: CardElement[] = [
    text(`Patch Tuesday ${digest.month}`, { size: 'Large', weight: 'Bolder' }),
    text(escapeCardText(`${digest.title ?? digest.month}, released ${digest.releaseDay}. ${digest.headlineRule}`), { isSubtle: true, size: 'Small' }),
    {
      type: 'FactSet',
      facts: [
        { title: 'CVEs', value: headlineNumber(t) },
        { title: 'Critical', value: String(t.critical) },
        { title: 'Exploited', value: String(t.exploited) },
        { title: 'Publicly disclosed', value: String(t.publiclyDisclosed) },
        { title: 'In CISA KEV', value: digest.kevCatalog ? String(t.kev) : 'no catalog given' },
        { title: 'Updates', value: String(t.updates) },
      ],
    },
    ...cveItems('Exploited', digest.exploited),
    ...cveItems('Publicly disclosed', digest.publiclyDisclosed),
    ...cveItems('Critical', digest.critical),
    ...cveItems('CISA KEV', digest.kev),
    ...cveItems('Added after release day (not in the headline)', digest.addedAfterRelease),
    {
      type: 'Container',
      spacing: 'Medium',
      items: [
        text(digest.fleet.hasInventory ? 'Your fleet' : 'Updates by family', { weight: 'Bolder' }),
        {
          type: 'FactSet',
          facts: [
            ...digest.fleet.groups.map((g) => ({ title: escapeCardText(g.family), value: `${g.lines.length} update${g.lines.length === 1 ? '' : 's'}` })),
            ...(digest.fleet.hasInventory ? [{ title: 'Not in your fleet', value: String(digest.fleet.notInFleet.length) }] : []),
          ],
        },
      ],
    },
  ];
  if (conflicts.length > 0) {
    body.push(text(`Conflicts flagged: ${conflicts.slice(0, LIST_MAX).map((l) => escapeCardText(updateLabel(l))).join(', ')}${conflicts.length > LIST_MAX ? ` and ${conflicts.length - LIST_MAX} more` : ''}`, { color: 'Attention' }));
  }
  const sep = digest.separate;
  body.push(
    text(`Listed apart: ${sep.edgeChromium.length} Edge/Chromium, ${sep.azureLinux.length} Azure Linux/Mariner, ${sep.otherVendors.length} other vendors'.`, {
      isSubtle: true,
      size: 'Small',
    }),
  );
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: CARD_VERSION,
    body,
    actions: [{ type: 'Action.OpenUrl', title: 'MSRC release notes', url: `https://msrc.microsoft.com/update-guide/releaseNote/${encodeURIComponent(digest.month)}` }],
  };
}
