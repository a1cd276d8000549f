import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { parseKevCatalog } from '../../src/adapters/kev/catalog.ts';
import { parseCvrf } from '../../src/adapters/msrc/to-release.ts';
import { BLOCK_KIT_LIMITS, checkMessage, cutMrkdwn, escapeMrkdwn, MRKDWN_BREAK, splitText, truncateMrkdwn, type SlackMessage } from '../../src/chat/slack/block-kit.ts';
import { renderDigestBlocks } from '../../src/chat/slack/digest-blocks.ts';
import { CARD_MAX_BYTES, renderDigestCard } from '../../src/chat/teams/digest-card.ts';
import { buildDigest, type Digest, type ResearchNote } from '../../src/domain/digest.ts';
import type { Cve, Release, Update } from '../../src/domain/release.ts';
import { digestToJson } from '../../src/render/digest-json.ts';
import { renderDigestText } from '../../src/render/digest-text.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const shared = path.resolve(repoRoot, '../shared/fixtures');
const hasShared = existsSync(path.join(shared, 'msrc/2024-Feb.json'));
if (!hasShared) console.warn(`[digest-render] ${shared} is absent: the real-month render tests are skipped`);

const require = createRequire(import.meta.url);
const AC = require('adaptivecards/dist/adaptivecards.js') as {
  AdaptiveCard: new () => { parse(json: unknown, ctx: unknown): void };
  SerializationContext: new () => { eventCount: number; getEventAt(i: number): { message: string } };
};

const now = DateTime.fromISO('2024-06-12T15:00:00Z');
const edgeCases = () => parseCvrf(readFileSync(path.join(repoRoot, 'test/fixtures/msrc/edge-cases.json'), 'utf8'));

function expectWithinLimits(messages: SlackMessage[], label: string) {
  expect(messages.length).toBeGreaterThan(0);
  const problems = messages.flatMap((m, i) => checkMessage(m, `${label}[${i}]`));
  expect(problems).toEqual([]);
}

function cardProblems(card: unknown): string[] {
  const ctx = new AC.SerializationContext();
  new AC.AdaptiveCard().parse(card, ctx);
  return Array.from({ length: ctx.eventCount }, (_, i) => ctx.getEventAt(i).message);
}

/** Everything Slack would show as text, to prove nothing was dropped. */
function allText(messages: SlackMessage[]): string {
  return JSON.stringify(messages.map((m) => m.blocks));
}

/** A month far beyond any real one: 60 families, 400 updates, 1500 CVEs, long names, long notes. */
function hugeRelease(): { release: Release; notes: ResearchNote[] } {
  const products = Array.from({ length: 600 }, (_, i) => ({ id: `p${i}`, name: `Windows Server 20${i % 30} <!channel> Datacenter Edition build ${i} for x64-based Systems`, family: `Family & Co ${i % 60}` }));
  const cves: Cve[] = Array.from({ length: 1500 }, (_, i) => ({
    id: `CVE-2099-${String(10000 + i)}`,
    title: `A very long vulnerability title number ${i} with <@U123> and & and > in it`.padEnd(180, '!'),
    severity: i % 7 === 0 ? 'Critical' : 'Important',
    impacts: ['Remote Code Execution'],
    cvssBaseScore: 9.8,
    exploited: i % 11 === 0,
    publiclyDisclosed: i % 13 === 0,
    exploitability: { latestRelease: undefined, olderRelease: undefined },
    assigningCna: 'Microsoft',
    tags: ['Windows Kernel'],
    productIds: [`p${i % 600}`],
    families: [`Family & Co ${i % 60}`],
    updateIds: [`${5090000 + (i % 400)}`],
    firstPublished: '2099-06-09T07:00:00Z',
    lastRevised: '2099-06-09T07:00:00Z',
    revisions: [],
  }));
  const updates: Update[] = Array.from({ length: 400 }, (_, u) => ({
    id: `${5090000 + u}`,
    kb: `${5090000 + u}`,
    name: `${5090000 + u}`,
    family: `Family & Co ${u % 60}`,
    productIds: products.filter((_, p) => p % 400 === u || p % 7 === u % 7).map((p) => p.id),
    subTypes: ['Security Update'],
    restartRequired: 'Yes',
    supersedes: Array.from({ length: 30 }, (_, s) => `${5080000 + s}`),
    fixedBuilds: [],
    urls: [`https://support.microsoft.com/help/${5090000 + u}`],
    knownIssues: [{ kb: `${5090000 + u}`, url: `https://support.microsoft.com/help/${5090000 + u}`, text: undefined }],
    cves: cves.filter((c) => c.updateIds[0] === `${5090000 + u}`).map((c) => ({ cveId: c.id, severity: c.severity })),
  }));
  const notes: ResearchNote[] = [
    { kb: '5090001', text: `<!channel> ${'x'.repeat(7000)} & done`, tags: ['conflict'], author: '<@U999>', at: '2099-06-09T20:00:00Z' },
  ];
  return {
    release: { id: '2099-Jun', title: 'June 2099 Security Updates', initialReleaseDate: '2099-06-09T07:00:00Z', currentReleaseDate: '2099-06-09T07:00:00Z', revisions: [], products, updates, cves },
    notes,
  };
}

