/**
 * The emulator's own behaviours, as NinjaOne's OpenAPI document has them (research §2): it is the oracle the
 * adapter is tested against, so what it answers is checked here against the protocol, not against the adapter.
 */
import { describe, expect, it } from 'vitest';
import { NinjaOneEmulator, type NinjaActivity } from '../../src/sandbox/emulators/ninjaone-emulator.ts';

const MINUTE = 60_000;

function emulator(options: { scopes?: string[]; tokenSeconds?: number } = {}) {
  let now = Date.parse('2024-02-14T02:00:00Z');
  const emu = new NinjaOneEmulator({ now: () => new Date(now), clientId: 'id', clientSecret: 'secret', installScriptId: 42, ...options });
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const tokenAnswer = (secret = 'secret', scope = 'monitoring management control') => emu.handle('POST', '/ws/oauth/token', {}, form({ grant_type: 'client_credentials', client_id: 'id', client_secret: secret, scope }));
  let token = '';
  const login = () => {
    const answer = tokenAnswer();
    if (answer === 'timeout') throw new Error('timeout');
    token = (answer.body as { access_token: string }).access_token;
    return answer;
  };
  const call = (method: string, path: string, body: unknown = undefined, bearer: string | null = token) => {
    const answer = emu.handle(method, path, bearer === null ? {} : { authorization: `Bearer ${bearer}` }, body === undefined ? '' : JSON.stringify(body));
    if (answer === 'timeout') throw new Error('timeout');
    return answer;
  };
  const activities = (deviceId: number, newerThan = 0) => (call('GET', `/v2/device/${deviceId}/activities?newerThan=${newerThan}`).body as { activities: NinjaActivity[] }).activities;
  return { emu, call, login, tokenAnswer, activities, advance: (ms: number) => (now += ms) };
}

