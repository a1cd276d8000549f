/**
 * Slack's rules for a message's top-level `text` (the notification and screen-reader fallback, and the whole message
 * when there are no blocks): at most 4,000 characters advised, and mrkdwn, so anything a person or an inventory
 * wrote is escaped. Checked on every renderer that fills it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BLOCK_KIT_LIMITS, boundText, checkMessage, escapeMrkdwn, MessageBuilder, MRKDWN_BREAK } from '../../src/chat/slack/block-kit.ts';
import { userDmSlackMessage } from '../../src/chat/slack/user-dm-blocks.ts';
import { progressMessage, summaryMessage } from '../../src/chat/slack/window-blocks.ts';
import { offlineNoticePayload } from '../../src/chat/user-dm-render.ts';
import { renderDmText, type DmDevice } from '../../src/domain/user-dm.ts';
import type { WindowTally } from '../../src/domain/window-report.ts';

const SLACK_ADVISED_MAX = 4000;

describe('boundText', () => {
  it('keeps text within the bound as it is', () => {
    expect(boundText('short', 10)).toBe('short');
  });

  it('cuts long text at a word boundary, with an ellipsis', () => {
    const text = Array.from({ length: 2000 }, (_, i) => `word${i}`).join(' ');
    const bounded = boundText(text, 3000);
    expect(bounded.length).toBeLessThanOrEqual(3000);
    expect(bounded.endsWith('\u2026')).toBe(true);
    const head = bounded.slice(0, -1);
    expect(text.startsWith(head)).toBe(true);
    expect(text[head.length]).toBe(' ');
  });

  it('never leaves half an entity or half a <link|label>, whatever the escaped text', () => {
    const piece = fc.constantFrom('word', ' ', '&', '<!channel>', '*', '_', 'https://x.example/a_b', '\n', 'ÄÖ');
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 400 }), fc.integer({ min: 20, max: 600 }), (pieces, max) => {
        const escaped = `${escapeMrkdwn(pieces.join(''))} <https://msrc.example/x|a link>`;
        const bounded = boundText(escaped, max);
        expect(bounded.length).toBeLessThanOrEqual(max);
        if (bounded === escaped) return;
        const head = bounded.slice(0, -1);
        expect(escaped.startsWith(head)).toBe(true);
        expect(head).not.toMatch(/&[a-z]*$/);
        expect(head.lastIndexOf('<')).toBeLessThanOrEqual(head.lastIndexOf('>'));
      }),
    );
  });
});

describe('the end user\u2019s DM', () => {
  const manyDevices: DmDevice[] = Array.from({ length: 400 }, (_, i) => ({
    deviceId: i,
    name: `LAB-WORKSTATION-${String(i).padStart(4, '0')}`,
    releaseId: '2024-Mar',
    rolloutId: 1,
    windowStart: new Date('2024-03-12T06:00:00Z'),
    windowEnd: new Date('2024-03-12T10:00:00Z'),
    updates: ['5035853'],
  }));
  const text = renderDmText(undefined, { name: 'Ann', devices: manyDevices, zone: 'America/Chicago', sendAt: new Date('2024-03-11T20:00:00Z') });

  it('a person with hundreds of machines gets a fallback within Slack\u2019s advice, cut with an ellipsis', () => {
    expect(text.length).toBeGreaterThan(8000);
    const message = userDmSlackMessage({ dmId: 7, text });
    expect(message.text.length).toBeLessThanOrEqual(SLACK_ADVISED_MAX);
    expect(message.text.endsWith('\u2026')).toBe(true);
    expect(checkMessage(message)).toEqual([]);
  });

  it('once answered, the answer stays in the fallback however long the list', () => {
    const message = userDmSlackMessage({ dmId: 7, text, answerLine: 'Thanks: you said you will leave it on (4:05 PM).' });
    expect(message.text.length).toBeLessThanOrEqual(BLOCK_KIT_LIMITS.fallbackText);
    expect(message.text.endsWith('Thanks: you said you will leave it on (4:05 PM).')).toBe(true);
    expect(checkMessage(message)).toEqual([]);
  });
});

describe('the morning-after notice', () => {
  const names = 'ANN_*LAPTOP*_ <!channel> <https://evil.example|click>';

  it('shows an inventory device name as written on Slack: no ping, no link, no bold', () => {
    const { text } = offlineNoticePayload('slack', names);
    expect(text).toContain('Your computer was off last night');
    expect(text).not.toMatch(/<!channel>|<https:/);
    expect(text).toContain('&lt;!channel&gt;');
    expect(text).toContain(`${MRKDWN_BREAK}*${MRKDWN_BREAK}LAPTOP${MRKDWN_BREAK}*${MRKDWN_BREAK}`);
  });

  it('escapes the name for Teams\u2019 markdown there', () => {
    expect(offlineNoticePayload('teams', names).text).toContain('ANN\\_\\*LAPTOP\\*\\_');
  });

  it('stays within the bound with a very long list of names', () => {
    const { text } = offlineNoticePayload('slack', Array.from({ length: 600 }, (_, i) => `PC-${i}`).join(', '));
    expect(text.length).toBeLessThanOrEqual(BLOCK_KIT_LIMITS.fallbackText);
  });
});

describe('other messages the bot posts', () => {
  const longName = `Riverside ${'Family Medicine '.repeat(300)}`;
  const tally: WindowTally = {
    who: 'riverside',
    name: longName,
    windowStart: '2024-03-12T06:00:00Z',
    windowEnd: '2024-03-12T10:00:00Z',
    counts: { succeeded: 3, failed: 1 },
    failed: [{ device: 'PC-1', error: 'boom' }],
    updated: [],
    rollReasons: {},
    rolled: [],
    rebootedTwice: [],
  };

  it('window progress and summary: the fallback is bounded even for a client with a very long name', () => {
    for (const message of [progressMessage(tally, 'America/Chicago', false), summaryMessage(tally, 'America/Chicago')]) {
      expect(message.text.length).toBeLessThanOrEqual(BLOCK_KIT_LIMITS.fallbackText);
      expect(message.text.endsWith('\u2026')).toBe(true);
    }
  });

  it('a message built in parts (the digest): each part\u2019s fallback is bounded', () => {
    const builder = new MessageBuilder(escapeMrkdwn(`Patch Tuesday ${'x '.repeat(4000)}`), (n) => `part ${n} ${'y '.repeat(4000)}`);
    for (let i = 0; i < 60; i++) builder.addSection(`section ${i}`);
    const messages = builder.build();
    expect(messages.length).toBeGreaterThan(1);
    for (const message of messages) expect(message.text.length).toBeLessThanOrEqual(BLOCK_KIT_LIMITS.fallbackText);
  });
});
