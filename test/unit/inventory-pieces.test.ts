// Parsing an inventory one client at a time must read exactly as parsing the whole document: the same inventory,
// and the same problems on the same lines, columns and paths. The whole-document parse is the reference.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateInventory, inventoryToYaml } from '../../src/adapters/inventory/generate.ts';
import { parseInventory, parseInventoryInPieces, type InventoryParse } from '../../src/adapters/inventory/parse.ts';
import { splitInventory } from '../../src/adapters/inventory/yaml-pieces.ts';

/** A generated file, plus what generate-inventory never writes: comments between clients and a block scalar with list-like lines. */
function sample(): string {
  const text = inventoryToYaml(generateInventory({ clients: 5, devices: 40, seed: 4 }));
  const hand = `# a client typed by hand
  - id: hand-made
    name: Hand Made
    timezone: Europe/London
    windows: { desktop: "daily 01:00-05:00" }
    dm_template: |
      Hello {name},
      - this line is text, not a client
    locations:
      - id: main-st
        devices:
          - { name: HAND-01, class: desktop }
`;
  return `${text}${hand}`;
}

function problemLines(result: InventoryParse): string[] {
  if (result.ok) throw new Error('expected problems');
  return result.problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`);
}

describe('parsing in pieces', () => {
  it('is used for the layout generate-inventory writes, one piece per client', () => {
    const text = sample();
    const pieces = splitInventory(text);
    expect(pieces?.clients).toHaveLength(6);
    expect(parseInventoryInPieces(text, 'x.yaml')).toEqual(parseInventory(text, 'x.yaml', { whole: true }));
    expect(parseInventoryInPieces(text, 'x.yaml')?.ok).toBe(true);
  });

  it('names the true line of a mistake in a late client, as the whole-document parse does', () => {
    const inventory = generateInventory({ clients: 40, devices: 2000, seed: 9 });
    const late = inventory.clients[37]!;
    const device = late.locations.at(-1)!.devices.at(-1)!;
    const text = inventoryToYaml(inventory).replace(`name: ${device.name}, class: ${device.class}`, `name: ${device.name}, class: Desk Top`);
    const line = text.split('\n').findIndex((l) => l.includes(`name: ${device.name}, class: Desk Top`)) + 1;
    expect(line).toBeGreaterThan(1500);

    const pieces = parseInventoryInPieces(text, 'big.yaml');
    expect(pieces).toBeDefined();
    const locationIndex = late.locations.length - 1;
    const deviceIndex = late.locations.at(-1)!.devices.length - 1;
    expect(problemLines(pieces!)).toEqual([
      `${line}:${text.split('\n')[line - 1]!.indexOf('Desk Top') + 1} clients[37].locations[${locationIndex}].devices[${deviceIndex}].class: "Desk Top" is not a device class (use a lower-case word such as desktop, server or laptop)`,
    ]);
    expect(pieces).toEqual(parseInventory(text, 'big.yaml', { whole: true }));
  });

  it('names the first line of a device name repeated across clients', () => {
    const inventory = generateInventory({ clients: 12, devices: 300, seed: 2 });
    const first = inventory.clients[1]!.locations[0]!.devices[0]!.name;
    const repeated = inventory.clients[10]!.locations[0]!.devices[0]!.name;
    const text = inventoryToYaml(inventory).replace(`name: ${repeated},`, `name: ${first},`);
    const lines = text.split('\n');
    const firstLine = lines.findIndex((l) => l.includes(`name: ${first},`)) + 1;
    const secondLine = lines.findLastIndex((l) => l.includes(`name: ${first},`)) + 1;
    const result = parseInventoryInPieces(text, 'dup.yaml');
    expect(problemLines(result!)).toEqual([expect.stringMatching(new RegExp(`^${secondLine}:\\d+ clients\\[10\\].*first at line ${firstLine}, clients\\[1\\]`))]);
    expect(result).toEqual(parseInventory(text, 'dup.yaml', { whole: true }));
  });

  it('leaves to the whole document what pieces cannot stand for', () => {
    const text = sample();
    const aliased = text.replace('windows: { desktop: "daily 01:00-05:00" }', 'windows: *w').replace(/windows: \{/, 'windows: &w {');
    expect(parseInventoryInPieces(aliased, 'x.yaml')).toBeUndefined();
    expect(splitInventory(`${text}extra: 1\n`)).toBeUndefined();
    expect(splitInventory(text.replace('clients:\n', 'clients: [\n'))).toBeUndefined();
    expect(parseInventoryInPieces(text.replace('name: Hand Made', 'name: "Hand Made'), 'x.yaml')).toBeUndefined();
  });

  /** Line edits that make a file wrong in the ways people and tools do, and in the ways that could fool a cut. */
  const LINES = [
    '  - id: x', '- id: y', '    extra: 1', '          - { name: ACME-1, class: Desk top }', '    windows: *w', '    windows: &w { desktop: "daily 01:00-05:00" }',
    '    name: "open', '    name: [', '\tname: tab', '---', '...', 'clients:', 'msp:', '  -', '# comment', '    dm_template: |', '      - text',
    '      - { name: EXIT-TEST-01, class: desktop }', '    id: Not An Id', '', '   ', 'extra: 2',
  ];
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), line: fc.constantFrom(...LINES) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), line: fc.constantFrom(...LINES) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('indent' as const), at: fc.nat(), by: fc.constantFrom(-2, -1, 1, 2) }),
  );

  it('reads any edited file exactly as the whole-document parse, whenever it reads it at all', () => {
    const base = sample().split('\n');
    let inPieces = 0;
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        const lines = [...base];
        for (const e of edits) {
          const at = e.at % lines.length;
          if (e.kind === 'replace') lines[at] = e.line;
          else if (e.kind === 'insert') lines.splice(at, 0, e.line);
          else if (e.kind === 'delete') lines.splice(at, 1);
          else lines[at] = e.by > 0 ? `${' '.repeat(e.by)}${lines[at]}` : lines[at]!.replace(new RegExp(`^ {0,${-e.by}}`), '');
        }
        const text = lines.join('\n');
        const pieces = parseInventoryInPieces(text, 'edit.yaml');
        if (pieces === undefined) return;
        inPieces++;
        expect(pieces).toEqual(parseInventory(text, 'edit.yaml', { whole: true }));
      }),
      { numRuns: 400 },
    );
    // Enough edited files are still read in pieces, so the comparison above is not vacuous.
    expect(inPieces).toBeGreaterThan(40);
  });
});
