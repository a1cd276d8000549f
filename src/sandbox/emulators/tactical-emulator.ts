/**
 * A Tactical RMM emulator: the REST surface patchbay drives, written from Tactical's own source
 * (amidaware/tacticalrmm @ 2195c3b, `api/tacticalrmm/...`; agent amidaware/rmmagent @ 3a2c23f), as
 * ../shared/research/device-backends.md §1 and §5 read it. Independent of src/adapters: it is the oracle the
 * Tactical adapter is tested against, so it copies Tactical's behaviours, traps included:
 *
 * - `X-API-KEY` (tacticalrmm/auth.py): none → 401 "Authentication credentials were not provided.", unknown →
 *   401 "Invalid token."; a missing role permission → 403 (DRF's default text). Errors a view builds itself are
 *   HTTP 400 with a bare JSON string (helpers.notify_error); unknown agent or row → 404 with Django's message
 *   ({"detail":"No Agent matches the given query."}, DRF 3.15); a method the view lacks → 405.
 * - Every route ends in `/`; `<agent:agent_id>` only matches ids of 21+ characters (tacticalrmm/urls.py). A path
 *   no urlpattern matches is Django's HTML 404, before any key is looked at.
 * - Online is computed from `last_seen` (agents/models.py Agent.status: online within offline_time=4 min, offline
 *   until overdue_time=30, then overdue). A connected agent says hello, so its last_seen follows the clock; an
 *   agent that went away still shows online for up to 4 minutes.
 * - `POST /winupdate/{agent}/install/` (winupdate/views.py): drops superseded duplicates, auto-approves every
 *   not-installed row whose severity the effective policy marks `approve`, then publishes `installwinupdates`
 *   with every approved, not-installed GUID, fire-and-forget: to a disconnected agent it is simply lost, and a
 *   second one while the agent installs is dropped (rmmagent installWinUpdateLocker). The agent installs one GUID
 *   after another, each result arriving as it finishes (apiv3 WinUpdates.patch: success → installed, failure →
 *   result "failed", no error code); a GUID Windows Update no longer offers is deleted (apiv3 SupersededWinUpdate);
 *   ~5 s after the loop it reports needs_reboot (apiv3 WinUpdates.put), and the server reboots the agent at once
 *   when the policy's reboot_after_install is `always`, or `required` and a reboot is needed.
 * - `POST /agents/{agent}/reboot/`: 400 "Unable to contact the agent" when it does not answer, else "ok" and the
 *   machine goes down 5 s later; when the agent service starts again it checks in (hello + agentinfo after a 7–25 s
 *   delay, rmmagent agent/svc.go), and only then does the server see the new `boot_time` and `needs_reboot`.
 *
 * Time comes from the injected `now()` (the sandbox clock or a test's), and everything the agents do is an event
 * on that clock, processed whenever a request arrives (or `settle()` is called). Faults on demand: 5xx answers and
 * timeouts, before or after the request took effect. Every request can be recorded for assertions.
 */
import { createHash } from 'node:crypto';
import { DateTime } from 'luxon';
import { EventClock } from './event-clock.ts';
import { serveOnLoopback } from './loopback.ts';

export type Severity = 'Critical' | 'Important' | 'Moderate' | 'Low' | '';
type Approval = 'manual' | 'approve' | 'ignore' | 'inherit';

/** winupdate/models.py WinUpdatePolicy, as its serializer answers it (fields="__all__"). */
export interface WinUpdatePolicy {
  id: number;
  agent: number | null;
  policy: number | null;
  critical: Approval;
  important: Approval;
  moderate: Approval;
  low: Approval;
  other: Approval;
  run_time_hour: number;
  run_time_frequency: 'daily' | 'monthly' | 'inherit';
  run_time_days: number[];
  run_time_day: number;
  reboot_after_install: 'never' | 'required' | 'always' | 'inherit';
  reprocess_failed_inherit: boolean;
  reprocess_failed: boolean;
  reprocess_failed_times: number;
  email_if_fail: boolean;
}

/** What a fresh agent-level policy row holds (every choice `inherit`, model defaults). */
export function defaultPolicy(id: number, agent: number | null): WinUpdatePolicy {
  return {
    id,
    agent,
    policy: null,
    critical: 'inherit',
    important: 'inherit',
    moderate: 'inherit',
    low: 'inherit',
    other: 'inherit',
    run_time_hour: 3,
    run_time_frequency: 'inherit',
    run_time_days: [],
    run_time_day: 1,
    reboot_after_install: 'inherit',
    reprocess_failed_inherit: true,
    reprocess_failed: false,
    reprocess_failed_times: 5,
    email_if_fail: false,
  };
}

export interface AgentSeed {
  hostname: string;
  client: string;
  site?: string;
  operatingSystem?: string;
  monitoringType?: 'workstation' | 'server';
  timeZone?: string | null;
  /** logged_in_username: "None" when nobody is logged in (the agent's own word for it). */
  loggedInUser?: string;
  /** last_logged_in_user. Default: the logged-in user, or "None". */
  lastLoggedInUser?: string;
  connected?: boolean;
  /** Agent-level policy fields (the rest stay `inherit`). */
  agentPolicy?: Partial<Omit<WinUpdatePolicy, 'id' | 'agent' | 'policy'>>;
  /** An automation policy applied to the agent (the highest-priority active one), merged as Agent.get_patch_policy does. */
  automationPolicy?: Partial<Omit<WinUpdatePolicy, 'id' | 'agent' | 'policy'>>;
}

export interface UpdateSeed {
  kb: string;
  severity?: Severity;
  title?: string;
  installed?: boolean;
  action?: 'nothing' | 'approve' | 'ignore' | 'inherit';
  /** Hidden machine truth: the install wants a restart. Default true. */
  rebootRequired?: boolean;
  /** Hidden machine truth: installing it fails. */
  fails?: boolean;
  /** Hidden machine truth: when the agent tries it, Windows Update no longer offers it (the row is deleted). */
  supersededOnInstall?: boolean;
}

export interface RecordedRequest {
  at: string;
  method: string;
  path: string;
  body: unknown;
  status: number | 'timeout';
}

export interface Fault {
  /** Only requests whose `METHOD path` matches. */
  match?: RegExp;
  /** An HTTP status (500, 502, 503…) or a timeout (the answer never comes). */
  status: number | 'timeout';
  /** `after`: the request took effect and only its answer is lost or replaced. Default `before`. */
  when?: 'before' | 'after';
  /** How many matching requests it hits. Default 1. */
  times?: number;
}

