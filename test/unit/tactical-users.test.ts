// Linking a Tactical agent to a person by who is logged in on it (issue 15): the Windows user name is the part of
// the inventory email before the @, matched ignoring case and any domain prefix; two matches link nobody.
import { describe, expect, it } from 'vitest';
import { linkLoggedUser, windowsUserName, windowsUsersOf } from '../../src/adapters/deployers/tactical-users.ts';
import type { InventoryClient } from '../../src/domain/inventory.ts';

const client: InventoryClient = {
  id: 'contoso',
  name: 'Contoso',
  timezone: 'America/New_York',
  windows: {},
  software: [],
  champions: [{ email: 'Maria.Lopez@contoso.example', teamsId: undefined, name: 'Maria' }, { email: undefined, teamsId: 'aad-1', name: 'No email' }],
  locations: [
    {
      id: 'hq',
      name: undefined,
      devices: [
        { name: 'PC-1', class: 'desktop', ring: 'broad', os: undefined, user: 'jane@contoso.example' },
        { name: 'PC-2', class: 'desktop', ring: 'broad', os: undefined, user: 'sam@contoso.example' },
        { name: 'PC-3', class: 'desktop', ring: 'broad', os: undefined, user: 'sam@contoso-labs.example' },
        { name: 'PC-4', class: 'desktop', ring: 'broad', os: undefined, user: 'jane@contoso.example' },
      ],
    },
  ],
};
const people = windowsUsersOf(client);

describe('logged_username linking', () => {
  it('takes a listed user\'s windows_user over the email\'s local part, and knows listed users no device names', () => {
    const listed = windowsUsersOf({
      ...client,
      users: [{ email: 'jane@contoso.example', windowsUser: 'jdoe' }, { email: 'kim@contoso.example' }],
    });
    expect(linkLoggedUser('CONTOSO\\jdoe', listed)).toEqual({ kind: 'linked', email: 'jane@contoso.example' });
    // jane's own email part no longer names her: her logon is jdoe.
    expect(linkLoggedUser('CONTOSO\\jane', listed)).toEqual({ kind: 'unknown' });
    expect(linkLoggedUser('kim', listed)).toEqual({ kind: 'linked', email: 'kim@contoso.example' });
  });

  it('knows each of the client’s people once, by the lower-cased part of the email before the @', () => {
    expect(people.map((p) => `${p.name} ${p.email}`).sort()).toEqual([
      'jane jane@contoso.example',
      'maria.lopez maria.lopez@contoso.example',
      'sam sam@contoso-labs.example',
      'sam sam@contoso.example',
    ]);
  });

  it.each([
    ['CONTOSO\\jane', 'jane'],
    ['contoso.local\\Jane', 'jane'],
    ['jane', 'jane'],
    ['JANE@contoso.example', 'jane'],
    ['  CONTOSO\\Maria.Lopez ', 'maria.lopez'],
  ])('reads %j as the Windows user %j', (logged, name) => {
    expect(windowsUserName(logged)).toBe(name);
  });

  it.each([[''], ['-'], ['None'], ['none'], [null], [undefined], ['CONTOSO\\']])('reads %j as nobody logged in', (logged) => {
    expect(windowsUserName(logged)).toBeUndefined();
    expect(linkLoggedUser(logged, people)).toEqual({ kind: 'nobody' });
  });

  it('links a known name, with or without its domain, in any case', () => {
    expect(linkLoggedUser('CONTOSO\\JANE', people)).toEqual({ kind: 'linked', email: 'jane@contoso.example' });
    expect(linkLoggedUser('maria.lopez', people)).toEqual({ kind: 'linked', email: 'maria.lopez@contoso.example' });
  });

  it('links nobody for an unknown name, or one two people share', () => {
    expect(linkLoggedUser('CONTOSO\\administrator', people)).toEqual({ kind: 'unknown' });
    expect(linkLoggedUser('CONTOSO\\sam', people)).toEqual({ kind: 'ambiguous', emails: ['sam@contoso-labs.example', 'sam@contoso.example'] });
  });
});
