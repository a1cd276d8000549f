// The champion's sign-off card as the client reads it: an engineer who confirmed on the client's behalf is named
// in words, never by the engineer's Slack id (which means nothing in Teams).
import { describe, expect, it } from 'vitest';
import { renderSignoffCard, signoffText } from '../../src/chat/teams/signoff-card.ts';
import type { SignoffView } from '../../src/domain/signoff-view.ts';

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
    const named: SignoffView = { ...view, answer: { kind: 'confirmed', by: 'Robin Tech', as: 'engineer', at: '2024-02-15T15:13:00.000Z' } };
    expect(signoffText(named)).toBe('2024-Feb pilot for Acme Dental: confirmed by Robin Tech.');
    expect(JSON.stringify(renderSignoffCard(named))).toContain('Robin Tech said everything works (an engineer, on your behalf)');
  });
});
