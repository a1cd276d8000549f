/**
 * The Bot Framework's signing keys each name the channels they may sign for (`endorsements` in its JWKS). botbuilder
 * refused an activity whose `channelId` the token's key does not endorse; the Teams SDK (2.0.x) checks signature,
 * issuer, audience, expiry and service URL, but not this. Without it, a key Microsoft endorses only for another
 * channel (Web Chat, Direct Line) could sign what claims to be a champion's press in Teams.
 *
 * This runs before the SDK sees the request and decides only the endorsement: the signature and every claim stay the
 * SDK's to check, so a token this lets through is still refused by the SDK when it is not valid.
 */
import type { Logger } from '../../log.ts';

const DAY_MS = 24 * 3_600_000;
/** An unknown key id, or a failed daily read, fetches the keys again at most this often (rotations are published ahead). */
const REFETCH_MS = 5 * 60_000;
/** While no keys were ever read, a request tries again at most this often. */
const RETRY_MS = 10_000;

export interface EndorsementOptions {
  keysUrl: string;
  log: Logger;
  fetch?: typeof fetch;
  now?: () => number;
}

/** The botbuilder rule: no channel to check passes; a key without endorsements endorses nothing. */
export function endorses(endorsements: unknown, channelId: unknown): boolean {
  if (typeof channelId !== 'string' || channelId === '') return true;
  return Array.isArray(endorsements) && endorsements.includes(channelId);
}

/** The `kid` of a JWT's header, without verifying anything (the SDK does); undefined when it has none. */
export function keyIdOf(authorization: string | undefined): string | undefined {
  const token = /^Bearer (\S+)$/i.exec(authorization ?? '')?.[1];
  const header = token?.split('.')[0];
  if (!header) return undefined;
  try {
    const kid = (JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { kid?: unknown }).kid;
    return typeof kid === 'string' ? kid : undefined;
  } catch {
    return undefined;
  }
}

export class KeyEndorsements {
  private keys = new Map<string, unknown>();
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private triedAt = Number.NEGATIVE_INFINITY;
  private fetching: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: EndorsementOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * False only when the token names a published key that does not endorse the activity's channel, or when no keys
   * could ever be read (fail closed). A token without a key id, or naming a key not published, is the SDK's to refuse.
   */
  async allows(authorization: string | undefined, channelId: unknown): Promise<boolean> {
    const kid = keyIdOf(authorization);
    if (kid === undefined) return true;
    // A request arriving while the keys are being read waits for them, rather than deciding on none.
    if (this.fetching) await this.fetching;
    const loaded = Number.isFinite(this.fetchedAt);
    const wanted = this.now() - this.fetchedAt > DAY_MS || !this.keys.has(kid);
    if (wanted && this.now() - this.triedAt > (loaded ? REFETCH_MS : RETRY_MS)) await this.refresh();
    if (!Number.isFinite(this.fetchedAt)) return false;
    if (!this.keys.has(kid)) return true;
    return endorses(this.keys.get(kid), channelId);
  }

  private refresh(): Promise<void> {
    this.fetching ??= this.load().finally(() => (this.fetching = undefined));
    return this.fetching;
  }

  /** A failed read keeps the keys read before: a stale list is safer than none, and the next request tries again. */
  private async load(): Promise<void> {
    this.triedAt = this.now();
    try {
      const res = await (this.options.fetch ?? fetch)(this.options.keysUrl, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`answered ${res.status}`);
      const body = (await res.json()) as { keys?: Array<{ kid?: unknown; endorsements?: unknown }> };
      const keys = new Map<string, unknown>();
      for (const key of body.keys ?? []) if (typeof key.kid === 'string') keys.set(key.kid, key.endorsements);
      this.keys = keys;
      this.fetchedAt = this.now();
    } catch (error) {
      this.options.log.warn({ url: this.options.keysUrl, err: error instanceof Error ? error.message : String(error) }, 'teams: could not read the Bot Framework signing keys');
    }
  }
}
