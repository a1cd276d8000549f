/**
 * How long parsing and validating a large inventory takes, against the bare YAML parse of the same text in
 * the same process (ratio = ours / bare parse), so a slow or busy machine moves both alike and the ratio
 * shows what the validation costs on top of the YAML library.
 *
 * Run: node --expose-gc --import tsx bench/inventory-parse.ts [clients] [devices]
 */
import { LineCounter, parseDocument } from 'yaml';
import { generateInventory, inventoryToYaml } from '../src/adapters/inventory/generate.ts';
import { parseInventory } from '../src/adapters/inventory/parse.ts';

const ROUNDS = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function time(work: () => void): number {
  globalThis.gc?.();
  const start = performance.now();
  work();
  return performance.now() - start;
}

export function benchInventoryParse(clients = 200, devices = 20_000): string[] {
  const text = inventoryToYaml(generateInventory({ clients, devices, seed: 1 }));
  const ours: number[] = [];
  const bare: number[] = [];
  // Interleaved so a burst of load elsewhere hits both sides.
  for (let round = 0; round < ROUNDS; round++) {
    bare.push(time(() => parseDocument(text, { lineCounter: new LineCounter(), prettyErrors: false })));
    ours.push(
      time(() => {
        const result = parseInventory(text, 'bench.yaml');
        if (!result.ok) throw new Error(`generated inventory has problems: ${result.problems[0]?.message}`);
      }),
    );
  }
  const oursMs = median(ours);
  const bareMs = median(bare);
  const name = `inventory-parse-${clients}c-${devices}d`;
  return [
    `BENCH ${name} ${oursMs.toFixed(0)} ms ratio=${(oursMs / bareMs).toFixed(2)}`,
    `BENCH ${name}-bytes ${text.length} bytes ratio=1.00`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [clients, devices] = process.argv.slice(2).map(Number);
  for (const line of benchInventoryParse(clients || undefined, devices || undefined)) console.log(line);
}