interface Agent {
  pk: number;
  agentId: string;
  hostname: string;
  clientId: number;
  siteId: number;
  operatingSystem: string;
  monitoringType: 'workstation' | 'server';
  timeZone: string | null;
  loggedInUser: string;
  lastLoggedInUser: string;
  lastSeen: number | null;
  /** Server's view (agentinfo): epoch seconds. */
  bootTime: number;
  needsReboot: boolean;
  policy: WinUpdatePolicy;
  automationPolicy: WinUpdatePolicy | null;
  /** The machine itself. */
  connected: boolean;
  /** Bumped when the agent's process ends (reboot, machine off): its pending work is dropped. */
  life: number;
  installing: boolean;
  machineBootTime: number;
  machineNeedsReboot: boolean;
  /** Stamped by the scheduled-install task only (the install endpoint leaves it alone). */
  patchesLastInstalled: number | null;
}

interface Row {
  id: number;
  agent: number;
  guid: string;
  kb: string;
  title: string;
  installed: boolean;
  downloaded: boolean;
  severity: Severity;
  action: 'nothing' | 'approve' | 'ignore' | 'inherit';
  result: 'n/a' | 'success' | 'failed';
  dateInstalled: number | null;
  hidden: { rebootRequired: boolean; fails: boolean; supersededOnInstall: boolean };
}

export interface TacticalEmulatorOptions {
  now: () => Date;
  apiKey: string;
  /** Role flags the key's user holds (agents/permissions.py, winupdate/permissions.py). Default: all of them. */
  permissions?: readonly string[];
  record?: boolean;
  /** Clock seconds the agent takes per update. Default 120. */
  secondsPerUpdate?: number;
  /** Clock seconds a machine is down for a reboot. Default 150. */
  rebootSeconds?: number;
  /** Clock seconds from the agent service starting to its first checkin. Default 20 (rmmagent: 7–25). */
  checkinSeconds?: number;
  /** Clock seconds from a scan request to the agent's report. Default 60. */
  scanSeconds?: number;
  /**
   * What Windows Update offers an agent, asked whenever its rows are read: KBs it has no row for yet appear (as a
   * scan would report them). The sandbox offers each month's KBs as its releases come out.
   */
  offers?: (agentId: string) => readonly UpdateSeed[];
  /**
   * Tactical's own Celery beat tasks (tacticalrmm/celery.py, winupdate/tasks.py), on the clock in UTC: every 8 h
   * at :02 the policy's severities are approved on every agent; every hour at :05 an online agent with approved
   * updates installs them when its policy's schedule says so. Default on: it is what an MSP's server does.
   */
  beat?: boolean;
}

export /** Agent.offline_time and overdue_time defaults (agents/models.py), minutes. */
const OFFLINE_MINUTES = 4;
const OVERDUE_MINUTES = 30;
const AGENT_VERSION = '2.9.1';
const HOUR_MS = 3_600_000;

export const ALL_PERMISSIONS = ['can_list_agents', 'can_manage_winupdates', 'can_reboot_agents', 'can_edit_agent', 'can_list_clients', 'can_manage_automation_policies'] as const;
const NO_PERMISSION = { detail: 'You do not have permission to perform this action.' };
/** Django's own 404 page (DEBUG off), for a path no urlpattern matches. */
const DJANGO_NOT_FOUND = '<h1>Not Found</h1><p>The requested resource was not found on this server.</p>';
/** get_object_or_404's Http404 message, which DRF 3.15's exception_handler passes on (rest_framework/views.py). */
const notFound = (model: string) => ({ detail: `No ${model} matches the given query.` });
/** tacticalrmm/urls.py AgentIDConverter. */
const AGENT_ID = '[^/]{20}[^/]+';

type Answer = { status: number; body: unknown } | 'timeout';

interface Route {
  path: RegExp;
  /** The role flag the view's permission class asks for this method (agents/permissions.py, winupdate/permissions.py…). */
  permission: (method: string) => string;
  methods: Record<string, (call: { id: string; query: URLSearchParams; body: unknown }) => Answer>;
}

/** agents/permissions.py AgentPerms. */
const agentPerms = (method: string) => (method === 'GET' ? 'can_list_agents' : method === 'DELETE' ? 'can_uninstall_agents' : 'can_edit_agent');

const POLICY_CHOICES: Record<string, readonly string[]> = {
  critical: ['manual', 'approve', 'ignore', 'inherit'],
  important: ['manual', 'approve', 'ignore', 'inherit'],
  moderate: ['manual', 'approve', 'ignore', 'inherit'],
  low: ['manual', 'approve', 'ignore', 'inherit'],
  other: ['manual', 'approve', 'ignore', 'inherit'],
  run_time_frequency: ['daily', 'monthly', 'inherit'],
  reboot_after_install: ['never', 'required', 'always', 'inherit'],
};

/** WinUpdatePolicySerializer's choice validation (winupdate/models.py *_CHOICES): DRF's 400 body, or undefined. */
function policyChoiceErrors(fields: Record<string, unknown>): Record<string, string[]> | undefined {
  const errors: Record<string, string[]> = {};
  for (const [field, choices] of Object.entries(POLICY_CHOICES)) {
    const value = fields[field];
    if (value !== undefined && !choices.includes(String(value))) errors[field] = [`"${String(value)}" is not a valid choice.`];
  }
  const hour = fields.run_time_hour;
  if (hour !== undefined && !(Number.isInteger(hour) && (hour as number) >= 0 && (hour as number) <= 23)) errors.run_time_hour = [`"${String(hour)}" is not a valid choice.`];
  return Object.keys(errors).length > 0 ? errors : undefined;
}

/**
 * A datetime as Python's isoformat() writes it and DRF turns "+00:00" into "Z" (rest_framework/fields.py
 * DateTimeField, utils/encoders.py): microseconds, or no fraction at all when they are zero.
 */
function pythonIso(ms: number): string {
  const iso = new Date(ms).toISOString();
  return ms % 1000 === 0 ? `${iso.slice(0, 19)}Z` : `${iso.slice(0, 23)}000Z`;
}

