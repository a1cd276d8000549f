/**
 * Runs once per `vitest run`, before any test file: picks the database backend and hands it to the workers
 * through PATCHBAY_TEST_DB (vitest builds the workers' environment from process.env after global setup; the unit
 * test test-backend.test.ts checks that the value arrived).
 */
import { chooseTestBackend } from './test-backend.ts';

export default async function setup(): Promise<void> {
  const choice = await chooseTestBackend(process.env);
  process.env.PATCHBAY_TEST_DB = choice.backend;
  if (choice.notice) console.log(choice.notice);
}
