/**
 * Who uses a Tactical agent's machine, from the name logged in on it (`logged_username`, e.g. `CONTOSO\jane`), for
 * the "save your work" DM when the inventory names no user for the device.
 *
 * A person's Windows user name is the client's `users:` entry's `windows_user` when the inventory gives one, else the
 * part of their inventory email before the `@`: an MSP's clients sign in to Windows with their Microsoft 365 /
 * Active Directory account, whose logon name is usually that part (jane@contoso.com is CONTOSO\jane). The match ignores case and the domain prefix. A name that matches two people (jane@contoso.com
 * and jane@contoso.co.uk) links nobody: a DM to the wrong person is worse than none, and the engineers are told.
 */
import type { InventoryClient } from '../../domain/inventory.ts';

export interface WindowsUser {
  /** Lower-cased Windows user name. */
  name: string;
  email: string;
}

export type UserLink = { kind: 'linked'; email: string } | { kind: 'nobody' } | { kind: 'unknown' } | { kind: 'ambiguous'; emails: string[] };

export interface UserLinkProblem {
  client: string;
  device: string;
  username: string;
  why: 'unknown' | 'ambiguous';
}

/**
 * The people the inventory knows for a client (its `users:` list, its devices' users and its champions), by Windows
 * user name: a `users:` entry's `windows_user` where the file gives one (a logon name that is not the email's, e.g.
 * jsmith for jane.smith@…), else the part of the email before the @.
 */
export function windowsUsersOf(client: InventoryClient): WindowsUser[] {
  const named = new Map<string, string>();
  for (const user of client.users ?? []) named.set(user.email, user.windowsUser ?? localPart(user.email));
  const add = (email: string | undefined) => {
    if (email && !named.has(email.toLowerCase())) named.set(email.toLowerCase(), localPart(email.toLowerCase()));
  };
  for (const location of client.locations) for (const device of location.devices) add(device.user);
  for (const champion of client.champions) add(champion.email);
  return [...named].map(([email, name]) => ({ name, email }));
}

const localPart = (email: string) => email.slice(0, email.lastIndexOf('@'));

/** `DOMAIN\jane`, `jane` or `jane@domain` to `jane`; undefined when nobody is logged in. */
export function windowsUserName(loggedUsername: string | null | undefined): string | undefined {
  const raw = (loggedUsername ?? '').trim();
  // Tactical says `None` (the agent's own word) or `-` (the list's) when nobody is or was logged in.
  if (raw === '' || raw === '-' || raw.toLowerCase() === 'none') return undefined;
  const afterDomain = raw.slice(raw.lastIndexOf('\\') + 1);
  const beforeAt = afterDomain.includes('@') ? afterDomain.slice(0, afterDomain.lastIndexOf('@')) : afterDomain;
  return beforeAt === '' ? undefined : beforeAt.toLowerCase();
}

export function linkLoggedUser(loggedUsername: string | null | undefined, people: readonly WindowsUser[]): UserLink {
  const name = windowsUserName(loggedUsername);
  if (name === undefined) return { kind: 'nobody' };
  const matches = people.filter((p) => p.name === name);
  if (matches.length === 0) return { kind: 'unknown' };
  if (matches.length > 1) return { kind: 'ambiguous', emails: matches.map((m) => m.email).sort() };
  return { kind: 'linked', email: matches[0]!.email };
}
