// The engineers' gate notices as data: each effect gives one typed notice, and a notice renders to exactly the
// outbox row the engine wrote before notices were data (keys and subjects key stored rows).
import { describe, expect, it } from 'vitest';
import { gateEffectNotices } from '../../src/chat/notices/gates.ts';
import { renderNotice, type Notice } from '../../src/chat/notices.ts';
import type { Audiences } from '../../src/chat/audiences.ts';
import { promotionOffer } from '../../src/chat/slack/window-blocks.ts';

const audiences: Audiences = {
  engineers: { channel: 'C0ENGINEERS' },
  mspZone: 'UTC',
  clientName: (id: string) => (id === 'acme' ? 'Acme <Dental> & Co' : id),
  personName: (id: string) => id,
};

describe('gate notices', () => {
  it('turns the effects people act on into notices, in order, and ignores the rest', () => {
    const notices = gateEffectNotices('2024-Feb', [
      { type: 'offer_promotion', releaseId: '2024-Feb', updates: ['k2', 'k1'] },
      { type: 'alert_engineers', clientId: 'acme', text: 'printer broke' },
      { type: 'pilot_waiting', clientId: 'acme', at: '2024-02-15T07:00:00.000Z' },
      { type: 'ask_confirmation', clientId: 'acme', autoConfirmAt: null },
    ]);
    expect(notices.map((n) => n.kind)).toEqual(['promotion_offered', 'pilot_problem_held', 'pilot_waiting', 'pilot_finished']);
    expect(gateEffectNotices('2024-Feb', [])).toEqual([]);
  });

  it('renders each notice as a post in the release thread with the stored key and subject', () => {
    const thread = { threadSubject: 'digest:2024-Feb' };
    const render = (n: Notice) => {
      const rows = renderNotice(n, audiences);
      expect(rows).toHaveLength(1);
      return rows[0]!;
    };
    expect(render({ kind: 'promotion_offered', releaseId: '2024-Feb' })).toEqual({
      key: 'rollout:2024-Feb:offer-promotion', channel: 'C0ENGINEERS', action: 'post', subject: 'rollout:2024-Feb:promote', payload: { ...promotionOffer('2024-Feb'), ...thread },
    });
    const some = render({ kind: 'promotion_offered', releaseId: '2024-Feb', updates: ['5034765', 'click-to-run.microsoft-office'] });
    expect(some.key).toMatch(/^rollout:2024-Feb:offer-promotion:[0-9a-f]{12}$/);
    // Only these are ready (ring msp may still be at work on others): the offer names them, not "ring msp finished".
    expect(some.payload.text).toBe('2024-Feb: KB5034765, click-to-run.microsoft-office installed on our machines (ring msp) and soaked. Ready to promote to pilot.');
    expect(render({ kind: 'pilot_problem_held', releaseId: '2024-Feb', clientId: 'acme' })).toEqual({
      key: 'rollout:2024-Feb:problem:acme', channel: 'C0ENGINEERS', action: 'post', subject: 'rollout:2024-Feb:problem:acme',
      payload: { text: '2024-Feb: Acme &lt;Dental&gt; &amp; Co reported a pilot problem; the client is held.', ...thread },
    });
    const waiting = render({ kind: 'pilot_waiting', releaseId: '2024-Feb', clientId: 'acme', at: '2024-02-15T07:00:00.000Z' });
    expect(waiting.key).toBe('rollout:2024-Feb:pilot-waiting:acme:2024-02-15T07:00:00.000Z');
    expect(waiting.subject).toBe('rollout:2024-Feb:pilot:acme');
    expect(waiting.payload.text).toContain('`/patch skip pilot KB… acme`');
    expect(render({ kind: 'pilot_finished', releaseId: '2024-Feb', clientId: 'acme' })).toEqual({
      key: 'rollout:2024-Feb:pilot-finished:acme', channel: 'C0ENGINEERS', action: 'post', subject: 'rollout:2024-Feb:pilot:acme',
      payload: { text: '2024-Feb: pilot finished for Acme &lt;Dental&gt; &amp; Co; waiting for the champion.', ...thread },
    });
  });

  it('an offer amending the one on record edits it, and a later round\'s offer is a message of its own', () => {
    const [amend] = renderNotice({ kind: 'promotion_offered', releaseId: '2024-Feb', updates: ['5034765', '5034439'], amends: true }, audiences);
    expect(amend).toMatchObject({ action: 'update', subject: 'rollout:2024-Feb:promote' });
    expect(amend!.payload.text).toContain('KB5034765, KB5034439');
    const [late] = renderNotice({ kind: 'promotion_offered', releaseId: '2024-Feb', updates: ['5034770'], round: 1 }, audiences);
    expect(late).toMatchObject({ action: 'post', subject: 'rollout:2024-Feb:promote:1', payload: { threadSubject: 'digest:2024-Feb' } });
    const [lateAmend] = renderNotice({ kind: 'promotion_offered', releaseId: '2024-Feb', updates: ['5034770', '5034771'], round: 1, amends: true }, audiences);
    expect(lateAmend).toMatchObject({ action: 'update', subject: 'rollout:2024-Feb:promote:1' });
  });

  it('renders nothing before an engineers\' channel is configured', () => {
    expect(renderNotice({ kind: 'promotion_offered', releaseId: '2024-Feb' }, { ...audiences, engineers: undefined })).toEqual([]);
  });
});
