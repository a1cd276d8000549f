import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startPrivateRedis, type PrivateRedis } from '../../src/runtime/redis-server.ts';

export interface TestRedis extends PrivateRedis {
  /** A BullMQ key prefix unique to this test run, for suites that share an instance. */
  prefix: string;
  dir: string;
}

/**
 * Every test file that needs Redis gets its own redis-server on a free port, so two runs (or two files) never see
 * each other's keys, and a test may kill it to simulate losing Redis.
 */
export async function startTestRedis(options: { appendOnly?: boolean } = {}): Promise<TestRedis> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchbay-redis-'));
  const server = await startPrivateRedis({ dir, appendOnly: options.appendOnly ?? false });
  return {
    ...server,
    dir,
    prefix: `pbtest${process.pid}${Math.random().toString(36).slice(2, 8)}`,
    async stop() {
      await server.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
