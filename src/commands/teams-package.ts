export async function teamsPackageCommand(options: { out: string; domain?: string[]; name: string; json?: boolean }): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const { loadConfig } = await import('../config.ts');
  const { CliError } = await import('./cli-error.ts');
  const { teamsPackage, teamsManifest } = await import('../bot/teams/package.ts');
  const config = loadConfig(process.env);
  if (!config.teams.appId) throw new CliError('TEAMS_APP_ID is not set: register the bot first (README: "Connecting Teams") and set TEAMS_APP_ID');
  const input = { appId: config.teams.appId, domains: options.domain ?? [], name: options.name };
  let zip: Buffer;
  try {
    zip = teamsPackage(input);
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  const out = path.resolve(options.out);
  await fs.writeFile(out, zip);
  const manifest = teamsManifest(input);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ file: out, bytes: zip.length, botId: config.teams.appId, validDomains: manifest.validDomains })}\n`);
    return;
  }
  process.stdout.write(`wrote ${out} (${zip.length} bytes): bot ${config.teams.appId}, valid domains ${JSON.stringify(manifest.validDomains)}\n`);
  if (input.domains.length === 0) process.stdout.write('note: no --domain given; add the host that serves /api/messages if Teams should open links to it\n');
}
