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

  it('names ring holds in its usage', () => {
    expect(PATCH_USAGE).toContain('/patch hold ring:msp|ring:pilot|ring:broad REASON');
    expect(PATCH_USAGE).toContain('/patch release KB|CLIENT|ring:RING|all');
  });
});
