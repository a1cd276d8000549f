import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules', '.data', 'migrations', 'coverage', 'test-results'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // The sandbox page runs in the browser as a plain ES module, with no build step.
    files: ['src/sandbox/page/**/*.js'],
    languageOptions: { globals: globals.browser, sourceType: 'module' },
  },
  {
    // The domain is pure: it must not reach for I/O or the outer layers.
    files: ['src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: ['**/db/**', '**/jobs/**', '**/bot/**', '**/adapters/**', '**/config*', 'node:fs*', 'node:net', 'node:http*', 'bullmq', 'ioredis', 'postgres', 'drizzle-orm*', '@slack/*', '@microsoft/*'],
      }],
      'no-restricted-globals': ['error', { name: 'process', message: 'The domain takes what it needs as arguments.' }],
    },
  },
  {
    // Repositories are below the use-cases and the chat: they take rendered payloads or return data, never import up.
    files: ['src/db/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: ['**/bot/**', '**/chat/**', '**/use-cases/**', '**/jobs/**', '**/sandbox/**', '**/commands/**', '@slack/*', '@microsoft/*'],
      }],
    },
  },
);
