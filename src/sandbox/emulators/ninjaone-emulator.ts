/**
 * A NinjaOne emulator: the public API v2 surface patchbay drives, written from NinjaOne's own OpenAPI document
 * ("NinjaOne Public API 2.0") as ../shared/research/device-backends.md §2 and §5 read it. Independent of
 * src/adapters: it is the oracle the NinjaOne adapter is tested against, so it copies NinjaOne's behaviours, traps
 * included:
 *
 * - OAuth client credentials at `POST /ws/oauth/token` (form body); tokens expire (`expires_in`), and a stale,
 *   unknown or missing bearer is 401. Writes need the `management` or `control` scope (403 without).
 * - Devices by keyset paging (`after` = the last id of the previous page); `GET /v2/device/{id}` has `offline`,
 *   `nodeClass`, `os.lastBootTime` and `os.needsReboot` (epoch seconds), and `maintenance`. No time zone.
 * - No job ids: what a device did arrives as activities, ids growing, read with `newerThan=<activity id>`.
 * - `POST /v2/device/{id}/script/run` (204) runs a library script; the one registered as patchbay's KB script
 *   installs exactly the KBs in its `parameters` and prints what integrations/ninjaone/Install-PatchbayKBs.ps1
 *   prints, as the ACTION activity's message. `POST …/patch/os/apply` installs whatever is APPROVED.
 * - `POST /v2/device/{id}/reboot/{NORMAL|FORCED}` (204): every call reboots; `SYSTEM_REBOOTED` when it is back.
 * - `PUT /v2/device/{id}/maintenance` with `disabledFeatures` including PATCHING holds the device's policy back.
 *   A device's policy otherwise patches (apply) and reboots on its own schedule.
 * - `GET /v2/device/{id}/os-patches`, `…/os-patch-installs?status=`, and the `queries/os-patch-installs` report
 *   with cursor paging (`{name, offset, count, expires}`, stop on an empty page).
 *
 * What the spec does not say, the emulator takes the hard way: a command (script, reboot, scan) for an offline
 * device is accepted with 204 and never runs. Faults on demand: 429 with Retry-After, 5xx and timeouts, before or
 * after the request took effect. Time is the injected `now()`; device work is events on that clock.
 */
import { randomUUID } from 'node:crypto';
import { EventClock } from './event-clock.ts';
import { serveOnLoopback } from './loopback.ts';

export type NodeClass = 'WINDOWS_WORKSTATION' | 'WINDOWS_SERVER';

export interface NinjaDeviceSeed {
  systemName: string;
  organization?: string;
  location?: string;
  nodeClass?: NodeClass;
  osName?: string;
  /** `os.buildNumber`. Default 22631 (Windows 11 23H2). */
  osBuild?: string;
  /** `lastLoggedInUser`, e.g. `CONTOSO\\jane`. Default: nobody. */
  lastLoggedInUser?: string;
  online?: boolean;
  /** The device's policy applies APPROVED patches by itself every this many minutes (unless in maintenance). */
  policyPatchEveryMinutes?: number;
  /** After its own patching, the policy reboots when a patch wants it. Default true. */
  policyRebootsWhenRequired?: boolean;
}

export interface NinjaDeviceSummary {
  id: number;
  systemName: string;
  organization: string;
  location: string;
  online: boolean;
  /** Epoch seconds. */
  lastBootTime: number;
  needsReboot: boolean;
  /** Maintenance holding PATCHING back right now. */
  inMaintenance: boolean;
}

export interface NinjaPatchSeed {
  kb: string;
  name?: string;
  severity?: 'CRITICAL' | 'IMPORTANT' | 'MODERATE' | 'OPTIONAL';
  /** `APPROVED` (the policy will install it) or `MANUAL` (awaiting approval). Default MANUAL. */
  status?: 'APPROVED' | 'MANUAL';
  installed?: boolean;
  /** Hidden machine truth: the install wants a restart. Default true. */
  rebootRequired?: boolean;
  /** Hidden machine truth: installing it fails with this Windows error. */
  failsWith?: string;
}

export interface NinjaFault {
  /** Only requests whose `METHOD path` matches. */
  match?: RegExp;
  status: number | 'timeout';
  /** With 429: the Retry-After seconds. */
  retryAfterSeconds?: number;
  /** `after`: the request took effect and only its answer is lost or replaced. Default `before`. */
  when?: 'before' | 'after';
  times?: number;
}

