// Subjects key chat_messages and chat_outbox rows already stored: these are the exact strings, not patterns.
import { describe, expect, it } from 'vitest';
import { subjects } from '../../src/chat/subjects.ts';

describe('chat subjects', () => {
  it('builds each subject byte for byte as stored before the constructors existed', () => {
    expect(subjects.digest('2024-Feb')).toBe('digest:2024-Feb');
    expect(subjects.digestThread('2024-Feb', 2)).toBe('digest:2024-Feb:thread:2');
    expect(subjects.window('acme-dental', '2024-02-14T07:00:00.000Z')).toBe('window:acme-dental:2024-02-14T07:00Z');
    expect(subjects.windowSummary('window:acme-dental:2024-02-14T07:00Z')).toBe('window-summary:acme-dental:2024-02-14T07:00Z');
    expect(subjects.promote('2024-Feb')).toBe('rollout:2024-Feb:promote');
    expect(subjects.promote('2024-Feb', 0)).toBe('rollout:2024-Feb:promote');
    expect(subjects.promote('2024-Feb', 2)).toBe('rollout:2024-Feb:promote:2');
    expect(subjects.untested('2024-Feb', 'pilot', 'acme', ['k1', 'k2'])).toBe('rollout:2024-Feb:untested:pilot:acme:k1+k2');
    expect(subjects.untested('2024-Feb', 'msp', null, ['k1'])).toBe('rollout:2024-Feb:untested:msp:msp:k1');
    expect(subjects.gateProblem('2024-Feb', 'acme')).toBe('rollout:2024-Feb:problem:acme');
    expect(subjects.gatePilot('2024-Feb', 'acme')).toBe('rollout:2024-Feb:pilot:acme');
    expect(subjects.broadNight('2024-Feb', 'acme')).toBe('rollout:2024-Feb:broad-night:acme');
    expect(subjects.pilotConfirmed('2024-Feb', 'acme')).toBe('pilot-confirmed:2024-Feb:acme');
    expect(subjects.pilotProblem('2024-Feb', 'acme')).toBe('pilot-problem:2024-Feb:acme');
    expect(subjects.signoff('2024-Feb', 'acme')).toBe('signoff:2024-Feb:acme');
    expect(subjects.plan('2024-Feb', 'acme')).toBe('plan:2024-Feb:acme');
    expect(subjects.deviceFlagged(42, '2024-02-14T07:00:00.000Z')).toBe('device-flagged:42:2024-02-14T07:00:00.000Z');
    expect(subjects.userDm('2024-Feb:acme:ann@acme.test:2024-02-14')).toBe('userdm:2024-Feb:acme:ann@acme.test:2024-02-14');
    expect(subjects.userDmEscalated(7)).toBe('userdm:7:escalated');
    expect(subjects.userDmUnmatched(null, '2024-02-14')).toBe('userdm-unmatched:msp:2024-02-14');
    expect(subjects.userDmUnmatched('acme', '2024-02-14')).toBe('userdm-unmatched:acme:2024-02-14');
    expect(subjects.deviceSync('2024-02-14T12:00:00.000Z')).toBe('device-sync:2024-02-14T12:00:00.000Z');
    expect(subjects.deviceSyncFailed('2024-02-14T12:00:00.000Z')).toBe('device-sync-failed:2024-02-14T12:00:00.000Z');
    expect(subjects.report('report:monthly:acme-dental:2026-Nov')).toBe('report:monthly:acme-dental:2026-Nov');
  });

  it('parses back: a window summary names the window it summarises, and only a window subject changes', () => {
    const w = subjects.window('msp', '2024-02-14T07:00:00Z');
    expect(subjects.windowSummary(w).replace(/^window-summary:/, 'window:')).toBe(w);
    expect(subjects.windowSummary('digest:2024-Feb')).toBe('digest:2024-Feb');
  });

  it('keeps the parts readable from the string (release first, then client)', () => {
    const [kind, release, what, client] = subjects.gatePilot('2024-Feb', 'acme').split(':');
    expect({ kind, release, what, client }).toEqual({ kind: 'rollout', release: '2024-Feb', what: 'pilot', client: 'acme' });
    expect(subjects.digest('2024-Feb').split(':')).toEqual(['digest', '2024-Feb']);
  });
});
