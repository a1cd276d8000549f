/** The digest command's options and output formats: shared by `digest` and its database half (digest-db.ts), which would otherwise import each other. */
export interface DigestOptions {
  cvrf?: string;
  release?: string;
  post?: boolean;
  fetch?: string | boolean;
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

export type DigestFormat = 'json' | 'text' | 'blocks' | 'card';

export async function renderDigest(digest: import('../domain/digest.ts').Digest, format: DigestFormat, interactive: boolean): Promise<string> {
  if (format === 'json') return (await import('../render/digest-json.ts')).renderDigestJson(digest);
  if (format === 'blocks') {
    const messages = (await import('../chat/slack/digest-blocks.ts')).renderDigestBlocks(digest, { interactive });
    return `${JSON.stringify(messages, null, 2)}\n`;
  }
  if (format === 'card') return `${JSON.stringify((await import('../chat/teams/digest-card.ts')).renderDigestCard(digest), null, 2)}\n`;
  return (await import('../render/digest-text.ts')).renderDigestText(digest);
}
