/**
 * Which client a chat conversation belongs to. A Teams install (a client's team, a group chat, or a champion's
 * personal chat) is matched to a client by who installed it (a champion's Teams id or email from the inventory)
 * or by the tenant id configured for the client; anything else is kept unlinked until an engineer's one-time
 * code links it. The conversation reference is stored either way (it is what any later message needs), but only
 * a match or a code puts a client on it. Every link is audited.
 */
import { randomInt } from 'node:crypto';
import { appendAudit } from '../db/audit-repo.ts';
import type { AppDatabase } from '../db/client.ts';
import { linkedClientId, markConversationRemoved, storeConversation } from '../db/teams-conversations-repo.ts';
import {
  championedClients,
  clientsByTenant,
  insertLinkCode,
  installerPersonId,
  liveClient,
  rememberTeamsIdentity,
  rememberTeamsMri,
  useLinkCode,
  type TeamsInstaller,
} from '../db/teams-link-repo.ts';
import { findEngineer, type Actor, type UseCaseContext } from './decisions.ts';

export interface InstallInput {
  conversationId: string;
  tenantId: string | undefined;
  kind: 'channel' | 'groupChat' | 'personal';
  /** The platform's conversation reference, stored as given. */
  reference: Record<string, unknown>;
  /** Who added the bot (or, in a personal chat, whose chat it is). */
  by: { id: string | undefined; mri?: string | undefined; email: string | undefined; upn: string | undefined; name: string | undefined };
}

export type LinkResult =
  | {
      outcome: 'linked';
      clientId: string;
      clientName: string;
      via: 'champion' | 'tenant' | 'code';
      /** `user`: an end user's own personal chat (their DMs only); `champions`: the client's champion traffic. */
      audience: 'champions' | 'user';
    }
  | { outcome: 'unknown' }
  | { outcome: 'refused'; message: string };

type Linked = Extract<LinkResult, { outcome: 'linked' }>;

interface Match {
  clientId: string;
  clientName: string;
  personId: number | null;
  via: 'champion' | 'tenant';
}

function installer(input: InstallInput): TeamsInstaller {
  return { teamsId: input.by.id, email: (input.by.email ?? input.by.upn)?.toLowerCase() ?? null };
}

async function match(tx: AppDatabase, input: InstallInput): Promise<Match | undefined> {
  const champions = await championedClients(tx, installer(input));
  // A person who champions two clients cannot say which one this conversation is: leave it to a link code.
  const clients = new Set(champions.map((c) => c.clientId));
  if (clients.size === 1) {
    const c = champions[0]!;
    return { clientId: c.clientId, clientName: c.clientName, personId: c.personId, via: 'champion' };
  }
  if (input.tenantId) {
    const byTenant = await clientsByTenant(tx, input.tenantId);
    if (byTenant.length === 1) return { clientId: byTenant[0]!.id, clientName: byTenant[0]!.name, personId: null, via: 'tenant' };
  }
  return undefined;
}

/**
 * Every way a conversation gets (or fails to get) a client ends here: one audit row, `teams.linked` or `failed`,
 * naming the client and how it was found; the result the person is answered with, when linked.
 */
async function auditLink(tx: AppDatabase, input: InstallInput, link: Linked | undefined, failed: string, detail: Record<string, unknown>, now: Date): Promise<void> {
  await appendAudit(tx, {
    at: now,
    actor: input.by.id ?? 'unknown',
    action: link ? 'teams.linked' : failed,
    subject: `teams:${input.conversationId}`,
    source: 'teams',
    detail: { ...detail, ...(link ? { clientId: link.clientId, via: link.via } : {}) },
  });
}

/** The bot was added somewhere: keep the reference, and link it to a client when who or where says which. */
export async function captureInstall(ctx: UseCaseContext, input: InstallInput): Promise<LinkResult> {
  return ctx.db.transaction(async (tx) => {
    const now = ctx.now();
    const found = await match(tx, input);
    // A personal chat is how a person is reached ("save your work tonight" in Teams): tie it to whoever it
    // belongs to, champion or end user, by Teams id or email.
    const personal = input.kind === 'personal';
    const personId = found?.via === 'champion' ? found.personId : personal ? await installerPersonId(tx, installer(input)) : null;
    await storeConversation(tx, input, found?.clientId ?? null, personal ? personId : null, now);
    if (personId !== null && input.by.id) {
      // Matched by email: remember the Teams id, so their card answers are recognised without a lookup.
      await rememberTeamsIdentity(tx, { personId, teamsId: input.by.id, mri: teamsMri(input.by.mri), upn: input.by.upn, tenantId: input.tenantId, email: input.by.email }, now);
    }
    // Matched by tenant alone, a personal chat is some staff member's, not a champion's.
    const audience = personal && found?.via === 'tenant' ? 'user' : 'champions';
    const link: Linked | undefined = found && { outcome: 'linked', clientId: found.clientId, clientName: found.clientName, via: found.via, audience };
    await auditLink(tx, input, link, 'teams.installed_unlinked', { kind: input.kind, tenantId: input.tenantId ?? null }, now);
    return link ?? { outcome: 'unknown' as const };
  });
}

