import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IANAZone } from 'luxon';
import { describe, expect, it } from 'vitest';
import { generateInventory, inventoryToYaml, inventoryYamlPieces } from '../../src/adapters/inventory/generate.ts';
import { formatProblem, parseInventory, type InventoryParse } from '../../src/adapters/inventory/parse.ts';
import type { Inventory, InventoryDevice } from '../../src/domain/inventory.ts';

const MSRC_MAY_2024 = fileURLToPath(new URL('../../../shared/fixtures/msrc/2024-May.json', import.meta.url));

function inventoryOf(result: InventoryParse): Inventory {
  if (!result.ok) throw new Error(`expected no problems, got:\n${result.problems.slice(0, 20).map(formatProblem).join('\n')}`);
  return result.inventory;
}

function clientDevices(inventory: Inventory): InventoryDevice[] {
  return inventory.clients.flatMap((client) => client.locations.flatMap((location) => location.devices));
}

describe('generateInventory', () => {
  it('is the same for the same seed and different for another', () => {
    const options = { clients: 12, devices: 400, seed: 7 };
    expect(inventoryToYaml(generateInventory(options))).toBe(inventoryToYaml(generateInventory(options)));
    expect(inventoryToYaml(generateInventory({ ...options, seed: 8 }))).not.toBe(inventoryToYaml(generateInventory(options)));
  });

  it('makes exactly the devices asked for, every client with some, 1-2 pilots per location and about 10% servers', () => {
    const inventory = generateInventory({ clients: 40, devices: 3000, seed: 3 });
    const devices = clientDevices(inventory);
    expect(inventory.clients).toHaveLength(40);
    expect(devices).toHaveLength(3000);
    for (const client of inventory.clients) {
      expect(client.locations.length).toBeGreaterThan(0);
      for (const location of client.locations) {
        const pilots = location.devices.filter((d) => d.ring === 'pilot');
        expect(pilots.length).toBeGreaterThanOrEqual(1);
        expect(pilots.length).toBeLessThanOrEqual(2);
      }
    }
    const serverShare = devices.filter((d) => d.class === 'server').length / devices.length;
    expect(serverShare).toBeGreaterThan(0.06);
    expect(serverShare).toBeLessThan(0.14);
    expect(inventory.msp.devices.every((d) => d.ring === 'msp')).toBe(true);
  });

  it('uses realistic names, real zones and unique device names', () => {
    const inventory = generateInventory({ clients: 30, devices: 2000, seed: 11 });
    for (const client of inventory.clients) {
      expect(client.id).toMatch(/^[a-z]+-[a-z-]+-\d{3}$/);
      expect(IANAZone.isValidZone(client.timezone)).toBe(true);
      expect(client.software.length).toBeGreaterThan(0);
      expect(client.champions.length).toBeGreaterThan(0);
    }
    const devices = clientDevices(inventory);
    for (const device of devices) expect(device.name).toMatch(/^[A-Z]{3}-\d{3}-[A-Z]{2,3}-\d{4}$/);
    const names = [...inventory.msp.devices, ...devices].map((d) => d.name.toLowerCase());
    expect(new Set(names).size).toBe(names.length);
    expect(devices.filter((d) => d.class !== 'server').every((d) => d.user?.endsWith('.example'))).toBe(true);
  });

  it.skipIf(!existsSync(MSRC_MAY_2024))('names operating systems exactly as the MSRC product tree does (needs ../shared/fixtures)', () => {
    const cvrf = JSON.parse(readFileSync(MSRC_MAY_2024, 'utf8')) as { ProductTree: { FullProductName: Array<{ Value: string }> } };
    const products = new Set(cvrf.ProductTree.FullProductName.map((p) => p.Value));
    const inventory = generateInventory({ clients: 50, devices: 5000, seed: 5 });
    const systems = new Set([...inventory.msp.devices, ...clientDevices(inventory)].map((d) => d.os));
    expect(systems.size).toBeGreaterThan(4);
    for (const os of systems) expect(products, `"${os}" is not in 2024-May's product tree`).toContain(os);
  });

  it('refuses sizes that are not whole numbers', () => {
    expect(() => generateInventory({ clients: 2.5, devices: 10, seed: 1 })).toThrow(/clients must be a whole number/);
    expect(() => generateInventory({ clients: 2, devices: -1, seed: 1 })).toThrow(/devices must be a whole number/);
  });
});

describe('inventoryToYaml', () => {
  it('re-parses to the same inventory', () => {
    const inventory = generateInventory({ clients: 25, devices: 1500, seed: 42 });
    expect(inventoryOf(parseInventory(inventoryToYaml(inventory), 'generated.yaml'))).toStrictEqual(inventory);
  });

  it('writes the example back to an equal inventory', () => {
    const example = fileURLToPath(new URL('../../examples/inventory.yaml', import.meta.url));
    const inventory = inventoryOf(parseInventory(readFileSync(example, 'utf8'), 'inventory.yaml'));
    expect(inventoryOf(parseInventory(inventoryToYaml(inventory), 'again.yaml'))).toStrictEqual(inventory);
  });

  it('round-trips a 200-client, 20,000-device inventory with no problems', { timeout: 120_000 }, () => {
    const inventory = generateInventory({ clients: 200, devices: 20_000, seed: 1 });
    const parsed = inventoryOf(parseInventory(inventoryToYaml(inventory), 'large.yaml'));
    expect(clientDevices(parsed)).toHaveLength(20_000);
    expect(parsed).toStrictEqual(inventory);
  });
});

describe('inventoryYamlPieces', () => {
  it('writes clients with every setting, a multi-line template and no clients at all, all of which parse back the same', () => {
    const inventory = generateInventory({ clients: 3, devices: 30, seed: 6 });
    inventory.clients[1]!.settings = {
      slackChannel: 'C0ACME',
      teamsTenantId: '0a1b2c3d-0000-4000-8000-00000000abcd',
      chatPlatform: 'teams',
      dmTime: '15:00',
      dmTemplate: 'Hello {name},\n- your machine restarts tonight\n\n  (indented)',
      maxDeferralsPerRelease: 2,
      reportDay: 3,
    };
    const text = [...inventoryYamlPieces(inventory.msp, inventory.clients)].join('');
    expect(inventoryOf(parseInventory(text, 'x.yaml'))).toEqual(inventoryOf(parseInventory(text, 'x.yaml', { whole: true })));
    expect(inventoryOf(parseInventory(text, 'x.yaml')).clients[1]!.settings).toEqual(inventory.clients[1]!.settings);
    const empty = [...inventoryYamlPieces(inventory.msp, [])].join('');
    expect(inventoryOf(parseInventory(empty, 'x.yaml')).clients).toEqual([]);
  });
});
