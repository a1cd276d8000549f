/**
 * NinjaOne through its emulator, over loopback HTTP with real PostgreSQL for the adapter's operations:
 *
 * - `ninjaone.sync`: 200 organizations / 20,000 devices read (organizations, each linked one's locations, devices in
 *   keyset pages) and merged into the inventory, as `patchbay devices sync` does: time, peak RSS, requests;
 * - `ninjaone.list`: 20,000 devices read through keyset pages (`GET /v2/devices?after=`), as the adapter does to
 *   address devices by name: time, peak RSS, requests; the ratio against the same pages answered by the emulator
 *   in process (no HTTP, no client), so it reads as what the wire and the client cost on top;
 * - `ninjaone.window`: a window of devices (BENCH_NINJAONE_DEVICES, default 2,000) driven through online check,
 *   install (maintenance, activity floor, script), polls, reboot and verify with 50 ms of latency on every request
 *   and a 429 (Retry-After: 1) every 500th, 50 at a time, against a budget of BENCH_NINJAONE_RPS (default 200)
 *   requests per second: the rate achieved as a share of the budget (target ≥ 90%), and the script runs and reboots
 *   the devices received (each exactly one: none lost, none doubled).
 */
import { NinjaOneClient } from '../src/adapters/deployers/ninjaone-client.ts';
import { readNinjaOneSync } from '../src/adapters/deployers/ninjaone-sync-read.ts';
import type { Inventory } from '../src/domain/inventory.ts';
import { NinjaOneDeployer } from '../src/adapters/deployers/ninjaone.ts';
import type { DeviceRef, UpdateRef } from '../src/adapters/deployers/port.ts';
import { openDatabase } from '../src/db/client.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { NinjaOneEmulator, startNinjaOneEmulator } from '../src/sandbox/emulators/ninjaone-emulator.ts';
import { measure, report, scratchPostgres, sized } from './lib.ts';

/** Organizations of 100 devices each in the sync and list benchmarks. */
const ORGANIZATIONS = sized(200, 2);
const LISTED = ORGANIZATIONS * 100;

const CLIENT_ID = 'bench-client';
const CLIENT_SECRET = 'BENCH-secret-0123456789abcdefghijklmnop';
const SCRIPT_ID = 42;
const UPDATES: UpdateRef[] = [
  { key: '5034765', kb: '5034765', restartRequired: 'Yes' },
  { key: '5034439', kb: '5034439', restartRequired: 'Yes' },
];

async function pool<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

/** The same keyset walk the adapter makes, asked of the emulator directly: the in-process baseline. */
function listInProcess(emulator: NinjaOneEmulator): number {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: CLIENT_SECRET, scope: 'monitoring' });
  const token = emulator.handle('POST', '/ws/oauth/token', {}, form.toString());
  if (token === 'timeout') throw new Error('no token');
  const authorization = `Bearer ${(token.body as { access_token: string }).access_token}`;
  let seen = 0;
  for (let after = 0; ; ) {
    const answer = emulator.handle('GET', `/v2/devices?pageSize=1000&after=${after}`, { authorization }, '');
    if (answer === 'timeout' || answer.status !== 200) throw new Error('listing failed');
    const page = answer.body as Array<{ id: number }>;
    seen += page.length;
    if (page.length < 1000) return seen;
    after = page.at(-1)!.id;
  }
}

async function benchSync(): Promise<void> {
  const emulator = new NinjaOneEmulator({ now: () => new Date('2024-02-14T02:00:00Z'), clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, installScriptId: SCRIPT_ID, record: false });
  const inventory: Inventory = { msp: { name: 'MSP', engineers: [], channel: 'C1', timezone: 'UTC', windows: {}, devices: [] }, clients: [] };
  for (let c = 0; c < ORGANIZATIONS; c++) {
    inventory.clients.push({ id: `client-${c}`, name: `Client ${c}`, timezone: 'UTC', windows: {}, software: [], champions: [], locations: [], ninjaoneOrganization: `Client ${c}` });
    for (let a = 0; a < 100; a++) emulator.addDevice({ systemName: `C${c}-PC-${a}`, organization: `Client ${c}`, location: `Site ${a % 3}` });
  }
  const server = await startNinjaOneEmulator(emulator);
  try {
    const client = new NinjaOneClient({ url: server.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, requestsPerSecond: 100 });
    const run = await measure(() => readNinjaOneSync(client, inventory));
    const devices = run.result.inventory.clients.reduce((n, c) => n + c.locations.reduce((m, l) => m + l.devices.length, 0), 0);
    report(`ninjaone.sync.${LISTED}_devices`, run.ms, 'ms', 1);
    report('ninjaone.sync.peak_rss', run.peakRssMiB, 'MiB', 1);
    report('ninjaone.sync.requests', client.sent, 'requests', 1);
    if (devices !== LISTED) throw new Error(`sync merged ${devices} devices, expected ${LISTED} (problems: ${run.result.problems.slice(0, 3).join('; ')})`);
  } finally {
    await server.close();
  }
}

