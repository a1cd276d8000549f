/**
 * A NinjaOne emulator on loopback, a real test database and a controlled clock, with adapters on them: what the
 * NinjaOne contract and trap tests share.
 */
import { NinjaOneDeployer, type NinjaCrashPoint } from '../../src/adapters/deployers/ninjaone.ts';
import { NinjaOneClient } from '../../src/adapters/deployers/ninjaone-client.ts';
import { NinjaOneEmulator, startNinjaOneEmulator, type NinjaOneEmulatorOptions, type RunningNinjaOneEmulator } from '../../src/sandbox/emulators/ninjaone-emulator.ts';
import { openTestDatabase, type TestDatabase } from './db.ts';

export const TEST_CLIENT_ID = 'patchbay-test-client';
export const TEST_CLIENT_SECRET = 'S3CRET-ninja-0123456789abcdefghijklmnop';
export const INSTALL_SCRIPT_ID = 42;

export interface NinjaOneWorld {
  emulator: NinjaOneEmulator;
  server: RunningNinjaOneEmulator;
  database: TestDatabase;
  now(): Date;
  advance(ms: number): void;
  /** Every wait the clients were asked to make (Retry-After, backoff), in ms. */
  sleeps: number[];
  /** A new adapter (a new worker) on the same database and emulator. */
  adapter(options?: { crashAt?: (point: NinjaCrashPoint) => void; clientSecret?: string; timeoutMs?: number; retries?: number }): NinjaOneDeployer;
  close(): Promise<void>;
}

export async function openNinjaOneWorld(database?: TestDatabase, emulatorOptions: Partial<NinjaOneEmulatorOptions> = {}): Promise<NinjaOneWorld> {
  let nowMs = Date.parse('2024-02-14T02:00:00Z');
  const now = () => new Date(nowMs);
  const emulator = new NinjaOneEmulator({ now, clientId: TEST_CLIENT_ID, clientSecret: TEST_CLIENT_SECRET, installScriptId: INSTALL_SCRIPT_ID, ...emulatorOptions });
  const server = await startNinjaOneEmulator(emulator);
  const db = database ?? (await openTestDatabase());
  const sleeps: number[] = [];
  return {
    emulator,
    server,
    database: db,
    now,
    sleeps,
    advance(ms) {
      nowMs += ms;
    },
    adapter(options = {}) {
      const client = new NinjaOneClient({
        url: server.url,
        clientId: TEST_CLIENT_ID,
        clientSecret: options.clientSecret ?? TEST_CLIENT_SECRET,
        requestsPerSecond: 10_000,
        timeoutMs: options.timeoutMs ?? 2_000,
        retries: options.retries ?? 3,
        now,
        sleep: async (ms) => {
          sleeps.push(ms);
        },
      });
      return new NinjaOneDeployer({ client, db: db.db, now, installScriptId: INSTALL_SCRIPT_ID, ...(options.crashAt ? { crashAt: options.crashAt } : {}) });
    },
    async close() {
      await server.close();
      if (!database) await db.close();
    },
  };
}