export interface NinjaActivity {
  id: number;
  activityTime: number;
  deviceId: number;
  severity: string;
  priority: string;
  seriesUid: string;
  activityType: string;
  statusCode: string;
  status: string;
  activityResult?: 'SUCCESS' | 'FAILURE' | 'UNSUPPORTED' | 'UNCOMPLETED';
  sourceConfigUid?: string;
  sourceName?: string;
  subject?: string;
  message: string;
  type: string;
  data: Record<string, unknown>;
}

interface Patch {
  id: string;
  kb: string;
  name: string;
  severity: string;
  status: 'APPROVED' | 'MANUAL';
  installedAt: number | null;
  failedAt: number | null;
  hidden: { rebootRequired: boolean; failsWith: string | undefined };
}

interface Device {
  id: number;
  uid: string;
  systemName: string;
  organizationId: number;
  locationId: number;
  nodeClass: NodeClass;
  osName: string;
  osBuild: string;
  lastLoggedInUser: string | undefined;
  online: boolean;
  /** Bumped when the agent stops (reboot, off the network): its work in flight is dropped. */
  life: number;
  lastContact: number;
  lastBootTime: number;
  needsReboot: boolean;
  busy: boolean;
  patches: Patch[];
  maintenance: { start: number; end: number; disabledFeatures: string[]; reasonMessage: string } | undefined;
  policy: { everyMinutes: number | undefined; rebootsWhenRequired: boolean };
}

export interface NinjaOneEmulatorOptions {
  now: () => Date;
  clientId: string;
  clientSecret: string;
  /** Scopes the API client was granted. Default all three. */
  scopes?: readonly string[];
  tokenSeconds?: number;
  record?: boolean;
  /** The library script id that is patchbay's KB install script. Default 42. */
  installScriptId?: number;
  secondsPerPatch?: number;
  rebootSeconds?: number;
  /** From a command's request to the agent starting it. */
  startSeconds?: number;
  scanSeconds?: number;
}

export interface NinjaRecordedRequest {
  at: string;
  method: string;
  path: string;
  body: unknown;
  status: number | 'timeout';
}

export type NinjaAnswer = { status: number; body?: unknown; headers?: Record<string, string> } | 'timeout';

const seconds = (ms: number) => ms / 1000;

export class NinjaOneEmulator {
  readonly requests: NinjaRecordedRequest[] = [];
  /** What reached a device's agent, for assertions: the truth the adapter's word is checked against. */
  readonly delivered: Array<{ at: string; deviceId: number; what: 'script' | 'apply' | 'reboot' | 'scan'; by: 'api' | 'policy'; kbs?: string[] }> = [];
  record: boolean;
  readonly installScriptId: number;
  private readonly now: () => Date;
  private readonly clientId: string;
  private readonly clientSecret: string;
  private readonly scopes: Set<string>;
  private readonly tokenSeconds: number;
  private readonly secondsPerPatch: number;
  private readonly rebootSeconds: number;
  private readonly startSeconds: number;
  private readonly scanSeconds: number;
  private readonly tokens = new Map<string, { expiresAt: number; scopes: Set<string> }>();
  private readonly organizations = new Map<string, number>();
  private readonly locations = new Map<string, { id: number; organizationId: number }>();
  private readonly devices = new Map<number, Device>();
  private readonly activities: NinjaActivity[] = [];
  private readonly cursors = new Map<string, { rows: unknown[]; offset: number; expires: number }>();
  private readonly clock: EventClock;
  private faults: Array<NinjaFault & { left: number }> = [];
  private nextId = 1;
  private nextActivityId = 1000;

  constructor(options: NinjaOneEmulatorOptions) {
    this.now = options.now;
    this.clock = new EventClock(options.now);
    this.clientId = options.clientId;
    this.clientSecret = options.clientSecret;
    this.scopes = new Set(options.scopes ?? ['monitoring', 'management', 'control']);
    this.tokenSeconds = options.tokenSeconds ?? 3600;
    this.record = options.record ?? true;
    this.installScriptId = options.installScriptId ?? 42;
    this.secondsPerPatch = options.secondsPerPatch ?? 120;
    this.rebootSeconds = options.rebootSeconds ?? 150;
    this.startSeconds = options.startSeconds ?? 20;
    this.scanSeconds = options.scanSeconds ?? 60;
  }

  // ---- seeding and knobs ----

