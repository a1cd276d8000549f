import { closest, distance } from 'fastest-levenshtein';
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node, type Scalar } from 'yaml';

/** One thing wrong with a file, placed where a person would go to fix it. */
export interface InventoryProblem {
  file: string;
  /** 1-based; 0 when the problem is the file itself (missing, unreadable). */
  line: number;
  /** 1-based; 0 with line 0. */
  column: number;
  /** Where in the document, e.g. `clients[0].windows.desktop`; empty when no field is to blame. */
  path: string;
  message: string;
}

/** Anything with a source range: a node, a pair's key, or the document itself. */
interface Located {
  range?: [number, number, number] | null;
}

/** A key of a mapping and its value, as written. */
export interface Field {
  key: Scalar;
  /** Null when the key has no value at all (`name:`). */
  value: Node | null;
  path: string;
}

export interface MapShape {
  required: readonly string[];
  optional: readonly string[];
}

export interface ListItem {
  node: Node;
  path: string;
}

/**
 * Reads a parsed YAML document field by field, collecting every problem with the line of the node to
 * blame instead of stopping at the first. Each reader returns undefined when the value is absent or
 * wrong (having reported why), so callers can keep going and find the next mistake.
 */
export class YamlReader {
  readonly problems: InventoryProblem[] = [];

  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    readonly file: string,
  ) {}

  report(at: Located | null | undefined, path: string, message: string): void {
    const { line, column } = this.position(at);
    this.problems.push({ file: this.file, line, column, path, message });
  }

  position(at: Located | null | undefined): { line: number; column: number } {
    const { line, col } = this.lines.linePos(at?.range?.[0] ?? 0);
    return { line, column: col };
  }

  /** An alias stands for its anchor's node; problems are still reported where the alias is written. */
  resolve(node: Node | null | undefined): Node | null {
    if (node && isAlias(node)) return (node.resolve(this.doc) as Node | undefined) ?? null;
    return node ?? null;
  }

  /**
   * The keys of a mapping. Unknown keys (with the closest allowed key as a suggestion) and missing
   * required keys are reported; a missing key is placed on the mapping's own first line. With `anyKey`
   * the keys are data (device classes), not field names.
   */
  map(node: Node | null, path: string, shape: MapShape, what: string, anyKey = false): Map<string, Field> | undefined {
    const target = this.resolve(node);
    if (!target || !isMap(target)) {
      this.report(node, path, `expected ${what} (a mapping of key: value), got ${describe(target)}`);
      return undefined;
    }
    const fields = new Map<string, Field>();
    // A misspelled required key is one mistake: its did-you-mean already says what is missing.
    const misspelled = new Set<string>();
    for (const pair of target.items) {
      const key = pair.key as Node | null;
      if (!key || !isScalar(key) || (typeof key.value !== 'string' && typeof key.value !== 'number')) {
        this.report(key ?? target, path, `keys must be plain words, got ${describe(key)}`);
        continue;
      }
      const name = String(key.value);
      const fieldPath = path === '' ? name : `${path}.${name}`;
      if (!anyKey && !shape.required.includes(name) && !shape.optional.includes(name)) {
        const allowed = [...shape.required, ...shape.optional];
        const suggestion = didYouMean(name, allowed);
        if (suggestion) misspelled.add(suggestion);
        this.report(key, fieldPath, unknownKeyMessage(name, allowed, suggestion));
        continue;
      }
      // A repeated key is already a YAML error (reported with its line); keep the first one here.
      if (!fields.has(name)) fields.set(name, { key, value: (pair.value as Node | null) ?? null, path: fieldPath });
    }
    for (const name of shape.required) {
      if (!fields.has(name) && !misspelled.has(name)) this.report(target, path === '' ? name : `${path}.${name}`, `required field "${name}" is missing`);
    }
    return fields;
  }

  /** A non-empty piece of text. Numbers and booleans are refused rather than converted: `017` would lose its zero. */
  text(field: Field | undefined): string | undefined {
    if (!field) return undefined;
    const node = this.resolve(field.value);
    if (isEmpty(node)) {
      this.report(field.value ?? field.key, field.path, 'is empty');
      return undefined;
    }
    if (!isScalar(node) || typeof node.value !== 'string') {
      const hint = isScalar(node) ? ' (put it in quotes to make it text)' : '';
      this.report(field.value, field.path, `expected text, got ${describe(node)}${hint}`);
      return undefined;
    }
    const value = node.value.trim();
    if (value === '') {
      this.report(field.value, field.path, 'is empty');
      return undefined;
    }
    return value;
  }

  /** The items of a list; an absent or empty value is an empty list. */
  list(field: Field | undefined, what: string): ListItem[] {
    if (!field) return [];
    const node = this.resolve(field.value);
    if (isEmpty(node)) return [];
    if (!isSeq(node)) {
      this.report(field.value, field.path, `expected a list of ${what}, got ${describe(node)}`);
      return [];
    }
    return node.items.map((item, index) => ({ node: item as Node, path: `${field.path}[${index}]` }));
  }

  /** A list item read as text. */
  itemText(item: ListItem): string | undefined {
    return this.text({ key: item.node as Scalar, value: item.node, path: item.path });
  }
}

function isEmpty(node: Node | null): boolean {
  return node === null || (isScalar(node) && node.value === null);
}

function describe(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const value = node.value;
    if (value === null) return 'nothing';
    if (typeof value === 'string') return `text "${value}"`;
    if (typeof value === 'boolean') return `${value}`;
    if (typeof value === 'number' || typeof value === 'bigint') return `the number ${String(value)}`;
    return 'a value that is not text';
  }
  return 'an alias';
}

function unknownKeyMessage(name: string, allowed: readonly string[], suggestion: string | undefined): string {
  if (name === '<<') return 'merge keys ("<<") are not supported; use an alias for the whole value instead';
  return `unknown key "${name}"${suggestion ? ` (did you mean "${suggestion}"?)` : ` (expected one of: ${allowed.join(', ')})`}`;
}

/** The closest allowed word, when the difference looks like a typo rather than a different word. */
export function didYouMean(word: string, allowed: readonly string[]): string | undefined {
  if (allowed.length === 0) return undefined;
  const lower = word.toLowerCase();
  const best = closest(lower, [...allowed]);
  const limit = Math.max(2, Math.floor(lower.length / 3));
  return distance(lower, best.toLowerCase()) <= limit ? best : undefined;
}
