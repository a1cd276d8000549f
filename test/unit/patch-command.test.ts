// The `/patch` grammar: ring targets are spelled `ring:NAME`, since a client may be called `pilot`.
import { describe, expect, it } from 'vitest';
import { parsePatchCommand, PATCH_USAGE } from '../../src/bot/patch-command.ts';

describe('/patch grammar', () => {
  it('reads ring:RING as a ring, in any case, with the reason as typed', () => {
    expect(parsePatchCommand('hold ring:pilot  pilot sites closed\nuntil Monday')).toEqual({ kind: 'hold_ring', ring: 'pilot', reason: 'pilot sites closed\nuntil Monday' });
    expect(parsePatchCommand('hold RING:Broad EMR vendor warning')).toEqual({ kind: 'hold_ring', ring: 'broad', reason: 'EMR vendor warning' });
    expect(parsePatchCommand('release ring:msp')).toEqual({ kind: 'release_ring', ring: 'msp' });
  });

  it('keeps a bare ring name a client id or KB, as before', () => {
    expect(parsePatchCommand('hold pilot their EMR')).toEqual({ kind: 'hold', target: 'pilot', reason: 'their EMR' });
    expect(parsePatchCommand('release pilot')).toEqual({ kind: 'release', target: 'pilot' });
  });

  it('answers a wrong ring or a missing reason with the problem, not silence', () => {
    expect(parsePatchCommand('hold ring:canary why')).toMatchObject({ kind: 'unknown', problem: expect.stringContaining('ring:msp, ring:pilot or ring:broad') });
    expect(parsePatchCommand('release ring:')).toMatchObject({ kind: 'unknown', problem: expect.stringContaining('is not a ring') });
    expect(parsePatchCommand('hold ring:pilot')).toMatchObject({ kind: 'unknown', problem: expect.stringContaining('needs a reason') });
    expect(parsePatchCommand('release ring:pilot extra')).toMatchObject({ kind: 'unknown' });
  });

  it('reads a ring skip: msp with a KB, pilot with a KB and a client; the reason defaults to "no test machine"', () => {
    expect(parsePatchCommand('skip msp KB5036893')).toEqual({ kind: 'skip', ring: 'msp', update: 'KB5036893', client: null, reason: 'no test machine' });
    expect(parsePatchCommand('skip pilot KB5036893 acme-dental no Windows Server pilot')).toEqual({
      kind: 'skip',
      ring: 'pilot',
      update: 'KB5036893',
      client: 'acme-dental',
      reason: 'no Windows Server pilot',
    });
    expect(parsePatchCommand('skip pilot KB5036893').kind).toBe('unknown');
    expect(parsePatchCommand('skip broad KB5036893 acme').kind).toBe('unknown');
    expect(PATCH_USAGE).toContain('/patch skip pilot KB CLIENT');
  });

  it('reads a notice waiver for a user, a device or a client, with the reason as typed, and its revocation (issue 13)', () => {
    expect(parsePatchCommand('notice waive ann@acme.example  not in Slack,\nworks nights')).toEqual({ kind: 'notice_waive', target: 'ann@acme.example', reason: 'not in Slack,\nworks nights' });
    expect(parsePatchCommand('NOTICE Waive ACME-FD-01')).toEqual({ kind: 'notice_waive', target: 'ACME-FD-01', reason: '' });
    expect(parsePatchCommand('notice waive waive waive')).toEqual({ kind: 'notice_waive', target: 'waive', reason: 'waive' });
    expect(parsePatchCommand('notice revoke acme-dental')).toEqual({ kind: 'notice_revoke', target: 'acme-dental' });
    expect(parsePatchCommand('notice revoke acme-dental now').kind).toBe('unknown');
    expect(parsePatchCommand('notice waive')).toMatchObject({ kind: 'unknown', problem: expect.stringContaining('/patch notice waive') });
    expect(parsePatchCommand('notice skip ann@acme.example').kind).toBe('unknown');
    expect(PATCH_USAGE).toContain('/patch notice waive USER-EMAIL|DEVICE|CLIENT [REASON]');
  });

  it('names ring holds in its usage', () => {
    expect(PATCH_USAGE).toContain('/patch hold ring:msp|ring:pilot|ring:broad REASON');
    expect(PATCH_USAGE).toContain('/patch release KB|CLIENT|ring:RING|all');
  });
});