  addDevice(seed: NinjaDeviceSeed): number {
    const organizationId = this.organizationNamed(seed.organization ?? 'Contoso');
    const locationId = this.locationNamed(organizationId, seed.location ?? 'Main');
    const id = this.nextId++;
    const nowMs = this.nowMs();
    const device: Device = {
      id,
      uid: randomUUID(),
      systemName: seed.systemName,
      organizationId,
      locationId,
      nodeClass: seed.nodeClass ?? 'WINDOWS_WORKSTATION',
      osName: seed.osName ?? 'Windows 11 Professional Edition',
      osBuild: seed.osBuild ?? '22631',
      lastLoggedInUser: seed.lastLoggedInUser,
      online: seed.online ?? true,
      life: 0,
      lastContact: nowMs,
      lastBootTime: seconds(nowMs) - 86_400,
      needsReboot: false,
      busy: false,
      patches: [],
      maintenance: undefined,
      policy: { everyMinutes: seed.policyPatchEveryMinutes, rebootsWhenRequired: seed.policyRebootsWhenRequired ?? true },
    };
    this.devices.set(id, device);
    if (device.policy.everyMinutes) this.schedulePolicy(device, nowMs);
    return id;
  }

  addPatch(deviceId: number, seed: NinjaPatchSeed): void {
    const device = this.deviceById(deviceId);
    const kb = /^kb/i.test(seed.kb) ? `KB${seed.kb.slice(2)}` : `KB${seed.kb}`;
    device.patches.push({
      id: randomUUID(),
      kb,
      name: seed.name ?? `${kb} Cumulative Update for Windows`,
      severity: seed.severity ?? 'CRITICAL',
      status: seed.status ?? 'MANUAL',
      installedAt: seed.installed ? seconds(this.nowMs()) : null,
      failedAt: null,
      hidden: { rebootRequired: seed.rebootRequired ?? true, failsWith: seed.failsWith },
    });
  }

  /** The device goes off the network, or comes back; work in flight on it is lost. */
  /** The device is deleted from NinjaOne (decommissioned and removed). */
  removeDevice(deviceId: number): void {
    this.devices.delete(deviceId);
  }

  setOnline(deviceId: number, online: boolean): void {
    this.settle();
    const device = this.deviceById(deviceId);
    if (device.online === online) return;
    device.online = online;
    device.life++;
    device.busy = false;
    device.lastContact = this.nowMs();
  }

  inject(fault: NinjaFault): void {
    this.faults.push({ ...fault, left: fault.times ?? 1 });
  }

  /** Every token issued so far stops working (as a rotated client secret or a server restart would do). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  deviceIdOf(systemName: string): number {
    const device = [...this.devices.values()].find((d) => d.systemName === systemName);
    if (!device) throw new Error(`no device ${systemName}`);
    return device.id;
  }

  patchesOf(deviceId: number): ReadonlyArray<Readonly<Patch>> {
    this.settle();
    return this.deviceById(deviceId).patches;
  }

  deviceState(deviceId: number): { online: boolean; needsReboot: boolean; lastBootTime: number; inMaintenance: boolean } {
    this.settle();
    const d = this.deviceById(deviceId);
    return { online: d.online, needsReboot: d.needsReboot, lastBootTime: d.lastBootTime, inMaintenance: this.patchingHeld(d) };
  }

  /** Every device as a console would list it, organization and location by name, for the sandbox page. */
  deviceList(): NinjaDeviceSummary[] {
    this.settle();
    const organizationName = new Map([...this.organizations].map(([name, id]) => [id, name]));
    const locationName = new Map([...this.locations].map(([key, l]) => [l.id, key.slice(key.indexOf('/') + 1)]));
    return [...this.devices.values()].map((d) => ({
      id: d.id,
      systemName: d.systemName,
      organization: organizationName.get(d.organizationId) ?? '',
      location: locationName.get(d.locationId) ?? '',
      online: d.online,
      lastBootTime: d.lastBootTime,
      needsReboot: d.needsReboot,
      inMaintenance: this.patchingHeld(d),
    }));
  }

  count(deviceId: number, what: 'script' | 'apply' | 'reboot' | 'scan', by?: 'api' | 'policy'): number {
    this.settle();
    return this.delivered.filter((x) => x.deviceId === deviceId && x.what === what && (by === undefined || x.by === by)).length;
  }

  /** Runs everything the devices were due to do up to now(). */
  settle(): void {
    const nowMs = this.nowMs();
    this.clock.runDue(nowMs);
    for (const device of this.devices.values()) if (device.online) device.lastContact = nowMs;
  }

