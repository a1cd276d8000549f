/** Slack's rate limits as the emulator enforces them: method tiers, chat.postMessage per channel and per workspace. */
import type { RateLimitOptions, Tier } from './types.ts';
import type { Answer } from './protocol.ts';

/** Slack's published tiers, per method per workspace per minute. */
export const TIER_LIMITS: Record<Tier, number> = { 1: 1, 2: 20, 3: 50, 4: 100 };

/**
 * Method -> tier, from Slack's method reference pages. chat.postMessage is "special": about one message per
 * second per channel with short bursts, modelled by `postMessagePerChannel` instead of a tier.
 */
export const METHOD_TIERS: Record<string, Tier | 'special'> = {
  'chat.postMessage': 'special',
  'chat.update': 3,
  'chat.delete': 3,
  'chat.postEphemeral': 4,
  'conversations.open': 3,
  'users.list': 2,
  'users.lookupByEmail': 3,
  'users.info': 4,
  'views.open': 4,
  'views.update': 4,
  'views.publish': 4,
  'auth.test': 4,
  'files.getUploadURLExternal': 4,
  'files.completeUploadExternal': 4,
};
export class RateLimiter {
  private readonly windowMs: number;
  private readonly tierLimits: Record<Tier, number>;
  private readonly methodTiers: Record<string, Tier | 'special'>;
  private readonly perChannel: { intervalMs: number; burst: number } | undefined;
  private readonly windows = new Map<string, number[]>();
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();
  private readonly workspacePosts: number[] = [];
  /** 429 answers given per method (rate limit or injected fault). */
  readonly rateLimited = new Map<string, number>();

  /** `rl` undefined: no limits at all. */
  constructor(
    private readonly rl: RateLimitOptions | undefined,
    private readonly clock: () => number,
  ) {
    this.windowMs = rl?.windowMs ?? 60_000;
    this.tierLimits = { ...TIER_LIMITS, ...(rl?.tiers ?? {}) };
    this.methodTiers = { ...METHOD_TIERS, ...(rl?.methodTiers ?? {}) };
    this.perChannel = rl?.postMessagePerChannel === false ? undefined : {
      intervalMs: rl?.postMessagePerChannel?.intervalMs ?? this.windowMs / 60,
      burst: rl?.postMessagePerChannel?.burst ?? 3,
    };
  }

  /** Returns the wait in ms when over the limit, undefined when the call may proceed (and counts it). */
  takeTier(method: string): number | undefined {
    if (!this.rl) return undefined;
    const tier = this.methodTiers[method];
    if (tier === undefined || tier === 'special') return undefined;
    const limit = this.tierLimits[tier];
    const now = this.clock();
    const stamps = (this.windows.get(method) ?? []).filter((t) => t > now - this.windowMs);
    this.windows.set(method, stamps);
    if (stamps.length >= limit) return (stamps[0] ?? now) + this.windowMs - now;
    stamps.push(now);
    return undefined;
  }

  /** Sliding window of chat.postMessage calls workspace-wide; counted only when let through. */
  takeWorkspacePost(): number | undefined {
    const limit = this.rl?.postMessagePerWorkspace;
    if (!this.rl || limit === undefined) return undefined;
    const now = this.clock();
    const posts = this.workspacePosts;
    while (posts.length > 0 && posts[0]! <= now - this.windowMs) posts.shift();
    if (posts.length >= limit) return posts[0]! + this.windowMs - now;
    posts.push(now);
    return undefined;
  }

  takeChannel(channel: string): number | undefined {
    const perChannel = this.perChannel;
    if (!this.rl || !perChannel) return undefined;
    const now = this.clock();
    const b = this.buckets.get(channel) ?? { tokens: perChannel.burst, updatedAt: now };
    b.tokens = Math.min(perChannel.burst, b.tokens + (now - b.updatedAt) / perChannel.intervalMs);
    b.updatedAt = now;
    this.buckets.set(channel, b);
    if (b.tokens < 1) return (1 - b.tokens) * perChannel.intervalMs;
    b.tokens -= 1;
    return undefined;
  }

  countRateLimited(method: string): void {
    this.rateLimited.set(method, (this.rateLimited.get(method) ?? 0) + 1);
  }

  ratelimitedAnswer(method: string, waitMs: number): Answer {
    this.countRateLimited(method);
    // Retry-After is whole seconds (WebClient parses an integer); never 0, or a client would spin.
    const secs = Math.max(1, Math.ceil(waitMs / 1000));
    return {
      status: 429,
      body: { ok: false, error: 'ratelimited' },
      headers: { 'retry-after': String(secs), 'x-emulator-retry-after-ms': String(Math.ceil(waitMs)) },
    };
  }

  /** Forget the windows (not the counts of 429s given). */
  reset(): void {
    this.windows.clear();
    this.buckets.clear();
  }
}
