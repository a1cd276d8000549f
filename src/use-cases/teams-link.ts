/**
 * Which client a chat conversation belongs to. A Teams install (a client's team, a group chat, or a champion's
 * personal chat) is matched to a client by who installed it (a champion's Teams id or email from the inventory)
 * or by the tenant id configured for the client; anything else is kept unlinked until an engineer's one-time
 * code links it. The conversation reference is stored either way (it is what any later message needs), but only
 * a match or a code puts a client on it. Every link is audited.
 */
import { randomInt } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from '../db/client.ts';
import { auditLog } from '../db/schema.ts';
import { findEngineer, type Actor, type UseCaseContext } from './decisions.ts';

export interface InstallInput {
  conversationId: string;
  tenantId: string | undefined;
  kind: 'channel' | 'groupChat' | 'personal';
  /** The platform's conversation reference, stored as given. */
  reference: Record<string, unknown>;
  /** Who added the bot (or, in a personal chat, whose chat it is). */
  by: { id: string | undefined; email: string | undefined; upn: string | undefined; name: string | undefined };
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

interface Match {
  clientId: string;
  clientName: string;
  personId: number | null;
  via: 'champion' | 'tenant';
}

async function match(tx: AppDatabase, input: InstallInput): Promise<Match | undefined> {
  const email = (input.by.email ?? input.by.upn)?.toLowerCase() ?? null;
  const champions = rowsOf<{ person_id: number; client_id: string; name: string }>(
    await tx.execute(sql`select distinct p.id as person_id, r.client_id, c.name from people p
      join person_roles r on r.person_id = p.id and r.role = 'champion'
      join clients c on c.id = r.client_id and c.retired_at is null
      where p.retired_at is null and (
        p.id in (select person_id from chat_identities where platform = 'teams' and external_id = ${input.by.id ?? ''})
        or (${email}::text is not null and lower(p.email) = ${email}))`),
  );
  // A person who champions two clients cannot say which one this conversation is: leave it to a link code.
  const clients = new Set(champions.map((c) => c.client_id));
  if (clients.size === 1) {
    const c = champions[0]!;
    return { clientId: c.client_id, clientName: c.name, personId: Number(c.person_id), via: 'champion' };
  }
  if (input.tenantId) {
    const byTenant = rowsOf<{ id: string; name: string }>(
      await tx.execute(sql`select id, name from clients where retired_at is null and settings ->> 'teamsTenantId' = ${input.tenantId}`),
    );
    if (byTenant.length === 1) return { clientId: byTenant[0]!.id, clientName: byTenant[0]!.name, personId: null, via: 'tenant' };
  }
  return undefined;
}

async function personOf(tx: AppDatabase, input: InstallInput): Promise<number | null> {
  const email = (input.by.email ?? input.by.upn)?.toLowerCase() ?? null;
  const [row] = rowsOf<{ id: number }>(
    await tx.execute(sql`select p.id from people p where p.retired_at is null and (
        p.id in (select person_id from chat_identities where platform = 'teams' and external_id = ${input.by.id ?? ''})
        or (${email}::text is not null and lower(p.email) = ${email}))
      order by p.id limit 2`),
  );
  return row ? Number(row.id) : null;
}

async function storeConversation(tx: AppDatabase, input: InstallInput, clientId: string | null, personId: number | null, now: Date): Promise<void> {
  await tx.execute(sql`insert into teams_conversations (conversation_id, tenant_id, kind, client_id, person_id, reference, created_at, updated_at)
    values (${input.conversationId}, ${input.tenantId ?? null}, ${input.kind}, ${clientId}, ${personId}, ${JSON.stringify(input.reference)}::jsonb,
      ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz)
    on conflict (conversation_id) do update set reference = excluded.reference, tenant_id = excluded.tenant_id, kind = excluded.kind,
      client_id = coalesce(excluded.client_id, teams_conversations.client_id),
      person_id = coalesce(excluded.person_id, teams_conversations.person_id),
      removed_at = null, updated_at = excluded.updated_at`);
}

/** The bot was added somewhere: keep the reference, and link it to a client when who or where says which. */
export async function captureInstall(ctx: UseCaseContext, input: InstallInput): Promise<LinkResult> {
  return ctx.db.transaction(async (tx) => {
    const now = ctx.now();
    const found = await match(tx, input);
    // A personal chat is how a person is reached ("save your work tonight" in Teams): tie it to whoever it
    // belongs to, champion or end user, by Teams id or email.
    const personal = input.kind === 'personal';
    const personId = found?.via === 'champion' ? found.personId : personal ? await personOf(tx, input) : null;
    await storeConversation(tx, input, found?.clientId ?? null, personal ? personId : null, now);
    if (personId !== null && input.by.id) {
      // Matched by email: remember the Teams id, so their card answers are recognised without a lookup.
      await tx.execute(sql`insert into chat_identities (person_id, platform, external_id, upn, tenant_id, email, source, created_at, updated_at)
        values (${personId}, 'teams', ${input.by.id}, ${input.by.upn ?? null}, ${input.tenantId ?? null}, ${input.by.email ?? null}, 'install',
          ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz)
        on conflict (platform, external_id) do nothing`);
    }
    await tx.insert(auditLog).values({
      at: now,
      actor: input.by.id ?? 'unknown',
      action: found ? 'teams.linked' : 'teams.installed_unlinked',
      subject: `teams:${input.conversationId}`,
      source: 'teams',
      detail: { kind: input.kind, tenantId: input.tenantId ?? null, ...(found ? { clientId: found.clientId, via: found.via } : {}) },
    });
    if (!found) return { outcome: 'unknown' as const };
    // Matched by tenant alone, a personal chat is some staff member's, not a champion's.
    const audience = personal && found.via === 'tenant' ? ('user' as const) : ('champions' as const);
    return { outcome: 'linked' as const, clientId: found.clientId, clientName: found.clientName, via: found.via, audience };
  });
}

/** The bot was removed: stop sending there (the row stays, for the audit trail). */
export async function removeConversation(ctx: UseCaseContext, conversationId: string, by: string): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    const now = ctx.now();
    await tx.execute(sql`update teams_conversations set removed_at = ${now.toISOString()}::timestamptz, updated_at = ${now.toISOString()}::timestamptz
      where conversation_id = ${conversationId} and removed_at is null`);
    await tx.insert(auditLog).values({ at: now, actor: by, action: 'teams.removed', subject: `teams:${conversationId}`, source: 'teams', detail: {} });
  });
}