export class TacticalEmulator {
  readonly requests: RecordedRequest[] = [];
  record: boolean;
  private readonly now: () => Date;
  private readonly apiKey: string;
  private permissions: Set<string>;
  private readonly clients = new Map<number, { id: number; name: string; sites: Map<number, string> }>();
  private readonly agents = new Map<string, Agent>();
  private readonly rows = new Map<number, Row>();
  private readonly clock: EventClock;
  private faults: Array<Fault & { left: number }> = [];
  private nextPk = 1;
  private readonly secondsPerUpdate: number;
  private readonly rebootSeconds: number;
  private readonly checkinSeconds: number;
  private readonly scanSeconds: number;
  private readonly offers: ((agentId: string) => readonly UpdateSeed[]) | undefined;
  /** KBs an agent was offered once (a row that later vanished as superseded is not offered again). */
  private readonly offered = new Map<string, Set<string>>();
  /** What the agents were told over NATS, for assertions: installs and reboots that reached a machine. */
  readonly delivered: Array<{ at: string; agentId: string; func: 'installwinupdates' | 'rebootnow'; by: 'api' | 'policy' | 'schedule'; guids?: string[] }> = [];
  /** Beat ticks are queued as events up to this instant. Undefined: Tactical's beat tasks are off. */
  private beatUntil: number | undefined;

  constructor(options: TacticalEmulatorOptions) {
    this.now = options.now;
    this.clock = new EventClock(options.now);
    this.apiKey = options.apiKey;
    this.permissions = new Set(options.permissions ?? ALL_PERMISSIONS);
    this.record = options.record ?? true;
    this.secondsPerUpdate = options.secondsPerUpdate ?? 120;
    this.rebootSeconds = options.rebootSeconds ?? 150;
    this.checkinSeconds = options.checkinSeconds ?? 20;
    this.scanSeconds = options.scanSeconds ?? 60;
    this.offers = options.offers;
    if (options.beat ?? true) this.beatUntil = this.now().getTime();
  }

  /** Rows for what Windows Update now offers the agent that it has not offered before. */
  private offer(agent: Agent): void {
    if (!this.offers) return;
    let seen = this.offered.get(agent.agentId);
    if (!seen) this.offered.set(agent.agentId, (seen = new Set()));
    for (const seed of this.offers(agent.agentId)) {
      const kb = seed.kb.startsWith('KB') ? seed.kb : `KB${seed.kb}`;
      if (seen.has(kb)) continue;
      seen.add(kb);
      if (!this.rowsOf(agent.agentId).some((r) => r.kb === kb)) this.addUpdate(agent.agentId, seed);
    }
  }

  // ---- seeding and knobs ----

  addAgent(seed: AgentSeed): string {
    const client = this.clientNamed(seed.client);
    const siteName = seed.site ?? 'Main';
    let siteId = [...client.sites].find(([, name]) => name === siteName)?.[0];
    if (siteId === undefined) {
      siteId = this.nextPk++;
      client.sites.set(siteId, siteName);
    }
    const pk = this.nextPk++;
    // Tactical's agent ids are long random strings; a hash of the hostname keeps them stable for a seed.
    const agentId = createHash('sha256').update(`${seed.client}/${seed.hostname}`).digest('base64url').slice(0, 40);
    const nowMs = this.nowMs();
    const automation = seed.automationPolicy ? { ...defaultPolicy(this.nextPk++, null), policy: 1, ...seed.automationPolicy } : null;
    this.agents.set(agentId, {
      pk,
      agentId,
      hostname: seed.hostname,
      clientId: client.id,
      siteId,
      operatingSystem: seed.operatingSystem ?? 'Windows 11 Pro, 64 bit v23H2 (build 22631.3007)',
      monitoringType: seed.monitoringType ?? 'workstation',
      timeZone: seed.timeZone === undefined ? null : seed.timeZone,
      loggedInUser: seed.loggedInUser ?? 'None',
      lastLoggedInUser: seed.lastLoggedInUser ?? seed.loggedInUser ?? 'None',
      lastSeen: seed.connected === false ? nowMs - 60 * 60_000 : nowMs,
      bootTime: Math.floor(nowMs / 1000) - 86_400,
      needsReboot: false,
      policy: { ...defaultPolicy(this.nextPk++, pk), ...seed.agentPolicy },
      automationPolicy: automation,
      connected: seed.connected ?? true,
      life: 0,
      installing: false,
      machineBootTime: Math.floor(nowMs / 1000) - 86_400,
      machineNeedsReboot: false,
      patchesLastInstalled: null,
    });
    return agentId;
  }

  addUpdate(agentId: string, seed: UpdateSeed): number {
    const agent = this.agentById(agentId);
    const id = this.nextPk++;
    const kb = seed.kb.startsWith('KB') ? seed.kb : `KB${seed.kb}`;
    this.rows.set(id, {
      id,
      agent: agent.pk,
      guid: createHash('sha1').update(`${agentId}/${kb}/${id}`).digest('hex'),
      kb,
      title: seed.title ?? `${kb} cumulative update`,
      installed: seed.installed ?? false,
      downloaded: seed.installed ?? false,
      severity: seed.severity ?? 'Important',
      action: seed.action ?? 'nothing',
      result: 'n/a',
      dateInstalled: null,
      hidden: { rebootRequired: seed.rebootRequired ?? true, fails: seed.fails ?? false, supersededOnInstall: seed.supersededOnInstall ?? false },
    });
    return id;
  }

  /** The agent reports that Windows Update no longer offers this KB (it was superseded): its rows vanish. */
  supersede(agentId: string, kb: string): void {
    const agent = this.agentById(agentId);
    for (const row of this.rows.values()) if (row.agent === agent.pk && row.kb === (kb.startsWith('KB') ? kb : `KB${kb}`)) this.rows.delete(row.id);
  }

  /** The machine goes off the network (or comes back); work in flight on it is lost. */
  setConnected(agentId: string, connected: boolean): void {
    this.settle();
    const agent = this.agentById(agentId);
    if (agent.connected === connected) return;
    if (!connected) this.endLife(agent);
    else this.startService(agent);
  }

  setPolicy(agentId: string, fields: Partial<WinUpdatePolicy>, level: 'agent' | 'automation' = 'agent'): void {
    const agent = this.agentById(agentId);
    if (level === 'agent') agent.policy = { ...agent.policy, ...fields };
    else agent.automationPolicy = { ...(agent.automationPolicy ?? { ...defaultPolicy(this.nextPk++, null), policy: 1 }), ...fields };
  }

  setPermissions(permissions: readonly string[]): void {
    this.permissions = new Set(permissions);
  }

  inject(fault: Fault): void {
    this.faults.push({ ...fault, left: fault.times ?? 1 });
  }