describe('Block Kit', () => {
  it('escapes what Slack would act on, and splits without losing text', () => {
    expect(escapeMrkdwn('<!channel> & <@U1>')).toBe('&lt;!channel&gt; &amp; &lt;@U1&gt;');
    const text = `${'a'.repeat(2990)} &amp; ${'b'.repeat(50)}\n${'c'.repeat(10)}`;
    const pieces = splitText(text, 3000);
    expect(pieces.every((p) => p.length <= 3000)).toBe(true);
    expect(pieces.join(' ').replace(/\s+/g, '')).toBe(text.replace(/\s+/g, ''));
    expect(pieces.some((p) => p.endsWith('&am') || p.startsWith('p;'))).toBe(false);
  });

  it('shows *, _, ~ and backticks as typed: a zero-width space between each marker and the word, so nothing formats', () => {
    const Z = MRKDWN_BREAK;
    expect(Z).toBe('\u200B');
    expect(escapeMrkdwn('*twice*')).toBe(`${Z}*${Z}twice${Z}*${Z}`);
    expect(escapeMrkdwn('_x_')).toBe(`${Z}_${Z}x${Z}_${Z}`);
    expect(escapeMrkdwn('~x~')).toBe(`${Z}~${Z}x${Z}~${Z}`);
    expect(escapeMrkdwn('`x`')).toBe(`${Z}\`${Z}x${Z}\`${Z}`);
    expect(escapeMrkdwn('```block```')).toContain(`\`${Z}block${Z}\``);
    // No marker touches anything but a zero-width space, and removing those gives back exactly what was typed.
    const typed = 'Run `wusa /uninstall` *only* on _EMR_ hosts ~not~ servers; 2*3*4 <!channel> & <@U123>';
    const shown = escapeMrkdwn(typed);
    expect(shown).not.toMatch(/[^\u200B][*_~`]|[*_~`][^\u200B]/);
    expect(shown.replaceAll(Z, '')).toBe('Run `wusa /uninstall` *only* on _EMR_ hosts ~not~ servers; 2*3*4 &lt;!channel&gt; &amp; &lt;@U123&gt;');
  });

  it('keeps links, email addresses and emoji codes whole, so they still link and show', () => {
    const typed = 'See https://support.microsoft.com/kb_5034763?x=*1* or mail it_desk@acme.example :white_check_mark: but *not* this';
    const shown = escapeMrkdwn(typed);
    expect(shown).toContain('https://support.microsoft.com/kb_5034763?x=*1*');
    expect(shown).toContain('it_desk@acme.example');
    expect(shown).toContain(':white_check_mark:');
    expect(shown).toContain(`${MRKDWN_BREAK}*${MRKDWN_BREAK}not${MRKDWN_BREAK}*${MRKDWN_BREAK}`);
    // A link cannot smuggle a control sequence: those are escaped before anything is kept whole.
    expect(escapeMrkdwn('https://x.example/<!channel>')).toBe('https://x.example/&lt;!channel&gt;');
  });

  it('cuts escaped text by its escaped length, never inside an entity', () => {
    const shown = escapeMrkdwn(`${'a'.repeat(8)}<b`);
    for (let max = 8; max <= shown.length; max++) {
      const cut = cutMrkdwn(shown, max);
      expect(cut.length).toBeLessThanOrEqual(max);
      expect(cut).toMatch(/^a+(&lt;(b)?)?$/);
      expect(truncateMrkdwn(shown, max).length).toBeLessThanOrEqual(max);
    }
    expect(truncateMrkdwn(escapeMrkdwn('*'.repeat(3000)), 3000)).toHaveLength(3000);
  });

  it('a note of stars at the longest a note may be still fits every limit, and every star is there', () => {
    const note = '*'.repeat(3000);
    const d = buildDigest({ release: edgeCases(), now, notes: [{ kb: '5099001', text: note, tags: [], author: 'dana', at: '2024-06-11T19:00:00Z' }] });
    const messages = renderDigestBlocks(d);
    expectWithinLimits(messages, 'stars');
    const texts = messages.flatMap((m) => m.blocks.flatMap((b) => (b.type === 'section' && b.text ? [b.text.text] : [])));
    expect(texts.join('').split(`${MRKDWN_BREAK}*${MRKDWN_BREAK}`).length - 1).toBe(3000);
  });

  it('the checker catches each limit it guards', () => {
    const bad: SlackMessage = {
      text: '',
      blocks: [
        { type: 'header', text: { type: 'plain_text', text: 'h'.repeat(151) } },
        { type: 'section', block_id: 'x'.repeat(256), text: { type: 'mrkdwn', text: 's'.repeat(3001) } },
        { type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'b'.repeat(76) }, action_id: 'a', value: 'v'.repeat(2001) }] },
        ...Array.from({ length: 48 }, () => ({ type: 'divider' as const })),
      ],
    };
    const problems = checkMessage(bad);
    for (const expected of ['text: missing', 'blocks: 51 blocks', 'blocks[0].text: 151', 'blocks[1].block_id: 256', 'blocks[1].text: 3001', 'elements[0].text: 76', 'elements[0].value: 2001']) {
      expect(problems.some((p) => p.includes(expected))).toBe(true);
    }
  });

  it('escapes MSRC titles and people’s notes: <!channel> pings nobody', () => {
    const d = buildDigest({ release: edgeCases(), now, notes: [{ kb: '5099001', text: 'ping <!here> & <@U42>', tags: [], author: 'dana', at: '2024-06-11T19:00:00Z' }] });
    const messages = renderDigestBlocks(d);
    const json = allText(messages);
    expect(json).not.toMatch(/<!channel>|<!here>|<@U/);
    expect(json).toContain('&lt;!channel&gt;');
    expect(json).toContain('ping &lt;!here&gt; &amp; &lt;@U42&gt;');
    expectWithinLimits(messages, 'edge-cases');
  });

  it('first the channel post, then the thread per family with a stable block_id per update', () => {
    const d = buildDigest({ release: edgeCases(), now });
    const messages = renderDigestBlocks(d, { interactive: true });
    expect(messages[0]!.text).toContain('Patch Tuesday 2024-Jun: 2 CVEs (+1 since release day), 1 Critical, 1 exploited');
    const ids = messages.flatMap((m) => m.blocks.map((b) => b.block_id)).filter((id) => id?.startsWith('update:'));
    expect(ids).toEqual(['update:5099002', 'update:5099001', 'update:5099003']);
    const actions = messages.flatMap((m) => m.blocks).filter((b) => b.type === 'actions');
    const actionIds = actions.flatMap((a) => (a.type === 'actions' ? a.elements.map((e) => e.action_id) : []));
    expect(new Set(actionIds)).toEqual(new Set(['release.approve', 'release.hold', 'update.approve', 'update.hold', 'update.note']));
    const approve = actions.flatMap((a) => (a.type === 'actions' ? a.elements : [])).find((e) => e.action_id === 'update.approve');
    expect(JSON.parse(approve!.value!)).toEqual({ release: '2024-Jun', kb: '5099002' });
    expectWithinLimits(messages, 'interactive');
  });

  it('a synthetic month far beyond any real one splits into more messages, every one within every limit, nothing dropped', () => {
    const { release, notes } = hugeRelease();
    const d = buildDigest({ release, now, notes });
    for (const interactive of [false, true]) {
      const messages = renderDigestBlocks(d, { interactive });
      expectWithinLimits(messages, `huge${interactive ? '-interactive' : ''}`);
      expect(messages.length).toBeGreaterThan(10);
      const json = allText(messages);
      for (const update of release.updates) expect(json).toContain(`"update:${update.id}"`);
      // The 7000-character note is there in full, in pieces.
      expect((json.match(/x/g) ?? []).length).toBeGreaterThanOrEqual(7000);
      expect(json).not.toMatch(/<!channel>|<@U/);
    }
  });
});