  // ---- the device side ----

  private nowMs(): number {
    return this.clock.nowMs();
  }

  private at(ms: number, run: () => void): void {
    this.clock.at(ms, run);
  }

  /** Work of the agent's current life: dropped if the agent stopped meanwhile. */
  private whileAlive(device: Device, ms: number, run: () => void): void {
    const life = device.life;
    this.at(ms, () => {
      if (device.life === life && device.online) run();
    });
  }

  private activity(device: Device, fields: Partial<NinjaActivity> & Pick<NinjaActivity, 'activityType' | 'statusCode'>): NinjaActivity {
    const activity: NinjaActivity = {
      id: this.nextActivityId++,
      activityTime: seconds(this.nowMs()),
      deviceId: device.id,
      severity: 'NONE',
      priority: 'NONE',
      seriesUid: randomUUID(),
      status: fields.statusCode,
      message: '',
      type: fields.activityType,
      data: {},
      ...fields,
    };
    this.activities.push(activity);
    return activity;
  }

  private patchingHeld(device: Device): boolean {
    const m = device.maintenance;
    const nowS = seconds(this.nowMs());
    return m !== undefined && m.disabledFeatures.includes('PATCHING') && m.start <= nowS && nowS < m.end;
  }

  private schedulePolicy(device: Device, fromMs: number): void {
    const every = device.policy.everyMinutes!;
    this.at(fromMs + every * 60_000, () => {
      if (device.online && !device.busy && !this.patchingHeld(device)) this.policyPatch(device);
      this.schedulePolicy(device, this.nowMs());
    });
  }

  /** The device's own policy: install what is APPROVED, then reboot when a patch wants it. */
  private policyPatch(device: Device): void {
    const approved = device.patches.filter((p) => p.status === 'APPROVED' && p.installedAt === null);
    if (approved.length === 0) return;
    this.applyPatches(device, approved, 'policy', () => {
      if (device.policy.rebootsWhenRequired && device.needsReboot) this.rebootNow(device, 'policy');
    });
  }

  private applyPatches(device: Device, patches: Patch[], by: 'api' | 'policy', then: () => void = () => {}): void {
    device.busy = true;
    this.delivered.push({ at: new Date(this.nowMs()).toISOString(), deviceId: device.id, what: 'apply', by, kbs: patches.map((p) => p.kb) });
    this.activity(device, { activityType: 'PATCH_MANAGEMENT', statusCode: 'PATCH_MANAGEMENT_APPLY_PATCH_STARTED' });
    let t = this.nowMs();
    for (const patch of patches) {
      t += this.secondsPerPatch * 1000;
      this.whileAlive(device, t, () => {
        const ok = this.installPatch(device, patch);
        this.activity(device, {
          activityType: 'PATCH_MANAGEMENT',
          statusCode: ok ? 'PATCH_MANAGEMENT_INSTALLED' : 'PATCH_MANAGEMENT_INSTALL_FAILED',
          activityResult: ok ? 'SUCCESS' : 'FAILURE',
          message: ok ? `${patch.name} installed` : `${patch.name} failed: ${patch.hidden.failsWith}`,
          data: { kbNumber: patch.kb },
        });
      });
    }
    this.whileAlive(device, t + 5_000, () => {
      device.busy = false;
      this.activity(device, { activityType: 'PATCH_MANAGEMENT', statusCode: 'PATCH_MANAGEMENT_APPLY_PATCH_COMPLETED', activityResult: 'SUCCESS' });
      then();
    });
  }

  private installPatch(device: Device, patch: Patch): boolean {
    if (patch.hidden.failsWith !== undefined) {
      patch.failedAt = seconds(this.nowMs());
      return false;
    }
    patch.installedAt = seconds(this.nowMs());
    if (patch.hidden.rebootRequired) device.needsReboot = true;
    return true;
  }

