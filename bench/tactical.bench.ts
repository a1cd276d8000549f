/**
 * Tactical RMM through its emulator, over loopback HTTP with real PostgreSQL for the adapter's operations:
 *
 * - `tactical.sync`: 200 clients / 20,000 agents read (`GET /clients/`, `GET /agents/`) and merged into the
 *   inventory: time, peak RSS, requests;
 * - `tactical.window`: a window of agents (BENCH_TACTICAL_AGENTS, default 2,000) driven through online check,
 *   install, polls, reboot and verify with 50 ms of latency on every request, 50 at a time, against a budget of
 *   BENCH_TACTICAL_RPS (default 100) requests per second: the rate achieved as a share of the budget (target
 *   ≥ 90%), and the installs and reboots the agents received (each exactly one: none lost, none doubled).
 */
import { TacticalClient } from '../src/adapters/deployers/tactical-client.ts';
import { mergeTactical, type TacticalAgentRow, type TacticalClientRow } from '../src/adapters/deployers/tactical-sync.ts';
import { TacticalDeployer } from '../src/adapters/deployers/tactical.ts';
import type { DeviceRef, UpdateRef } from '../src/adapters/deployers/port.ts';
import { openDatabase } from '../src/db/client.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import type { Inventory } from '../src/domain/inventory.ts';
import { startTacticalEmulator, TacticalEmulator } from '../src/sandbox/emulators/tactical-emulator.ts';
import { measure, report, scratchPostgres, sized } from './lib.ts';

/** Clients of 100 agents each in the sync benchmark. */
const SYNC_CLIENTS = sized(200, 2);

const KEY = 'BENCHKEY0123456789ABCDEFGHIJKLMNOP';
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

async function benchSync(): Promise<void> {
  const emulator = new TacticalEmulator({ now: () => new Date('2024-02-14T02:00:00Z'), apiKey: KEY, record: true });
  const inventory: Inventory = { msp: { name: 'MSP', engineers: [], channel: 'C1', timezone: 'UTC', windows: {}, devices: [] }, clients: [] };
  for (let c = 0; c < SYNC_CLIENTS; c++) {
    inventory.clients.push({ id: `client-${c}`, name: `Client ${c}`, timezone: 'UTC', windows: {}, software: [], champions: [], locations: [], tacticalClient: `Client ${c}` });
    for (let a = 0; a < 100; a++) emulator.addAgent({ hostname: `C${c}-PC-${a}`, client: `Client ${c}`, site: `Site ${a % 3}` });
  }
  const server = await startTacticalEmulator(emulator);
  try {
    const client = new TacticalClient({ url: server.url, apiKey: KEY, requestsPerSecond: 100 });
    const run = await measure(async () => {
      const [clients, agents] = await Promise.all([client.get<TacticalClientRow[]>('clients/'), client.get<TacticalAgentRow[]>('agents/')]);
      return mergeTactical(inventory, clients, agents);
    });
    const devices = run.result.inventory.clients.reduce((n, c) => n + c.locations.reduce((m, l) => m + l.devices.length, 0), 0);
    report(`tactical.sync.${SYNC_CLIENTS * 100}_agents`, run.ms, 'ms', 1);
    report('tactical.sync.peak_rss', run.peakRssMiB, 'MiB', 1);
    report('tactical.sync.requests', emulator.requests.length, 'requests', 1);
    if (devices !== SYNC_CLIENTS * 100) throw new Error(`sync merged ${devices} devices, expected ${SYNC_CLIENTS * 100}`);
  } finally {
    await server.close();
  }
}

async function benchWindow(): Promise<void> {
  const agents = Number(process.env.BENCH_TACTICAL_AGENTS ?? sized(2000, 20));
  const rps = Number(process.env.BENCH_TACTICAL_RPS ?? 100);
  const scratch = await scratchPostgres('tactical');
  if (!scratch) return;
  let t = Date.parse('2024-02-14T07:00:00Z');
  const emulator = new TacticalEmulator({ now: () => new Date(t), apiKey: KEY });
  const devices: DeviceRef[] = [];
  for (let i = 0; i < agents; i++) {
    const id = emulator.addAgent({ hostname: `PC-${i}`, client: 'Contoso' });
    for (const u of UPDATES) emulator.addUpdate(id, { kb: u.kb! });
    devices.push({ id: i + 1, name: `PC-${i}` });
  }
  const server = await startTacticalEmulator(emulator, 0, 50);
  const database = await openDatabase({ kind: 'postgres', url: scratch.url }, { maxConnections: 10 });
  try {
    await migrateDatabase(database);
    const client = new TacticalClient({ url: server.url, apiKey: KEY, requestsPerSecond: rps });
    const deployer = new TacticalDeployer({ client, db: database.db, now: () => new Date(t) });
    const started = Date.now();
    const poll = async (d: DeviceRef, key: string) => (await deployer.status(d, key)).state;
    await pool(devices, 50, async (d) => {
      if (!(await deployer.isOnline(d))) throw new Error(`${d.name} offline`);
      await deployer.install(d, UPDATES, `${d.name}-install-1`);
    });
    t += 10 * 60_000;
    await pool(devices, 50, async (d) => void (await poll(d, `${d.name}-install-1`)));
    t += 60_000;
    await pool(devices, 50, async (d) => {
      const state = await poll(d, `${d.name}-install-1`);
      if (state !== 'succeeded') throw new Error(`${d.name} install ${state}`);
      await deployer.reboot(d, `${d.name}-reboot-1-0`);
    });
    t += 5 * 60_000;
    await pool(devices, 50, async (d) => {
      const state = await poll(d, `${d.name}-reboot-1-0`);
      if (state !== 'succeeded') throw new Error(`${d.name} reboot ${state}`);
      const verified = await deployer.verify(d, UPDATES);
      if (verified.missing.length > 0 || verified.rebootPending) throw new Error(`${d.name} verify ${JSON.stringify(verified)}`);
    });
    const seconds = (Date.now() - started) / 1000;
    const achieved = client.sent / seconds;
    report(`tactical.window.${agents}_agents.requests_per_second`, achieved, 'req/s', achieved / rps);
    report(`tactical.window.${agents}_agents.requests`, client.sent, 'requests', client.sent / agents);
    const ids = devices.map((d) => emulator.agentIdOf(d.name));
    const installs = ids.map((id) => emulator.installsDelivered(id));
    const reboots = ids.map((id) => emulator.rebootsDelivered(id));
    report(`tactical.window.${agents}_agents.lost`, installs.filter((n) => n === 0).length + reboots.filter((n) => n === 0).length, 'operations', 0);
    report(`tactical.window.${agents}_agents.doubled`, installs.filter((n) => n > 1).length + reboots.filter((n) => n > 1).length, 'operations', 0);
  } finally {
    await database.close();
    await server.close();
    await scratch.drop();
  }
}

export default async function tacticalBench(): Promise<void> {
  await benchSync();
  await benchWindow();
}
