/**
 * The MSP's world as an inventory file describes it, after validation. The parser that builds it from
 * YAML (with file/line-accurate errors) lives in src/inventory; this is the model everything else uses.
 */
import type { WindowRule } from './window-spec.ts';

export type DeviceClass = string; // `desktop`, `server`, or any other name an MSP uses
export type Ring = 'msp' | 'pilot' | 'broad';

export interface InventoryDevice {
  name: string;
  class: DeviceClass;
  /** `msp` for the MSP's own devices; a client's are `pilot` or `broad` (the default). */
  ring: Ring;
  /** The OS product name as Microsoft writes it in the CVRF product tree. */
  os: string | undefined;
  /** The primary user's email, lower-cased. */
  user: string | undefined;
  /** The machine's own IANA zone, when its device manager says it: its windows open in that local time. */
  timezone?: string;
  /** Set when the machine came from a device manager's sync rather than the inventory file. */
  syncedFrom?: 'tactical' | 'ninjaone';
}

export interface InventoryChampion {
  email: string | undefined;
  teamsId: string | undefined;
  name: string | undefined;
}

/** One of a client's people, for linking a synced machine to whoever is logged in on it. */
export interface InventoryUser {
  email: string;
  /** Lower-cased, without a domain: `jane` for `CONTOSO\jane`. Default: the part of the email before the @. */
  windowsUser?: string;
}

export interface InventoryLocation {
  id: string;
  name: string | undefined;
  devices: InventoryDevice[];
}

/**
 * A client's optional behaviour, stored in `clients.settings` and read by the rollout, Teams and DM jobs.
 * Only what the file says is set; a key the file leaves out falls back to the job's default.
 */
export interface ClientSettings {
  /** The client's own Slack channel for window summaries (the engineers' channel always gets them too). */
  slackChannel?: string;
  /** The client's Microsoft 365 tenant: a Teams install from it is linked to this client. */
  teamsTenantId?: string;
  /** Where the client's end users get their "save your work" messages. */
  chatPlatform?: 'slack' | 'teams';
  /** HH:MM, local to the user: when that message goes out on the day of the window. */
  dmTime?: string;
  dmTemplate?: string;
  maxDeferralsPerRelease?: number;
  /** Hours before a window that a device's user must have been sent the "save your work" DM; default 4. */
  noticeHours?: number;
  /** Opt-in: the pilot counts as confirmed this many hours after it finished if no champion answered. */
  autoConfirmHours?: number;
  /** At most this many of the client's runs at once. */
  runConcurrency?: number;
  /** The client's patch policy: days a missing Critical (Important) update may stay missing; default 15 (30). */
  slaCriticalDays?: number;
  slaImportantDays?: number;
  /** Day of the month (1–28, so every month has it) the monthly compliance report goes out; unset: none. */
  reportDay?: number;
}

/** The settings keys the inventory owns: an import sets these and removes any the file no longer names. */
export const CLIENT_SETTING_KEYS = [
  'slackChannel',
  'teamsTenantId',
  'chatPlatform',
  'dmTime',
  'dmTemplate',
  'maxDeferralsPerRelease',
  'noticeHours',
  'autoConfirmHours',
  'runConcurrency',
  'slaCriticalDays',
  'slaImportantDays',
  'reportDay',
] as const satisfies ReadonlyArray<keyof ClientSettings>;

/**
 * The MSP's own knobs, stored in `msp.settings` and read by the rollout engine. A key the file leaves out falls
 * back to the engine's default (soak 24 h, no overall limit, flagged after 3 missed windows).
 */
export interface MspInventorySettings {
  /** Hours ring msp soaks after it finished before Promote to pilot is offered. */
  soakHours?: number;
  /** At most this many runs at once across every client and the MSP's own machines. */
  runConcurrency?: number;
  /** A device that misses this many windows in a row is flagged for the engineers. */
  missedWindowLimit?: number;
}

/** The msp.settings keys the inventory owns; the rest (e.g. when the directory was last synced) the bot keeps. */
export const MSP_SETTING_KEYS = ['soakHours', 'runConcurrency', 'missedWindowLimit'] as const satisfies ReadonlyArray<keyof MspInventorySettings>;

export interface InventoryClient {
  id: string;
  name: string;
  timezone: string;
  /** Window per device class; a device whose class has no window here is never scheduled (reported by import). */
  windows: Record<DeviceClass, WindowRule>;
  software: string[];
  champions: InventoryChampion[];
  locations: InventoryLocation[];
  /** People the file lists on their own (`users:`), beyond the devices' users and the champions. */
  users?: InventoryUser[];
  /** Absent when the file sets none. */
  settings?: ClientSettings;
  /** The client's Tactical RMM client (its name, or its numeric id): its agents are this client's devices. */
  tacticalClient?: string;
  /** The client's NinjaOne organization (its name, or its numeric id): its devices are this client's devices. */
  ninjaoneOrganization?: string;
}

export interface InventoryMsp {
  name: string;
  /** Slack user ids allowed to approve, hold and promote. */
  engineers: string[];
  /** Slack channel id for the engineers. */
  channel: string;
  timezone: string;
  windows: Record<DeviceClass, WindowRule>;
  devices: InventoryDevice[];
  /** Absent when the file sets none. */
  settings?: MspInventorySettings;
}

export interface Inventory {
  msp: InventoryMsp;
  clients: InventoryClient[];
}
