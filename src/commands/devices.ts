import { userInfo } from 'node:os';
import type { Config } from '../config.ts';
import type { AgentCheck, CheckOptions } from '../adapters/deployers/tactical-check.ts';
import type { Inventory } from '../domain/inventory.ts';
import type { DeviceSource } from '../jobs/device-sync.ts';

function whoRuns(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

async function managerConfig(what: string): Promise<Config> {
  const { loadConfig } = await import('../config.ts');
  const { CliError } = await import('./cli-error.ts');
  const config = loadConfig(process.env);
  if (config.deployer.kind === 'simulated') {
    throw new CliError(`${what} reads the device manager: set DEPLOYER=tactical (TACTICAL_URL, TACTICAL_API_KEY) or DEPLOYER=ninjaone (NINJAONE_URL, NINJAONE_CLIENT_ID, NINJAONE_CLIENT_SECRET, NINJAONE_INSTALL_SCRIPT_ID)`, 2);
  }
  return config;
}

/** `--fix` gives the refused agents a policy that does nothing by itself, each change in the audit log. */
export async function checkAction(options: { fix?: boolean; json?: boolean }): Promise<void> {
  const config = await managerConfig('devices check');
  if (config.deployer.kind === 'ninjaone') return checkNinjaOneAction(config, options);
  const { CliError } = await import('./cli-error.ts');
  const { TacticalHttpError } = await import('../adapters/deployers/tactical-client.ts');
  const { checkAgents, renderCheck } = await import('../adapters/deployers/tactical-check.ts');
  const { tacticalClientFor } = await import('../jobs/device-sync.ts');
  const client = tacticalClientFor(config)!;
  const fix = options.fix ?? false;
  const run = async (onFixed?: CheckOptions['onFixed']) => {
    try {
      return await checkAgents(client, { fix, ...(onFixed ? { onFixed } : {}) });
    } catch (error) {
      if (error instanceof TacticalHttpError && error.status === 403) {
        throw new CliError(`${error.message}: the API key's role needs can_list_agents${fix ? ' and can_edit_agent (for --fix)' : ''}`);
      }
      throw new CliError(client.redact((error as Error).message));
    }
  };
  const checks = fix ? await checkAndFix(config, run) : await run();
  process.stdout.write(options.json ? `${JSON.stringify({ agents: checks })}\n` : renderCheck(checks, fix));
  if (checks.some((c) => c.problems.length > 0)) process.exitCode = 1;
}

/** NinjaOne's API cannot change a policy's patching, so there is nothing for `--fix` to do: it says so. */
async function checkNinjaOneAction(config: Config, options: { fix?: boolean; json?: boolean }): Promise<void> {
  const { CliError } = await import('./cli-error.ts');
  if (options.fix) throw new CliError("devices check --fix: NinjaOne's API cannot change a policy's patching; set it in NinjaOne (see README, Connecting NinjaOne)", 2);
  const { checkNinjaOne, renderNinjaOneCheck } = await import('../adapters/deployers/ninjaone-check.ts');
  const { ninjaOneClientFor } = await import('../jobs/device-sync.ts');
  const client = ninjaOneClientFor(config)!;
  const installScriptId = config.deployer.kind === 'ninjaone' ? config.deployer.installScriptId : 0;
  let check;
  try {
    check = await checkNinjaOne(client, installScriptId);
  } catch (error) {
    throw new CliError(`reading NinjaOne failed: ${client.redact((error as Error).message)}`);
  }
  process.stdout.write(options.json ? `${JSON.stringify(check)}\n` : renderNinjaOneCheck(check));
  if (!check.installScript.found) process.exitCode = 1;
}

async function checkAndFix(config: Config, run: (onFixed: NonNullable<CheckOptions['onFixed']>) => Promise<AgentCheck[]>): Promise<AgentCheck[]> {
  const { withCommandDatabase } = await import('../db/for-command.ts');
  const { migrateDatabase } = await import('../db/migrate.ts');
  const { appendAudit } = await import('../db/audit-repo.ts');
  const actor = whoRuns();
  return withCommandDatabase(config, async (database) => {
    await migrateDatabase(database);
    return run((check) =>
      appendAudit(database.db, {
        at: new Date(),
        actor,
        action: 'tactical.policy_fixed',
        subject: `tactical-agent:${check.agentId}`,
        detail: { hostname: check.hostname, client: check.client, site: check.site, before: check.fixed?.before ?? [] },
        source: 'cli',
      }),
    );
  });
}

/** The same sync as the daily job's (src/jobs/device-sync.ts), every Tactical agent's time zone read again. */
export async function syncAction(file: string, options: { dryRun?: boolean; json?: boolean }): Promise<void> {
  const config = await managerConfig('devices sync');
  const { deviceSourceFor } = await import('../jobs/device-sync.ts');
  const source = deviceSourceFor(config)!;
  const { CliError } = await import('./cli-error.ts');
  const { readInventory, renderChanges } = await import('./import.ts');
  const checked = await readInventory(file);
  if (!checked.ok) {
    for (const problem of checked.problems) process.stderr.write(`${problem}\n`);
    throw new CliError(`${checked.count} problem${checked.count === 1 ? '' : 's'} in ${file}; nothing was written`);
  }
  const dryRun = options.dryRun ?? false;
  const { synced, changes } = dryRun ? await dryRunSync(config, source, checked.inventory, file) : await applySync(config, source, file);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ file, dryRun, added: synced.added, unmapped: synced.unmapped, unlinked: synced.unlinked, problems: synced.problems, ...changes })}\n`);
    return;
  }
  const lines = [await renderChanges(`${file} + ${source.manager}`, { ok: true, changes, dryRun })];
  if (synced.added.length > 0) lines.push(`new ${source.manager === 'NinjaOne' ? 'devices' : 'agents'}, ring broad (${synced.added.length}): ${synced.added.join(', ')}\n`);
  for (const u of synced.unmapped) lines.push(`unmapped OS ${u.client}/${u.device}: "${u.os}": ${u.reason}\n`);
  for (const u of synced.unlinked) lines.push(`user not linked ${u.client}/${u.device}: "${u.username}" ${u.why === 'ambiguous' ? 'matches more than one person' : 'is nobody in the inventory'}\n`);
  for (const p of synced.problems) lines.push(`problem: ${p}\n`);
  process.stdout.write(lines.join(''));
}

async function applySync(config: Config, source: DeviceSource, file: string) {
  const { CliError } = await import('./cli-error.ts');
  const { withCommandDatabase } = await import('../db/for-command.ts');
  const { migrateDatabase } = await import('../db/migrate.ts');
  const { runDeviceSync } = await import('../jobs/device-sync.ts');
  const outcome = await withCommandDatabase(config, async (database) => {
    await migrateDatabase(database);
    const ctx = { db: database.db, now: () => new Date() };
    return runDeviceSync(ctx, source, { file, rereadZones: true, actor: whoRuns(), source: 'cli' });
  });
  if (!outcome.ok) throw new CliError(`reading ${source.manager} failed: ${outcome.error}`);
  return outcome;
}

/** Writes nothing, not even a migration: reads the device manager and works out what an import would do. */
async function dryRunSync(config: Config, source: DeviceSource, inventory: Inventory, file: string) {
  const { CliError } = await import('./cli-error.ts');
  const { withCommandDatabase } = await import('../db/for-command.ts');
  const { importInventory } = await import('./import.ts');
  let synced;
  try {
    synced = await source.read(inventory, { storedZones: new Map(), rereadZones: true });
  } catch (error) {
    throw new CliError(`reading ${source.manager} failed: ${source.redact((error as Error).message)}`);
  }
  const path = await import('node:path');
  const outcome = await withCommandDatabase(config, (database) =>
    importInventory(database, synced.inventory, `${path.basename(file)} + ${source.manager}`, { dryRun: true, now: new Date(), actor: whoRuns() }),
  );
  if (!outcome.ok) throw new CliError(outcome.problems.join('\n'));
  return { synced, changes: outcome.changes };
}

export async function listAction(options: { client?: string; json?: boolean }): Promise<void> {
  const { loadConfig } = await import('../config.ts');
  const { CliError } = await import('./cli-error.ts');
  const { withCommandDatabase } = await import('../db/for-command.ts');
  const { listManagedDevices, clientExists } = await import('../db/devices-repo.ts');
  const { listRows, renderDeviceList, managerPresence } = await import('./devices-list.ts');
  const config = loadConfig(process.env);
  const stored = await withCommandDatabase(config, async (database) => {
    if (options.client !== undefined && options.client !== 'msp' && !(await clientExists(database.db, options.client))) {
      throw new CliError(`no client ${options.client} in the inventory`);
    }
    return listManagedDevices(database.db, options.client);
  });
  const presence = await managerPresence(config, stored);
  if (presence.warning) process.stderr.write(`${presence.warning}\n`);
  const rows = listRows(stored, presence.agents);
  process.stdout.write(options.json ? `${JSON.stringify({ devices: rows })}\n` : await renderDeviceList(rows));
}