  /** patchbay's script: installs exactly the KBs it is given, printing one line per KB (see the .ps1). */
  private runInstallScript(device: Device, parameters: string): void {
    const wanted = parameters.split(/\s+/).filter(Boolean).map((kb) => (/^kb/i.test(kb) ? `KB${kb.slice(2)}` : `KB${kb}`));
    this.delivered.push({ at: new Date(this.nowMs()).toISOString(), deviceId: device.id, what: 'script', by: 'api', kbs: wanted });
    device.busy = true;
    const series = randomUUID();
    const base = { activityType: 'ACTION', sourceConfigUid: `script-${this.installScriptId}`, sourceName: 'Install-PatchbayKBs', seriesUid: series, data: { scriptId: this.installScriptId } };
    this.activity(device, { ...base, statusCode: 'START_REQUESTED', message: `Install-PatchbayKBs ${parameters}` });
    const lines: string[] = [];
    let failed = false;
    let t = this.nowMs();
    for (const kb of wanted) {
      t += this.secondsPerPatch * 1000;
      this.whileAlive(device, t, () => {
        const patch = device.patches.find((p) => p.kb === kb);
        if (!patch) lines.push(`PATCHBAY ${kb} NOT_OFFERED`);
        else if (patch.installedAt !== null) lines.push(`PATCHBAY ${kb} ALREADY_INSTALLED`);
        else if (this.installPatch(device, patch)) lines.push(`PATCHBAY ${kb} INSTALLED`);
        else {
          failed = true;
          lines.push(`PATCHBAY ${kb} FAILED ${patch.hidden.failsWith}`);
        }
      });
    }
    this.whileAlive(device, t + 5_000, () => {
      device.busy = false;
      lines.push(`PATCHBAY REBOOT_REQUIRED ${device.needsReboot ? 'YES' : 'NO'}`);
      this.activity(device, { ...base, statusCode: 'COMPLETED', activityResult: failed ? 'FAILURE' : 'SUCCESS', message: lines.join('\n') });
    });
  }

  private rebootNow(device: Device, by: 'api' | 'policy'): void {
    this.delivered.push({ at: new Date(this.nowMs()).toISOString(), deviceId: device.id, what: 'reboot', by });
    this.whileAlive(device, this.nowMs() + 5_000, () => {
      device.online = false;
      device.life++;
      device.busy = false;
      const upAt = this.nowMs() + this.rebootSeconds * 1000;
      this.at(upAt, () => {
        device.online = true;
        device.lastBootTime = seconds(upAt);
        device.needsReboot = false;
        this.activity(device, { activityType: 'SYSTEM', statusCode: 'SYSTEM_REBOOTED', message: `${device.systemName} rebooted` });
      });
    });
  }

  // ---- HTTP ----

  /** Answers one request as NinjaOne would. `url` includes the query string; `body` is the raw text. */
  handle(method: string, url: string, headers: Record<string, string | string[] | undefined>, body: string): NinjaAnswer {
    this.settle();
    const answer = this.answer(method, url, headers, body);
    if (this.requests.length >= 20_000) this.requests.splice(0, 1_000);
    if (this.record) {
      const shown = url.startsWith('/ws/oauth/token') ? '[form]' : parseJson(body);
      this.requests.push({ at: this.now().toISOString(), method, path: url, body: shown, status: answer === 'timeout' ? 'timeout' : answer.status });
    }
    return answer;
  }

  private answer(method: string, url: string, headers: Record<string, string | string[] | undefined>, body: string): NinjaAnswer {
    const fault = this.faults.find((f) => f.left > 0 && (!f.match || f.match.test(`${method} ${url}`)));
    if (fault) fault.left--;
    const faulty = (): NinjaAnswer => {
      if (fault!.status === 'timeout') return 'timeout';
      const retry = fault!.retryAfterSeconds !== undefined ? { 'retry-after': String(fault!.retryAfterSeconds) } : undefined;
      return { status: fault!.status, body: fault!.status === 429 ? { error: 'Too Many Requests' } : '<h1>Bad Gateway</h1>', ...(retry ? { headers: retry } : {}) };
    };
    if (fault && (fault.when ?? 'before') === 'before') return faulty();
    const answer = this.routeAuthenticated(method, url, headers, body);
    return fault ? faulty() : answer;
  }

