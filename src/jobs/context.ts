/**
 * What the job modules share: the context each is started with and what each returns. Its own module, so a job
 * module and the list that starts them all (./start.ts) do not import each other.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import type { Logger } from '../log.ts';
import type { Deployer } from '../adapters/deployers/port.ts';

export type Role = 'web' | 'worker' | 'scheduler';
export const ROLES: readonly Role[] = ['web', 'worker', 'scheduler'];

/** What every job module is handed; BullMQ queues and workers share the one connection settings and key prefix. */
export interface JobContext {
  config: Config;
  database: Database;
  /** For BullMQ: a connection with `maxRetriesPerRequest: null`, as workers require. */
  redis: Redis;
  prefix: string;
  log: Logger;
  roles: ReadonlySet<Role>;
  /** The one clock every job reads; the sandbox replaces it, production uses the system clock. */
  now: () => Date;
  /**
   * Set by the sandbox, whose clock runs faster than real time: how often schedulers tick (real ms), and how many
   * real ms a wait until a clock instant takes. Production leaves both to each module's defaults.
   */
  pace?: { tickMs: number; realDelayMs: (until: Date, now: Date) => number };
  /** Where runs go. Default: a simulated fleet on the context's clock, until a real device manager is configured. */
  deployer?: Deployer;
}

export interface RunningJobs {
  close(): Promise<void>;
}

/**
 * A job module: starts its schedulers when the process has the `scheduler` role and its workers when it has the
 * `worker` role, and returns something to close on shutdown.
 */
export type JobModule = (context: JobContext) => Promise<RunningJobs>;
