import { describe, expect, it } from 'vitest';
import { progressMessage, summaryMessage } from '../../src/bot/slack/window-blocks.ts';
import { checkMessage } from '../../src/bot/slack/block-kit.ts';
import { progressBar, reportFor, updateIntervalMs, windowSubject, type WindowTally } from '../../src/domain/window-report.ts';

const tally = (over: Partial<WindowTally> = {}): WindowTally => ({
  who: 'acme-dental',
  windowStart: '2024-02-14T07:00:00.000Z',
  windowEnd: '2024-02-14T11:00:00.000Z',
  counts: { succeeded: 40, running: 2, scheduled: 8 },
  failed: [],
  rolled: [],
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
    expect(json).toContain('…and 485 more');
    expect(json).toContain('rollout_hold_client');
    expect(json).toContain('rollout_retry_failed');
    expect(checkMessage(progressMessage(tally(), new Date('2024-02-14T09:00:00Z'), 'America/Chicago', false))).toEqual([]);
    expect(progressMessage(tally(), new Date('2024-02-14T09:00:00Z'), 'America/Chicago', false).text).toContain('120 min left');
  });

  it("names the client as people know it, not by its id, and escapes the name", () => {
    const named = tally({ name: 'Acme *Dental* <!here>' });
    const progress = JSON.stringify(progressMessage(named, new Date('2024-02-14T09:00:00Z'), 'America/Chicago', false));
    expect(progress).toContain('Acme \u200b*\u200bDental\u200b*\u200b &lt;!here&gt;: window');
    expect(progress).not.toContain('acme-dental: window');
    expect(JSON.stringify(summaryMessage(named, 'America/Chicago').blocks[0])).toContain('Acme *Dental* <!here>: window');
    // Without a name (a client retired since), the id still says whose window it was.
    expect(progressMessage(tally(), new Date('2024-02-14T09:00:00Z'), 'America/Chicago', false).text).toContain('acme-dental: window');
  });
});