  agentIdOf(hostname: string): string {
    const agent = [...this.agents.values()].find((a) => a.hostname === hostname);
    if (!agent) throw new Error(`no agent ${hostname}`);
    return agent.agentId;
  }

  /** Server-side rows of an agent, hidden truth included (for assertions). */
  rowsOf(agentId: string): Row[] {
    const agent = this.agentById(agentId);
    return [...this.rows.values()].filter((r) => r.agent === agent.pk);
  }

  installsDelivered(agentId: string): number {
    return this.delivered.filter((d) => d.agentId === agentId && d.func === 'installwinupdates').length;
  }

  rebootsDelivered(agentId: string, by?: 'api' | 'policy'): number {
    return this.delivered.filter((d) => d.agentId === agentId && d.func === 'rebootnow' && (by === undefined || d.by === by)).length;
  }

  /** The server's view of each agent (what its API would answer now), for the sandbox page and assertions. */
  agentList(): Array<{ agentId: string; hostname: string; client: string; site: string; status: string; needsReboot: boolean; bootTime: number; effectivePolicy: WinUpdatePolicy }> {
    this.settle();
    return [...this.agents.values()].map((a) => {
      const client = this.clients.get(a.clientId)!;
      return {
        agentId: a.agentId,
        hostname: a.hostname,
        client: client.name,
        site: client.sites.get(a.siteId) ?? '',
        status: this.status(a),
        needsReboot: a.needsReboot,
        bootTime: a.bootTime,
        effectivePolicy: this.effectivePolicy(a),
      };
    });
  }

  /** Runs everything the agents were due to do up to now(). */
  settle(): void {
    const nowMs = this.nowMs();
    this.queueBeat(nowMs);
    this.clock.runDue(nowMs);
    // A connected agent says hello every 30–60 s: between requests that is "just now".
    for (const agent of this.agents.values()) if (agent.connected) agent.lastSeen = nowMs;
  }

  // ---- the agent side ----

  private nowMs(): number {
    return this.clock.nowMs();
  }

  private nowIso(): string {
    return new Date(this.nowMs()).toISOString();
  }

  private at(ms: number, run: () => void): void {
    this.clock.at(ms, run);
  }

  /** While the same agent process lives: work scheduled by a process that ended is dropped. */
  private whileAlive(agent: Agent, ms: number, run: () => void): void {
    const life = agent.life;
    this.at(ms, () => {
      if (agent.life === life && agent.connected) run();
    });
  }

  private endLife(agent: Agent): void {
    // It said hello until the moment it went away.
    if (agent.connected) agent.lastSeen = this.nowMs();
    agent.connected = false;
    agent.life++;
    agent.installing = false;
  }

  private startService(agent: Agent): void {
    agent.connected = true;
    agent.life++;
    // The first checkin (hello, agentinfo) after the service's start delay.
    this.whileAlive(agent, this.nowMs() + this.checkinSeconds * 1000, () => {
      agent.bootTime = agent.machineBootTime;
      agent.needsReboot = agent.machineNeedsReboot;
    });
  }

  private rebootNow(agent: Agent, by: 'api' | 'policy'): void {
    this.delivered.push({ at: this.nowIso(), agentId: agent.agentId, func: 'rebootnow', by });
    // shutdown.exe /r /t 5 /f, after answering.
    this.whileAlive(agent, this.nowMs() + 5_000, () => {
      this.endLife(agent);
      const upAt = this.nowMs() + this.rebootSeconds * 1000;
      this.at(upAt, () => {
        agent.machineBootTime = Math.floor(upAt / 1000) + 0.5;
        agent.machineNeedsReboot = false;
        this.startService(agent);
      });
    });
  }

  private installWinUpdates(agent: Agent, guids: string[], by: 'api' | 'schedule' = 'api'): void {
    // installWinUpdateLocker: a second install while one runs is dropped by the agent.
    if (agent.installing) return;
    agent.installing = true;
    this.delivered.push({ at: this.nowIso(), agentId: agent.agentId, func: 'installwinupdates', by, guids });
    let t = this.nowMs();
    for (const guid of guids) {
      t += this.secondsPerUpdate * 1000;
      this.whileAlive(agent, t, () => this.updateResult(agent, guid));
    }
    this.whileAlive(agent, t + 5_000, () => {
      agent.installing = false;
      agent.needsReboot = agent.machineNeedsReboot;
      const reboot = this.effectivePolicy(agent).reboot_after_install;
      // apiv3 WinUpdates.put: the server reboots the machine the moment the agent says so.
      if (reboot === 'always' || (reboot === 'required' && agent.needsReboot)) this.rebootNow(agent, 'policy');
    });
  }

  private updateResult(agent: Agent, guid: string): void {
    const row = [...this.rows.values()].find((r) => r.agent === agent.pk && r.guid === guid);
    if (!row) return;
    if (row.hidden.supersededOnInstall) {
      for (const r of this.rows.values()) if (r.agent === agent.pk && r.guid === guid) this.rows.delete(r.id);
      return;
    }
    if (row.hidden.fails) {
      row.result = 'failed';
      return;
    }
    row.result = 'success';
    row.installed = true;
    row.downloaded = true;
    row.dateInstalled = this.nowMs();
    if (row.hidden.rebootRequired) agent.machineNeedsReboot = true;
  }

  // ---- the server side ----

  /** Celery beat (tacticalrmm/celery.py): crontab minute 2 of every 8th hour, and minute 5 of every hour, in UTC. */
  private queueBeat(until: number): void {
    if (this.beatUntil === undefined || until <= this.beatUntil) return;
    const from = this.beatUntil;
    for (let hour = Math.floor(from / HOUR_MS) * HOUR_MS; hour <= until; hour += HOUR_MS) {
      const approveAt = hour + 2 * 60_000;
      const installAt = hour + 5 * 60_000;
      if (new Date(hour).getUTCHours() % 8 === 0 && approveAt > from && approveAt <= until) this.at(approveAt, () => this.autoApproveTask());
      if (installAt > from && installAt <= until) this.at(installAt, () => this.scheduledInstallTask());
    }
    this.beatUntil = until;
  }

  /** winupdate/tasks.py auto_approve_updates_task: every agent's policy severities approved, then a scan of the online ones. */
  private autoApproveTask(): void {
    const rows = this.rowsByAgent();
    for (const agent of this.agents.values()) {
      this.deleteSupersededUpdates(agent, rows.get(agent.pk) ?? []);
      this.approveByPolicy(agent, rows.get(agent.pk) ?? []);
      if (agent.connected) this.offer(agent);
    }
  }

