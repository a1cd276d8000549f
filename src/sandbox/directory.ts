/**
 * Who lives in the sandbox's emulated Slack workspace and Teams tenants, read from the imported inventory: the
 * engineers under their Slack ids, every end user and champion under an id derived from their email (so the bot's
 * own directory sync matches them by email, as it would in a real workspace), one Slack channel per channel the
 * inventory names, and in Teams a team per client plus personal chats for champions and, for clients whose users
 * hear from the bot in Teams, for those users.
 */
import { createHash } from 'node:crypto';
import type { AppDatabase } from '../db/client.ts';
import { loadMsp } from '../db/msp-repo.ts';
import { directoryClients, directoryPeople, type DirectoryClientRow } from '../db/page-repo.ts';
import type { SandboxPerson } from './api-types.ts';
import type { SeedChannel, SeedUser } from './emulators/slack-emulator.ts';
import type { JumpOwner } from '../domain/sandbox-jumps.ts';
import { DEFAULT_DM_TIME } from '../domain/user-dm.ts';

function stableId(prefix: string, seed: string, length = 9): string {
  return `${prefix}${createHash('sha256').update(seed).digest('hex').slice(0, length).toUpperCase()}`;
}

/** A GUID-shaped AAD object id derived from an email. */
function aadIdFor(email: string): string {
  const h = createHash('sha256').update(`aad:${email}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

type ClientRow = DirectoryClientRow;

export interface TeamsInstall {
  conversationId: string;
  kind: 'personal' | 'channel';
  tenantId: string;
  clientId: string;
  title: string;
  /** Who installs it (the AAD id), and so whom the page acts as there by default. */
  by: string;
}

export interface SandboxPersonEntry extends SandboxPerson {
  slackId?: string;
  aadId?: string;
}

export class SandboxDirectory {
  constructor(
    readonly msp: { name: string; timezone: string; channel: string; windows: Record<string, string> },
    readonly clients: ClientRow[],
    readonly people: SandboxPersonEntry[],
  ) {}

  slackUsers(): SeedUser[] {
    return this.people
      .filter((p) => p.slackId)
      .map((p) => ({ id: p.slackId!, name: p.email?.split('@')[0] ?? p.slackId!, real_name: p.name, ...(p.email ? { email: p.email } : {}), tz: this.zoneOf(p) }));
  }

  slackChannels(): SeedChannel[] {
    const channels: SeedChannel[] = [{ id: this.msp.channel, name: 'patching' }];
    for (const c of this.clients) if (c.settings.slackChannel) channels.push({ id: c.settings.slackChannel, name: `patching-${c.id}` });
    return channels;
  }

  teamsMembers(): Array<{ id: string; aadObjectId: string; email?: string; userPrincipalName?: string; name?: string }> {
    return this.people
      .filter((p) => p.aadId)
      .map((p) => ({ id: `29:${p.aadId}`, aadObjectId: p.aadId!, ...(p.email ? { email: p.email, userPrincipalName: p.email } : {}), name: p.name }));
  }

  teamsInstalls(): TeamsInstall[] {
    const installs: TeamsInstall[] = [];
    for (const client of this.clients) {
      const tenantId = client.settings.teamsTenantId ?? `sandbox-tenant-${client.id}`;
      const champions = this.people.filter((p) => p.role === 'champion' && p.client === client.id && p.aadId);
      if (champions.length === 0) continue;
      installs.push({ conversationId: `19:patching-${client.id}@thread.tacv2`, kind: 'channel', tenantId, clientId: client.id, title: `${client.name} · Patching`, by: champions[0]!.aadId! });
      const personal = client.settings.chatPlatform === 'teams' ? this.people.filter((p) => p.client === client.id && p.aadId) : champions;
      for (const p of personal) {
        installs.push({ conversationId: `a:personal-${p.aadId}`, kind: 'personal', tenantId, clientId: client.id, title: `${p.name} (${client.name})`, by: p.aadId! });
      }
    }
    return installs;
  }

  /** The MSP (id null) and each client, with the windows and DM times the clock can jump to. */
  jumpOwners(): Array<JumpOwner & { id: string | null }> {
    return [
      // The MSP's own users get the DM too, at the default time (the MSP has no DM settings of its own).
      { id: null, name: this.msp.name, zone: this.msp.timezone, windows: this.msp.windows, dmTime: DEFAULT_DM_TIME },
      ...this.clients.map((c) => ({
        id: c.id,
        name: c.name,
        zone: c.timezone,
        windows: c.windows,
        dmTime: c.settings.dmTime ?? DEFAULT_DM_TIME,
        ...(c.settings.noticeHours !== undefined ? { noticeHours: c.settings.noticeHours } : {}),
      })),
    ];
  }

  nameOfSlack(id: string): string | undefined {
    return this.people.find((p) => p.slackId === id)?.name;
  }

  private zoneOf(p: SandboxPersonEntry): string {
    return this.clients.find((c) => c.id === p.client)?.timezone ?? this.msp.timezone;
  }
}

export async function loadDirectory(db: AppDatabase): Promise<SandboxDirectory> {
  const msp = await loadMsp(db);
  if (!msp) throw new Error('no inventory is imported');
  const clients = await directoryClients(db);
  const rows = await directoryPeople(db);
  const seen = new Set<string>();
  const people: SandboxPersonEntry[] = [];
  let engineers = 0;
  for (const row of rows) {
    // One entry per person: the first role wins (engineer, then champion, then user).
    if (seen.has(String(row.id))) continue;
    seen.add(String(row.id));
    const email = row.email ?? undefined;
    // The inventory names engineers only by Slack id; the sandbox's workspace gives them readable names.
    const name = row.display_name ?? (email ? nameFromEmail(email) : row.role === 'engineer' ? ENGINEER_NAMES[engineers++ % ENGINEER_NAMES.length]! : `person ${row.id}`);
    const slackId = row.slack_id ?? (email ? stableId('U', email) : undefined);
    // Engineers live in Slack; champions and users are reachable in Teams too (whether their client uses it is the client's setting).
    const aadId = row.role === 'engineer' ? undefined : (row.teams_id ?? (email ? aadIdFor(email) : undefined));
    people.push({
      id: slackId ?? aadId ?? `person-${row.id}`,
      name,
      role: row.role,
      ...(row.client_id ? { client: row.client_id } : {}),
      ...(email ? { email } : {}),
      ...(slackId ? { slackId } : {}),
      ...(aadId ? { aadId } : {}),
    });
  }
  return new SandboxDirectory(msp, clients, people);
}

const ENGINEER_NAMES = ['Pat Engineer', 'Sam Engineer', 'Alex Engineer', 'Robin Engineer'];

function nameFromEmail(email: string): string {
  const local = email.split('@')[0] ?? email;
  return local
    .split(/[._-]+/)
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join(' ');
}
