import { CliError } from './cli-error.ts';
import { renderDigest, type DigestOptions } from './digest-format.ts';

export { renderDigest, type DigestFormat, type DigestOptions } from './digest-format.ts';


export async function digestCommand(options: DigestOptions): Promise<void> {
  const formats = (['json', 'text', 'blocks', 'card'] as const).filter((f) => options[f]);
  if (formats.length > 1) throw new CliError(`choose one output: --${formats.join(', --')} were all given`, 2);
  const format = formats[0] ?? 'text';
  const sources = (['cvrf', 'release', 'fetch'] as const).filter((f) => options[f] !== undefined && options[f] !== false);
  if (sources.length !== 1) {
    throw new CliError(
      sources.length === 0 ? 'say what to digest: --cvrf FILE, --release ID or --fetch' : `choose one of --${sources.join(', --')}`,
      2,
    );
  }
  if (options.post && options.cvrf === undefined) throw new CliError('--post stores a document: give it with --cvrf FILE (--fetch stores on its own)', 2);
  if ((options.release !== undefined || options.fetch !== undefined) && (options.inventory || options.notes)) {
    throw new CliError('--inventory and --notes are for --cvrf; a stored release uses the imported inventory and the stored notes', 2);
  }
  if (options.release !== undefined && options.kev) throw new CliError('--kev is for --cvrf; a stored release uses the stored KEV catalog', 2);

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
  if (options.release !== undefined || options.fetch !== undefined || options.post) {
    const { fromDatabase } = await import('./digest-db.ts');
    const out = await fromDatabase({ ...options, format, now, failed });
    await new Promise<void>((resolve, reject) => process.stdout.write(out, (error) => (error ? reject(error) : resolve())));
    return;
  }
  const release = await readRelease(options.cvrf!, { attempts: 3 }).catch((e: unknown) => failed('--cvrf', e));
  const kev = options.kev === undefined ? undefined : await readKevCatalog(options.kev, { attempts: 3 }).catch((e: unknown) => failed('--kev', e));

  let inventory;
  if (options.inventory !== undefined) {
    const { readInventoryFile, formatProblems } = await import('../adapters/inventory/parse.ts');
    const parsed = await readInventoryFile(options.inventory);
    if (!parsed.ok) throw new CliError(`--inventory:\n  ${formatProblems(parsed).join('\n  ')}`, 1);
    inventory = parsed.inventory;
  }
  const notes = options.notes === undefined ? undefined : await readNotes(options.notes);

  const digest = buildDigest({ release, kev, inventory, notes, now });
  const out = await renderDigest(digest, format, options.interactive === true);
  await new Promise<void>((resolve, reject) => process.stdout.write(out, (error) => (error ? reject(error) : resolve())));
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