  /** One pass over every row: the beat tasks visit thousands of agents at once. */
  private rowsByAgent(): Map<number, Row[]> {
    const byAgent = new Map<number, Row[]>();
    for (const row of this.rows.values()) {
      const list = byAgent.get(row.agent);
      if (list) list.push(row);
      else byAgent.set(row.agent, [row]);
    }
    return byAgent;
  }

  /**
   * winupdate/tasks.py check_agent_update_schedule_task: an online agent with approved, not installed updates
   * installs them when its policy's schedule matches the agent's local hour, once per local date.
   */
  private scheduledInstallTask(): void {
    // The schedule is tested first here (the source reads the rows first): same outcome, without a pass over
    // every row for each of thousands of agents that have no schedule.
    for (const agent of this.agents.values()) {
      // A connected agent says hello every 30-60 s: at this instant it is online.
      if (!agent.connected) continue;
      const zone = agent.timeZone ?? 'UTC';
      const local = DateTime.fromMillis(this.nowMs(), { zone });
      if (!scheduleDue(this.effectivePolicy(agent), local)) continue;
      if (agent.patchesLastInstalled !== null && DateTime.fromMillis(agent.patchesLastInstalled, { zone }).toISODate() === local.toISODate()) continue;
      this.deleteSupersededUpdates(agent);
      const guids = this.rowsOf(agent.agentId)
        .filter((r) => r.action === 'approve' && !r.installed)
        .map((r) => r.guid);
      if (guids.length === 0) continue;
      this.installWinUpdates(agent, guids, 'schedule');
      agent.patchesLastInstalled = this.nowMs();
    }
  }

  /**
   * agents/models.py Agent.status, comparisons as written: offline when last_seen is strictly between the two
   * limits, overdue when strictly older than both; anything else (exactly at a limit included) is online.
   */
  private status(agent: Agent): 'online' | 'offline' | 'overdue' {
    if (agent.lastSeen === null) return 'offline';
    const offline = this.nowMs() - OFFLINE_MINUTES * 60_000;
    const overdue = this.nowMs() - OVERDUE_MINUTES * 60_000;
    if (agent.lastSeen < offline && agent.lastSeen > overdue) return 'offline';
    if (agent.lastSeen < offline && agent.lastSeen < overdue) return 'overdue';
    return 'online';
  }

  /** Agent.get_patch_policy: the automation policy, with the agent's non-`inherit` fields on top. */
  effectivePolicy(agent: Agent | string): WinUpdatePolicy {
    const a = typeof agent === 'string' ? this.agentById(agent) : agent;
    if (!a.automationPolicy) return a.policy;
    const merged = { ...a.automationPolicy };
    for (const field of ['critical', 'important', 'moderate', 'low', 'other'] as const) if (a.policy[field] !== 'inherit') merged[field] = a.policy[field];
    if (a.policy.run_time_frequency !== 'inherit') {
      merged.run_time_frequency = a.policy.run_time_frequency;
      merged.run_time_hour = a.policy.run_time_hour;
      merged.run_time_days = a.policy.run_time_days;
    }
    if (a.policy.reboot_after_install !== 'inherit') merged.reboot_after_install = a.policy.reboot_after_install;
    if (!a.policy.reprocess_failed_inherit) {
      merged.reprocess_failed = a.policy.reprocess_failed;
      merged.reprocess_failed_times = a.policy.reprocess_failed_times;
      merged.email_if_fail = a.policy.email_if_fail;
    }
    return merged;
  }

  /**
   * Agent.delete_superseded_updates: of rows sharing a KB whose titles carry "(Version …)", all but the newest
   * version go. Rows without a parsable version are left alone (the source skips that KB).
   */
  private deleteSupersededUpdates(agent: Agent, rows: readonly Row[] = this.rowsOf(agent.agentId)): void {
    const byKb = new Map<string, Row[]>();
    for (const row of rows) byKb.set(row.kb, [...(byKb.get(row.kb) ?? []), row]);
    for (const rows of byKb.values()) {
      if (rows.length < 2) continue;
      const versions = rows.map((r) => /\((?:Version|Versão)(.*?)\)/i.exec(r.title)?.[1]?.trim());
      if (versions.some((v) => v === undefined)) continue;
      let order;
      try {
        order = rows.map((row, i) => ({ row, version: versions[i]! })).sort((x, y) => compareLoose(x.version, y.version));
      } catch {
        continue;
      }
      for (const { row } of order.slice(0, -1)) this.rows.delete(row.id);
    }
  }

  /** Agent.approve_updates: the policy's `approve` severities, on rows not installed. */
  private approveByPolicy(agent: Agent, rows: Iterable<Row> = this.rows.values()): void {
    const policy = this.effectivePolicy(agent);
    const severities = new Set<Severity>();
    if (policy.critical === 'approve') severities.add('Critical');
    if (policy.important === 'approve') severities.add('Important');
    if (policy.moderate === 'approve') severities.add('Moderate');
    if (policy.low === 'approve') severities.add('Low');
    if (policy.other === 'approve') severities.add('');
    if (severities.size === 0) return;
    for (const row of rows) if (row.agent === agent.pk && !row.installed && severities.has(row.severity)) row.action = 'approve';
  }

  private clientNamed(name: string) {
    let client = [...this.clients.values()].find((c) => c.name === name);
    if (!client) {
      client = { id: this.nextPk++, name, sites: new Map() };
      this.clients.set(client.id, client);
    }
    return client;
  }

  private agentById(agentId: string): Agent {
    const agent = this.agents.get(agentId);
    if (!agent) throw new Error(`no agent ${agentId}`);
    return agent;
  }

  private policyJson(policy: WinUpdatePolicy) {
    return {
      ...policy,
      created_by: 'tactical',
      created_time: '2026-01-01T00:00:00Z',
      modified_by: null,
      modified_time: '2026-01-01T00:00:00Z',
    };
  }

  private rowJson(row: Row) {
    const { hidden: _hidden, dateInstalled, ...rest } = row;
    void _hidden;
    const kbNumber = row.kb.replace(/^KB/, '');
    return {
      ...rest,
      description: row.title,
      categories: ['Security Updates'],
      category_ids: [],
      kb_article_ids: [kbNumber],
      more_info_urls: [`https://support.microsoft.com/help/${kbNumber}`],
      support_url: `https://support.microsoft.com/help/${kbNumber}`,
      revision_number: 1,
      // WinUpdateSerializer: "%m %d %Y %H:%M" in the server's default time zone (UTC here).
      date_installed: dateInstalled === null ? null : formatInstalled(new Date(dateInstalled)),
    };
  }

