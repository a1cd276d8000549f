// Issue 13 finding 5: `/patch status` and App Home said "waiting for a decision" after an approval, "0 approved,
// 9 held" when one client was held (her reason 9 times, under a GUID), showed internal keys, and kept last month's
// release pending forever. Status is drawn by one pure model (domain/status.ts); these check what people read.
import { describe, expect, it } from 'vitest';
import type { ActiveHold, UpdateStanding } from '../../src/domain/approval.ts';
import { statusModel, updateLabel, type StatusFacts, type StatusNames } from '../../src/domain/status.ts';
import { releaseFacts } from '../../src/domain/eligibility.ts';
import { emptyBook, newGate as blank } from '../../src/domain/rollout.ts';
import { homeView, statusText } from '../../src/chat/slack/views.ts';

const NOW = new Date('2024-02-20T15:00:00Z');
const AT = '2024-02-14T15:00:00.000Z';
const GUID = '6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f';
const names: StatusNames = { clients: new Map([['harbour', 'Harbour Accounting']]), people: new Map([[GUID, 'Ana Silva'], ['U0PAT', 'Pat Engineer']]) };
const none: UpdateStanding = { approval: null, viaRelease: false, holds: [] };

function facts(over: Partial<StatusFacts> & { holds?: ActiveHold[]; approved?: string[]; releaseApproved?: boolean } = {}): StatusFacts {
  const keys = ['5034765', '5034439', 'click-to-run.microsoft-office'];
  const releaseApproval = over.releaseApproved ? { by: 'U0PAT', at: AT } : null;
  const holds = over.holds ?? [];
  return {
    releaseId: '2024-Feb',
    title: 'February 2024 Security Updates',
    supersededBy: null,
    release: { approval: releaseApproval, viaRelease: false, holds: holds.filter((h) => h.updateKey === null) },
    updates: keys.map((key) => {
      const own = over.approved?.includes(key) ? { by: 'U0PAT', at: AT } : null;
      return {
        key,
        kb: /^\d+$/.test(key) ? key : null,
        title: key.startsWith('click') ? 'Microsoft Office Click-to-Run' : `Update ${key}`,
        standing: { approval: own ?? releaseApproval, viaRelease: own === null && releaseApproval !== null, holds: holds.filter((h) => h.updateKey === key || h.updateKey === null) },
      };
    }),
    rings: [],
    clientHolds: holds.filter((h) => h.updateKey === null && h.clientId !== null),
    ...over,
  };
}

const clientHold: ActiveHold = { id: 'h1', updateKey: null, clientId: 'harbour', ring: null, reason: 'Pilot problem: printers stopped', by: GUID, at: AT };

