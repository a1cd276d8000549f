/**
 * The emulator re-read against Tactical RMM's own source (amidaware/tacticalrmm @ 2195c3b, `api/tacticalrmm/…`;
 * agent amidaware/rmmagent @ 3a2c23f; DRF 3.15.2 as its requirements.txt pins). Each test names the file and
 * function that says how the real server answers; each was a difference the emulator had, now fixed.
 */
import { describe, expect, it } from 'vitest';
import { TacticalEmulator } from '../../src/sandbox/emulators/tactical-emulator.ts';

const KEY = 'K'.repeat(40);
const MINUTE = 60_000;
const UNKNOWN_AGENT = 'x'.repeat(30);

function emulator(options: { permissions?: string[]; start?: number } = {}) {
  let now = options.start ?? Date.parse('2024-02-14T02:00:00Z');
  const emu = new TacticalEmulator({ now: () => new Date(now), apiKey: KEY, ...(options.permissions ? { permissions: options.permissions } : {}) });
  const call = (method: string, path: string, body: unknown = null, key = KEY) => {
    const answer = emu.handle(method, path, key === '' ? {} : { 'x-api-key': key }, body);
    if (answer === 'timeout') throw new Error('timeout');
    return answer;
  };
  return { emu, call, advance: (ms: number) => (now += ms) };
}

type Json = Record<string, unknown>;

