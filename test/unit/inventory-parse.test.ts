import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  formatProblem,
  formatProblems,
  MAX_INVENTORY_BYTES,
  MAX_PROBLEMS_SHOWN,
  parseInventory,
  readInventoryFile,
  type InventoryParse,
  type InventoryProblem,
} from '../../src/adapters/inventory/parse.ts';
import { policyOf } from '../../src/db/compliance-repo.ts';

const EXAMPLE = fileURLToPath(new URL('../../examples/inventory.yaml', import.meta.url));
const MISTAKES = fileURLToPath(new URL('../fixtures/inventory/mistakes.yaml', import.meta.url));

/** A valid inventory to bend: each test changes one thing and expects exactly the problems it made. */
const BASE = `msp:
  name: Example IT
  engineers: [U0ENG1, W0ENG2]
  channel: C0PATCH
  timezone: America/Chicago
  windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }
  devices:
    - { name: EXIT-TEST-01, class: desktop, os: "Windows 11 Version 23H2 for x64-based Systems" }
clients:
  - id: acme-dental
    name: Acme Dental
    timezone: America/Chicago
    windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }
    software: [Dentrix]
    champions: [{ email: pat@acme.example }]
    locations:
      - id: main-st
        devices:
          - { name: ACME-FD-01, class: desktop, ring: pilot, user: jane@acme.example }
          - { name: ACME-SRV-01, class: server, os: "Windows Server 2022" }
`;

function problemsOf(result: InventoryParse): InventoryProblem[] {
  if (result.ok) throw new Error('expected problems, but the inventory parsed');
  return result.problems;
}

function inventoryOf(result: InventoryParse) {
  if (!result.ok) throw new Error(`expected no problems, got:\n${result.problems.map(formatProblem).join('\n')}`);
  return result.inventory;
}

/** Lines and paths only: the shape of the answer, without coupling every test to exact wording. */
function where(problems: InventoryProblem[]): Array<[number, string]> {
  return problems.map((p) => [p.line, p.path]);
}

