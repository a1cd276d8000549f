// The champion's sign-off card as the client reads it: an engineer who confirmed on the client's behalf is named
// in words, never by the engineer's Slack id (which means nothing in Teams).
import { describe, expect, it } from 'vitest';
import { renderSignoffCard, signoffText } from '../../src/chat/teams/signoff-card.ts';
import type { SignoffView } from '../../src/domain/signoff-view.ts';
import { teamsActivity } from '../../src/bot/teams/sender.ts';
import { adaptiveCardProblems } from '../support/adaptive-card.ts';

const view: SignoffView = {
  releaseId: '2024-Feb',
  clientId: 'acme',
  clientName: 'Acme Dental',
  zone: 'America/Chicago',
  gate: 'confirmed',
  devices: [{ name: 'ACME-FD-01', outcome: 'updated', reboots: 1, error: null }],
  updates: [{ kb: '5034765', words: 'Windows security update (KB5034765). Needs a restart.' }],
  notes: [],
  answer: { kind: 'confirmed', by: 'U0ENG2', as: 'engineer', at: '2024-02-15T15:13:00.000Z' },
  hold: undefined,
  championIds: ['champ-1'],
  round: '',
};

describe('sign-off card answered by an engineer', () => {
  it('says an engineer confirmed when only a Slack id is known, and the name when one is', () => {
    expect(signoffText(view)).toBe('2024-Feb pilot for Acme Dental: confirmed by your IT provider\u2019s engineer.');
    const card = JSON.stringify(renderSignoffCard(view));
    expect(card).not.toContain('U0ENG2');
    expect(card).toContain('Your IT provider\u2019s engineer confirmed on your behalf');
    // Only what is true whether or not its other machines run the tested updates.
    expect(card).toContain('The tested updates now go to your other machines that need them');
    expect(card).not.toContain('rest of your machines are scheduled');
    const named: SignoffView = { ...view, answer: { kind: 'confirmed', by: 'Robin Tech', as: 'engineer', at: '2024-02-15T15:13:00.000Z' } };
    expect(signoffText(named)).toBe('2024-Feb pilot for Acme Dental: confirmed by Robin Tech.');
    expect(JSON.stringify(renderSignoffCard(named))).toContain('Robin Tech said everything works (an engineer, on your behalf)');
  });
});

// Teams refuses a message over ~28 KB as sent. Escaping can double a text twice over (the card's markdown escape,
// then JSON's) and a character can take four bytes: the budget is the rendered activity's, not the input's length.
describe('sign-off card size', () => {
  const nasty = (n: number) => Array.from({ length: n }, (_, i) => ['"', '\\', '*', 'é', '中', '😀', '<', '_'][i % 8]).join('');
  const mri = (i: number) => `29:1${'x'.repeat(80)}${i}`;
  const huge: SignoffView = {
    ...view,
    clientName: `Acme ${nasty(300)}`,
    gate: 'awaiting_confirmation',
    answer: undefined,
    hold: undefined,
    devices: Array.from({ length: 40 }, (_, i) => ({ name: `PC-${i}-${nasty(200)}`, outcome: 'updated' as const, reboots: 3, error: null })),
    updates: Array.from({ length: 40 }, (_, i) => ({ kb: `50${i}`, words: `Update ${i} ${nasty(2000)}` })),
    notes: Array.from({ length: 40 }, () => ({ kb: '5034765', body: nasty(2000) })),
    championIds: Array.from({ length: 60 }, (_, i) => mri(i)),
  };

  const sentBytes = (v: SignoffView) => {
    const activity = { ...teamsActivity({ text: signoffText(v), card: renderSignoffCard(v) }), from: { id: `28:${'b'.repeat(36)}`, name: 'patchbay' }, conversation: { id: `a:${'c'.repeat(120)}` } };
    return Buffer.byteLength(JSON.stringify(activity), 'utf8');
  };

  it('stays under 28 KB as the activity Teams receives, however the text escapes', () => {
    expect(sentBytes(huge)).toBeLessThanOrEqual(28_000);
    expect(sentBytes({ ...huge, hold: { by: 'Robin', at: '2024-02-15T15:13:00.000Z', reason: nasty(3000) } })).toBeLessThanOrEqual(28_000);
    const problem: SignoffView['answer'] = { kind: 'problem', by: nasty(500), at: '2024-02-15T15:13:00.000Z', text: nasty(3000) };
    expect(sentBytes({ ...huge, gate: 'problem', answer: problem })).toBeLessThanOrEqual(28_000);
    const card = renderSignoffCard(huge);
    expect(adaptiveCardProblems(card)).toEqual([]);
    // Still the card it was meant to be: who it is for, the buttons, everyone it refreshes for, and what was left out.
    const json = JSON.stringify(card);
    expect(json).toContain('Patch check for Acme');
    expect(json).toContain('pilot.confirm');
    expect((card.refresh as { userIds: string[] }).userIds).toHaveLength(60);
    expect(json).toMatch(/and \d+ more/);
    expect(json).not.toMatch(/\\ud83d"/i);
  });

  it('keeps an ordinary card whole', () => {
    const json = JSON.stringify(renderSignoffCard({ ...view, notes: [{ kb: '5034765', body: 'Printers may need re-adding' }] }));
    expect(json).toContain('Printers may need re-adding');
    expect(json).not.toContain('…');
  });
});
