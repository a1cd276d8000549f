/**
 * A Tactical RMM emulator on loopback, a real test database and a controlled clock, with adapters on them: what
 * the Tactical contract and trap tests share.
 */
import { TacticalDeployer, type CrashPoint } from '../../src/adapters/deployers/tactical.ts';
import { TacticalClient } from '../../src/adapters/deployers/tactical-client.ts';
import { startTacticalEmulator, TacticalEmulator, type RunningTacticalEmulator } from '../../src/sandbox/emulators/tactical-emulator.ts';
import { openTestDatabase, type TestDatabase } from './db.ts';

export const TEST_API_KEY = 'TESTKEY0123456789ABCDEFGHIJKLMNOPQRSTUV';

export interface TacticalWorld {
  emulator: TacticalEmulator;
  server: RunningTacticalEmulator;
  database: TestDatabase;
  now(): Date;
  advance(ms: number): void;
  /** A new adapter (a new worker) on the same database and emulator. */
  adapter(options?: { crashAt?: (point: CrashPoint) => void; apiKey?: string; timeoutMs?: number; retries?: number }): TacticalDeployer;
  close(): Promise<void>;
}

export async function openTacticalWorld(database?: TestDatabase): Promise<TacticalWorld> {
  let nowMs = Date.parse('2024-02-14T02:00:00Z');
  const now = () => new Date(nowMs);
  const emulator = new TacticalEmulator({ now, apiKey: TEST_API_KEY });
  const server = await startTacticalEmulator(emulator);
  const db = database ?? (await openTestDatabase());
  return {
    emulator,
    server,
    database: db,
    now,
    advance(ms) {
      nowMs += ms;
    },
    adapter(options = {}) {
      const client = new TacticalClient({
        url: server.url,
        apiKey: options.apiKey ?? TEST_API_KEY,
        requestsPerSecond: 10_000,
        timeoutMs: options.timeoutMs ?? 2_000,
        retries: options.retries ?? 3,
        sleep: async () => {},
      });
      return new TacticalDeployer({ client, db: db.db, now, ...(options.crashAt ? { crashAt: options.crashAt } : {}) });
    },
    async close() {
      await server.close();
      if (!database) await db.close();
    },
  };
}
