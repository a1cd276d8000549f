import { isAlias, isMap, isSeq, visit, type Alias, type Document, type Node } from 'yaml';

/**
 * Aliases (`*name`) resolved once for the whole document, and a guard against documents whose aliases nest
 * ("billion laughs"): a few kilobytes that name an anchor that names an anchor … expand to billions of values.
 * The reader follows aliases as it walks (so problems keep the line where the alias is written), which yaml's
 * own guard (maxAliasCount) does not cover: it only applies to toJS. yaml's Alias.resolve also walks the whole
 * document on every call, which alone makes a large file with many aliases quadratic.
 */
export class AliasIndex {
  private readonly targets = new Map<Alias, Node | undefined>();
  /** Every node as written, aliases counted once each. */
  readonly written: number;
  /** Nodes that carry an anchor (`&name`). */
  readonly anchored: number;

  constructor(doc: Document) {
    // yaml's rule: an alias stands for the last node with that anchor before it, in document order.
    const latest = new Map<string, Node>();
    let written = 0;
    let anchored = 0;
    visit(doc, {
      Node: (_key, node) => {
        written++;
        if (isAlias(node)) this.targets.set(node, latest.get(node.source));
        else if (node.anchor) {
          latest.set(node.anchor, node);
          anchored++;
        }
      },
    });
    this.written = written;
    this.anchored = anchored;
  }

  /** The node an alias stands for; undefined when no anchor of its name comes before it. */
  target(alias: Alias): Node | undefined {
    return this.targets.get(alias);
  }

  aliases(): Alias[] {
    return [...this.targets.keys()];
  }
}

export type AliasCheck =
  | { ok: true }
  | { ok: false; alias: Alias; message: string };

/**
 * Counts the values the document stands for once every alias is replaced by what it names, without building
 * it (only what aliases name is measured, once each), and refuses a document whose aliases add more than it
 * writes out and more than `slack`, so a small file may still share its windows between clients freely. An
 * alias inside the very value it names, or one naming no anchor, is refused too.
 */
export function checkAliases(index: AliasIndex, slack = 10_000): AliasCheck {
  const sizes = new Map<Node, number>();
  let total = index.written;
  let worst: { alias: Alias; size: number } | undefined;
  for (const alias of index.aliases()) {
    const target = index.target(alias);
    if (target === undefined) {
      return { ok: false, alias, message: `alias "*${alias.source}" names no anchor "&${alias.source}" written before it` };
    }
    const size = expandedSize(target, index, sizes);
    if (typeof size !== 'number') return { ok: false, alias: size.cycle, message: `alias "*${size.cycle.source}" is inside the value it names` };
    // The written tree counts the alias itself once; expanded, it is all of what it names.
    total += size - 1;
    if (!worst || size > worst.size) worst = { alias, size };
  }
  const limit = index.written + Math.max(slack, index.written);
  if (total <= limit || !worst) return { ok: true };
  return {
    ok: false,
    alias: worst.alias,
    message: `aliases expand this file to more than ${limit.toLocaleString('en-US')} values (it writes ${index.written.toLocaleString('en-US')}); write the repeated parts out instead of aliasing aliases`,
  };
}

function children(node: Node, index: AliasIndex): Node[] {
  if (isAlias(node)) {
    const target = index.target(node);
    return target ? [target] : [];
  }
  if (isSeq(node)) return node.items as Node[];
  if (isMap(node)) return node.items.flatMap((pair) => [pair.key, pair.value].filter((n): n is Node => n !== null && typeof n === 'object'));
  return [];
}

/**
 * How many values `root` stands for with its aliases expanded, memoised in `sizes` across calls. Post-order
 * with an explicit stack: a chain of thousands of anchors, each naming the previous one, must not overflow
 * the call stack. Sizes are floats, so an astronomic expansion is a big number, not a long loop.
 */
function expandedSize(root: Node, index: AliasIndex, sizes: Map<Node, number>): number | { cycle: Alias } {
  const open = new Set<Node>();
  const stack: Node[] = [root];
  while (stack.length > 0) {
    const node = stack.at(-1)!;
    if (sizes.has(node)) {
      stack.pop();
      continue;
    }
    const kids = children(node, index);
    if (!open.has(node)) {
      open.add(node);
      for (const child of kids) {
        // Only the nodes on the path from `root` are open: an alias reaching one again is a loop.
        if (open.has(child) && isAlias(node)) return { cycle: node };
        if (!sizes.has(child)) stack.push(child);
      }
      continue;
    }
    sizes.set(node, kids.reduce((sum, child) => sum + sizes.get(child)!, isAlias(node) ? 0 : 1));
    open.delete(node);
    stack.pop();
  }
  return sizes.get(root)!;
}