/** The client a conversation is linked to, if any. */
export async function conversationClient(db: AppDatabase, conversationId: string): Promise<string | undefined> {
  const [row] = rowsOf<{ client_id: string | null }>(
    await db.execute(sql`select client_id from teams_conversations where conversation_id = ${conversationId} and removed_at is null`),
  );
  return row?.client_id ?? undefined;
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
    const [client] = rowsOf<{ id: string; name: string }>(await tx.execute(sql`select id, name from clients where id = ${input.clientId} and retired_at is null`));
    if (!client) return { outcome: 'refused' as const, message: `No client ${input.clientId} in the inventory.` };
    const now = ctx.now();
    const expiresAt = new Date(now.getTime() + LINK_CODE_MINUTES * 60_000);
    const code = newLinkCode();
    await tx.execute(sql`insert into link_codes (code, client_id, created_by, created_at, expires_at)
      values (${code}, ${client.id}, ${input.actor.id}, ${now.toISOString()}::timestamptz, ${expiresAt.toISOString()}::timestamptz)`);
    await tx.insert(auditLog).values({ at: now, actor: input.actor.id, action: 'teams.link_code_created', subject: `client:${client.id}`, source: input.actor.platform, detail: { expiresAt: expiresAt.toISOString() } });
    return { outcome: 'created' as const, code, expiresAt: expiresAt.toISOString(), clientName: client.name };
  });
}

/** Someone sent a code to the bot: link that conversation to the code's client, once, before it expires. */
export async function redeemLinkCode(ctx: UseCaseContext, code: string, input: InstallInput): Promise<LinkResult> {
  return ctx.db.transaction(async (tx) => {
    const now = ctx.now();
    const [used] = rowsOf<{ client_id: string; name: string }>(
      await tx.execute(sql`update link_codes l set used_at = ${now.toISOString()}::timestamptz, used_by_conversation_id = ${input.conversationId}
        from clients c where l.code = ${code} and l.used_at is null and l.expires_at > ${now.toISOString()}::timestamptz and c.id = l.client_id
        returning l.client_id, c.name`),
    );
    await tx.insert(auditLog).values({
      at: now,
      actor: input.by.id ?? 'unknown',
      action: used ? 'teams.linked' : 'teams.link_code_refused',
      subject: `teams:${input.conversationId}`,
      source: 'teams',
      detail: { via: 'code', ...(used ? { clientId: used.client_id } : {}) },
    });
    if (!used) return { outcome: 'refused' as const, message: 'That code is not valid: it may have expired or been used already. Please ask your IT team for a new one.' };
    await storeConversation(tx, input, used.client_id, null, now);
    return { outcome: 'linked' as const, clientId: used.client_id, clientName: used.name, via: 'code' as const, audience: 'champions' as const };
  });
}