  /** agents/serializers.py AgentTableSerializer (GET /agents/), in its Meta.fields order. */
  private agentTableJson(agent: Agent) {
    const client = this.clients.get(agent.clientId)!;
    const online = this.status(agent) === 'online';
    return {
      agent_id: agent.agentId,
      alert_template: null,
      hostname: agent.hostname,
      site_name: client.sites.get(agent.siteId),
      client_name: client.name,
      monitoring_type: agent.monitoringType,
      description: '',
      needs_reboot: agent.needsReboot,
      pending_actions_count: 0,
      status: this.status(agent),
      overdue_text_alert: false,
      overdue_email_alert: false,
      overdue_dashboard_alert: false,
      last_seen: agent.lastSeen === null ? null : pythonIso(agent.lastSeen),
      boot_time: agent.bootTime,
      checks: { total: 0, passing: 0, failing: 0, warning: 0, info: 0, has_failing_checks: false },
      maintenance_mode: false,
      // get_logged_username: nobody logged in shows the last user while online, "-" otherwise.
      logged_username: agent.loggedInUser !== 'None' ? agent.loggedInUser : online ? agent.lastLoggedInUser : '-',
      italic: agent.loggedInUser === 'None' && online,
      policy: null,
      block_policy_inheritance: false,
      plat: 'windows',
      goarch: 'amd64',
      has_patches_pending: this.rowsOf(agent.agentId).some((r) => !r.installed && r.action === 'approve'),
      version: AGENT_VERSION,
      operating_system: agent.operatingSystem,
      public_ip: '203.0.113.10',
      cpu_model: ['Emulated CPU'],
      graphics: 'Emulated graphics',
      local_ips: '10.0.0.10',
      make_model: 'Emulated',
      physical_disks: [],
      custom_fields: [],
      serial_number: agent.agentId.slice(0, 10),
    };
  }

  /** agents/serializers.py AgentSerializer (GET /agents/{agent_id}/): every model field but `id`, plus its extras. */
  private agentDetailJson(agent: Agent) {
    const client = this.clients.get(agent.clientId)!;
    const lastSeen = agent.lastSeen === null ? null : pythonIso(agent.lastSeen);
    const model = {
      version: AGENT_VERSION,
      operating_system: agent.operatingSystem,
      plat: 'windows',
      goarch: 'amd64',
      hostname: agent.hostname,
      agent_id: agent.agentId,
      services: [],
      public_ip: '203.0.113.10',
      total_ram: 16,
      disks: [],
      boot_time: agent.bootTime,
      logged_in_username: agent.loggedInUser,
      last_logged_in_user: agent.lastLoggedInUser,
      monitoring_type: agent.monitoringType,
      description: '',
      mesh_node_id: null,
      overdue_email_alert: false,
      overdue_text_alert: false,
      overdue_dashboard_alert: false,
      offline_time: OFFLINE_MINUTES,
      overdue_time: OVERDUE_MINUTES,
      check_interval: 120,
      needs_reboot: agent.needsReboot,
      choco_installed: false,
      wmi_detail: {},
      time_zone: agent.timeZone,
      maintenance_mode: false,
      block_policy_inheritance: false,
      site: agent.siteId,
      policy: null,
      default_shell: 'global',
      default_shell_custom: '',
      created_by: null,
      created_time: '2026-01-01T00:00:00Z',
      modified_by: null,
      modified_time: '2026-01-01T00:00:00Z',
    };
    return {
      ...model,
      winupdatepolicy: [this.policyJson(agent.policy)],
      status: this.status(agent),
      cpu_model: ['Emulated CPU'],
      local_ips: '10.0.0.10',
      make_model: 'Emulated',
      physical_disks: [],
      graphics: 'Emulated graphics',
      checks: { total: 0, passing: 0, failing: 0, warning: 0, info: 0, has_failing_checks: false },
      timezone: agent.timeZone ?? 'UTC',
      all_timezones: Intl.supportedValuesOf('timeZone'),
      client: client.name,
      site_name: client.sites.get(agent.siteId),
      custom_fields: [],
      patches_last_installed: agent.patchesLastInstalled === null ? null : pythonIso(agent.patchesLastInstalled),
      last_seen: lastSeen,
      // get_agent_policies: the four levels, each null or the policy (the emulator names none of them).
      applied_policies: { agent_policy: null, site_policy: null, client_policy: null, default_policy: null },
      effective_patch_policy: this.policyJson(this.effectivePolicy(agent)),
      alert_template: null,
      effective_default_shell: 'cmd',
    };
  }

  // ---- HTTP ----

  /** Answers one request as Tactical would. `path` includes the query string. */
  handle(method: string, url: string, headers: Record<string, string | string[] | undefined>, body: unknown): Answer {
    this.settle();
    const answer = this.answer(method, url, headers, body);
    // The newest 20,000: a long sandbox session must not grow without bound.
    if (this.requests.length >= 20_000) this.requests.splice(0, 1_000);
    if (this.record) this.requests.push({ at: this.now().toISOString(), method, path: url, body, status: answer === 'timeout' ? 'timeout' : answer.status });
    return answer;
  }

  private answer(method: string, url: string, headers: Record<string, string | string[] | undefined>, body: unknown): Answer {
    const { pathname, searchParams } = new URL(url, 'http://tactical.invalid');
    // Django resolves the URL before DRF authenticates: a path no urlpattern matches is its HTML 404, key or not.
    const match = this.match(pathname);
    if (!match) return { status: 404, body: DJANGO_NOT_FOUND };
    const key = headers['x-api-key'];
    if (key === undefined || key === '') return { status: 401, body: { detail: 'Authentication credentials were not provided.' } };
    if (key !== this.apiKey) return { status: 401, body: { detail: 'Invalid token.' } };
    const fault = this.faults.find((f) => f.left > 0 && (!f.match || f.match.test(`${method} ${url}`)));
    if (fault) fault.left--;
    if (fault && (fault.when ?? 'before') === 'before') return fault.status === 'timeout' ? 'timeout' : { status: fault.status, body: '<h1>Server Error</h1>' };
    const answer = this.dispatch(match, method, searchParams, body);
    if (fault) return fault.status === 'timeout' ? 'timeout' : { status: fault.status, body: '<h1>Bad Gateway</h1>' };
    return answer;
  }