describe('Tactical RMM emulator, re-verified against the source', () => {
  it('a path no urlpattern matches is Django’s HTML 404, before any key is checked (Django resolves the URL before DRF authenticates)', () => {
    const { call } = emulator();
    const answer = call('GET', '/agents/short/', null, '');
    expect(answer.status).toBe(404);
    expect(String(answer.body)).toMatch(/^<h1>Not Found<\/h1>/);
    expect(call('GET', '/nothing/here/', null, 'wrong').status).toBe(404);
    // A served route without a key is still 401 (tacticalrmm/auth.py, knox first: NotAuthenticated → 401).
    expect(call('GET', '/clients/', null, '').status).toBe(401);
  });

  it('an unknown agent, row or policy is DRF 3.15’s 404 with Django’s message (get_object_or_404; rest_framework/views.py exception_handler)', () => {
    const { call } = emulator();
    expect(call('GET', `/agents/${UNKNOWN_AGENT}/`)).toEqual({ status: 404, body: { detail: 'No Agent matches the given query.' } });
    expect(call('POST', `/winupdate/${UNKNOWN_AGENT}/install/`)).toEqual({ status: 404, body: { detail: 'No Agent matches the given query.' } });
    expect(call('PUT', '/winupdate/999999/', { action: 'approve' })).toEqual({ status: 404, body: { detail: 'No WinUpdate matches the given query.' } });
    expect(call('PUT', '/automation/patchpolicy/999999/', { critical: 'manual' })).toEqual({ status: 404, body: { detail: 'No WinUpdatePolicy matches the given query.' } });
  });

  it('a method the view lacks is 405, after authentication and the permission check (APIView.dispatch → http_method_not_allowed)', () => {
    const { emu, call } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    const rowId = emu.addUpdate(agentId, { kb: '1' });
    expect(call('DELETE', `/winupdate/${agentId}/`)).toEqual({ status: 405, body: { detail: 'Method "DELETE" not allowed.' } });
    // winupdate/urls.py: <int:pk>/ is EditWindowsUpdates, which has only put.
    expect(call('GET', `/winupdate/${rowId}/`)).toEqual({ status: 405, body: { detail: 'Method "GET" not allowed.' } });
    expect(call('GET', `/agents/${agentId}/reboot/`).status).toBe(405);
    expect(call('DELETE', `/winupdate/${agentId}/`, null, '').status).toBe(401);
    emu.setPermissions(['can_list_agents']);
    expect(call('DELETE', `/winupdate/${agentId}/`).status).toBe(403);
  });

  it('GET /agents/: any detail other than "true" is the short list, site wins over client, monitoring_type filters (agents/views.py GetAgents)', () => {
    const { emu, call } = emulator();
    emu.addAgent({ hostname: 'PC1', client: 'Contoso', site: 'North' });
    emu.addAgent({ hostname: 'SRV1', client: 'Contoso', site: 'South', monitoringType: 'server' });
    emu.addAgent({ hostname: 'PC9', client: 'Fabrikam' });
    expect(call('GET', '/agents/?detail=False').body).toEqual(expect.arrayContaining([expect.objectContaining({ hostname: 'PC1', client: 'Contoso', site: 'North' })]));
    expect(Object.keys((call('GET', '/agents/?detail=0').body as Json[])[0]!).sort()).toEqual(['agent_id', 'client', 'hostname', 'id', 'site']);
    const clients = call('GET', '/clients/').body as Array<{ id: number; name: string; sites: Array<{ id: number; name: string }> }>;
    const contoso = clients.find((c) => c.name === 'Contoso')!;
    const south = contoso.sites.find((s) => s.name === 'South')!;
    const fabrikam = clients.find((c) => c.name === 'Fabrikam')!;
    const names = (query: string) => (call('GET', `/agents/?detail=false&${query}`).body as Array<{ hostname: string }>).map((a) => a.hostname).sort();
    expect(names(`client=${fabrikam.id}&site=${south.id}`)).toEqual(['SRV1']);
    expect(names(`client=${contoso.id}`)).toEqual(['PC1', 'SRV1']);
    expect(names('monitoring_type=server')).toEqual(['SRV1']);
    expect(call('GET', '/agents/?monitoring_type=laptop')).toEqual({ status: 400, body: 'monitoring type does not exist' });
  });

  it('the agent list has AgentTableSerializer’s fields, logged_username as get_logged_username says (agents/serializers.py)', () => {
    const { emu, call, advance } = emulator();
    emu.addAgent({ hostname: 'PC1', client: 'Contoso', loggedInUser: 'jane' });
    const idle = emu.addAgent({ hostname: 'PC2', client: 'Contoso', lastLoggedInUser: 'bob' });
    const list = () => call('GET', '/agents/').body as Json[];
    const fields = ['agent_id', 'alert_template', 'hostname', 'site_name', 'client_name', 'monitoring_type', 'description', 'needs_reboot', 'pending_actions_count', 'status', 'overdue_text_alert', 'overdue_email_alert', 'overdue_dashboard_alert', 'last_seen', 'boot_time', 'checks', 'maintenance_mode', 'logged_username', 'italic', 'policy', 'block_policy_inheritance', 'plat', 'goarch', 'has_patches_pending', 'version', 'operating_system', 'public_ip', 'cpu_model', 'graphics', 'local_ips', 'make_model', 'physical_disks', 'custom_fields', 'serial_number'];
    expect(Object.keys(list()[0]!).sort()).toEqual([...fields].sort());
    expect(list().map((a) => [a.hostname, a.logged_username, a.italic])).toEqual([
      ['PC1', 'jane', false],
      ['PC2', 'bob', true],
    ]);
    emu.setConnected(idle, false);
    advance(5 * MINUTE);
    expect(list().find((a) => a.hostname === 'PC2')).toMatchObject({ status: 'offline', logged_username: '-', italic: false });
  });

  it('last_seen is Python’s isoformat with DRF’s "Z": microseconds, or no fraction when there are none (rest_framework/fields.py DateTimeField)', () => {
    const { emu, call, advance } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    expect((call('GET', `/agents/${agentId}/`).body as Json).last_seen).toBe('2024-02-14T02:00:00Z');
    advance(1_250);
    expect((call('GET', '/agents/').body as Json[])[0]!.last_seen).toBe('2024-02-14T02:00:01.250000Z');
  });

  it('the agent detail is AgentSerializer: every model field but id, the four applied_policies levels, timezone and effective_patch_policy (agents/serializers.py)', () => {
    const { emu, call } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso', timeZone: 'Europe/Berlin' });
    const detail = call('GET', `/agents/${agentId}/`).body as Json;
    expect(detail).not.toHaveProperty('id');
    for (const field of ['version', 'services', 'total_ram', 'disks', 'mesh_node_id', 'check_interval', 'choco_installed', 'wmi_detail', 'maintenance_mode', 'block_policy_inheritance', 'policy', 'alert_template', 'created_time', 'all_timezones', 'effective_default_shell', 'winupdatepolicy', 'effective_patch_policy']) {
      expect(detail, field).toHaveProperty(field);
    }
    expect(detail.applied_policies).toEqual({ agent_policy: null, site_policy: null, client_policy: null, default_policy: null });
    expect(detail).toMatchObject({ time_zone: 'Europe/Berlin', timezone: 'Europe/Berlin', client: 'Contoso', site_name: 'Main' });
    expect(detail.all_timezones).toContain('Europe/Berlin');
  });

  it('status follows Agent.status’s comparisons exactly: last_seen exactly at the overdue limit reads online (agents/models.py)', () => {
    const { emu, call, advance } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    emu.setConnected(agentId, false);
    const status = () => (call('GET', `/agents/${agentId}/`).body as { status: string }).status;
    advance(30 * MINUTE - 1);
    expect(status()).toBe('offline');
    advance(1);
    expect(status()).toBe('online');
    advance(1);
    expect(status()).toBe('overdue');
  });

  it('GET /clients/ is ordered by name with ClientSerializer’s and SiteSerializer’s fields (clients/views.py GetAddClients)', () => {
    const { emu, call } = emulator();
    emu.addAgent({ hostname: 'PC1', client: 'Zeta', site: 'Beta' });
    emu.addAgent({ hostname: 'PC2', client: 'Zeta', site: 'Alpha' });
    emu.addAgent({ hostname: 'PC3', client: 'Acme' });
    const clients = call('GET', '/clients/').body as Array<Json & { sites: Json[] }>;
    expect(clients.map((c) => c.name)).toEqual(['Acme', 'Zeta']);
    expect(clients[1]!.sites.map((s) => s.name)).toEqual(['Alpha', 'Beta']);
    expect(Object.keys(clients[0]!).sort()).toEqual(['agent_count', 'alert_template', 'block_policy_inheritance', 'custom_fields', 'failing_checks', 'id', 'maintenance_mode', 'name', 'server_policy', 'sites', 'workstation_policy']);
    expect(Object.keys(clients[0]!.sites[0]!).sort()).toEqual(['agent_count', 'alert_template', 'block_policy_inheritance', 'client', 'client_name', 'custom_fields', 'failing_checks', 'id', 'maintenance_mode', 'name', 'server_policy', 'workstation_policy']);
  });

  it('a scan never deletes a row Windows Update stopped offering; only an install attempt does (apiv3 WinUpdates.post upserts, SupersededWinUpdate deletes)', () => {
    const { emu, call, advance } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    emu.addUpdate(agentId, { kb: '1', supersededOnInstall: true, action: 'approve' });
    call('POST', `/winupdate/${agentId}/scan/`);
    advance(10 * MINUTE);
    expect((call('GET', `/winupdate/${agentId}/`).body as Json[]).map((r) => r.kb)).toEqual(['KB1']);
    call('POST', `/winupdate/${agentId}/install/`);
    advance(10 * MINUTE);
    expect(call('GET', `/winupdate/${agentId}/`).body).toEqual([]);
  });

  it('install and scan drop older versions of a KB listed twice (Agent.delete_superseded_updates)', () => {
    const { emu, call } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    emu.addUpdate(agentId, { kb: '5', title: 'Cumulative Update (Version 21H2)' });
    const newer = emu.addUpdate(agentId, { kb: '5', title: 'Cumulative Update (Version 22H2)' });
    emu.addUpdate(agentId, { kb: '6', title: 'Defender update' });
    emu.addUpdate(agentId, { kb: '6', title: 'Defender update, again' });
    call('POST', `/winupdate/${agentId}/scan/`);
    const rows = call('GET', `/winupdate/${agentId}/`).body as Array<{ id: number; kb: string }>;
    expect(rows.filter((r) => r.kb === 'KB5').map((r) => r.id)).toEqual([newer]);
    // No "(Version …)" to order by: the source skips that KB and both rows stay.
    expect(rows.filter((r) => r.kb === 'KB6')).toHaveLength(2);
  });

  it('PUT /automation/patchpolicy/{pk}/ edits an automation policy’s row too, and refuses a value outside the choices (automation/views.py UpdatePatchPolicy)', () => {
    const { emu, call } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso', automationPolicy: { critical: 'approve' } });
    const detail = () => call('GET', `/agents/${agentId}/`).body as { effective_patch_policy: { id: number; critical: string } };
    const pk = detail().effective_patch_policy.id;
    expect(call('PUT', `/automation/patchpolicy/${pk}/`, { critical: 'sometimes' })).toEqual({ status: 400, body: { critical: ['"sometimes" is not a valid choice.'] } });
    expect(call('PUT', `/automation/patchpolicy/${pk}/`, { critical: 'manual' })).toEqual({ status: 200, body: 'ok' });
    expect(detail().effective_patch_policy).toMatchObject({ id: pk, critical: 'manual' });
  });

  it('PUT /agents/{id}/ validates winupdatepolicy[0] with WinUpdatePolicySerializer (agents/views.py GetUpdateDeleteAgent.put)', () => {
    const { emu, call } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso' });
    expect(call('PUT', `/agents/${agentId}/`, { winupdatepolicy: [{ reboot_after_install: 'later' }] })).toEqual({ status: 400, body: { reboot_after_install: ['"later" is not a valid choice.'] } });
    expect((call('GET', `/agents/${agentId}/`).body as { winupdatepolicy: Json[] }).winupdatepolicy[0]).toMatchObject({ reboot_after_install: 'inherit' });
  });

  it('the effective policy takes the agent’s reprocess settings when it does not inherit them (agents/models.py get_patch_policy)', () => {
    const { emu, call } = emulator();
    const agentId = emu.addAgent({
      hostname: 'PC1',
      client: 'Contoso',
      automationPolicy: { reprocess_failed: false, reprocess_failed_times: 5 },
      agentPolicy: { reprocess_failed_inherit: false, reprocess_failed: true, reprocess_failed_times: 2, email_if_fail: true },
    });
    expect((call('GET', `/agents/${agentId}/`).body as Json).effective_patch_policy).toMatchObject({ reprocess_failed: true, reprocess_failed_times: 2, email_if_fail: true });
  });

  it('Tactical approves by policy on its own every 8 hours, with no request at all (winupdate/tasks.py auto_approve_updates_task, celery.py beat)', () => {
    const { emu, advance } = emulator();
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso', automationPolicy: { critical: 'approve' } });
    emu.addUpdate(agentId, { kb: '1', severity: 'Critical' });
    emu.addUpdate(agentId, { kb: '2', severity: 'Important' });
    // 02:00Z: the next beat at :02 of an hour divisible by 8 is 08:02Z.
    advance(6 * 60 * MINUTE + MINUTE);
    emu.settle();
    expect(emu.rowsOf(agentId).map((r) => r.action)).toEqual(['nothing', 'nothing']);
    advance(MINUTE);
    emu.settle();
    expect(emu.rowsOf(agentId).map((r) => [r.kb, r.action])).toEqual([
      ['KB1', 'approve'],
      ['KB2', 'nothing'],
    ]);
    expect(emu.requests).toEqual([]);
  });

  it('an online agent installs approved updates at its policy’s local day and hour, and its policy reboot follows (check_agent_update_schedule_task)', () => {
    // Wednesday 14 Feb 2024, 02:00Z; weekday 2 in Python's numbering (Monday 0).
    const { emu, call, advance } = emulator();
    const schedule = { run_time_frequency: 'daily' as const, run_time_days: [2], run_time_hour: 3, reboot_after_install: 'always' as const };
    const pc = emu.addAgent({ hostname: 'PC1', client: 'Contoso', agentPolicy: schedule });
    const away = emu.addAgent({ hostname: 'PC2', client: 'Contoso', agentPolicy: schedule });
    const berlin = emu.addAgent({ hostname: 'PC3', client: 'Contoso', agentPolicy: schedule, timeZone: 'Europe/Berlin' });
    for (const id of [pc, away, berlin]) emu.addUpdate(id, { kb: '1', action: 'approve' });
    emu.setConnected(away, false);
    // 03:05 local in Berlin is 02:05Z: its agent goes first.
    advance(5 * MINUTE);
    emu.settle();
    expect(emu.delivered.filter((d) => d.func === 'installwinupdates').map((d) => [d.agentId, d.by])).toEqual([[berlin, 'schedule']]);
    advance(60 * MINUTE + 10 * MINUTE);
    const detail = call('GET', `/agents/${pc}/`).body as { patches_last_installed: string | null };
    expect(detail.patches_last_installed).toBe('2024-02-14T03:05:00Z');
    expect(emu.installsDelivered(pc)).toBe(1);
    expect(emu.installsDelivered(away)).toBe(0);
    expect(emu.rowsOf(pc)[0]).toMatchObject({ installed: true, result: 'success' });
    expect(emu.rebootsDelivered(pc, 'policy')).toBe(1);
    // A row approved since waits for the next Wednesday 03:00, not Thursday's.
    emu.addUpdate(pc, { kb: '2', action: 'approve' });
    advance(24 * 60 * MINUTE);
    emu.settle();
    expect(emu.installsDelivered(pc)).toBe(1);
    advance(6 * 24 * 60 * MINUTE);
    emu.settle();
    expect(emu.installsDelivered(pc)).toBe(2);
  });

  it('the scheduled install can be turned off for tests that drive every step themselves (beat: false)', () => {
    let now = Date.parse('2024-02-14T02:00:00Z');
    const emu = new TacticalEmulator({ now: () => new Date(now), apiKey: KEY, beat: false });
    const agentId = emu.addAgent({ hostname: 'PC1', client: 'Contoso', agentPolicy: { critical: 'approve', run_time_frequency: 'daily', run_time_days: [0, 1, 2, 3, 4, 5, 6], run_time_hour: 2 } });
    emu.addUpdate(agentId, { kb: '1', severity: 'Critical' });
    now += 24 * 60 * MINUTE;
    emu.settle();
    expect(emu.installsDelivered(agentId)).toBe(0);
    expect(emu.rowsOf(agentId)[0]!.action).toBe('nothing');
  });
});
