import type { Command } from 'commander';

/**
 * The command table: every command's name, arguments, options and help, and nothing else. Its action imports the
 * command's module when that command runs, so `patchbay --help` loads commander alone and `patchbay windows` never
 * loads Bolt, the Teams SDK, BullMQ or PGlite. A new command: its module exports the action, its entry goes here.
 */
export function registerCommands(program: Command): void {
  program
    .command('start')
    .description('migrate the database, then run the bot: HTTP (Slack, Teams, health), job workers and schedulers')
    .option('--role <roles>', 'what this process runs: web, worker, scheduler, or all (comma-separated)', 'all')
    .option('--port <port>', 'HTTP port (overrides PORT)')
    .action(async (options) => (await import('./start.ts')).startCommand(options));

  program
    .command('migrate')
    .description('apply database migrations (under an advisory lock, so it is safe beside starting workers)')
    .option('--json', 'print the outcome as JSON')
    .action(async (options) => (await import('./migrate.ts')).migrateCommand(options));

  program
    .command('import')
    .description('load the inventory file (MSP, clients, locations, devices); idempotent, retires what left the file')
    .argument('<file>', 'inventory YAML file')
    .option('--dry-run', 'validate and show what would change, writing nothing')
    .option('--json', 'print the outcome as JSON')
    .action(async (file: string, options) => (await import('./import.ts')).importCommand(file, options));

  program
    .command('generate-inventory')
    .description('write a realistic, made-up inventory of any size (the same seed gives the same file), for trials and benchmarks')
    .option('--clients <n>', 'number of clients', '20')
    .option('--devices <n>', "client devices in total (the MSP's own few test machines come on top)", '1000')
    .option('--seed <n>', 'random seed', '1')
    .option('--out <file>', 'write to this file instead of standard output')
    .action(async (flags) => (await import('./generate-inventory.ts')).generateInventoryCommand(flags));

  registerDigest(program);
  registerWindows(program);

  program
    .command('teams-package')
    .description('write the Teams app package (manifest with the bot id and valid domains, icons) for a Teams admin to upload')
    .option('--out <file>', 'where to write the zip', 'patchbay-teams.zip')
    .option('--domain <host...>', 'the public host(s) Teams reaches /api/messages on, e.g. patchbay.example-msp.com')
    .option('--name <name>', 'the app name people see in Teams', 'patchbay')
    .option('--json', 'print what was written as JSON')
    .action(async (options) => (await import('./teams-package.ts')).teamsPackageCommand(options));

  program
    .command('demo')
    .description('play a whole patch month on the local sandbox in a few minutes: digest, approval, rings, sign-off, DMs, results')
    .option('--cvrf <file>', 'a stored MSRC CVRF v3 JSON to play (default: the sample release for --month)')
    .option('--month <release>', 'the sample month to play, e.g. 2026-Dec (default: the next Patch Tuesday\u2019s)')
    .option('--port <port>', 'HTTP port for the sandbox page (default PORT or 3000; a free one if that is taken)')
    .option('--data-dir <dir>', 'where the database and Redis live (default: a fresh temp dir, removed at the end)')
    .option('--keep', 'keep the data dir at the end (the path is printed)')
    .option('--speed <rate>', 'clock ms per real ms while maintenance windows run', '600')
    .option('--json', 'print the summary as JSON on stdout (progress stays on stderr)')
    .action(async (options) => (await import('./demo.ts')).runDemoCommand(options));

  registerDevices(program);

  const report = program
    .command('report')
    .description('write the patch compliance report of a client (or all) for a period, as CSV, JSON, PDF or a chart PNG')
    .option('--client <id>', 'the client id, or "all"')
    .option('--period <month>', 'a month like 2026-Dec (default: this month, so far)')
    .option('--from <date>', 'first day of a custom period, e.g. 2026-11-01 (with --to)')
    .option('--to <date>', 'last day of a custom period, included')
    .option('--format <format>', 'csv (per device, and per device × update), json (the whole model), pdf (the report with its evidence) or png (the chart)')
    .option('--out <dir>', 'folder to write the files into', '.')
    .addHelpText('after', "\nSLA days are the client's own policy (client settings slaCriticalDays, slaImportantDays; defaults 15 and 30).")
    .action(async (options) => (await import('./report.ts')).reportCommand(options));
  // `report fetch ID --out FILE`: the subcommand's --out, not the report folder's (the program's too, src/cli.ts).
  report.enablePositionalOptions();
  report
    .command('list')
    .description('list the report files patchbay sent (newest first): id, client, period, kind, file, size, SHA-256, to whom')
    .option('--client <id>', 'only this client')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'as JSON')
    .action(async (options) => (await import('./report.ts')).reportListCommand(options));
  report
    .command('fetch <id>')
    .description('write an archived report file exactly as it was sent, after checking it against its SHA-256')
    .option('--out <file>', 'write to this file (default: standard output)')
    .action(async (id: string, options) => (await import('./report.ts')).reportFetchCommand(id, options));

  registerAudit(program);
}

const AUDIT_RANGE_HELP = 'a UTC date (2026-12-01; as --to the whole day is included) or an instant (2026-12-01T08:00:00Z)';