  private need(permission: string): Answer | undefined {
    return this.permissions.has(permission) ? undefined : { status: 403, body: NO_PERMISSION };
  }

  /**
   * The urlpatterns the emulator serves (tacticalrmm/urls.py and each app's urls.py). `<agent:agent_id>` is
   * `[^/]{20}[^/]+`; a path without its trailing slash is a 404 here (the real server's CommonMiddleware
   * redirects it with a 301, which a client must not rely on either).
   */
  private readonly routes: Route[] = [
    { path: /^\/clients\/$/, permission: (m) => (m === 'GET' ? 'can_list_clients' : 'can_manage_clients'), methods: { GET: () => ({ status: 200, body: this.clientsJson() }) } },
    { path: /^\/agents\/$/, permission: agentPerms, methods: { GET: (c) => this.agentsJson(c.query) } },
    {
      path: new RegExp(`^/agents/(${AGENT_ID})/$`),
      permission: agentPerms,
      methods: { GET: (c) => this.withAgent(c.id, (a) => ({ status: 200, body: this.agentDetailJson(a) })), PUT: (c) => this.withAgent(c.id, (a) => this.editAgent(a, c.body)) },
    },
    {
      path: new RegExp(`^/agents/(${AGENT_ID})/ping/$`),
      permission: agentPerms,
      methods: { GET: (c) => this.withAgent(c.id, (a) => ({ status: 200, body: { name: a.hostname, status: a.connected ? 'online' : 'offline' } })) },
    },
    { path: new RegExp(`^/agents/(${AGENT_ID})/reboot/$`), permission: () => 'can_reboot_agents', methods: { POST: (c) => this.withAgent(c.id, (a) => this.reboot(a)) } },
    { path: new RegExp(`^/winupdate/(${AGENT_ID})/$`), permission: () => 'can_manage_winupdates', methods: { GET: (c) => this.withAgent(c.id, (a) => this.updatesOf(a)) } },
    { path: new RegExp(`^/winupdate/(${AGENT_ID})/scan/$`), permission: () => 'can_manage_winupdates', methods: { POST: (c) => this.withAgent(c.id, (a) => this.scan(a)) } },
    { path: new RegExp(`^/winupdate/(${AGENT_ID})/install/$`), permission: () => 'can_manage_winupdates', methods: { POST: (c) => this.withAgent(c.id, (a) => this.install(a)) } },
    { path: /^\/winupdate\/(\d+)\/$/, permission: () => 'can_manage_winupdates', methods: { PUT: (c) => this.editRow(Number(c.id), c.body) } },
    {
      path: /^\/automation\/patchpolicy\/(\d+)\/$/,
      permission: (m) => (m === 'GET' ? 'can_list_automation_policies' : 'can_manage_automation_policies'),
      methods: { PUT: (c) => this.editPolicy(Number(c.id), c.body) },
    },
  ];

  private match(pathname: string): { route: Route; id: string } | undefined {
    for (const route of this.routes) {
      const found = route.path.exec(pathname);
      if (found) return { route, id: found[1] ?? '' };
    }
    return undefined;
  }

  /** DRF's APIView: authentication, then the view's permission classes, and only then the method's handler (or 405). */
  private dispatch(match: { route: Route; id: string }, method: string, query: URLSearchParams, body: unknown): Answer {
    const denied = this.need(match.route.permission(method));
    if (denied) return denied;
    const handler = match.route.methods[method];
    if (!handler) return { status: 405, body: { detail: `Method "${method}" not allowed.` } };
    return handler({ id: match.id, query, body });
  }

  /** get_object_or_404(Agent, agent_id=…): DRF 3.15 keeps Django's message. */
  private withAgent(agentId: string, run: (agent: Agent) => Answer): Answer {
    const agent = this.agents.get(agentId);
    return agent ? run(agent) : { status: 404, body: notFound('Agent') };
  }

  private updatesOf(agent: Agent): Answer {
    this.offer(agent);
    // GetWindowsUpdates: order_by("-id", "installed").
    return { status: 200, body: this.rowsOf(agent.agentId).sort((x, y) => y.id - x.id).map((r) => this.rowJson(r)) };
  }

