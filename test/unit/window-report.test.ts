import { describe, expect, it } from 'vitest';
import { progressMessage, summaryMessage } from '../../src/chat/slack/window-blocks.ts';
import { checkMessage } from '../../src/chat/slack/block-kit.ts';
import { renderWindowSummaryCard } from '../../src/chat/teams/window-card.ts';
import { zoneLabel, zoneShort } from '../../src/domain/zone-label.ts';
import { DateTime } from 'luxon';
import { progressBar, reportFor, updateIntervalMs, windowSubject, type WindowTally } from '../../src/domain/window-report.ts';

const tally = (over: Partial<WindowTally> = {}): WindowTally => ({
  who: 'acme-dental',
  windowStart: '2024-02-14T07:00:00.000Z',
  windowEnd: '2024-02-14T11:00:00.000Z',
  counts: { succeeded: 40, running: 2, scheduled: 8 },
  updated: [],
  failed: [],
  rolled: [],
  rollReasons: {},
  rebootedTwice: [],
  ...over,
});

describe('window reports', () => {
  it('names the window as the chat contract does', () => {
    expect(windowSubject('acme-dental', '2024-02-14T07:00:00.000Z')).toBe('window:acme-dental:2024-02-14T07:00Z');
  });

  it('draws progress and paces edits within chat.update', () => {
    expect(progressBar(0, 0)).toBe(`${'▓'.repeat(20)} 100%`);
    expect(progressBar(1, 3, 10)).toBe('▓▓▓░░░░░░░ 33%');
    expect(updateIntervalMs(1)).toBe(15_000);
    // 200 windows at once share 40 edits a minute: each is edited every 5 minutes at most.
    expect(updateIntervalMs(200)).toBe(300_000);
  });

  it('reports progress while open, then a final edit and a summary once closed and settled', () => {
    expect(reportFor(tally(), new Date('2024-02-14T09:00:00Z')).map((r) => r.type)).toEqual(['progress']);
    // Closed but a run is still finishing its reboot: keep editing.
    expect(reportFor(tally(), new Date('2024-02-14T11:30:00Z')).map((r) => r.type)).toEqual(['progress']);
    const settled = tally({ counts: { succeeded: 48, failed: 2 } });
    expect(reportFor(settled, new Date('2024-02-14T11:30:00Z')).map((r) => r.type)).toEqual(['progress', 'summary']);
  });

  it('summaries escape device text and stay within Block Kit limits however much failed', () => {
    const failed = Array.from({ length: 500 }, (_, i) => ({ device: `<!channel> PC-${i}`, error: `0x80070643 ${'x'.repeat(400)} <@U123>` }));
    const rolled = Array.from({ length: 500 }, (_, i) => ({ device: `PC-${i}`, rolledTo: '2024-02-15T07:00:00.000Z', offline: i % 2 === 0 }));
    const message = summaryMessage(
      tally({ counts: { succeeded: 1000, failed: 500, offline: 250, rolled: 250 }, failed: failed.slice(0, 20), rolled: rolled.slice(0, 20), rebootedTwice: ['PC-1'] }),
      'America/Chicago',
    );
    expect(checkMessage(message)).toEqual([]);
    const json = JSON.stringify(message);
    expect(json).not.toContain('<!channel>');
    expect(json).not.toContain('<@U123>');
    expect(json).toContain('…and 490 more');
    expect(json).toContain('rollout_hold_client');
    expect(json).toContain('rollout_retry_failed');
    expect(checkMessage(progressMessage(tally(), 'America/Chicago', false))).toEqual([]);
    expect(progressMessage(tally(), 'America/Chicago', false).text).toContain('Open until 05:00 CST.');
  });

  it("names the client as people know it, not by its id, and escapes the name", () => {
    const named = tally({ name: 'Acme *Dental* <!here>' });
    const progress = JSON.stringify(progressMessage(named, 'America/Chicago', false));
    expect(progress).toContain('Acme \u200b*\u200bDental\u200b*\u200b &lt;!here&gt;: window');
    expect(progress).not.toContain('acme-dental: window');
    expect(JSON.stringify(summaryMessage(named, 'America/Chicago').blocks[0])).toContain('Acme *Dental* <!here>: window');
    // Without a name (a client retired since), the id still says whose window it was.
    expect(progressMessage(tally(), 'America/Chicago', false).text).toContain('acme-dental: window');
  });
});

