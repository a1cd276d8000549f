import { closest, distance } from 'fastest-levenshtein';
import { isAlias, isMap, isScalar, isSeq, type LineCounter, type Node, type Scalar } from 'yaml';
import type { AliasIndex } from './yaml-aliases.ts';

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
 * What a piece of text may be: its longest length, and whether it may run over several lines. Every text
 * field has a limit, so a hostile or broken file cannot make the bot store, print or match megabytes.
 */
export interface TextRule {
  max: number;
  multiline?: boolean;
}

/** Kept beyond this, problems only cost memory: a person reads the first ones and fixes them first. */
const PROBLEMS_KEPT = 10_000;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Tab and line feed are how multi-line text is written; yaml already turns CRLF into LF. */
// eslint-disable-next-line no-control-regex -- as above
const CONTROL_IN_MULTILINE = /[\u0000-\u0008\u000b-\u001f\u007f]/;

/**
 * Reads a parsed YAML document field by field, collecting every problem with the line of the node to
 * blame instead of stopping at the first. Each reader returns undefined when the value is absent or
 * wrong (having reported why), so callers can keep going and find the next mistake.
 */
export class YamlReader {
  readonly problems: InventoryProblem[] = [];
  /** Problems found beyond PROBLEMS_KEPT: counted, not kept. */
  dropped = 0;

  /** Lines before the piece of the file now being read (0 when reading the whole file in one piece). */
  private lineBase = 0;
  private readonly texts = new Map<string, string>();

  constructor(
    private aliases: AliasIndex,
    private lines: LineCounter,
    readonly file: string,
  ) {}

  /**
   * Reads another piece of the same file from now on: nodes of the pieces read before must not be reported
   * after this, since their offsets count from another piece's start.
   */
  usePiece(aliases: AliasIndex, lines: LineCounter, lineBase: number): void {
    this.aliases = aliases;
    this.lines = lines;
    this.lineBase = lineBase;
  }

  report(at: Located | null | undefined, path: string, message: string): void {
    const { line, column } = this.position(at);
    this.add({ file: this.file, line, column, path, message });
  }

  add(problem: InventoryProblem): void {
    if (this.problems.length < PROBLEMS_KEPT) this.problems.push(problem);
    else this.dropped++;
  }

  get problemCount(): number {
    return this.problems.length + this.dropped;
  }

  position(at: Located | null | undefined): { line: number; column: number } {
    const { line, col } = this.lines.linePos(at?.range?.[0] ?? 0);
    return { line: line + this.lineBase, column: col };
  }

  /** An alias stands for its anchor's node; problems are still reported where the alias is written. */
  resolve(node: Node | null | undefined): Node | null {
    if (node && isAlias(node)) return this.aliases.target(node) ?? null;
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
        this.report(key ?? target, path, `keys must be plain words, got ${describe(this.resolve(key))}`);
        continue;
      }
      const name = String(key.value);
      // Known keys and device classes are short; anything else is cut to keep its problem line short.
      const shown = name.length > 64 ? `${name.slice(0, 64)}…` : name;
      const fieldPath = path === '' ? shown : `${path}.${shown}`;
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

  /**
   * A non-empty piece of text within its rule. Numbers and booleans are refused rather than converted: `017`
   * would lose its zero. Control characters are refused: PostgreSQL cannot store NUL, and the rest hide in a
   * terminal or a chat message.
   */
  text(field: Field | undefined, rule: TextRule): string | undefined {
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
    if (value.length > rule.max) {
      this.report(field.value, field.path, `longer than ${rule.max} characters`);
      return undefined;
    }
    const control = (rule.multiline ? CONTROL_IN_MULTILINE : CONTROL).exec(value);
    if (control) {
      const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
      this.report(field.value, field.path, `contains a control character (U+${code}) at character ${control.index + 1}; remove it`);
      return undefined;
    }
    return this.kept(value);
  }

  /**
   * One string per distinct value, its own: 100,000 devices name a few dozen operating systems, and their users
   * repeat. See ownCopy for why a copy.
   */
  private kept(value: string): string {
    let kept = this.texts.get(value);
    if (kept === undefined) {
      kept = ownCopy(value);
      this.texts.set(value, kept);
    }
    return kept;
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
  itemText(item: ListItem, rule: TextRule): string | undefined {
    return this.text({ key: item.node as Scalar, value: item.node, path: item.path }, rule);
  }
}

function isEmpty(node: Node | null): boolean {
  return node === null || (isScalar(node) && node.value === null);
}

/**
 * V8 makes a piece of a string 13 characters or longer a view into the whole, so one client id kept from the
 * file kept all of its text alive: 15 MB for as long as the inventory at 100,000 devices. JSON's round trip is
 * the cheapest copy that is its own string; a shorter piece is copied already.
 */
function ownCopy(value: string): string {
  return value.length < 13 ? value : (JSON.parse(JSON.stringify(value)) as string);
}

function describe(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const value = node.value;
    if (value === null) return 'nothing';
    if (typeof value === 'string') return `text ${quote(value)}`;
    if (typeof value === 'boolean') return `${value}`;
    if (typeof value === 'number' || typeof value === 'bigint') return `the number ${String(value)}`;
    return 'a value that is not text';
  }
  return 'an alias';
}

function unknownKeyMessage(name: string, allowed: readonly string[], suggestion: string | undefined): string {
  if (name === '<<') return 'merge keys ("<<") are not supported; use an alias for the whole value instead';
  return `unknown key ${quote(name)}${suggestion ? ` (did you mean "${suggestion}"?)` : ` (expected one of: ${allowed.join(', ')})`}`;
}

/**
 * Text from the file, for a message: quoted with control characters escaped (an ESC could rewrite the
 * terminal the message is read in) and cut short, so a huge value never makes a huge message.
 */
export function quote(value: string, max = 80): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}

/** The closest allowed word, when the difference looks like a typo rather than a different word. */
export function didYouMean(word: string, allowed: readonly string[]): string | undefined {
  // Far longer than any allowed word is no typo, and comparing it would cost time in its length.
  if (allowed.length === 0 || word.length > 64) return undefined;
  const lower = word.toLowerCase();
  const best = closest(lower, [...allowed]);
  const limit = Math.max(2, Math.floor(lower.length / 3));
  return distance(lower, best.toLowerCase()) <= limit ? best : undefined;
}