  private routeAuthenticated(method: string, url: string, headers: Record<string, string | string[] | undefined>, body: string): NinjaAnswer {
    const { pathname, searchParams } = new URL(url, 'http://ninjaone.invalid');
    if (pathname === '/ws/oauth/token' && method === 'POST') return this.issueToken(body);
    const auth = String(headers.authorization ?? '');
    const token = this.tokens.get(auth.replace(/^Bearer /, ''));
    if (!auth.startsWith('Bearer ') || !token || token.expiresAt <= this.nowMs()) return { status: 401, body: { error: 'Unauthorized', error_description: 'Invalid or expired token' } };
    const path = pathname.replace(/^\/api\/v2\//, '/v2/');
    const write = method !== 'GET';
    if (write && !token.scopes.has('management') && !token.scopes.has('control')) return { status: 403, body: { error: 'Forbidden', error_description: 'insufficient scope' } };
    return this.route(method, path, searchParams, parseJson(body));
  }

  private issueToken(body: string): NinjaAnswer {
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'client_credentials') return { status: 400, body: { error: 'unsupported_grant_type' } };
    if (form.get('client_id') !== this.clientId || form.get('client_secret') !== this.clientSecret) return { status: 401, body: { error: 'invalid_client' } };
    const asked = (form.get('scope') ?? '').split(/\s+/).filter(Boolean);
    if (asked.includes('offline_access')) return { status: 400, body: { error: 'invalid_scope' } };
    const granted = new Set(asked.filter((s) => this.scopes.has(s)));
    const accessToken = randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, '');
    this.tokens.set(accessToken, { expiresAt: this.nowMs() + this.tokenSeconds * 1000, scopes: granted });
    return { status: 200, body: { access_token: accessToken, token_type: 'Bearer', expires_in: this.tokenSeconds, scope: [...granted].join(' ') } };
  }

  private route(method: string, path: string, query: URLSearchParams, body: unknown): NinjaAnswer {
    if (method === 'GET' && path === '/v2/devices') return { status: 200, body: this.devicePage(query).map((d) => this.deviceJson(d)) };
    if (method === 'GET' && path === '/v2/devices-detailed') return { status: 200, body: this.devicePage(query).map((d) => this.deviceDetailJson(d)) };
    if (method === 'GET' && path === '/v2/organizations') return { status: 200, body: keysetPage([...this.organizations].map(([name, id]) => ({ id, name })), query) };
    if (method === 'GET' && path === '/v2/automation/scripts') {
      return { status: 200, body: [{ id: this.installScriptId, name: 'Install-PatchbayKBs', language: 'powershell', operatingSystems: ['Windows'], active: true }] };
    }
    const locations = /^\/v2\/organization\/(\d+)\/locations$/.exec(path);
    if (method === 'GET' && locations) return { status: 200, body: this.locationsOf(Number(locations[1])) };
    if (method === 'GET' && path === '/v2/queries/os-patch-installs') return this.patchInstallReport(query);
    const match = /^\/v2\/device\/(\d+)(?:\/(.+))?$/.exec(path);
    if (!match) return { status: 404, body: { error: 'Not Found' } };
    const device = this.devices.get(Number(match[1]));
    if (!device) return { status: 404, body: { error: 'Device not found' } };
    return this.deviceRoute(method, match[2] ?? '', device, query, body);
  }

  private deviceRoute(method: string, rest: string, device: Device, query: URLSearchParams, body: unknown): NinjaAnswer {
    const key = `${method} ${rest}`;
    if (key === 'GET ') return { status: 200, body: this.deviceDetailJson(device) };
    if (key === 'GET activities') return { status: 200, body: this.activitiesJson(device, query) };
    if (key === 'GET os-patches') return { status: 200, body: this.pendingPatches(device, query.get('status')) };
    if (key === 'GET os-patch-installs') return { status: 200, body: this.patchInstalls(device, query) };
    if (key === 'PUT maintenance') return this.setMaintenance(device, body);
    if (key === 'DELETE maintenance') {
      device.maintenance = undefined;
      return { status: 204 };
    }
    if (key === 'POST script/run') return this.scriptRun(device, body);
    if (key === 'POST patch/os/scan') return this.scan(device);
    if (key === 'POST patch/os/apply') {
      const approved = device.patches.filter((p) => p.status === 'APPROVED' && p.installedAt === null);
      if (device.online && !device.busy) this.applyPatches(device, approved, 'api');
      return { status: 204 };
    }
    const reboot = /^POST reboot\/(NORMAL|FORCED)$/.exec(key);
    if (reboot) {
      if (device.online) this.rebootNow(device, 'api');
      return { status: 204 };
    }
    return { status: 404, body: { error: 'Not Found' } };
  }

  private devicePage(query: URLSearchParams): Device[] {
    return keysetPage([...this.devices.values()], query);
  }

  private locationsOf(organizationId: number) {
    return [...this.locations].filter(([, l]) => l.organizationId === organizationId).map(([key, l]) => ({ id: l.id, name: key.slice(key.indexOf('/') + 1), organizationId }));
  }

  private deviceJson(d: Device) {
    return {
      id: d.id,
      uid: d.uid,
      organizationId: d.organizationId,
      locationId: d.locationId,
      nodeClass: d.nodeClass,
      nodeRoleId: d.nodeClass === 'WINDOWS_SERVER' ? 2 : 1,
      policyId: 1,
      approvalStatus: 'APPROVED',
      offline: !d.online,
      displayName: d.systemName,
      systemName: d.systemName,
      dnsName: `${d.systemName.toLowerCase()}.corp.example`,
      created: seconds(Date.parse('2025-01-01T00:00:00Z')),
      lastContact: seconds(d.lastContact),
      lastUpdate: seconds(d.lastContact),
      ...(d.maintenance ? { maintenance: this.maintenanceJson(d) } : {}),
    };
  }

  private deviceDetailJson(d: Device) {
    return {
      ...this.deviceJson(d),
      os: { name: d.osName, architecture: '64-bit', needsReboot: d.needsReboot, lastBootTime: d.lastBootTime, buildNumber: d.osBuild },
      ...(d.lastLoggedInUser ? { lastLoggedInUser: d.lastLoggedInUser } : {}),
    };
  }

  private maintenanceJson(d: Device) {
    const m = d.maintenance!;
    const nowS = seconds(this.nowMs());
    const status = nowS < m.start ? 'PENDING' : nowS < m.end ? 'IN_MAINTENANCE' : 'FAILED';
    return { status, start: m.start, end: m.end, reasonMessage: m.reasonMessage };
  }

  private activitiesJson(device: Device, query: URLSearchParams) {
    const newer = Number(query.get('newerThan') ?? 0);
    const older = query.get('olderThan') === null ? Infinity : Number(query.get('olderThan'));
    const type = query.get('activityType');
    const pageSize = Math.min(1000, Math.max(10, Number(query.get('pageSize') ?? 200)));
    const page = this.activities
      .filter((a) => a.deviceId === device.id && a.id > newer && a.id < older && (type === null || a.activityType === type))
      .sort((a, b) => b.id - a.id)
      .slice(0, pageSize);
    const newest = this.activities.filter((a) => a.deviceId === device.id).at(-1)?.id ?? 0;
    // Newest first; lastActivityId is where the next page (olderThan) starts.
    return { lastActivityId: page.at(-1)?.id ?? 0, lastNodeActivityId: newest, activities: page };
  }

  private patchJson(p: Patch, status: string) {
    return { id: p.id, name: p.name, severity: p.severity, status, type: 'SECURITY_UPDATES', kbNumber: p.kb, ...(status === 'INSTALLED' ? { installedAt: p.installedAt } : {}) };
  }

  private pendingPatches(device: Device, status: string | null) {
    return device.patches.filter((p) => p.installedAt === null && (status === null || p.status === status)).map((p) => this.patchJson(p, p.status));
  }

  private patchInstalls(device: Device, query: URLSearchParams) {
    const status = query.get('status');
    const rows = [
      ...device.patches.filter((p) => p.installedAt !== null).map((p) => this.patchJson(p, 'INSTALLED')),
      ...device.patches.filter((p) => p.installedAt === null && p.failedAt !== null).map((p) => ({ ...this.patchJson(p, 'FAILED'), installedAt: p.failedAt })),
    ];
    return rows.filter((r) => status === null || r.status === status);
  }

  /** Cursor paging: the first call snapshots the report under a cursor name; each call with it reads on. */
  private patchInstallReport(query: URLSearchParams): NinjaAnswer {
    const pageSize = Number(query.get('pageSize') ?? 100);
    const nowMs = this.nowMs();
    let name = query.get('cursor');
    if (name !== null && (!this.cursors.has(name) || this.cursors.get(name)!.expires <= nowMs)) return { status: 400, body: { error: 'Invalid or expired cursor' } };
    if (name === null) {
      name = randomUUID();
      const rows = [...this.devices.values()].flatMap((d) => this.patchInstalls(d, query).map((r) => ({ ...r, deviceId: d.id, timestamp: seconds(nowMs) })));
      this.cursors.set(name, { rows, offset: 0, expires: nowMs + 10 * 60_000 });
    }
    const cursor = this.cursors.get(name)!;
    const results = cursor.rows.slice(cursor.offset, cursor.offset + pageSize);
    cursor.offset += results.length;
    return { status: 200, body: { cursor: { name, offset: cursor.offset, count: results.length, expires: seconds(cursor.expires) }, results } };
  }

  private setMaintenance(device: Device, body: unknown): NinjaAnswer {
    const b = (body ?? {}) as { disabledFeatures?: unknown; start?: unknown; end?: unknown; reasonMessage?: unknown };
    const toSeconds = (v: unknown) => (typeof v === 'number' ? (v > 1e11 ? v / 1000 : v) : typeof v === 'string' ? seconds(Date.parse(v)) : NaN);
    const start = b.start === undefined ? seconds(this.nowMs()) : toSeconds(b.start);
    const end = toSeconds(b.end);
    const features = Array.isArray(b.disabledFeatures) ? b.disabledFeatures.map(String) : [];
    if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) return { status: 400, body: { error: 'Invalid maintenance window' } };
    if (features.some((f) => !['ALERTS', 'PATCHING', 'AVSCANS', 'TASKS'].includes(f))) return { status: 400, body: { error: 'Invalid disabled feature' } };
    device.maintenance = { start, end, disabledFeatures: features, reasonMessage: typeof b.reasonMessage === 'string' ? b.reasonMessage : '' };
    return { status: 204 };
  }

  private scriptRun(device: Device, body: unknown): NinjaAnswer {
    const b = (body ?? {}) as { type?: unknown; id?: unknown; parameters?: unknown };
    if (b.type !== 'SCRIPT' || typeof b.id !== 'number') return { status: 400, body: { error: 'Invalid script request' } };
    if (b.id !== this.installScriptId) return { status: 404, body: { error: 'Script not found' } };
    const parameters = typeof b.parameters === 'string' ? b.parameters : '';
    if (device.online) this.whileAlive(device, this.nowMs() + this.startSeconds * 1000, () => this.runInstallScript(device, parameters));
    return { status: 204 };
  }

  private scan(device: Device): NinjaAnswer {
    if (!device.online) return { status: 204 };
    this.delivered.push({ at: new Date(this.nowMs()).toISOString(), deviceId: device.id, what: 'scan', by: 'api' });
    this.activity(device, { activityType: 'PATCH_MANAGEMENT', statusCode: 'PATCH_MANAGEMENT_SCAN_STARTED' });
    this.whileAlive(device, this.nowMs() + this.scanSeconds * 1000, () => this.activity(device, { activityType: 'PATCH_MANAGEMENT', statusCode: 'PATCH_MANAGEMENT_SCAN_COMPLETED', activityResult: 'SUCCESS' }));
    return { status: 204 };
  }

  private organizationNamed(name: string): number {
    if (!this.organizations.has(name)) this.organizations.set(name, this.nextId++);
    return this.organizations.get(name)!;
  }

  private locationNamed(organizationId: number, name: string): number {
    const key = `${organizationId}/${name}`;
    if (!this.locations.has(key)) this.locations.set(key, { id: this.nextId++, organizationId });
    return this.locations.get(key)!.id;
  }

  private deviceById(id: number): Device {
    const device = this.devices.get(id);
    if (!device) throw new Error(`no device ${id}`);
    return device;
  }
}