async function benchList(): Promise<void> {
  const scratch = await scratchPostgres('ninjaone_list');
  if (!scratch) return;
  const emulator = new NinjaOneEmulator({ now: () => new Date('2024-02-14T02:00:00Z'), clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, installScriptId: SCRIPT_ID, record: false });
  for (let c = 0; c < ORGANIZATIONS; c++) for (let a = 0; a < 100; a++) emulator.addDevice({ systemName: `C${c}-PC-${a}`, organization: `Client ${c}`, location: `Site ${a % 3}` });
  const baseline = await measure(() => listInProcess(emulator));
  if (baseline.result !== LISTED) throw new Error(`in process: ${baseline.result} devices, expected ${LISTED}`);
  const server = await startNinjaOneEmulator(emulator);
  const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 2 });
  try {
    await migrateDatabase(database);
    const client = new NinjaOneClient({ url: server.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, requestsPerSecond: 100 });
    const deployer = new NinjaOneDeployer({ client, db: database.db, installScriptId: SCRIPT_ID });
    // The last device's name is found only once every page is read.
    const run = await measure(() => deployer.isOnline({ id: 1, name: `C${ORGANIZATIONS - 1}-PC-99` }));
    if (!run.result) throw new Error('the last device was not found online');
    report(`ninjaone.list.${LISTED}_devices`, run.ms, 'ms', run.ms / baseline.ms);
    report('ninjaone.list.peak_rss', run.peakRssMiB, 'MiB', run.peakRssMiB / baseline.peakRssMiB);
    report('ninjaone.list.requests', client.sent, 'requests', 1);
  } finally {
    await database.close();
    await server.close();
    await scratch.drop();
  }
}

/** Every `every`th request is answered 429 with Retry-After: 1, as a NinjaOne that has had enough would. */
function throttleEvery(emulator: NinjaOneEmulator, every: number): { refused: () => number } {
  const handle = emulator.handle.bind(emulator);
  let seen = 0;
  let refused = 0;
  emulator.handle = (method, url, headers, body) => {
    if (++seen % every === 0) emulator.inject({ status: 429, retryAfterSeconds: 1 });
    const answer = handle(method, url, headers, body);
    if (answer !== 'timeout' && answer.status === 429) refused++;
    return answer;
  };
  return { refused: () => refused };
}

async function driveWindow(deployer: NinjaOneDeployer, devices: DeviceRef[], advance: (minutes: number) => void): Promise<void> {
  const state = async (d: DeviceRef, key: string) => (await deployer.status(d, key)).state;
  await pool(devices, 50, async (d) => {
    if (!(await deployer.isOnline(d))) throw new Error(`${d.name} offline`);
    await deployer.install(d, UPDATES, `${d.name}-install-1`);
  });
  advance(10);
  await pool(devices, 50, async (d) => {
    const installed = await state(d, `${d.name}-install-1`);
    if (installed !== 'succeeded') throw new Error(`${d.name} install ${installed}`);
    await deployer.reboot(d, `${d.name}-reboot-1-0`);
  });
  advance(5);
  await pool(devices, 50, async (d) => {
    const rebooted = await state(d, `${d.name}-reboot-1-0`);
    if (rebooted !== 'succeeded') throw new Error(`${d.name} reboot ${rebooted}`);
    const verified = await deployer.verify(d, UPDATES);
    if (verified.missing.length > 0 || verified.rebootPending) throw new Error(`${d.name} verify ${JSON.stringify(verified)}`);
  });
}

async function benchWindow(): Promise<void> {
  const count = Number(process.env.BENCH_NINJAONE_DEVICES ?? sized(2000, 20));
  const rps = Number(process.env.BENCH_NINJAONE_RPS ?? 200);
  const scratch = await scratchPostgres('ninjaone');
  if (!scratch) return;
  let t = Date.parse('2024-02-14T07:00:00Z');
  const now = () => new Date(t);
  const emulator = new NinjaOneEmulator({ now, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, installScriptId: SCRIPT_ID, record: false });
  const devices: DeviceRef[] = [];
  for (let i = 0; i < count; i++) {
    const id = emulator.addDevice({ systemName: `PC-${i}` });
    for (const u of UPDATES) emulator.addPatch(id, { kb: u.kb! });
    devices.push({ id: i + 1, name: `PC-${i}` });
  }
  const throttle = throttleEvery(emulator, 500);
  const server = await startNinjaOneEmulator(emulator, 0, 50);
  const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 10 });
  try {
    await migrateDatabase(database);
    const client = new NinjaOneClient({ url: server.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, requestsPerSecond: rps, retries: 5, now });
    const deployer = new NinjaOneDeployer({ client, db: database.db, now, installScriptId: SCRIPT_ID });
    const started = Date.now();
    await driveWindow(deployer, devices, (minutes) => (t += minutes * 60_000));
    const achieved = client.sent / ((Date.now() - started) / 1000);
    const name = `ninjaone.window.${count}_devices`;
    report(`${name}.requests_per_second`, achieved, 'req/s', achieved / rps);
    report(`${name}.requests`, client.sent, 'requests', client.sent / count);
    report(`${name}.throttled`, throttle.refused(), 'requests', throttle.refused() / client.sent);
    const ids = devices.map((d) => emulator.deviceIdOf(d.name));
    const scripts = ids.map((id) => emulator.count(id, 'script', 'api'));
    const reboots = ids.map((id) => emulator.count(id, 'reboot', 'api'));
    report(`${name}.lost`, scripts.filter((n) => n === 0).length + reboots.filter((n) => n === 0).length, 'operations', 0);
    report(`${name}.doubled`, scripts.filter((n) => n > 1).length + reboots.filter((n) => n > 1).length, 'operations', 0);
  } finally {
    await database.close();
    await server.close();
    await scratch.drop();
  }
}

export default async function ninjaoneBench(): Promise<void> {
  await benchSync();
  await benchList();
  await benchWindow();
}