describe('parseInventory on good files', () => {
  it('reads the example, with defaults filled in', async () => {
    const inventory = inventoryOf(await readInventoryFile(EXAMPLE));
    expect(inventory.msp.engineers).toEqual(['U0ENG1', 'U0ENG2']);
    expect(inventory.msp.devices).toEqual([
      { name: 'EXIT-TEST-01', class: 'desktop', ring: 'msp', os: 'Windows 11 Version 23H2 for x64-based Systems', user: undefined },
    ]);
    expect(inventory.clients.map((c) => [c.id, c.timezone])).toEqual([
      ['acme-dental', 'America/Chicago'],
      ['harbour-accounting', 'Australia/Sydney'],
    ]);
    const [acme, harbour] = inventory.clients;
    expect(acme!.windows.server).toEqual({ days: [7], startMinute: 60, endMinute: 300, spec: 'sun 01:00-05:00' });
    expect(acme!.locations[0]!.devices.map((d) => [d.name, d.ring])).toEqual([
      ['ACME-FD-01', 'pilot'],
      ['ACME-SRV-01', 'broad'],
    ]);
    expect(harbour!.windows.desktop!.spec).toBe('mon,tue,wed,thu,fri 22:00-02:00');
    expect(harbour!.champions[0]).toEqual({
      email: 'sam.lee@harbour.example',
      teamsId: '6f1c2b9e-4a57-4d0b-9c3e-2f8a1d7e5b40',
      name: 'Sam Lee',
    });
  });

  it('lower-cases emails, takes teamsId as well as teams_id, and follows aliases', () => {
    const text = BASE.replace('user: jane@acme.example', 'user: Jane.Doe@ACME.example')
      .replace('champions: [{ email: pat@acme.example }]', 'champions: [{ email: Pat@Acme.Example }, { teamsId: "29:1abc" }]')
      .replace('windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }\n  devices', 'windows: &standard { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }\n  devices')
      .replace('windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }\n    software', 'windows: *standard\n    software');
    const inventory = inventoryOf(parseInventory(text, 'aliases.yaml'));
    const client = inventory.clients[0]!;
    expect(client.locations[0]!.devices[0]!.user).toBe('jane.doe@acme.example');
    expect(client.champions).toEqual([
      { email: 'pat@acme.example', teamsId: undefined, name: undefined },
      { email: undefined, teamsId: '29:1abc', name: undefined },
    ]);
    expect(client.windows).toEqual(inventory.msp.windows);
  });

  it('reads a client\'s users with their Windows user names, and names a bad entry\'s line and field', () => {
    const good = BASE.replace('    software', '    users:\n      - { email: Jane.Smith@Acme.example, windows_user: "ACME\\\\JSmith" }\n      - { email: front.desk@acme.example }\n    software');
    expect(inventoryOf(parseInventory(good, 'users.yaml')).clients[0]!.users).toEqual([
      { email: 'jane.smith@acme.example', windowsUser: 'jsmith' },
      { email: 'front.desk@acme.example' },
    ]);
    expect(inventoryOf(parseInventory(BASE, 'plain.yaml')).clients[0]!.users).toBeUndefined();

    const bad = BASE.replace('    software', '    users:\n      - { email: not-an-email }\n      - { email: sam@acme.example, windows_user: "sam smith" }\n      - { windows_user: pat }\n    software');
    const lines = bad.split('\n');
    const lineOf = (text: string) => lines.findIndex((line) => line.includes(text)) + 1;
    expect(problemsOf(parseInventory(bad, 'users.yaml')).map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual([
      `${lineOf('not-an-email')} clients[0].users[0].email: "not-an-email" is not an email address`,
      `${lineOf('sam smith')} clients[0].users[1].windows_user: "sam smith" is not a Windows user name (expected e.g. "jane" or "CONTOSO\\jane")`,
      expect.stringMatching(new RegExp(`^${lineOf('windows_user: pat')} clients\\[0\\]\\.users\\[2\\]`)),
    ]);
  });

  it('reads a client\'s optional settings and reports bad ones on their own lines', () => {
    const good = BASE.replace('    software', '    channel: C0ACME\n    teams_tenant_id: 2F9D4C1E-7B3A-4E8F-9A61-0C5D8E2B7F43\n    chat: teams\n    dm_time: "14:30"\n    dm_template: "Hi {name}"\n    max_deferrals: 0\n    notice_hours: 6\n    auto_confirm_hours: 48\n    run_concurrency: 5\n    software');
    expect(inventoryOf(parseInventory(good, 'settings.yaml')).clients[0]!.settings).toEqual({
      slackChannel: 'C0ACME',
      teamsTenantId: '2f9d4c1e-7b3a-4e8f-9a61-0c5d8e2b7f43',
      chatPlatform: 'teams',
      dmTime: '14:30',
      dmTemplate: 'Hi {name}',
      maxDeferralsPerRelease: 0,
      noticeHours: 6,
      autoConfirmHours: 48,
      runConcurrency: 5,
    });
    expect(inventoryOf(parseInventory(BASE, 'plain.yaml')).clients[0]!.settings).toBeUndefined();

    const bad = BASE.replace('    software', '    channel: general\n    teams_tenant_id: contoso\n    chat: email\n    dm_time: "3pm"\n    max_deferrals: -1\n    notice_hours: 2.5\n    run_concurrency: "5"\n    software');
    const parsed = parseInventory(bad, 'bad.yaml');
    expect(parsed.ok).toBe(false);
    const lines = bad.split('\n');
    const lineOf = (key: string) => lines.findIndex((line) => line.startsWith(`    ${key}:`)) + 1;
    const problems = parsed.ok ? [] : parsed.problems.map((p) => `${p.line} ${p.path}: ${p.message}`);
    expect(problems).toEqual([
      `${lineOf('channel')} clients[0].channel: "general" is not a Slack channel id (C… or G…, e.g. C0ACME)`,
      `${lineOf('teams_tenant_id')} clients[0].teams_tenant_id: "contoso" is not a Microsoft 365 tenant id (a GUID)`,
      `${lineOf('chat')} clients[0].chat: "email" is not a chat (expected slack or teams)`,
      `${lineOf('dm_time')} clients[0].dm_time: "3pm" is not a time (HH:MM, e.g. "15:00")`,
      `${lineOf('max_deferrals')} clients[0].max_deferrals: expected a whole number from 0 to 50`,
      `${lineOf('notice_hours')} clients[0].notice_hours: expected a whole number from 0 to 168`,
      `${lineOf('run_concurrency')} clients[0].run_concurrency: expected a whole number from 1 to 100000`,
    ]);
  });

  it("reads a client's report policy (SLA days, report day) into the settings the compliance model judges by", () => {
    const good = BASE.replace('    software', '    sla_critical_days: 7\n    sla_important_days: 21\n    report_day: 28\n    software');
    const settings = inventoryOf(parseInventory(good, 'policy.yaml')).clients[0]!.settings!;
    expect(settings).toEqual({ slaCriticalDays: 7, slaImportantDays: 21, reportDay: 28 });
    expect(policyOf(settings as Record<string, unknown>)).toMatchObject({ slaCriticalDays: 7, slaImportantDays: 21 });
    // Left out: HHS's proposed clocks, and no monthly report.
    expect(policyOf({ ...inventoryOf(parseInventory(BASE, 'plain.yaml')).clients[0]!.settings })).toMatchObject({ slaCriticalDays: 15, slaImportantDays: 30 });

    const bad = BASE.replace('    software', '    sla_critical_days: 0\n    sla_important_days: "30"\n    report_day: 31\n    software');
    const parsed = parseInventory(bad, 'policy-bad.yaml');
    const lines = bad.split('\n');
    const lineOf = (key: string) => lines.findIndex((line) => line.startsWith(`    ${key}:`)) + 1;
    expect(parsed.ok ? [] : parsed.problems.map((p) => `${p.file}:${p.line} ${p.path}: ${p.message}`)).toEqual([
      `policy-bad.yaml:${lineOf('sla_critical_days')} clients[0].sla_critical_days: expected a whole number from 1 to 365`,
      `policy-bad.yaml:${lineOf('sla_important_days')} clients[0].sla_important_days: expected a whole number from 1 to 365`,
      `policy-bad.yaml:${lineOf('report_day')} clients[0].report_day: expected a whole number from 1 to 28`,
    ]);
  });

  it('reads the MSP\u2019s soak, overall concurrency and missed-window limit, and reports bad ones on their own lines', () => {
    const good = BASE.replace('  devices:\n    - { name: EXIT', '  soak_hours: 0\n  run_concurrency: 400\n  missed_window_limit: 5\n  devices:\n    - { name: EXIT');
    expect(inventoryOf(parseInventory(good, 'msp.yaml')).msp.settings).toEqual({ soakHours: 0, runConcurrency: 400, missedWindowLimit: 5 });
    expect(inventoryOf(parseInventory(BASE, 'plain.yaml')).msp.settings).toBeUndefined();

    const bad = BASE.replace('  devices:\n    - { name: EXIT', '  soak_hours: 24h\n  run_concurrency: 0\n  missed_window_limit: 2.5\n  devices:\n    - { name: EXIT');
    const lines = bad.split('\n');
    const lineOf = (key: string) => lines.findIndex((line) => line.startsWith(`  ${key}:`)) + 1;
    expect(problemsOf(parseInventory(bad, 'bad.yaml')).map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual([
      `${lineOf('soak_hours')} msp.soak_hours: expected a whole number from 0 to 720`,
      `${lineOf('run_concurrency')} msp.run_concurrency: expected a whole number from 1 to 100000`,
      `${lineOf('missed_window_limit')} msp.missed_window_limit: expected a whole number from 1 to 100`,
    ]);
    expect(lineOf('soak_hours')).toBe(7);

    const typo = BASE.replace('  devices:\n    - { name: EXIT', '  soak_hour: 12\n  run_concurency: 3\n  devices:\n    - { name: EXIT');
    expect(problemsOf(parseInventory(typo, 'typo.yaml')).map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual([
      '7 msp.soak_hour: unknown key "soak_hour" (did you mean "soak_hours"?)',
      '8 msp.run_concurency: unknown key "run_concurency" (did you mean "run_concurrency"?)',
    ]);
  });

  it('keeps one spelling for a zone written in another case', () => {
    const inventory = inventoryOf(parseInventory(BASE.replace('timezone: America/Chicago\n    windows', 'timezone: america/chicago\n    windows'), 'x.yaml'));
    expect(inventory.clients[0]!.timezone).toBe('America/Chicago');
  });
});

describe('parseInventory on a file with many mistakes', () => {
  it('reports every mistake at once, each on its own line with its field path', async () => {
    const problems = problemsOf(await readInventoryFile(MISTAKES));
    const expected: Array<[number, string, string]> = [
      [4, 'msp.engineers[1]', '"bob" is not a Slack user id'],
      [5, 'msp.channel', '"#patching" is not a Slack channel id'],
      [6, 'msp.timezone', '"CST" is an abbreviation, not an IANA time zone'],
      [9, 'msp.devices[0].ring', 'always ring "msp"'],
      [13, 'clients[0].timezon', 'unknown key "timezon" (did you mean "timezone"?)'],
      [14, 'clients[0].windows.desktop', '"dayly 01:00-05:00" is not a window'],
      [14, 'clients[0].windows.server', '"25:00" is not a time'],
      [15, 'clients[0].software[1]', 'expected text, got the number 42'],
      [16, 'clients[0].champions[0]', 'needs an "email" or a "teams_id"'],
      [16, 'clients[0].champions[1].email', '"pat at acme" is not an email address'],
      [20, 'clients[0].locations[0].devices[0].ring', 'unknown ring "pilto" (expected pilot or broad; did you mean "pilot"?)'],
      [21, 'clients[0].locations[0].devices[1].name', 'duplicate device name "exit-test-01" (first at line 9, msp.devices[0])'],
      [22, 'clients[0].locations[0].devices[2].class', 'class "kiosk" has no window in clients[0].windows'],
      [23, 'clients[0].locations[0].devices[3].name', 'required field "name" is missing'],
      [24, 'clients[0].locations[1].id', 'duplicate location id "main-st" in this client (first at line 18)'],
      [26, 'clients[1].id', 'duplicate client id "acme-dental" (first at line 11)'],
      [28, 'clients[1].timezone', 'unknown time zone "America/Chicgo" (did you mean "America/Chicago"?)'],
      [30, 'clients[2].id', '"Bad Id" is not an id'],
      [31, 'clients[2].name', 'expected text, got the number 17'],
      [32, 'clients[2].timezone', 'unknown time zone "Chicago" (did you mean "America/Chicago"?)'],
      [33, 'clients[2].windows', 'give at least one window'],
    ];
    expect(where(problems)).toEqual(expected.map(([line, path]) => [line, path]));
    problems.forEach((problem, i) => {
      expect(problem.file).toBe(MISTAKES);
      expect(problem.message).toContain(expected[i]![2]);
    });
  });

  it('formats a problem as file:line path: message', async () => {
    const problems = problemsOf(parseInventory(await readFile(MISTAKES, 'utf8'), 'inventory.yaml'));
    expect(problems.map(formatProblem)).toContain(
      'inventory.yaml:14 clients[0].windows.desktop: "dayly 01:00-05:00" is not a window (expected e.g. "daily 01:00-05:00" or "mon,wed 22:00-02:00")',
    );
  });

  it('gives columns as well as lines', async () => {
    const problems = problemsOf(await readInventoryFile(MISTAKES));
    const window = problems.find((p) => p.path === 'clients[0].windows.desktop')!;
    const line = (await readFile(MISTAKES, 'utf8')).split('\n')[window.line - 1]!;
    expect(line.slice(window.column - 1)).toMatch(/^"dayly/);
  });
});

describe('did-you-mean for misspelled keys', () => {
  it('suggests the key meant at every level, and does not also call the real key missing', () => {
    const text = BASE.replace('  channel: C0PATCH', '  chanel: C0PATCH')
      .replace('{ name: ACME-SRV-01, class: server', '{ name: ACME-SRV-01, clas: server')
      .replace('clients:', 'client:');
    const problems = problemsOf(parseInventory(text, 'typos.yaml'));
    expect(problems.map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual([
      '4 msp.chanel: unknown key "chanel" (did you mean "channel"?)',
      '9 client: unknown key "client" (did you mean "clients"?)',
    ]);
  });

  it('checks the devices of a client even when the client key is misspelled elsewhere', () => {
    const text = BASE.replace('{ name: ACME-SRV-01, class: server', '{ name: ACME-SRV-01, clas: server');
    const problems = problemsOf(parseInventory(text, 'typos.yaml'));
    expect(problems.map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual([
      '20 clients[0].locations[0].devices[1].clas: unknown key "clas" (did you mean "class"?)',
    ]);
  });

  it('lists the allowed keys when nothing is close', () => {
    const problems = problemsOf(parseInventory(BASE.replace('    software: [Dentrix]', '    colour: blue'), 'x.yaml'));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).toBe(
      'unknown key "colour" (expected one of: id, name, timezone, windows, software, champions, users, locations, channel, teams_tenant_id, chat, dm_time, dm_template, max_deferrals, notice_hours, auto_confirm_hours, run_concurrency, sla_critical_days, sla_important_days, report_day, tactical_client, ninjaone_organization)',
    );
  });
});

describe('ninjaone_organization', () => {
  it('links a client to its NinjaOne organization by name or by numeric id', () => {
    const byName = inventoryOf(parseInventory(BASE.replace('    software: [Dentrix]', '    software: [Dentrix]\n    ninjaone_organization: Acme Dental LLC'), 'x.yaml'));
    expect(byName.clients[0]!.ninjaoneOrganization).toBe('Acme Dental LLC');
    const byId = inventoryOf(parseInventory(BASE.replace('    software: [Dentrix]', '    software: [Dentrix]\n    ninjaone_organization: 17'), 'x.yaml'));
    expect(byId.clients[0]!.ninjaoneOrganization).toBe('17');
    expect(inventoryOf(parseInventory(BASE, 'x.yaml')).clients[0]!.ninjaoneOrganization).toBeUndefined();
  });
});

describe('duplicate device names', () => {
  it('are found across clients and the MSP, ignoring case, pointing at the second with the first line', () => {
    const text = `${BASE}  - id: other
    name: Other
    timezone: Europe/London
    windows: { desktop: "daily 01:00-05:00" }
    locations:
      - id: hq
        devices:
          - { name: acme-fd-01, class: desktop }
          - { name: Exit-Test-01, class: desktop }
          - { name: OTHER-01, class: desktop }
`;
    const problems = problemsOf(parseInventory(text, 'dupes.yaml'));
    expect(problems.map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual([
      '28 clients[1].locations[0].devices[0].name: duplicate device name "acme-fd-01" (first at line 19, clients[0].locations[0].devices[0])',
      '29 clients[1].locations[0].devices[1].name: duplicate device name "Exit-Test-01" (first at line 8, msp.devices[0])',
    ]);
  });
});

describe('other mistakes', () => {
  it('reports YAML syntax errors with their line, one per line, and nothing built on a broken tree', () => {
    const unclosed = problemsOf(parseInventory(BASE.replace('  channel: C0PATCH', '  channel: "C0PATCH'), 'broken.yaml'));
    expect(unclosed.map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual(['4 : Missing closing "quote']);
    const tabbed = problemsOf(parseInventory(BASE.replace('    name: Acme Dental', '\tname: Acme Dental'), 'broken.yaml'));
    expect(tabbed[0]).toMatchObject({ line: 11, path: '', message: 'Tabs are not allowed as indentation' });
    expect(new Set(tabbed.map((p) => p.line)).size).toBe(tabbed.length);
  });

  it('reports a repeated key and still checks the rest', () => {
    const text = BASE.replace('    name: Acme Dental', '    name: Acme Dental\n    name: Acme Again').replace('ring: pilot', 'ring: pilots');
    const problems = problemsOf(parseInventory(text, 'x.yaml'));
    expect(problems.map((p) => [p.line, p.path])).toEqual([
      [12, ''],
      [20, 'clients[0].locations[0].devices[0].ring'],
    ]);
    expect(problems[0]!.message).toMatch(/unique/);
  });

  it('reports wrong types by what was found', () => {
    const text = BASE.replace('    software: [Dentrix]', '    software: Dentrix').replace(
      / {8}devices:\n[^]*$/,
      '        devices: { name: ACME-FD-01, class: desktop }\n',
    );
    const problems = problemsOf(parseInventory(text, 'x.yaml'));
    expect(problems.map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual([
      '14 clients[0].software: expected a list of software names, got text "Dentrix"',
      '18 clients[0].locations[0].devices: expected a list of devices, got a mapping',
    ]);
  });

  it('points a missing required field at its parent mapping', () => {
    const problems = problemsOf(parseInventory(BASE.replace('    name: Acme Dental\n', ''), 'x.yaml'));
    expect(where(problems)).toEqual([[10, 'clients[0].name']]);
    expect(problems[0]!.message).toBe('required field "name" is missing');
  });

  it('wants a window for every device class a client uses, in the MSP too', () => {
    const text = BASE.replace('{ name: EXIT-TEST-01, class: desktop', '{ name: EXIT-TEST-01, class: laptop').replace(
      '{ name: ACME-SRV-01, class: server',
      '{ name: ACME-SRV-01, class: Server',
    );
    const problems = problemsOf(parseInventory(text, 'x.yaml'));
    expect(problems.map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual([
      '8 msp.devices[0].class: class "laptop" has no window in msp.windows (it has desktop, server)',
      '20 clients[0].locations[0].devices[1].class: "Server" is not a device class (use a lower-case word such as desktop, server or laptop)',
    ]);
  });

  it('refuses a champion with two spellings of the Teams id and an "msp" ring on a client device', () => {
    const text = BASE.replace('[{ email: pat@acme.example }]', '[{ teams_id: a, teamsId: b }]').replace('ring: pilot', 'ring: msp');
    const problems = problemsOf(parseInventory(text, 'x.yaml'));
    expect(problems.map((p) => `${p.line} ${p.path}: ${p.message}`)).toEqual([
      '15 clients[0].champions[0].teamsId: write the Teams id once, as "teams_id" or as "teamsId", not both',
      '19 clients[0].locations[0].devices[0].ring: unknown ring "msp" (expected pilot or broad; ring "msp" is only for devices under msp.devices)',
    ]);
  });

  it('says an empty file is empty', () => {
    expect(problemsOf(parseInventory('# nothing yet\n', 'empty.yaml'))).toEqual([
      { file: 'empty.yaml', line: 1, column: 1, path: '', message: 'the file is empty (expected "msp:" and "clients:")' },
    ]);
  });

  it('reports a missing file as one problem on line 0', async () => {
    const problems = problemsOf(await readInventoryFile('/nonexistent/inventory.yaml'));
    expect(problems).toEqual([{ file: '/nonexistent/inventory.yaml', line: 0, column: 0, path: '', message: 'file not found' }]);
    expect(formatProblem(problems[0]!)).toBe('/nonexistent/inventory.yaml: file not found');
  });
});

/** The msp part of BASE, for files that build their own clients. */
const MSP = BASE.slice(0, BASE.indexOf('clients:'));

/**
 * "Billion laughs" in the shape the reader walks: `perLevel` clients, each with `perLevel` locations, each
 * with `perLevel` devices, all aliases of the first, so the file grows as 3 × perLevel and the tree as perLevel³.
 */
function laughs(perLevel: number): { text: string; firstClientAlias: number } {
  const aliases = (name: string) => Array.from({ length: perLevel }, () => `*${name}`).join(', ');
  const head = `${MSP}clients:
  - &client
    id: acme
    name: Acme
    timezone: America/Chicago
    windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }
    locations:
      - &location { id: main, devices: [&device { name: PC-1, class: desktop }, ${aliases('device')}] }
      - ${Array.from({ length: perLevel }, () => '*location').join('\n      - ')}
`;
  const firstClientAlias = head.split('\n').length;
  return { text: `${head}  - ${Array.from({ length: perLevel }, () => '*client').join('\n  - ')}\n`, firstClientAlias };
}

describe('aliases that multiply', () => {
  it('a billion-laughs file is one problem at the alias to blame, found without walking what it expands to', { timeout: 60_000 }, () => {
    const { text, firstClientAlias } = laughs(1000);
    expect(text.length).toBeLessThan(40_000);
    const problems = problemsOf(parseInventory(text, 'laughs.yaml'));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.line).toBe(firstClientAlias);
    expect(formatProblem(problems[0]!)).toMatch(/^laughs\.yaml:\d+ aliases expand this file to more than [\d,]+ values \(it writes [\d,]+\)/);
  });

  it('nested anchors anywhere count, not only where the reader walks', () => {
    const levels = ['      - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 12; i++) levels.push(`      - &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    const text = BASE.replace('    software: [Dentrix]', `    software:\n${levels.join('\n')}`);
    const problems = problemsOf(parseInventory(text, 'lol.yaml'));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).toMatch(/^aliases expand this file/);
  });

  it('still takes aliases that share a value between many clients', () => {
    const clients = Array.from({ length: 2000 }, (_, i) => `  - { id: c${i}, name: C${i}, timezone: America/Chicago, windows: *standard }`);
    const text = `${MSP.replace('windows: {', 'windows: &standard {')}clients:\n${clients.join('\n')}\n`;
    expect(inventoryOf(parseInventory(text, 'shared.yaml')).clients).toHaveLength(2000);
  });

  it('refuses an alias inside the value it names, and one that names no anchor', () => {
    const loop = problemsOf(parseInventory(BASE.replace('    software: [Dentrix]', '    software: &s [Dentrix, *s]'), 'loop.yaml'));
    expect(loop.map((p) => `${p.line} ${p.message}`)).toEqual(['14 alias "*s" is inside the value it names']);
    const dangling = problemsOf(parseInventory(BASE.replace('    software: [Dentrix]', '    software: *nothing'), 'dangling.yaml'));
    expect(dangling.map((p) => `${p.line} ${p.message}`)).toEqual(['14 alias "*nothing" names no anchor "&nothing" written before it']);
  });
});

describe('a file with very many mistakes', () => {
  it(`returns the first ${MAX_PROBLEMS_SHOWN} problems by line and counts the rest`, () => {
    const devices = Array.from({ length: 500 }, (_, i) => `          - { name: PC-${i}, class: Desktop }`);
    const text = BASE.replace(/ {8}devices:\n[^]*$/, `        devices:\n${devices.join('\n')}\n`);
    const result = parseInventory(text, 'many.yaml');
    const problems = problemsOf(result);
    expect(problems).toHaveLength(MAX_PROBLEMS_SHOWN);
    expect(problems.map((p) => p.line)).toEqual([...problems.map((p) => p.line)].sort((a, b) => a - b));
    expect(problems[0]!.path).toBe('clients[0].locations[0].devices[0].class');
    expect(result.ok === false && result.more).toBe(400);
    const lines = formatProblems(result as Extract<typeof result, { ok: false }>);
    expect(lines).toHaveLength(MAX_PROBLEMS_SHOWN + 1);
    expect(lines.at(-1)).toBe('many.yaml: … and 400 more problems');
  });
});

describe('text limits', () => {
  const long = (n: number) => 'x'.repeat(n);
  const cases: Array<[string, string, string, number]> = [
    ['msp.name', 'name: Example IT', `name: ${long(201)}`, 200],
    ['msp.engineers[0]', '[U0ENG1, W0ENG2]', `[U${'A'.repeat(40)}, W0ENG2]`, 40],
    ['msp.timezone', 'timezone: America/Chicago\n  windows', `timezone: America/${long(100)}\n  windows`, 100],
    ['msp.devices[0].os', 'os: "Windows 11 Version 23H2 for x64-based Systems"', `os: ${long(201)}`, 200],
    ['clients[0].id', 'id: acme-dental', `id: ${'a'.repeat(65)}`, 64],
    ['clients[0].name', 'name: Acme Dental', `name: ${long(201)}`, 200],
    ['clients[0].windows.desktop', 'windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }\n    software', `windows: { desktop: "daily 01:00-05:00${' '.repeat(50)}${long(50)}", server: "sun 01:00-05:00" }\n    software`, 100],
    [`clients[0].windows.${'d'.repeat(41)}`, 'windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00" }\n    software', `windows: { desktop: "daily 01:00-05:00", server: "sun 01:00-05:00", ${'d'.repeat(41)}: "daily 01:00-05:00" }\n    software`, 40],
    ['clients[0].software[0]', '[Dentrix]', `[${long(201)}]`, 200],
    ['clients[0].champions[0].email', 'email: pat@acme.example', `email: ${'p'.repeat(250)}@acme.example`, 254],
    ['clients[0].champions[0].name', '{ email: pat@acme.example }', `{ email: pat@acme.example, name: ${long(201)} }`, 200],
    ['clients[0].champions[0].teams_id', '{ email: pat@acme.example }', `{ teams_id: ${long(201)} }`, 200],
    ['clients[0].dm_template', '    software', `    dm_template: "${long(2001)}"\n    software`, 2000],
    ['clients[0].locations[0].id', 'id: main-st', `id: ${'m'.repeat(65)}`, 64],
    ['clients[0].locations[0].name', 'id: main-st', `id: main-st\n        name: ${long(201)}`, 200],
    ['clients[0].locations[0].devices[0].name', 'name: ACME-FD-01', `name: ${long(201)}`, 200],
    ['clients[0].locations[0].devices[0].class', 'ACME-FD-01, class: desktop', `ACME-FD-01, class: ${'d'.repeat(41)}`, 40],
    ['clients[0].locations[0].devices[0].user', 'user: jane@acme.example', `user: ${'j'.repeat(250)}@acme.example`, 254],
  ];

  it.each(cases)('%s: "longer than N characters" on its line', (field, from, to, max) => {
    expect(BASE).toContain(from);
    const problems = problemsOf(parseInventory(BASE.replace(from, to), 'long.yaml'));
    expect(problems.map((p) => [p.path, p.message])).toEqual([[field, `longer than ${max} characters`]]);
    expect(formatProblem(problems[0]!)).toMatch(new RegExp(`^long\\.yaml:\\d+ ${field.replace(/[[\].]/g, '\\$&')}: longer than ${max} characters$`));
  });

  it('takes a value right at the limit', () => {
    const inventory = inventoryOf(parseInventory(BASE.replace('name: Acme Dental', `name: ${long(200)}`), 'limit.yaml'));
    expect(inventory.clients[0]!.name).toHaveLength(200);
  });

  it('a megabyte-long name is one short problem, its text not repeated', () => {
    const problems = problemsOf(parseInventory(BASE.replace('name: Acme Dental', `name: ${long(1024 * 1024)}`), 'huge.yaml'));
    expect(problems.map(formatProblem)).toEqual(['huge.yaml:11 clients[0].name: longer than 200 characters']);
  });

  it('a key far too long for a field is quoted short in its problem', () => {
    // An explicit key (`? …`): a plain one past 1024 characters is already a YAML syntax error.
    const problems = problemsOf(parseInventory(BASE.replace('    software: [Dentrix]', `    ? ${'k'.repeat(100_000)}\n    : 1`), 'key.yaml'));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toMatch(/^clients\[0\]\.k+…$/);
    // Short next to the 100,000-character key; most of it is the list of allowed keys, which grows with the schema.
    expect(formatProblem(problems[0]!).length).toBeLessThan(520);
  });
});

describe('control characters', () => {
  it('are refused with the field and the character, whether written raw or escaped', () => {
    const text = BASE.replace('name: Acme Dental', 'name: Acme\0Dental')
      .replace('name: ACME-FD-01', 'name: "ACME-\\e[2JFD-01"')
      .replace('name: Example IT', 'name: "Example\\tIT"');
    const problems = problemsOf(parseInventory(text, 'ctl.yaml'));
    expect(problems.map(formatProblem)).toEqual([
      'ctl.yaml:2 msp.name: contains a control character (U+0009) at character 8; remove it',
      'ctl.yaml:11 clients[0].name: contains a control character (U+0000) at character 5; remove it',
      'ctl.yaml:19 clients[0].locations[0].devices[0].name: contains a control character (U+001B) at character 6; remove it',
    ]);
  });

  it('a DM template may run over lines and hold tabs, but not a carriage return or a NUL', () => {
    const template = (value: string) => BASE.replace('    software', `    dm_template: "${value}"\n    software`);
    expect(inventoryOf(parseInventory(template('Hi {name},\\n\\tsave your work'), 'ok.yaml')).clients[0]!.settings?.dmTemplate).toBe('Hi {name},\n\tsave your work');
    expect(problemsOf(parseInventory(template('Hi\\r\\nthere'), 'cr.yaml')).map((p) => p.message)).toEqual(['contains a control character (U+000D) at character 3; remove it']);
    expect(problemsOf(parseInventory(template('Hi\\0'), 'nul.yaml')).map((p) => p.message)).toEqual(['contains a control character (U+0000) at character 3; remove it']);
  });
});

describe('reading the file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'patchbay-inventory-read-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const write = async (name: string, bytes: Uint8Array) => {
    const file = path.join(dir, name);
    await writeFile(file, bytes);
    return file;
  };

  it('refuses bytes that are not UTF-8 with the line and byte offset of the first', async () => {
    const before = BASE.slice(0, BASE.indexOf('Acme Dental'));
    const latin1 = Buffer.from(BASE.replace('Acme Dental', 'Café Dental'), 'latin1');
    const file = await write('latin1.yaml', latin1);
    const problems = problemsOf(await readInventoryFile(file));
    expect(problems.map(formatProblem)).toEqual([`${file}:11 not valid UTF-8 (byte offset ${Buffer.byteLength(before) + 3}); save the file as UTF-8`]);
  });

  it('names UTF-16, with or without a byte-order mark', async () => {
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(BASE, 'utf16le')]);
    const be = Buffer.from(BASE, 'utf16le').swap16();
    for (const [name, bytes] of [['le.yaml', le], ['be.yaml', be]] as const) {
      const file = await write(name, bytes);
      expect(problemsOf(await readInventoryFile(file)).map(formatProblem)).toEqual([`${file}: the file is UTF-16; save it as UTF-8`]);
    }
  });

  it('drops a UTF-8 byte-order mark and reads non-ASCII names as written', async () => {
    const file = await write('bom.yaml', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(BASE.replace('Acme Dental', 'Café Dental'))]));
    expect(inventoryOf(await readInventoryFile(file)).clients[0]!.name).toBe('Café Dental');
  });

  it(`refuses a file over ${MAX_INVENTORY_BYTES / 1024 / 1024} MB without reading it all`, async () => {
    const file = await write('big.yaml', Buffer.from(BASE));
    await truncate(file, MAX_INVENTORY_BYTES + 1);
    const message = `larger than ${MAX_INVENTORY_BYTES / 1024 / 1024} MB, the most an inventory may be (100,000 devices take about 15 MB)`;
    expect(problemsOf(await readInventoryFile(file)).map(formatProblem)).toEqual([`${file}: ${message}`]);
    // A device has no size to check first: the limit holds while reading.
    if (existsSync('/dev/zero')) expect(problemsOf(await readInventoryFile('/dev/zero')).map((p) => p.message)).toEqual([message]);
  });
});
