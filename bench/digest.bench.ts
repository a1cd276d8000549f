/**
 * Ingest + digest of 2024-May (3.2 MB, 180 CVEs): read the CVRF document into the model, build the digest,
 * render all four forms. Time (median) and peak live heap, each as a ratio against JSON.parse of the same
 * file in the same process, so figures compare across machines.
 */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DateTime } from 'luxon';
import { cvrfDocumentSchema } from '../src/adapters/msrc/cvrf-schema.ts';
import { parseCvrf } from '../src/adapters/msrc/to-release.ts';
import { parseKevCatalog } from '../src/adapters/kev/catalog.ts';
import { buildDigest, type KevIndex } from '../src/domain/digest.ts';
import { renderDigestBlocks } from '../src/chat/slack/digest-blocks.ts';
import { renderDigestCard } from '../src/chat/teams/digest-card.ts';
import { renderDigestJson } from '../src/render/digest-json.ts';
import { renderDigestText } from '../src/render/digest-text.ts';
import { sized } from './lib.ts';

type Report = (name: string, value: number, unit: string, ratio: number) => void;

async function reporter(): Promise<Report> {
  const lib = './lib.ts';
  const mod = (await import(lib).catch(() => undefined)) as { report?: Report } | undefined;
  return mod?.report ?? ((name, value, unit, ratio) => console.log(`BENCH ${name} ${value} ${unit} ratio=${ratio}`));
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function timeMs(fn: () => unknown, runs: number): number {
  fn(); // warm the JIT and the module caches
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Live heap while everything `fn` returns is held: the peak of a pipeline that keeps each stage. */
function liveHeapBytes(fn: () => unknown): number {
  gc?.();
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const held = fn();
  gc?.();
  gc?.();
  const after = process.memoryUsage().heapUsed;
  if (held === undefined) throw new Error('nothing held');
  return Math.max(0, after - before);
}

export default async function digestBench(): Promise<void> {
  const report = await reporter();
  const here = path.dirname(fileURLToPath(import.meta.url));
  const shared = path.resolve(here, '../../shared/fixtures');
  // Quick: the repository's own small document, so the smoke runs (and does not skip) where ../shared is absent.
  const file = sized(path.join(shared, 'msrc/2024-May.json'), path.resolve(here, '../test/fixtures/msrc/edge-cases.json'));
  if (!existsSync(file)) {
    console.log(`digest bench skipped: ${file} is absent`);
    return;
  }
  if (!gc) console.log('digest bench: run with --expose-gc for heap figures');
  const text = readFileSync(file, 'utf8');
  const kevFile = path.join(shared, 'kev/known_exploited_vulnerabilities.json');
  const kev: KevIndex | undefined = existsSync(kevFile) ? parseKevCatalog(readFileSync(kevFile, 'utf8')) : undefined;
  const now = DateTime.fromISO('2024-06-01T00:00:00Z');

  const ingestAndDigest = () => {
    const release = parseCvrf(text, '2024-May');
    const digest = buildDigest({ release, kev, now });
    return [renderDigestBlocks(digest, { interactive: true }), renderDigestCard(digest), renderDigestText(digest), renderDigestJson(digest)];
  };
  const runs = sized(15, 1);
  const baseMs = timeMs(() => JSON.parse(text), runs);
  const fullMs = timeMs(ingestAndDigest, runs);
  report('digest.may.json_parse', round(baseMs), 'ms', 1);
  report('digest.may.ingest_digest_render', round(fullMs), 'ms', round(fullMs / baseMs));

  if (gc) {
    const baseHeap = liveHeapBytes(() => JSON.parse(text));
    const fullHeap = liveHeapBytes(() => {
      const json: unknown = JSON.parse(text);
      const validated = cvrfDocumentSchema.parse(json);
      const release = parseCvrf(text, '2024-May');
      const digest = buildDigest({ release, kev, now });
      return [json, validated, release, digest, renderDigestBlocks(digest, { interactive: true }), renderDigestCard(digest), renderDigestText(digest), renderDigestJson(digest)];
    });
    report('digest.may.json_parse_heap', round(baseHeap / 1048576), 'MiB', 1);
    report('digest.may.ingest_digest_render_heap', round(fullHeap / 1048576), 'MiB', round(fullHeap / baseHeap));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await digestBench();
