/**
 * Where an inventory file can be cut into pieces that parse on their own: the head (everything up to the first
 * client) and one piece per top-level client entry. A whole-document YAML tree for 100,000 devices takes over a
 * gigabyte; one client's tree at a time takes a few megabytes.
 *
 * The cut is only offered for the plain block layout people and `generate-inventory` write: `clients:` is the last
 * top-level key, alone on its line, followed only by its list items at one indentation (and comments). Anything
 * else (flow style, keys after `clients`, document markers, lone CR line breaks) gets no cut, and the caller
 * parses the whole document as before. The caller also falls back when a piece has any YAML error, anchor or
 * alias, since those are exactly where a piece parsed alone could read differently from the whole.
 */
export interface InventoryPieces {
  /** The head is text[0, headEnd): comments, `msp:` and the `clients:` line. */
  headEnd: number;
  clients: ClientPiece[];
}

export interface ClientPiece {
  start: number;
  end: number;
  /** The 1-based line the piece starts on in the whole file. */
  line: number;
}

const SPACE = 0x20;
const HASH = 0x23;
const DASH = 0x2d;
const CR = 0x0d;
const LF = 0x0a;
const CLIENTS_LINE = /^clients:(?:[ \t]+#.*)?[ \t]*\r?\n?$/;

export function splitInventory(text: string): InventoryPieces | undefined {
  // YAML also breaks lines at a lone CR, which yaml's line counter and this scanner do not count.
  if (/\r(?!\n)/.test(text)) return undefined;
  let clientsSeen = false;
  let itemIndent = -1;
  let headEnd = -1;
  const clients: ClientPiece[] = [];
  let line = 0;
  for (let start = 0; start < text.length; ) {
    const newline = text.indexOf('\n', start);
    const end = newline === -1 ? text.length : newline + 1;
    line++;
    const kind = classify(text, start, end);
    if (!clientsSeen) {
      if (kind.indent === 0 && kind.first !== HASH && CLIENTS_LINE.test(text.slice(start, Math.min(end, start + 200)))) {
        clientsSeen = true;
        headEnd = end;
      }
    } else if (kind.first !== -1 && kind.first !== HASH) {
      if (itemIndent === -1) {
        if (!kind.item) return undefined;
        itemIndent = kind.indent;
        headEnd = start;
      }
      if (kind.indent < itemIndent || (kind.indent === 0 && !kind.item)) return undefined;
      if (kind.indent === itemIndent) {
        if (!kind.item) return undefined;
        const previous = clients.at(-1);
        if (previous) previous.end = start;
        clients.push({ start, end: text.length, line });
      }
    }
    start = end;
  }
  if (!clientsSeen) return undefined;
  return { headEnd: headEnd === -1 ? text.length : headEnd, clients };
}

/** A line's indentation, its first character after it (-1 for a blank line), and whether it starts a list item. */
function classify(text: string, start: number, end: number): { indent: number; first: number; item: boolean } {
  let at = start;
  while (at < end && text.charCodeAt(at) === SPACE) at++;
  const first = at < end ? text.charCodeAt(at) : -1;
  if (first === CR || first === LF || first === -1) return { indent: at - start, first: -1, item: false };
  const next = at + 1 < end ? text.charCodeAt(at + 1) : -1;
  const item = first === DASH && (next === SPACE || next === CR || next === LF || next === -1);
  return { indent: at - start, first, item };
}