describe('status tells the truth', () => {
  it('tells apart two fixes without a KB that share a title, as the digest does (found walking the sandbox)', () => {
    const browser = updateLabel({ key: 'release-notes.browser', kb: null, title: 'Release Notes', family: 'Browser' });
    const tools = updateLabel({ key: 'release-notes.developer-tools', kb: null, title: 'Release Notes', family: 'Developer Tools' });
    expect([browser, tools]).toEqual(['Release Notes (Browser)', 'Release Notes (Developer Tools)']);
    expect(updateLabel({ key: '5034765', kb: '5034765', title: 'Update', family: 'Windows' })).toBe('KB5034765');
  });

  it('after one approval the release is not "waiting for a decision"', () => {
    const text = statusText([facts({ approved: ['5034765'] })], 'America/Chicago', NOW, names);
    const first = text.split('\n')[0]!;
    expect(first).toContain('1 of 3 updates approved, 0 held, 2 waiting for a decision');
    expect(first).not.toMatch(/: waiting for a decision/);
    expect(statusModel(facts(), names).summary).toBe('waiting for a decision on all 3 updates');
  });

  it('a hold on ring msp for every client holds every update (each must install there first); one on ring broad does not', () => {
    const ringHold = (ring: 'msp' | 'broad'): ActiveHold => ({ id: `h-${ring}`, updateKey: null, clientId: null, ring, reason: 'wait for the vendor', by: GUID, at: AT });
    expect(statusModel(facts({ holds: [ringHold('msp')] }), names).counts).toEqual({ approved: 0, held: 3, waiting: 0, total: 3 });
    expect(statusModel(facts({ releaseApproved: true, holds: [ringHold('broad')] }), names).counts).toEqual({ approved: 3, held: 0, waiting: 0, total: 3 });
  });

  it('says per update where it stands in the rings, from the installs, promotions and confirmations the gates read', () => {
    const book = emptyBook('2024-Feb');
    const at = AT;
    book.gates.msp = { ...blank('msp', null), state: 'promoted', promotions: [{ id: 'p1', by: 'U0PAT', at, updates: ['5034765'] }] };
    book.gates['pilot/harbour'] = { ...blank('pilot', 'harbour'), state: 'confirmed', confirmed: ['5034765'] };
    book.gates['pilot/acme'] = { ...blank('pilot', 'acme'), state: 'awaiting_confirmation' };
    const progress = releaseFacts(book, [
      { deviceId: 1, ring: 'msp', clientId: null, updateKey: '5034765', outcome: 'installed', at },
      { deviceId: 2, ring: 'msp', clientId: null, updateKey: '5034765', outcome: 'installed', at },
      { deviceId: 1, ring: 'msp', clientId: null, updateKey: '5034439', outcome: 'installed', at },
      { deviceId: 10, ring: 'pilot', clientId: 'harbour', updateKey: '5034765', outcome: 'installed', at },
      { deviceId: 20, ring: 'pilot', clientId: 'acme', updateKey: '5034765', outcome: 'installed', at },
      { deviceId: 11, ring: 'broad', clientId: 'harbour', updateKey: '5034765', outcome: 'installed', at },
    ]);
    const text = statusText([facts({ releaseApproved: true, progress })], 'America/Chicago', NOW, names);
    expect(text).toContain('ring msp: installed on 2 machines · promoted · pilot: acme installed, waiting for the champion, Harbour Accounting confirmed · broad: installed on 1 machine');
    expect(text).toMatch(/KB5034439: approved \(release\) by .*; ring msp: installed on 1 machine$/m);
    expect(text).not.toMatch(/Microsoft Office Click-to-Run: .*ring msp/);
  });

  it('a client held after its champion reported a problem is one line, by name, reason once; its updates stay approved', () => {
    const f = facts({ releaseApproved: true, holds: [clientHold], rings: [{ ring: 'broad', clientId: 'acme', state: 'running' }] });
    const model = statusModel(f, names);
    expect(model.counts).toEqual({ approved: 3, held: 0, waiting: 0, total: 3 });
    const text = statusText([f], 'America/Chicago', NOW, names);
    expect(text).toContain('Updates: 3 approved, 0 held, 0 waiting');
    expect(text.match(/printers stopped/g)).toHaveLength(1);
    expect(text).toContain('Harbour Accounting, held by Ana Silva: Pilot problem: printers stopped');
    expect(text).not.toContain(GUID);
    expect(text).not.toMatch(/\bharbour\b/);
    const home = JSON.stringify(homeView(f, true, 'America/Chicago', NOW, names));
    expect(home).toContain('*Held (0)*');
    expect(home.match(/printers stopped/g)).toHaveLength(1);
    expect(home).not.toContain(GUID);
  });

  it('shows no internal keys: updates by KB or title, gate states in words', () => {
    const f = facts({
      approved: ['click-to-run.microsoft-office'],
      rings: [
        { ring: 'msp', clientId: null, state: 'finished' },
        { ring: 'pilot', clientId: 'harbour', state: 'awaiting_confirmation' },
      ],
    });
    for (const text of [statusText([f], 'America/Chicago', NOW, names), JSON.stringify(homeView(f, true, 'America/Chicago', NOW, names))]) {
      expect(text).toContain('Microsoft Office Click-to-Run');
      expect(text).toContain('Harbour Accounting: waiting for the champion');
      expect(text).not.toContain('click-to-run.microsoft-office');
      expect(text).not.toContain('awaiting_confirmation');
    }
  });

  it('a release a newer one replaced is superseded, not pending', () => {
    const old = facts({ releaseId: '2024-Jan', supersededBy: '2024-Feb' });
    const text = statusText([facts(), old], 'America/Chicago', NOW, names);
    const jan = text.split('\n\n')[1]!;
    expect(jan).toContain('superseded by 2024-Feb');
    expect(jan).not.toMatch(/waiting for a decision|\nUpdates: /);
  });

  it('an update held for every client counts as held; held for one client it does not', () => {
    const everyone: ActiveHold = { id: 'h2', updateKey: '5034439', clientId: null, ring: null, reason: 'breaks EMR', by: 'U0PAT', at: AT };
    const oneClient: ActiveHold = { ...everyone, id: 'h3', updateKey: '5034765', clientId: 'harbour' };
    const model = statusModel(facts({ releaseApproved: true, holds: [everyone, oneClient] }), names);
    expect(model.counts).toMatchObject({ approved: 2, held: 1 });
    expect(model.decided.find((d) => d.label === 'KB5034765')!.holds).toEqual([{ scope: 'for Harbour Accounting', by: { id: 'U0PAT', name: 'Pat Engineer' }, reason: 'breaks EMR' }]);
    void none;
  });
});


describe('a scheduled gate whose next window carries nothing yet', () => {
  it('says what it waits for (ring msp, the pilot, a hold) instead of "scheduled for its next window"', () => {
    const view = statusModel(
      facts({
        rings: [
          { ring: 'pilot', clientId: 'harbour', state: 'scheduled', waitingFor: 'earlier_ring' },
          { ring: 'broad', clientId: 'harbour', state: 'scheduled', waitingFor: 'earlier_ring' },
          { ring: 'broad', clientId: 'acme', state: 'scheduled', waitingFor: 'held' },
          { ring: 'pilot', clientId: 'acme', state: 'scheduled' },
        ],
      }),
      names,
    );
    expect(view.rings.map((r) => r.state)).toEqual([
      'waiting for ring msp to pass what its machines need',
      "waiting for the client's pilot to pass what its machines need",
      'waiting: what its machines need is held',
      'scheduled for its next window',
    ]);
  });
});