  /** clients/views.py GetAddClients: clients by name, each with its sites by name. */
  private clientsJson() {
    const byName = (x: { name: string }, y: { name: string }) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0);
    const audit = { server_policy: null, workstation_policy: null, alert_template: null, block_policy_inheritance: false, custom_fields: [], failing_checks: { error: false, warning: false } };
    return [...this.clients.values()].sort(byName).map((client) => ({
      id: client.id,
      name: client.name,
      ...audit,
      sites: [...client.sites]
        .map(([id, name]) => ({ id, name }))
        .sort(byName)
        .map(({ id, name }) => ({
          id,
          name,
          ...audit,
          client_name: client.name,
          client: client.id,
          agent_count: [...this.agents.values()].filter((x) => x.siteId === id).length,
          maintenance_mode: false,
        })),
      agent_count: [...this.agents.values()].filter((x) => x.clientId === client.id).length,
      maintenance_mode: false,
    }));
  }

  /** agents/views.py GetAgents: `site` wins over `client`; any `detail` other than "true" is the short list. */
  private agentsJson(query: URLSearchParams): Answer {
    const monitoringType = query.get('monitoring_type');
    if (monitoringType && monitoringType !== 'server' && monitoringType !== 'workstation') return { status: 400, body: 'monitoring type does not exist' };
    const site = query.get('site');
    const client = site === null ? query.get('client') : null;
    const list = [...this.agents.values()].filter(
      (x) => (!monitoringType || x.monitoringType === monitoringType) && (site === null || String(x.siteId) === site) && (client === null || String(x.clientId) === client),
    );
    if (query.has('detail') && query.get('detail') !== 'true') {
      return { status: 200, body: list.map((x) => ({ id: x.pk, hostname: x.hostname, agent_id: x.agentId, client: this.clients.get(x.clientId)!.name, site: this.clients.get(x.clientId)!.sites.get(x.siteId) })) };
    }
    return { status: 200, body: list.map((x) => this.agentTableJson(x)) };
  }

  private reboot(agent: Agent): Answer {
    // nats_cmd rebootnow with a 10 s timeout: a disconnected agent never answers.
    if (!agent.connected) return { status: 400, body: 'Unable to contact the agent' };
    this.rebootNow(agent, 'api');
    return { status: 200, body: 'ok' };
  }

  /**
   * ScanWindowsUpdates: delete_superseded_updates, then `getwinupdates` (fire-and-forget). The agent posts what
   * Windows Update lists and the server only upserts by GUID (apiv3 WinUpdates.post): a row it no longer lists
   * is not deleted by a scan; only an install attempt reports it superseded (apiv3 SupersededWinUpdate).
   */
  private scan(agent: Agent): Answer {
    this.offer(agent);
    this.deleteSupersededUpdates(agent);
    return { status: 200, body: `A Windows update scan will be performed on ${agent.hostname}` };
  }

  private install(agent: Agent): Answer {
    this.offer(agent);
    this.deleteSupersededUpdates(agent);
    this.approveByPolicy(agent);
    const guids = this.rowsOf(agent.agentId)
      .filter((r) => r.action === 'approve' && !r.installed)
      .map((r) => r.guid);
    // nats publish, wait=False: an agent that is not connected never hears of it.
    if (agent.connected) this.installWinUpdates(agent, guids);
    return { status: 200, body: `Approved patches will now be installed on ${agent.hostname}` };
  }

  private editRow(pk: number, body: unknown): Answer {
    const row = this.rows.get(pk);
    if (!row) return { status: 404, body: notFound('WinUpdate') };
    const action = (body as { action?: unknown } | null)?.action;
    if (action !== undefined) {
      if (action !== 'approve' && action !== 'ignore' && action !== 'nothing' && action !== 'inherit') {
        return { status: 400, body: { action: [`"${String(action)}" is not a valid choice.`] } };
      }
      row.action = action;
    }
    // WinUpdateSerializer has fields="__all__" and the view saves a partial update: `result` can be set too.
    const result = (body as { result?: unknown } | null)?.result;
    if (result === 'n/a' || result === 'success' || result === 'failed') row.result = result;
    return { status: 200, body: `Windows update ${row.kb} was changed to ${row.action}` };
  }

  /** GetUpdateDeleteAgent.put: `winupdatepolicy[0]` saved onto the agent-level row through WinUpdatePolicySerializer. */
  private editAgent(agent: Agent, body: unknown): Answer {
    const policies = (body as { winupdatepolicy?: Array<Partial<WinUpdatePolicy>> } | null)?.winupdatepolicy;
    if (policies?.[0]) {
      const invalid = policyChoiceErrors(policies[0]);
      if (invalid) return { status: 400, body: invalid };
      agent.policy = { ...agent.policy, ...policies[0], id: agent.policy.id, agent: agent.pk, policy: null };
    }
    return { status: 200, body: 'The agent was updated successfully' };
  }

  /** automation/views.py UpdatePatchPolicy.put: any WinUpdatePolicy row, the agent's own or an automation policy's. */
  private editPolicy(pk: number, body: unknown): Answer {
    const fields = (body ?? {}) as Partial<WinUpdatePolicy>;
    const invalid = policyChoiceErrors(fields);
    for (const agent of this.agents.values()) {
      for (const level of ['policy', 'automationPolicy'] as const) {
        const row = agent[level];
        if (row?.id !== pk) continue;
        if (invalid) return { status: 400, body: invalid };
        // An automation policy's row is shared by every agent it applies to.
        for (const other of this.agents.values()) if (other[level]?.id === pk) other[level] = { ...other[level]!, ...fields, id: row.id, agent: row.agent, policy: row.policy };
        return { status: 200, body: 'ok' };
      }
    }
    return { status: 404, body: notFound('WinUpdatePolicy') };
  }
}

/** The policy's schedule at this local instant, as check_agent_update_schedule_task tests it. */
function scheduleDue(policy: WinUpdatePolicy, local: DateTime): boolean {
  if (policy.run_time_frequency === 'daily') return policy.run_time_days.includes(local.weekday - 1) && policy.run_time_hour === local.hour;
  if (policy.run_time_frequency !== 'monthly') return false;
  let day = policy.run_time_day;
  // As the source has it: [3, 6, 9, 11] stands for the 30-day months (March included, April left out).
  if (day > 28) day = local.month === 2 ? 28 : [3, 6, 9, 11].includes(local.month) ? 30 : day;
  return local.day === day && policy.run_time_hour === local.hour;
}

/** distutils LooseVersion order, enough for Windows Update titles' versions ("21H2", "1.2.3"). */
function compareLoose(a: string, b: string): number {
  const parts = (v: string) => v.match(/\d+|[a-z]+/gi) ?? [];
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const [p, q] = [x[i], y[i]];
    if (p === undefined || q === undefined) return p === undefined ? -1 : 1;
    const [pn, qn] = [/^\d+$/.test(p), /^\d+$/.test(q)];
    if (pn && qn && Number(p) !== Number(q)) return Number(p) - Number(q);
    // Python 3 cannot order an int against a str: the sort raises and the source skips that KB.
    if (pn !== qn) throw new TypeError(`cannot compare ${p} and ${q}`);
    if (!pn && p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

function formatInstalled(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(date.getUTCMonth() + 1)} ${p(date.getUTCDate())} ${date.getUTCFullYear()} ${p(date.getUTCHours())}:${p(date.getUTCMinutes())}`;
}

export interface RunningTacticalEmulator {
  emulator: TacticalEmulator;
  url: string;
  close(): Promise<void>;
}

/**
 * Serves an emulator on loopback (port 0 unless given). A timeout fault holds the socket open until close.
 * `latencyMs` delays every answer (real time), as a server across the internet would.
 */
export async function startTacticalEmulator(emulator: TacticalEmulator, port = 0, latencyMs = 0): Promise<RunningTacticalEmulator> {
  const served = await serveOnLoopback((method, url, headers, text) => {
    let body: unknown = null;
    try {
      body = text === '' ? null : JSON.parse(text);
    } catch {
      body = text;
    }
    const answer = emulator.handle(method, url, headers, body);
    if (answer === 'timeout') return 'timeout';
    const payload = typeof answer.body === 'string' && answer.body.startsWith('<') ? answer.body : JSON.stringify(answer.body);
    return (res) => {
      res.writeHead(answer.status, { 'content-type': payload.startsWith('<') ? 'text/html' : 'application/json' });
      res.end(payload);
    };
  }, port, latencyMs);
  return { emulator, ...served };
}
