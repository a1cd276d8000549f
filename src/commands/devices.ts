import { userInfo } from 'node:os';
import type { Command } from 'commander';

function whoRuns(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

/**
 * `patchbay devices check [--fix]`: reads every Tactical RMM agent's effective patch policy and says which ones
 * patchbay refuses to drive and why (Tactical would approve, install or reboot by itself), and which OS names MSRC
 * does not know. `--fix` gives those agents a policy that does nothing by itself, each change in the audit log.
 */
export function register(program: Command): void {
  const devices = program.command('devices').description('the machines patchbay patches, as the device manager (Tactical RMM) knows them');
  devices
    .command('check')
    .description('check every Tactical RMM agent: refused policies (auto-approve, auto-install, auto-reboot) and unmapped OS names')
    .option('--fix', "set refused agents' policy to manual approval, no install days, reboot never (audited)")
    .option('--json', 'print the result as JSON')
    .action(async (options: { fix?: boolean; json?: boolean }) => {
      const { loadConfig } = await import('../config.ts');
      const { CliError } = await import('./cli-error.ts');
      const { TacticalClient, TacticalHttpError } = await import('../adapters/deployers/tactical-client.ts');
      const { checkAgents, renderCheck } = await import('../adapters/deployers/tactical-check.ts');
      const config = loadConfig(process.env);
      if (config.deployer.kind !== 'tactical') throw new CliError('devices check reads Tactical RMM: set DEPLOYER=tactical, TACTICAL_URL and TACTICAL_API_KEY', 2);
      const client = new TacticalClient({ url: config.deployer.url, apiKey: config.deployer.apiKey, requestsPerSecond: config.deployer.requestsPerSecond });
      const fix = options.fix ?? false;
      const run = async (onFixed?: Parameters<typeof checkAgents>[1]['onFixed']) => {
        try {
          return await checkAgents(client, { fix, ...(onFixed ? { onFixed } : {}) });
        } catch (error) {
          if (error instanceof TacticalHttpError && error.status === 403) {
            throw new CliError(`${error.message}: the API key's role needs can_list_agents${fix ? ' and can_edit_agent (for --fix)' : ''}`);
          }
          throw new CliError(client.redact((error as Error).message));
        }
      };
      let checks;
      if (fix) {
        const { withCommandDatabase } = await import('../db/for-command.ts');
        const { migrateDatabase } = await import('../db/migrate.ts');
        const { appendAudit } = await import('../db/audit-repo.ts');
        const actor = whoRuns();
        checks = await withCommandDatabase(config, async (database) => {
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
      } else {
        checks = await run();
      }
      process.stdout.write(options.json ? `${JSON.stringify({ agents: checks })}\n` : renderCheck(checks, fix));
      if (checks.some((c) => c.problems.length > 0)) process.exitCode = 1;
    });

  devices
    .command('sync')
    .description("take the devices of the inventory's Tactical-linked clients (tactical_client) from Tactical RMM, then import like `patchbay import`")
    .argument('<file>', 'inventory YAML file (windows, rings, champions, settings; clients linked with tactical_client)')
    .option('--dry-run', 'show what would change, writing nothing')
    .option('--json', 'print the outcome as JSON')
    .action(async (file: string, options: { dryRun?: boolean; json?: boolean }) => {
      const { loadConfig } = await import('../config.ts');
      const { CliError } = await import('./cli-error.ts');
      const { TacticalClient } = await import('../adapters/deployers/tactical-client.ts');
      const { mergeTactical } = await import('../adapters/deployers/tactical-sync.ts');
      const { readInventory, importInventory, renderChanges } = await import('./import.ts');
      const { withCommandDatabase } = await import('../db/for-command.ts');
      const path = await import('node:path');
      const config = loadConfig(process.env);
      if (config.deployer.kind !== 'tactical') throw new CliError('devices sync reads Tactical RMM: set DEPLOYER=tactical, TACTICAL_URL and TACTICAL_API_KEY', 2);
      const checked = await readInventory(file);
      if (!checked.ok) {
        for (const problem of checked.problems) process.stderr.write(`${problem}\n`);
        throw new CliError(`${checked.count} problem${checked.count === 1 ? '' : 's'} in ${file}; nothing was written`);
      }
      const client = new TacticalClient({ url: config.deployer.url, apiKey: config.deployer.apiKey, requestsPerSecond: config.deployer.requestsPerSecond });
      let synced;
      try {
        const [clients, agents] = await Promise.all([client.get<Parameters<typeof mergeTactical>[1]>('clients/'), client.get<Parameters<typeof mergeTactical>[2]>('agents/')]);
        synced = mergeTactical(checked.inventory, clients, agents);
      } catch (error) {
        throw new CliError(`reading Tactical RMM failed: ${client.redact((error as Error).message)}`);
      }
      const dryRun = options.dryRun ?? false;
      const outcome = await withCommandDatabase(config, (database) =>
        importInventory(database, synced.inventory, `${path.basename(file)} + Tactical RMM`, { dryRun, now: new Date(), actor: whoRuns() }),
      );
      if (!outcome.ok) throw new CliError(outcome.problems.join('\n'));
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ file, dryRun, added: synced.added, unmapped: synced.unmapped, problems: synced.problems, ...outcome.changes })}\n`);
        return;
      }
      const lines = [await renderChanges(`${file} + Tactical RMM`, outcome)];
      if (synced.added.length > 0) lines.push(`new agents, ring broad (${synced.added.length}): ${synced.added.join(', ')}\n`);
      for (const u of synced.unmapped) lines.push(`unmapped OS ${u.client}/${u.device}: "${u.os}": ${u.reason}\n`);
      for (const p of synced.problems) lines.push(`problem: ${p}\n`);
      process.stdout.write(lines.join(''));
    });
}
