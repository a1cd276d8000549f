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
}

export interface InventoryChampion {
  email: string | undefined;
  teamsId: string | undefined;
  name: string | undefined;
}

export interface InventoryLocation {
  id: string;
  name: string | undefined;
  devices: InventoryDevice[];
}

export interface InventoryClient {
  id: string;
  name: string;
  timezone: string;
  /** Window per device class; a device whose class has no window here is never scheduled (reported by import). */
  windows: Record<DeviceClass, WindowRule>;
  software: string[];
  champions: InventoryChampion[];
  locations: InventoryLocation[];
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
}

export interface Inventory {
  msp: InventoryMsp;
  clients: InventoryClient[];
}