// Issue 13 finding 8: reports were counts only, a 100% bar for "0 done · 2 rolled", a window-ended roll shown to the
// champion as "Off or busy", and Auckland as "GMT+13".
describe('window reports name things', () => {
  const devices = (n: number) => Array.from({ length: n }, (_, i) => ({ device: `PC-${String(i + 1).padStart(2, '0')}`, updates: ['5034765', '5034439'] }));

  it('the bar counts what succeeded: nothing updated and two rolled is 0%, not 100%', () => {
    const rolled = tally({ counts: { rolled: 2 }, rollReasons: { window_ended: 2 } });
    const progress = progressMessage(rolled, 'America/Chicago', true);
    expect(progress.text).toContain('0/2 updated');
    expect(JSON.stringify(progress.blocks)).toContain(`${'░'.repeat(20)} 0%`);
    expect(JSON.stringify(summaryMessage(rolled, 'America/Chicago').blocks)).toContain(`${'░'.repeat(20)} 0%`);
    const half = tally({ counts: { succeeded: 1, rolled: 1 }, rollReasons: { offline: 1 } });
    expect(JSON.stringify(progressMessage(half, 'America/Chicago', true).blocks)).toContain('50%');
  });

  it('lists devices with their KBs, the first 10 then "and N more", in Slack and Teams', () => {
    const many = tally({ counts: { succeeded: 25 }, updated: devices(20) });
    const slack = JSON.stringify(summaryMessage(many, 'America/Chicago').blocks);
    expect(slack).toContain('PC-01: KB5034765, KB5034439');
    expect(slack).toContain('PC-10: KB5034765');
    expect(slack).not.toContain('PC-11');
    expect(slack).toContain('…and 15 more');
    expect(checkMessage(summaryMessage(many, 'America/Chicago'))).toEqual([]);
    const card = JSON.stringify(renderWindowSummaryCard(many, 'Harbour Accounting', 'America/Chicago'));
    expect(card).toContain('PC-01: KB5034765, KB5034439');
    expect(card).not.toContain('PC-11');
    expect(card).toContain('and 15 more');
  });

  it('tells roll reasons apart: off, window ended, deferred by the user, held', () => {
    const mixed = tally({
      counts: { succeeded: 1, rolled: 3, offline: 1, skipped: 2 },
      updated: devices(1),
      rollReasons: { offline: 1, window_ended: 2, deferred: 1 },
      rolled: [
        { device: 'PC-02', rolledTo: '2024-02-15T07:00:00.000Z', offline: false, reason: 'window_ended' },
        { device: 'PC-03', rolledTo: '2024-02-15T07:00:00.000Z', offline: false, reason: 'deferred' },
        { device: 'PC-04', rolledTo: '2024-02-15T07:00:00.000Z', offline: true, reason: 'offline' },
      ],
    });
    const slack = JSON.stringify(summaryMessage(mixed, 'America/Chicago'));
    for (const words of ['1 off (next window)', '2 window ended first (next window)', '1 put off by the user (next window)', '2 held']) expect(slack).toContain(words);
    expect(slack).toContain('PC-02 (window ended first)');
    const card = renderWindowSummaryCard(mixed, 'Harbour Accounting', 'America/Chicago');
    const facts = (card.body as Array<{ type: string; facts?: Array<{ title: string; value: string }> }>).find((b) => b.type === 'FactSet')!.facts!;
    expect(facts).toEqual([
      { title: 'Updated', value: '1' },
      { title: 'Did not update', value: '0' },
      { title: 'Was off (tries again next window)', value: '1' },
      { title: 'Window ended before it finished (next window)', value: '2' },
      { title: 'Put off by its user (next window)', value: '1' },
      { title: 'On hold (not started)', value: '2' },
    ]);
    expect(JSON.stringify(card)).toContain('PC-02: the window ended first');
    expect(JSON.stringify(card)).not.toContain('Off or busy');

    // A held client tries nothing next window (sandbox walk: the card said "Will try again next window" under a hold).
    const held = { ...mixed, held: true };
    const heldSlack = JSON.stringify(summaryMessage(held, 'America/Chicago'));
    expect(heldSlack).toContain('2 window ended first (waits for the hold)');
    expect(heldSlack).toContain('Waiting for the hold to be lifted (4)');
    expect(heldSlack).not.toContain('next window');
    const heldCard = JSON.stringify(renderWindowSummaryCard(held, 'Harbour Accounting', 'America/Chicago'));
    expect(heldCard).toContain('Will try again once your IT provider lifts the hold on your updates');
    expect(heldCard).not.toContain('next window');
  });

  it('shows zones by abbreviation or city, never a bare GMT offset where a name exists', () => {
    const auckland = tally({ counts: { succeeded: 1 }, updated: devices(1) });
    const header = JSON.stringify(summaryMessage(auckland, 'Pacific/Auckland').blocks[0]);
    expect(header).not.toMatch(/GMT[+-]/);
    expect(header).toMatch(/NZDT|Auckland time/);
    const card = JSON.stringify(renderWindowSummaryCard(auckland, 'Kiwi Dental', 'Pacific/Auckland'));
    expect(card).toMatch(/Auckland time \((NZDT|GMT\+13)\)/);
    expect(zoneLabel(DateTime.fromISO('2024-02-14T07:00:00Z').setZone('Pacific/Auckland'))).toMatch(/^Auckland time/);
    // Where no English locale has an abbreviation, the city says where the time is.
    expect(zoneShort(DateTime.fromISO('2024-02-14T07:00:00Z').setZone('Asia/Tokyo'))).toMatch(/^(JST|Tokyo time)$/);
    expect(zoneShort(DateTime.fromISO('2024-02-14T07:00:00Z').setZone('America/Chicago'))).toBe('CST');
  });
});