/** A user MRI as Teams gives it in `from.id` (`29:…`); anything else (a bot, a test's id) is not one. */
function teamsMri(id: string | undefined): string | undefined {
  return id?.startsWith('29:') ? id : undefined;
}

/**
 * Someone Teams showed us (any activity from them): a person the inventory knows by their AAD id gets their MRI
 * remembered, which a card's refresh.userIds needs. One conditional update; nothing when already known.
 */
export async function noteTeamsUser(ctx: UseCaseContext, user: { aadObjectId: string | undefined; mri: string | undefined }): Promise<void> {
  const mri = teamsMri(user.mri);
  if (!user.aadObjectId || !mri) return;
  await rememberTeamsMri(ctx.db, user.aadObjectId, mri, ctx.now());
}

/** The bot was removed: stop sending there (the row stays, for the audit trail). */
export async function removeConversation(ctx: UseCaseContext, conversationId: string, by: string): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    const now = ctx.now();
    await markConversationRemoved(tx, conversationId, now);
    await appendAudit(tx, { at: now, actor: by, action: 'teams.removed', subject: `teams:${conversationId}`, source: 'teams', detail: {} });
  });
}

/** The client a conversation is linked to, if any. */
export async function conversationClient(db: AppDatabase, conversationId: string): Promise<string | undefined> {
  return linkedClientId(db, conversationId);
}

export const LINK_CODE_MINUTES = 30;
/** No 0/O or 1/I/L: the code is read aloud and typed by hand. */
const CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';

export function newLinkCode(): string {
  const pick = () => Array.from({ length: 4 }, () => CODE_ALPHABET[randomInt(CODE_ALPHABET.length)]).join('');
  return `PB-${pick()}-${pick()}`;
}

/** Recognises a code in whatever a person typed around it ("here you go: pb-abcd-efgh"). */
export function findLinkCode(text: string): string | undefined {
  const m = /\bPB-([A-Z0-9]{4})-([A-Z0-9]{4})\b/i.exec(text);
  return m ? `PB-${m[1]!.toUpperCase()}-${m[2]!.toUpperCase()}` : undefined;
}

export type LinkCodeResult = { outcome: 'created'; code: string; expiresAt: string; clientName: string } | { outcome: 'refused'; message: string };

/** An engineer asks for a code for a client (`/patch link CLIENT`). */
export async function createLinkCode(ctx: UseCaseContext, input: { actor: Actor; clientId: string }): Promise<LinkCodeResult> {
  return ctx.db.transaction(async (tx) => {
    const engineer = await findEngineer(tx, input.actor);
    if (!engineer) return { outcome: 'refused' as const, message: 'Only the MSP\u2019s engineers can link a client\u2019s Teams. Nothing was changed.' };
    const client = await liveClient(tx, input.clientId);
    if (!client) return { outcome: 'refused' as const, message: `No client ${input.clientId} in the inventory.` };
    const now = ctx.now();
    const expiresAt = new Date(now.getTime() + LINK_CODE_MINUTES * 60_000);
    const code = newLinkCode();
    await insertLinkCode(tx, { code, clientId: client.id, createdBy: input.actor.id, expiresAt }, now);
    await appendAudit(tx, { at: now, actor: input.actor.id, action: 'teams.link_code_created', subject: `client:${client.id}`, source: input.actor.platform, detail: { expiresAt: expiresAt.toISOString() } });
    return { outcome: 'created' as const, code, expiresAt: expiresAt.toISOString(), clientName: client.name };
  });
}

/** Someone sent a code to the bot: link that conversation to the code's client, once, before it expires. */
export async function redeemLinkCode(ctx: UseCaseContext, code: string, input: InstallInput): Promise<LinkResult> {
  return ctx.db.transaction(async (tx) => {
    const now = ctx.now();
    const used = await useLinkCode(tx, code, input.conversationId, now);
    const link: Linked | undefined = used && { outcome: 'linked', clientId: used.clientId, clientName: used.clientName, via: 'code', audience: 'champions' };
    await auditLink(tx, input, link, 'teams.link_code_refused', { via: 'code' }, now);
    if (!link) return { outcome: 'refused' as const, message: 'That code is not valid: it may have expired or been used already. Please ask your IT team for a new one.' };
    await storeConversation(tx, input, link.clientId, null, now);
    return link;
  });
}
