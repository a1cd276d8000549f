import { defineConfig } from 'drizzle-kit';

// Generation only: migrations are applied by `patchbay migrate` (src/db/migrate.ts), never by drizzle-kit push.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations',
});
