import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Picks PostgreSQL or (when none answers and none was asked for) PGlite, once per run: test/support/test-backend.ts.
    globalSetup: ['test/support/global-setup.ts'],
    // Two cores: integration suites each start their own Redis/Postgres schema; keep parallelism modest.
    maxWorkers: 2,
  },
});