/** `patchbay audit export|verify`: the audit log as evidence a HIPAA auditor can re-check (./audit.ts). */
function registerAudit(program: Command): void {
  const audit = program.command('audit').description('the audit log as evidence: export a range with its hash chain, verify the chain');
  audit
    .command('export')
    .description('write the audit rows of a range (up to six years and more) as CSV or JSONL, each row with prev_hash and row_hash')
    .option('--from <date>', `first day or instant (default: the first row); ${AUDIT_RANGE_HELP}`)
    .option('--to <date>', 'last day (included) or instant (excluded); default: now')
    .option('--format <format>', 'csv (with FILE.manifest.json beside it) or jsonl (header and trailer lines)')
    .option('--out <file>', "file to write (default: standard output; a CSV's manifest then goes to standard error)")
    .addHelpText('after', '\nThe export is one contiguous piece of the chain: `patchbay audit verify --file FILE` re-checks it without the database.')
    .action(async (options) => (await import('./audit.ts')).exportAction(options));
  audit
    .command('verify')
    .description('recompute the hash chain from the database (or an exported file) and name the first broken link')
    .option('--from <date>', `check only the rows from this day or instant; ${AUDIT_RANGE_HELP}`)
    .option('--to <date>', 'check only the rows up to this day (included) or instant (excluded)')
    .option('--file <export>', 'verify an export (.csv with its .manifest.json, or .jsonl) offline instead of the database')
    .action(async (options) => (await import('./audit.ts')).verifyAction(options));
}

function registerDigest(program: Command): void {
  program
    .command('digest')
    .description('build the Patch Tuesday digest from a CVRF document (offline, no database) or from the database')
    .option('--cvrf <file>', 'MSRC CVRF v3 JSON document (path, file:// or http(s) URL)')
    .option('--release <id>', 'render a stored release (e.g. 2024-Feb) with the stored notes, KEV catalog and inventory')
    .option('--post', 'with --cvrf: store the document (and --kev) in the database and queue the digest for Slack; `patchbay start` delivers it')
    .option('--fetch [id]', "fetch a month (default: the latest published) from MSRC_API_URL and KEV_URL, store it and queue the digest, as the watcher would")
    .option('--kev <file>', 'CISA KEV catalog JSON (path or URL)')
    .option('--inventory <file>', 'inventory YAML: match updates to the fleet and flag conflicts')
    .option('--notes <file>', 'research notes: JSON array of {kb, text, tags, author, at}')
    .option('--json', 'print the digest as JSON')
    .option('--text', 'print the digest as plain text (the default)')
    .option('--blocks', 'print Slack messages: [{text, blocks}], the channel post first, then its thread')
    .option('--card', 'print the Teams Adaptive Card 1.5 summary')
    .option('--interactive', 'with --blocks: include Approve/Hold/Add note buttons')
    .option('--now <iso>', 'the time the digest is made at (default: now); decides KEV overdue flags')
    .action(async (options) => (await import('./digest.ts')).digestCommand(options));
}

function registerWindows(program: Command): void {
  program
    .command('windows')
    .description('list the real maintenance windows a rule gives in a time zone, DST nights included')
    .option('--tz <zone>', 'IANA time zone of the client (or the MSP), e.g. America/Chicago')
    .option('--window <spec>', 'window rule, e.g. "daily 01:00-05:00", "sun 01:00-05:00", "mon-fri 22:00-02:00"')
    .option('--from <iso>', 'list windows ending after this instant; without an offset it is read in --tz (default: now)')
    // 1000: MAX_COUNT in ./windows.ts, which checks it.
    .option('--count <n>', 'how many windows (1-1000)', '7')
    .option('--json', 'print [{"start", "end"}] with ISO 8601 offsets')
    .addHelpText(
      'after',
      '\nA start in a skipped hour opens when the gap ends; a start in a repeated hour takes its first occurrence and\n' +
        'an end its second. So "daily 01:00-05:00" in America/Chicago is 3h on spring-forward night and 5h on fall-back.',
    )
    .action(async (options) => (await import('./windows.ts')).windowsCommand(options));
}

/**
 * `patchbay devices`: the machines patchbay patches. `check [--fix]` says which devices patchbay may drive and why
 * not the others (Tactical: every agent's effective patch policy; NinjaOne: what its API lets be read);
 * `sync FILE` takes the devices of the file's linked clients from the device manager; `list` shows what patchbay
 * manages and where each machine comes from.
 */
function registerDevices(program: Command): void {
  const devices = program.command('devices').description('the machines patchbay patches, as the device manager (Tactical RMM or NinjaOne) knows them');
  devices
    .command('check')
    .description('check every device: Tactical RMM refused policies (auto-approve, auto-install, auto-reboot); NinjaOne the install script; both unmapped OS names')
    .option('--fix', "Tactical RMM: set refused agents' policy to manual approval, no install days, reboot never (audited)")
    .option('--json', 'print the result as JSON')
    .action(async (options) => (await import('./devices.ts')).checkAction(options));
  devices
    .command('sync')
    .description("take the devices of the inventory's linked clients (tactical_client, ninjaone_organization) from the device manager, then import like `patchbay import`")
    .argument('<file>', 'inventory YAML file (windows, rings, champions, settings; clients linked with tactical_client or ninjaone_organization)')
    .option('--dry-run', 'show what would change, writing nothing')
    .option('--json', 'print the outcome as JSON')
    .action(async (file: string, options) => (await import('./devices.ts')).syncAction(file, options));
  devices
    .command('list')
    .description('the machines patchbay manages: from where (the inventory file, Tactical RMM or NinjaOne), online, last seen, OS as MSRC names it, ring, user')
    .option('--client <id>', "only this client's machines (msp: the MSP's own)")
    .option('--json', 'print the list as JSON')
    .action(async (options) => (await import('./devices.ts')).listAction(options));
}
