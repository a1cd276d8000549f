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

  it('reads client:ID as that client, in any case, so a client called like an update can still be named', () => {
    expect(parsePatchCommand('hold client:acme-dental EMR vendor says wait')).toEqual({ kind: 'hold', target: 'acme-dental', reason: 'EMR vendor says wait', asClient: true });
    expect(parsePatchCommand('release Client:all')).toEqual({ kind: 'release', target: 'all', asClient: true });
    expect(parsePatchCommand('hold client:acme')).toMatchObject({ kind: 'unknown', problem: expect.stringContaining('needs a reason') });
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

// Every subcommand, as typed, and what it reads: the parser is pure, so the grammar is one table.
describe('/patch grammar, table', () => {
  it.each([
    ['', { kind: 'help' }],
    ['   ', { kind: 'help' }],
    ['help', { kind: 'help' }],
    ['HELP me', { kind: 'help' }],
    ['status', { kind: 'status' }],
    ['Status', { kind: 'status' }],
    ['hold KB5034441 EMR vendor says wait', { kind: 'hold', target: 'KB5034441', reason: 'EMR vendor says wait' }],
    ['hold acme-dental closed this week', { kind: 'hold', target: 'acme-dental', reason: 'closed this week' }],
    ['hold all  Microsoft pulled it', { kind: 'hold', target: 'all', reason: 'Microsoft pulled it' }],
    ['hold ring:msp lab down', { kind: 'hold_ring', ring: 'msp', reason: 'lab down' }],
    ['release KB5034441', { kind: 'release', target: 'KB5034441' }],
    ['release all', { kind: 'release', target: 'all' }],
    ['release ring:broad', { kind: 'release_ring', ring: 'broad' }],
    ['withdraw KB5034441', { kind: 'withdraw', target: 'KB5034441' }],
    ['withdraw all', { kind: 'withdraw', target: 'all' }],
    ['windows acme-dental', { kind: 'windows', client: 'acme-dental' }],
    ['notes KB5034441', { kind: 'notes', update: 'KB5034441' }],
    ['link acme-dental', { kind: 'link', client: 'acme-dental' }],
    ['promote 2024-Feb', { kind: 'promote', release: '2024-Feb' }],
    ['confirm acme-dental', { kind: 'confirm', client: 'acme-dental' }],
    ['skip ring:msp KB5034441 lab has no Server 2019', { kind: 'skip', ring: 'msp', update: 'KB5034441', client: null, reason: 'lab has no Server 2019' }],
    ['skip PILOT KB5034441 acme-dental', { kind: 'skip', ring: 'pilot', update: 'KB5034441', client: 'acme-dental', reason: 'no test machine' }],
    ['sync', { kind: 'sync' }],
    ['report acme-dental', { kind: 'report', client: 'acme-dental', period: null }],
    ['report acme-dental 2026-nov', { kind: 'report', client: 'acme-dental', period: '2026-Nov' }],
  ])('%j reads as %j', (text, command) => {
    expect(parsePatchCommand(text)).toEqual(command);
  });

  it.each([
    ['status now', '`status` takes nothing after it'],
    ['sync contoso', '`sync` takes nothing after it'],
    ['report', '`report` takes a client id and, optionally, a month'],
    ['report acme 2026-Nov extra', '`report` takes a client id and, optionally, a month'],
    ['report acme November', '`November` is not a month like 2026-Nov'],
    ['hold', '`hold` needs what to hold'],
    ['hold KB5034441', 'a hold needs a reason: `/patch hold KB5034441 REASON`'],
    ['hold ring:canary because', '`ring:canary` is not a ring'],
    ['release', '`release` takes one thing'],
    ['release KB1 KB2', '`release` takes one thing'],
    ['withdraw', '`withdraw` takes one thing'],
    ['withdraw KB1 KB2', '`withdraw` takes one thing'],
    ['windows', '`windows` takes one client id'],
    ['windows acme extra', '`windows` takes one client id'],
    ['notes', '`notes` takes one KB'],
    ['link', '`link` takes one client id'],
    ['promote', '`promote` takes one release'],
    ['promote 2024-Feb 2024-Mar', '`promote` takes one release'],
    ['confirm', '`confirm` takes one client id'],
    ['skip', '`skip` takes a ring and a KB'],
    ['skip msp', '`skip` takes a ring and a KB'],
    ['skip broad KB1', '`skip` takes a ring and a KB'],
    ['frobnicate now', "I don't know `frobnicate`"],
    ['constructor', "I don't know `constructor`"],
    ['__proto__', "I don't know `__proto__`"],
    ['ho`ld x', "I don't know `ho'ld`"],
  ])('%j is a usage error: %s', (text, problem) => {
    const parsed = parsePatchCommand(text);
    expect(parsed.kind).toBe('unknown');
    expect(parsed.kind === 'unknown' && parsed.problem).toContain(problem);
  });

  it('lists every subcommand in its usage, in one line or more each', () => {
    for (const verb of ['status', 'hold', 'release', 'withdraw', 'windows', 'notes', 'link', 'promote', 'confirm', 'skip', 'sync', 'report', 'help']) {
      expect(PATCH_USAGE).toContain(`\`/patch ${verb}`);
    }
  });
});