describe('Teams card', () => {
  it('is a valid Adaptive Card 1.5, small, for the edge-case and the huge month', () => {
    for (const digest of [buildDigest({ release: edgeCases(), now }), buildDigest({ release: hugeRelease().release, now })]) {
      const card = renderDigestCard(digest);
      expect(card.version).toBe('1.5');
      expect(cardProblems(card)).toEqual([]);
      expect(Buffer.byteLength(JSON.stringify(card))).toBeLessThan(CARD_MAX_BYTES);
    }
  });

  it('the parser would report an unknown element (the check can fail)', () => {
    expect(cardProblems({ type: 'AdaptiveCard', version: '1.5', body: [{ type: 'NoSuchThing' }] }).length).toBeGreaterThan(0);
  });
});

describe('JSON and text', () => {
  it('JSON carries the contract fields with unknown as null', () => {
    const j = digestToJson(buildDigest({ release: edgeCases(), now }));
    expect(j).toMatchObject({
      month: '2024-Jun',
      totals: { cves: 2, addedAfterRelease: 1, critical: 1, exploited: 1, publiclyDisclosed: 1 },
      critical: ['CVE-2024-90001'],
      exploited: ['CVE-2024-90001'],
      publiclyDisclosed: ['CVE-2024-90001'],
      separate: { edgeChromium: 1, azureLinux: 1, otherVendors: 1 },
    });
    expect(j.updates.find((u) => u.kb === '5099003')).toMatchObject({ severity: 'Important', cves: 1, exploited: 0, restartRequired: 'unknown' });
  });

  it('text names the headline rule and marks late CVEs', () => {
    const text = renderDigestText(buildDigest({ release: edgeCases(), now }));
    expect(text).toContain('Headline: the 2 CVEs');
    expect(text).toMatch(/CVE-2024-90005 .*\(added after release day\)/);
    expect(text).toContain('restart: unknown');
  });
});