describe('NinjaOne emulator', () => {
  it('issues client-credentials tokens that expire, and refuses a stale or missing bearer with 401', () => {
    const { call, login, tokenAnswer, advance } = emulator({ tokenSeconds: 600 });
    expect(tokenAnswer('wrong')).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect(tokenAnswer('secret', 'monitoring offline_access')).toMatchObject({ status: 400 });
    expect(login()).toMatchObject({ status: 200, body: { token_type: 'Bearer', expires_in: 600, scope: 'monitoring management control' } });
    expect(call('GET', '/v2/devices').status).toBe(200);
    expect(call('GET', '/v2/devices', undefined, null).status).toBe(401);
    advance(10 * MINUTE);
    expect(call('GET', '/v2/devices').status).toBe(401);
  });

  it('refuses writes to a client granted only monitoring (403)', () => {
    const { emu, call, login } = emulator({ scopes: ['monitoring'] });
    const id = emu.addDevice({ systemName: 'PC1' });
    login();
    expect(call('GET', `/v2/device/${id}`).status).toBe(200);
    expect(call('POST', `/v2/device/${id}/reboot/NORMAL`).status).toBe(403);
  });

  it('pages devices by keyset: after = the last id of the previous page', () => {
    const { emu, call, login } = emulator();
    const ids = ['A', 'B', 'C', 'D', 'E'].map((n) => emu.addDevice({ systemName: `PC-${n}` }));
    login();
    const first = call('GET', '/v2/devices?pageSize=2').body as Array<{ id: number }>;
    const second = call('GET', `/v2/devices?pageSize=2&after=${first.at(-1)!.id}`).body as Array<{ id: number }>;
    const third = call('GET', `/v2/devices?pageSize=2&after=${second.at(-1)!.id}`).body as Array<{ id: number }>;
    expect([...first, ...second, ...third].map((d) => d.id)).toEqual(ids);
    expect(third).toHaveLength(1);
  });

  it('runs patchbay’s script with exactly the given KBs, its results arriving as activities over time', () => {
    const { emu, call, login, activities, advance } = emulator();
    const id = emu.addDevice({ systemName: 'PC1' });
    for (const kb of ['5034763', '5034439', '5034441']) emu.addPatch(id, { kb, status: 'APPROVED' });
    login();
    expect(call('POST', `/v2/device/${id}/script/run`, { type: 'SCRIPT', id: 7, parameters: 'KB5034763' }).status).toBe(404);
    expect(call('POST', `/v2/device/${id}/script/run`, { type: 'SCRIPT', id: 42, parameters: 'KB5034763 5034439' }).status).toBe(204);
    expect(activities(id)).toEqual([]);
    advance(MINUTE);
    expect(activities(id).map((a) => a.statusCode)).toEqual(['START_REQUESTED']);
    const floor = activities(id)[0]!.id;
    advance(5 * MINUTE);
    const [done] = activities(id, floor);
    expect(done).toMatchObject({ activityType: 'ACTION', statusCode: 'COMPLETED', activityResult: 'SUCCESS' });
    expect(done!.message.split('\n')).toEqual(['PATCHBAY KB5034763 INSTALLED', 'PATCHBAY KB5034439 INSTALLED', 'PATCHBAY REBOOT_REQUIRED YES']);
    expect(emu.patchesOf(id).filter((p) => p.installedAt !== null).map((p) => p.kb)).toEqual(['KB5034763', 'KB5034439']);
    expect(call('GET', `/v2/device/${id}`).body).toMatchObject({ offline: false, os: { needsReboot: true } });
  });

  it('a failing KB fails the script with the Windows error, and shows in os-patch-installs as FAILED', () => {
    const { emu, call, login, activities, advance } = emulator();
    const id = emu.addDevice({ systemName: 'PC1' });
    emu.addPatch(id, { kb: '5034763', failsWith: '0x80070643' });
    login();
    call('POST', `/v2/device/${id}/script/run`, { type: 'SCRIPT', id: 42, parameters: 'KB5034763' });
    advance(10 * MINUTE);
    expect(activities(id)[0]).toMatchObject({ statusCode: 'COMPLETED', activityResult: 'FAILURE', message: expect.stringContaining('PATCHBAY KB5034763 FAILED 0x80070643') });
    expect(call('GET', `/v2/device/${id}/os-patch-installs?status=FAILED`).body).toEqual([expect.objectContaining({ kbNumber: 'KB5034763', status: 'FAILED' })]);
    expect(call('GET', `/v2/device/${id}/os-patch-installs?status=INSTALLED`).body).toEqual([]);
  });

  it('a command for an offline device is accepted and never runs', () => {
    const { emu, call, login, activities, advance } = emulator();
    const id = emu.addDevice({ systemName: 'PC1', online: false });
    emu.addPatch(id, { kb: '5034763' });
    login();
    expect(call('GET', `/v2/device/${id}`).body).toMatchObject({ offline: true });
    expect(call('POST', `/v2/device/${id}/script/run`, { type: 'SCRIPT', id: 42, parameters: 'KB5034763' }).status).toBe(204);
    expect(call('POST', `/v2/device/${id}/reboot/NORMAL`).status).toBe(204);
    emu.setOnline(id, true);
    advance(30 * MINUTE);
    expect(activities(id)).toEqual([]);
    expect(emu.count(id, 'script') + emu.count(id, 'reboot')).toBe(0);
  });

  it('reboots on every call: offline while down, then lastBootTime moves on and SYSTEM_REBOOTED arrives', () => {
    const { emu, call, login, activities, advance } = emulator();
    const id = emu.addDevice({ systemName: 'PC1' });
    login();
    const before = (call('GET', `/v2/device/${id}`).body as { os: { lastBootTime: number } }).os.lastBootTime;
    expect(call('POST', `/v2/device/${id}/reboot/NORMAL`, { reason: 'test' }).status).toBe(204);
    advance(30_000);
    expect(call('GET', `/v2/device/${id}`).body).toMatchObject({ offline: true, os: { lastBootTime: before } });
    advance(3 * MINUTE);
    const after = call('GET', `/v2/device/${id}`).body as { offline: boolean; os: { lastBootTime: number } };
    expect(after.offline).toBe(false);
    expect(after.os.lastBootTime).toBeGreaterThan(before);
    expect(activities(id).map((a) => a.statusCode)).toEqual(['SYSTEM_REBOOTED']);
  });

  it('the device’s policy patches and reboots on its own, unless maintenance disables PATCHING', () => {
    const { emu, call, login, advance } = emulator();
    const held = emu.addDevice({ systemName: 'PC-HELD', policyPatchEveryMinutes: 30 });
    const free = emu.addDevice({ systemName: 'PC-FREE', policyPatchEveryMinutes: 30 });
    for (const id of [held, free]) {
      emu.addPatch(id, { kb: '5034763', status: 'APPROVED' });
      emu.addPatch(id, { kb: '5034441', status: 'MANUAL' });
    }
    login();
    const start = Date.parse('2024-02-14T02:00:00Z') / 1000;
    expect(call('PUT', `/v2/device/${held}/maintenance`, { disabledFeatures: ['PATCHING'], start, end: start + 3600, reasonMessage: 'patchbay' }).status).toBe(204);
    expect(call('GET', `/v2/device/${held}`).body).toMatchObject({ maintenance: { status: 'IN_MAINTENANCE', reasonMessage: 'patchbay' } });
    advance(45 * MINUTE);
    expect(emu.count(held, 'apply', 'policy')).toBe(0);
    expect(emu.count(free, 'apply', 'policy')).toBe(1);
    expect(emu.count(free, 'reboot', 'policy')).toBe(1);
    expect(emu.patchesOf(free).filter((p) => p.installedAt !== null).map((p) => p.kb)).toEqual(['KB5034763']);
    // The maintenance ends by itself: the held device's policy patches at its next run after that.
    advance(30 * MINUTE);
    expect(emu.count(held, 'apply', 'policy')).toBe(1);
  });

  it('pages the os-patch-installs report by cursor: one name, the offset moving on, an empty page at the end', () => {
    const { emu, call, login } = emulator();
    for (const n of [1, 2, 3]) {
      const id = emu.addDevice({ systemName: `PC${n}` });
      emu.addPatch(id, { kb: `503400${n}`, installed: true });
      emu.addPatch(id, { kb: `503410${n}` });
    }
    login();
    type Page = { cursor: { name: string; offset: number; count: number }; results: Array<{ deviceId: number; kbNumber: string }> };
    const first = call('GET', '/v2/queries/os-patch-installs?status=INSTALLED&pageSize=2').body as Page;
    expect(first.results).toHaveLength(2);
    const second = call('GET', `/v2/queries/os-patch-installs?cursor=${first.cursor.name}&pageSize=2`).body as Page;
    expect(second.cursor).toMatchObject({ name: first.cursor.name, offset: 3, count: 1 });
    const third = call('GET', `/v2/queries/os-patch-installs?cursor=${first.cursor.name}&pageSize=2`).body as Page;
    expect(third.results).toEqual([]);
    expect([...first.results, ...second.results].map((r) => r.kbNumber).sort()).toEqual(['KB5034001', 'KB5034002', 'KB5034003']);
  });

  it('faults on demand: 429 with Retry-After, and a 5xx after the request took effect', () => {
    const { emu, call, login, advance } = emulator();
    const id = emu.addDevice({ systemName: 'PC1' });
    login();
    emu.inject({ match: /reboot/, status: 429, retryAfterSeconds: 7 });
    expect(call('POST', `/v2/device/${id}/reboot/NORMAL`)).toEqual({ status: 429, body: { error: 'Too Many Requests' }, headers: { 'retry-after': '7' } });
    expect(emu.count(id, 'reboot')).toBe(0);
    emu.inject({ match: /reboot/, status: 502, when: 'after' });
    expect(call('POST', `/v2/device/${id}/reboot/NORMAL`).status).toBe(502);
    advance(MINUTE);
    expect(emu.count(id, 'reboot')).toBe(1);
  });
});
