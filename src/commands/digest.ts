import type { Command } from 'commander';
import { CliError } from '../cli.ts';

interface DigestOptions {
  cvrf: string;
  kev?: string;
  inventory?: string;
  notes?: string;
  json?: boolean;
  text?: boolean;
  blocks?: boolean;
  card?: boolean;
  interactive?: boolean;
  now?: string;
}

export function register(program: Command): void {
  program
    .command('digest')
    .description('build the Patch Tuesday digest from a CVRF document, offline (no database)')
    .requiredOption('--cvrf <file>', 'MSRC CVRF v3 JSON document (path, file:// or http(s) URL)')
    .option('--kev <file>', 'CISA KEV catalog JSON (path or URL)')
    .option('--inventory <file>', 'inventory YAML: match updates to the fleet and flag conflicts')
    .option('--notes <file>', 'research notes: JSON array of {kb, text, tags, author, at}')
    .option('--json', 'print the digest as JSON')
    .option('--text', 'print the digest as plain text (the default)')
    .option('--blocks', 'print Slack messages: [{text, blocks}], the channel post first, then its thread')
    .option('--card', 'print the Teams Adaptive Card 1.5 summary')
    .option('--interactive', 'with --blocks: include Approve/Hold/Add note buttons')
    .option('--now <iso>', 'the time the digest is made at (default: now); decides KEV overdue flags')
    .action(async (options: DigestOptions) => {
      const formats = (['json', 'text', 'blocks', 'card'] as const).filter((f) => options[f]);
      if (formats.length > 1) throw new CliError(`choose one output: --${formats.join(', --')} were all given`, 2);
      const format = formats[0] ?? 'text';

      const { DateTime } = await import('luxon');
      const now = options.now === undefined ? DateTime.utc() : DateTime.fromISO(options.now, { zone: 'utc' });
      if (!now.isValid) throw new CliError(`--now: "${options.now}" is not an ISO date-time (e.g. 2024-02-14T09:00:00Z)`, 2);

      const { readRelease } = await import('../adapters/msrc/client.ts');
      const { readKevCatalog } = await import('../adapters/kev/catalog.ts');
      const { buildDigest } = await import('../domain/digest.ts');

      const failed = (what: string, error: unknown): never => {
        if (error instanceof Error && (error.name === 'DocumentError' || error.name === 'FetchError')) {
          throw new CliError(`${what}: ${error.message}`, 1);
        }
        throw error;
      };
      const release = await readRelease(options.cvrf, { attempts: 3 }).catch((e: unknown) => failed('--cvrf', e));
      const kev = options.kev === undefined ? undefined : await readKevCatalog(options.kev, { attempts: 3 }).catch((e: unknown) => failed('--kev', e));

      let inventory;
      if (options.inventory !== undefined) {
        const { readInventoryFile, formatProblem } = await import('../adapters/inventory/parse.ts');
        const parsed = await readInventoryFile(options.inventory);
        if (!parsed.ok) throw new CliError(`--inventory:\n  ${parsed.problems.map(formatProblem).join('\n  ')}`, 1);
        inventory = parsed.inventory;
      }
      const notes = options.notes === undefined ? undefined : await readNotes(options.notes);

      const digest = buildDigest({ release, kev, inventory, notes, now });
      let out: string;
      if (format === 'json') {
        out = (await import('../render/digest-json.ts')).renderDigestJson(digest);
      } else if (format === 'blocks') {
        const messages = (await import('../bot/slack/digest-blocks.ts')).renderDigestBlocks(digest, { interactive: options.interactive === true });
        out = `${JSON.stringify(messages, null, 2)}\n`;
      } else if (format === 'card') {
        out = `${JSON.stringify((await import('../bot/teams/digest-card.ts')).renderDigestCard(digest), null, 2)}\n`;
      } else {
        out = (await import('../render/digest-text.ts')).renderDigestText(digest);
      }
      await new Promise<void>((resolve, reject) => process.stdout.write(out, (error) => (error ? reject(error) : resolve())));
    });
}

async function readNotes(file: string) {
  const { readFile } = await import('node:fs/promises');
  const { z } = await import('zod');
  const { parseJsonText, formatIssues } = await import('../adapters/msrc/json-text.ts');
  const schema = z.array(
    z.object({
      kb: z.string().min(1),
      text: z.string(),
      tags: z.array(z.string()).default([]),
      author: z.string(),
      at: z.string(),
    }),
  );
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new CliError(`--notes: ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`, 1);
  }
  let json: unknown;
  try {
    json = parseJsonText(text, file);
  } catch (error) {
    throw new CliError(`--notes: ${(error as Error).message}`, 1);
  }
  const parsed = schema.safeParse(json, { reportInput: true });
  if (!parsed.success) throw new CliError(`--notes: ${file}: ${formatIssues(parsed.error.issues).join('; ')}`, 1);
  return parsed.data;
}
