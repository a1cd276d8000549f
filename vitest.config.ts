import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: integration suites each start their own Redis/Postgres schema; keep parallelism modest.
    maxWorkers: 2,
  },
});