/** What each render shows as the headline: Slack's header and fallback, the card's fact, the text's first count line, the JSON's fields. */
function headlines(d: Digest) {
  const messages = renderDigestBlocks(d);
  const header = messages[0]!.blocks.find((b) => b.type === 'header');
  const facts = (renderDigestCard(d).body as Array<{ type: string; facts?: Array<{ title: string; value: string }> }>).find((e) => e.type === 'FactSet')!.facts!;
  const json = digestToJson(d);
  return {
    slackHeader: header?.type === 'header' ? header.text.text : undefined,
    slackFallback: messages[0]!.text,
    slackLate: allText(messages.slice(0, 1)),
    card: facts.find((f) => f.title === 'CVEs')?.value,
    cardAll: JSON.stringify(renderDigestCard(d)),
    text: renderDigestText(d).split('\n')[1],
    json: { cves: json.totals.cves, addedAfterRelease: json.totals.addedAfterRelease, late: json.addedAfterRelease },
  };
}

describe('the headline counts release day; later CVEs sit beside it, listed and marked', () => {
  it('in every render of the edge-case month', () => {
    const h = headlines(buildDigest({ release: edgeCases(), now }));
    expect(h.slackHeader).toBe('Patch Tuesday 2024-Jun: 2 CVEs (+1 since release day) · 1 Critical · 1 exploited');
    expect(h.slackFallback).toContain('2 CVEs (+1 since release day)');
    expect(h.slackLate).toContain('Added after release day (not in the headline):* CVE-2024-90005');
    expect(h.card).toBe('2 (+1 since release day)');
    expect(h.cardAll).toMatch(/CVE-2024-90005 [^"]*added after release day/);
    expect(h.text).toMatch(/^2 CVEs \(\+1 since release day\) · 1 Critical/);
    expect(h.json).toEqual({ cves: 2, addedAfterRelease: 1, late: ['CVE-2024-90005'] });
  });

  it('a month with nothing added later shows the plain count', () => {
    const release = edgeCases();
    const h = headlines(buildDigest({ release: { ...release, cves: release.cves.filter((c) => c.id !== 'CVE-2024-90005') }, now }));
    expect(h.slackHeader).toBe('Patch Tuesday 2024-Jun: 2 CVEs · 1 Critical · 1 exploited');
    expect(h.card).toBe('2');
    expect(h.text).toMatch(/^2 CVEs · 1 Critical/);
    expect(h.json).toEqual({ cves: 2, addedAfterRelease: 0, late: [] });
  });

  it.skipIf(!hasShared)('2024-May says 61 (+1 since release day), as the press counts it', () => {
    const h = headlines(buildDigest({ release: parseCvrf(readFileSync(path.join(shared, 'msrc/2024-May.json'), 'utf8')), now }));
    expect(h.slackHeader).toBe('Patch Tuesday 2024-May: 61 CVEs (+1 since release day) · 1 Critical · 2 exploited');
    expect(h.card).toBe('61 (+1 since release day)');
    expect(h.text).toMatch(/^61 CVEs \(\+1 since release day\) · /);
    expect(h.json).toEqual({ cves: 61, addedAfterRelease: 1, late: ['CVE-2024-30060'] });
  });
});

describe.skipIf(!hasShared)('real months render within limits', () => {
  const kev = hasShared ? parseKevCatalog(readFileSync(path.join(shared, 'kev/known_exploited_vulnerabilities.json'), 'utf8')) : undefined;
  for (const month of ['2024-Feb', '2024-May']) {
    it(`${month}: every Slack message within every limit, a valid small card`, () => {
      const d: Digest = buildDigest({ release: parseCvrf(readFileSync(path.join(shared, `msrc/${month}.json`), 'utf8')), now, kev });
      for (const interactive of [false, true]) {
        const messages = renderDigestBlocks(d, { interactive });
        expectWithinLimits(messages, month);
        const json = allText(messages);
        for (const line of d.fleet.groups.flatMap((g) => g.lines)) expect(json).toContain(`"update:${line.id}"`);
        for (const m of messages) expect(JSON.stringify(m.blocks).length).toBeLessThanOrEqual(BLOCK_KIT_LIMITS.messageBlocksChars);
      }
      const card = renderDigestCard(d);
      expect(cardProblems(card)).toEqual([]);
      expect(Buffer.byteLength(JSON.stringify(card))).toBeLessThan(CARD_MAX_BYTES);
    });
  }
});
