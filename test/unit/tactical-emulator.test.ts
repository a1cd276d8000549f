/**
 * The emulator's own behaviours, as Tactical's source has them (research §1): it is the oracle the adapter is
 * tested against, so what it answers is checked here against the source, not against the adapter.
 */
import { describe, expect, it } from 'vitest';
import { TacticalEmulator } from '../../src/sandbox/emulators/tactical-emulator.ts';

const KEY = 'K'.repeat(40);
const MINUTE = 60_000;

function emulator(options: { permissions?: string[] } = {}) {
  let now = Date.parse('2024-02-14T02:00:00Z');
  const emu = new TacticalEmulator({ now: () => new Date(now), apiKey: KEY, ...options });
  const call = (method: string, path: string, body: unknown = null, key = KEY) => {
    const answer = emu.handle(method, path, key === '' ? {} : { 'x-api-key': key }, body);
    if (answer === 'timeout') throw new Error('timeout');
    return answer;
  };
  return { emu, call, advance: (ms: number) => (now += ms) };
}

describe('Tactical RMM emulator', () => {
  it('checks X-API-KEY as tacticalrmm/auth.py does, and role permissions as DRF does', () => {
    const { emu, call } = emulator({ permissions: ['can_list_agents'] });
    emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    expect(call('GET', '/agents/', null, '')).toEqual({ status: 401, body: { detail: 'Authentication credentials were not provided.' } });
    expect(call('GET', '/agents/', null, 'nope')).toEqual({ status: 401, body: { detail: 'Invalid token.' } });
    expect(call('GET', '/agents/').status).toBe(200);
    const agentId = emu.agentIdOf('PC1');
    expect(call('POST', `/winupdate/${agentId}/install/`)).toEqual({ status: 403, body: { detail: 'You do not have permission to perform this action.' } });
  });

  it('routes end in a slash, and agent ids are 21+ characters (tacticalrmm/urls.py)', () => {
    const { emu, call } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    expect(call('GET', `/agents/${agentId}`).status).toBe(404);
    expect(call('GET', `/agents/${agentId}/`).status).toBe(200);
    expect(call('GET', '/agents/short/').status).toBe(404);
    expect(call('GET', '/agents/?detail=false').body).toEqual([{ id: expect.any(Number), hostname: 'PC1', agent_id: agentId, client: 'Contoso', site: 'Main' }]);
  });

  it('status follows last_seen: an agent that left is online for 4 more minutes, then offline, overdue after 30', () => {
    const { emu, call, advance } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    emu.setConnected(agentId, false);
    const status = () => (call('GET', `/agents/${agentId}/`).body as { status: string }).status;
    advance(4 * MINUTE);
    expect(status()).toBe('online');
    expect(call('GET', `/agents/${agentId}/ping/`).body).toEqual({ name: 'PC1', status: 'offline' });
    advance(MINUTE);
    expect(status()).toBe('offline');
    advance(30 * MINUTE);
    expect(status()).toBe('overdue');
  });

  it('install approves by policy, installs every approved row one after another, then reports needs_reboot', () => {
    const { emu, call, advance } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso', automationPolicy: { critical: 'approve' } });
    emu.addUpdate(agentId, { kb: '1', severity: 'Critical' });
    emu.addUpdate(agentId, { kb: '2', severity: 'Important', action: 'approve' });
    emu.addUpdate(agentId, { kb: '3', severity: 'Important' });
    expect(call('POST', `/winupdate/${agentId}/install/`)).toEqual({ status: 200, body: 'Approved patches will now be installed on PC1' });
    const rows = () => call('GET', `/winupdate/${agentId}/`).body as Array<{ kb: string; result: string; installed: boolean; date_installed: string | null }>;
    expect(rows().every((r) => r.result === 'n/a')).toBe(true);
    advance(2 * MINUTE);
    expect(rows().filter((r) => r.result === 'success')).toHaveLength(1);
    advance(2 * MINUTE + 5_000);
    const after = rows();
    expect(after.filter((r) => r.installed).map((r) => r.kb).sort()).toEqual(['KB1', 'KB2']);
    expect(after.find((r) => r.kb === 'KB3')).toMatchObject({ installed: false, result: 'n/a', date_installed: null });
    expect(after.find((r) => r.kb === 'KB1')!.date_installed).toMatch(/^02 14 2024 02:0\d$/);
    expect((call('GET', `/agents/${agentId}/`).body as { needs_reboot: boolean }).needs_reboot).toBe(true);
  });

  it('a second install while one runs is dropped by the agent; one to a disconnected agent is lost', () => {
    const { emu, call, advance } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    emu.addUpdate(agentId, { kb: '1', action: 'approve' });
    call('POST', `/winupdate/${agentId}/install/`);
    call('POST', `/winupdate/${agentId}/install/`);
    expect(emu.installsDelivered(agentId)).toBe(1);
    const away = emu.addAgent({ hostname: 'PC2', client: 'Contoso', connected: false });
    emu.addUpdate(away, { kb: '1', action: 'approve' });
    expect(call('POST', `/winupdate/${away}/install/`).status).toBe(200);
    advance(60 * MINUTE);
    expect(emu.installsDelivered(away)).toBe(0);
    expect(emu.rowsOf(away)[0]).toMatchObject({ result: 'n/a', installed: false });
  });

  it('the policy reboot: reboot_after_install "required" reboots the machine the moment it reports needs_reboot', () => {
    const { emu, call, advance } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso', agentPolicy: { reboot_after_install: 'required' } });
    emu.addUpdate(agentId, { kb: '1', action: 'approve' });
    const bootBefore = (call('GET', `/agents/${agentId}/`).body as { boot_time: number }).boot_time;
    call('POST', `/winupdate/${agentId}/install/`);
    advance(2 * MINUTE + 5_000);
    call('GET', '/clients/');
    expect(emu.rebootsDelivered(agentId, 'policy')).toBe(1);
    advance(10 * MINUTE);
    const agent = call('GET', `/agents/${agentId}/`).body as { boot_time: number; needs_reboot: boolean; status: string };
    expect(agent.boot_time).toBeGreaterThan(bootBefore);
    expect(agent).toMatchObject({ needs_reboot: false, status: 'online' });
  });

  it('reboot: 400 as a bare string when the agent does not answer; boot_time moves only at its checkin after boot', () => {
    const { emu, call, advance } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    const boot = () => (call('GET', `/agents/${agentId}/`).body as { boot_time: number }).boot_time;
    const before = boot();
    expect(call('POST', `/agents/${agentId}/reboot/`)).toEqual({ status: 200, body: 'ok' });
    advance(150_000);
    expect(boot()).toBe(before);
    advance(30_000);
    expect(boot()).toBeGreaterThan(before);
    emu.setConnected(agentId, false);
    expect(call('POST', `/agents/${agentId}/reboot/`)).toEqual({ status: 400, body: 'Unable to contact the agent' });
  });

  it('faults: a 5xx before or after the request took effect, and a timeout', () => {
    const { emu, call } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    emu.inject({ match: /reboot/, status: 502, when: 'after' });
    expect(call('POST', `/agents/${agentId}/reboot/`).status).toBe(502);
    expect(emu.rebootsDelivered(agentId)).toBe(1);
    emu.inject({ status: 'timeout' });
    expect(() => call('GET', '/clients/')).toThrow('timeout');
    expect(emu.requests.map((r) => r.status)).toEqual([502, 'timeout']);
  });
});