function parseJson(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export interface RunningNinjaOneEmulator {
  emulator: NinjaOneEmulator;
  url: string;
  close(): Promise<void>;
}

/** Serves an emulator on loopback (port 0 unless given). A timeout fault holds the socket open until close. */
export async function startNinjaOneEmulator(emulator: NinjaOneEmulator, port = 0, latencyMs = 0): Promise<RunningNinjaOneEmulator> {
  const served = await serveOnLoopback((method, url, headers, body) => {
    const answer = emulator.handle(method, url, headers, body);
    if (answer === 'timeout') return 'timeout';
    return (res) => {
      const html = typeof answer.body === 'string' && answer.body.startsWith('<');
      const payload = answer.body === undefined ? '' : html ? (answer.body as string) : JSON.stringify(answer.body);
      res.writeHead(answer.status, { ...(payload === '' ? {} : { 'content-type': html ? 'text/html' : 'application/json' }), ...answer.headers });
      res.end(payload);
    };
  }, port, latencyMs);
  return { emulator, ...served };
}

/** Keyset paging as NinjaOne's lists do it: rows with ids above `after`, in id order, `pageSize` at most. */
function keysetPage<T extends { id: number }>(rows: readonly T[], query: URLSearchParams): T[] {
  const after = Number(query.get('after') ?? 0);
  const pageSize = Number(query.get('pageSize') ?? 1000);
  return rows.filter((r) => r.id > after).sort((a, b) => a.id - b.id).slice(0, pageSize);
}
