/**
 * Block Kit within Slack's limits. Slack publishes no schema, so the limits live here as numbers: the
 * renderer builds messages that respect them (splitting into more messages, never cutting text) and the
 * checker proves it in tests. Numbers from ../shared/platform-notes.md.
 */

export const BLOCK_KIT_LIMITS = {
  blocksPerMessage: 50,
  sectionText: 3000,
  sectionFields: 10,
  fieldText: 2000,
  headerText: 150,
  contextElements: 10,
  contextText: 3000,
  actionsElements: 25,
  blockId: 255,
  buttonText: 75,
  actionId: 255,
  buttonValue: 2000,
  /** Slack has refused messages near ~13k characters of blocks; stay clear of it. */
  messageBlocksChars: 12_000,
  /** Slack truncates a top-level `text` beyond 40,000 and advises at most 4,000; notifications show far less. */
  fallbackText: 3000,
} as const;

export interface TextObject {
  type: 'mrkdwn' | 'plain_text';
  text: string;
  emoji?: boolean;
}

export interface ButtonElement {
  type: 'button';
  text: { type: 'plain_text'; text: string; emoji?: boolean };
  action_id: string;
  value?: string;
  style?: 'primary' | 'danger';
}

export type Block =
  | { type: 'header'; block_id?: string; text: { type: 'plain_text'; text: string; emoji?: boolean } }
  | { type: 'section'; block_id?: string; text?: TextObject; fields?: TextObject[] }
  | { type: 'context'; block_id?: string; elements: TextObject[] }
  | { type: 'divider'; block_id?: string }
  | { type: 'actions'; block_id?: string; elements: ButtonElement[] };

export interface SlackMessage {
  /** Notification and screen-reader fallback; mrkdwn, so escaped like any other text. */
  text: string;
  blocks: Block[];
}

/**
 * Slack's mrkdwn has no escape character for `*`, `_`, `~` and backticks, so the way to show them literally is to
 * stop them pairing up: a marker only opens or closes formatting next to a word, and a zero-width space on both
 * sides of it is neither a word nor visible.
 */
export const MRKDWN_BREAK = '\u200B';

/**
 * Escapes only the control sequences (`<!channel>`, `<@U123>`, `<url|label>`, and `&`), leaving `*bold*` and the
 * like working. For text that mixes patchbay's own (or an MSP's template's) formatting with values; anything a
 * person or a feed wrote on its own goes through escapeMrkdwn instead.
 */
export function escapeMrkdwnControls(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Shows text in mrkdwn exactly as it was typed: `<!channel>` pings nobody, `<@U123>` mentions nobody, and
 * `*twice*`, `_x_`, `~x~` and backticks stay the characters they are. Apply to anything MSRC or a person wrote,
 * at render time only (the text is stored as written), never to patchbay's own markup (plain_text needs none).
 * The result is longer than the input: limit and split the escaped text, not the original.
 */
export function escapeMrkdwn(text: string): string {
  // Links, email addresses and emoji codes keep their characters: broken up, a pasted KB link would stop
  // being a link and `:white_check_mark:` would stop being an emoji. Neither formats the text around it.
  return escapeMrkdwnControls(text)
    .split(VERBATIM_TOKENS)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/[*_~`]/g, (marker) => `${MRKDWN_BREAK}${marker}${MRKDWN_BREAK}`)))
    .join('');
}

/** One capturing group, so `split` keeps the tokens at the odd indices. */
const VERBATIM_TOKENS = /(https?:\/\/[^\s<>|]+|[A-Za-z0-9][\w.+-]*@[\w-]+(?:\.[\w-]+)+|:[a-z0-9_+-]+:)/gi;

/** The longest prefix of escaped mrkdwn within `max` characters that does not end inside an `&amp;`-style entity. */
export function cutMrkdwn(text: string, max: number): string {
  if (text.length <= max) return text;
  const amp = text.lastIndexOf('&', max - 1);
  const cut = amp >= 0 && amp > max - 8 && text.indexOf(';', amp) >= max ? amp : max;
  return text.slice(0, cut);
}

/** Escaped mrkdwn within `max` characters, with an ellipsis when something was left off. */
export function truncateMrkdwn(text: string, max: number): string {
  return text.length <= max ? text : `${cutMrkdwn(text, max - 1)}\u2026`;
}

/**
 * Escaped mrkdwn within `max` characters for a top-level `text` (notification, screen reader, a message without
 * blocks): cut at a word boundary, never inside an entity or a `<link|label>`, then an ellipsis.
 */
export function boundText(text: string, max: number = BLOCK_KIT_LIMITS.fallbackText): string {
  if (text.length <= max) return text;
  let head = cutMrkdwn(text, max - 1);
  const open = head.lastIndexOf('<');
  if (open > head.lastIndexOf('>')) head = head.slice(0, open);
  // A word cut in two reads as a different word; a boundary in the last half keeps most of the text.
  const boundary = head.search(/\s\S*$/);
  if (boundary > max / 2) head = head.slice(0, boundary);
  return `${head.trimEnd()}\u2026`;
}

/** A URL inside `<url|label>`: the URL must not carry `|` or `>` of its own. */
export function mrkdwnLink(url: string, label: string): string {
  return `<${url.replace(/[|<>]/g, encodeURIComponent)}|${escapeMrkdwn(label)}>`;
}

export function mrkdwn(text: string): TextObject {
  return { type: 'mrkdwn', text };
}

export function plain(text: string): { type: 'plain_text'; text: string; emoji: boolean } {
  return { type: 'plain_text', text, emoji: true };
}

/**
 * Splits text into pieces of at most `max` characters, preferring line breaks, then spaces, and never
 * cutting an `&amp;`-style entity in two. Nothing is dropped: joining the pieces with newlines gives back
 * the text, less the line breaks or spaces split on.
 */
export function splitText(text: string, max: number): string[] {
  const pieces: string[] = [];
  let current = '';
  const flush = () => {
    if (current !== '') pieces.push(current);
    current = '';
  };
  for (const line of text.split('\n')) {
    const candidate = current === '' ? line : `${current}\n${line}`;
    if (candidate.length <= max) {
      current = candidate;
      continue;
    }
    flush();
    let rest = line;
    while (rest.length > max) {
      let cut = rest.lastIndexOf(' ', max);
      if (cut <= max / 2) cut = max;
      const amp = rest.lastIndexOf('&', cut);
      if (amp > 0 && amp > cut - 8 && rest.indexOf(';', amp) >= cut) cut = amp;
      pieces.push(rest.slice(0, cut));
      rest = rest.slice(cut).replace(/^ /, '');
    }
    current = rest;
  }
  flush();
  return pieces;
}

/** Every way a message breaks a Block Kit limit; empty when it is within all of them. */
export function checkMessage(message: SlackMessage, where = 'message'): string[] {
  const L = BLOCK_KIT_LIMITS;
  const problems: string[] = [];
  const add = (path: string, problem: string) => problems.push(`${where}.${path}: ${problem}`);
  if (typeof message.text !== 'string' || message.text.trim() === '') add('text', 'missing the fallback text');
  else if (message.text.length > L.fallbackText) add('text', `${message.text.length} characters (limit ${L.fallbackText})`);
  if (message.blocks.length > L.blocksPerMessage) add('blocks', `${message.blocks.length} blocks (limit ${L.blocksPerMessage})`);
  const size = JSON.stringify(message.blocks).length;
  if (size > L.messageBlocksChars) add('blocks', `${size} characters of JSON (limit ${L.messageBlocksChars})`);
  const blockIds = new Set<string>();
  message.blocks.forEach((block, i) => {
    const at = `blocks[${i}]`;
    if (block.block_id !== undefined) {
      if (block.block_id.length > L.blockId) add(`${at}.block_id`, `${block.block_id.length} characters (limit ${L.blockId})`);
      if (blockIds.has(block.block_id)) add(`${at}.block_id`, `"${block.block_id}" repeats in this message`);
      blockIds.add(block.block_id);
    }
    switch (block.type) {
      case 'header':
        if (block.text.type !== 'plain_text') add(`${at}.text`, 'a header takes plain_text');
        if (block.text.text.length > L.headerText) add(`${at}.text`, `${block.text.text.length} characters (limit ${L.headerText})`);
        if (block.text.text.trim() === '') add(`${at}.text`, 'empty');
        break;
      case 'section':
        if (!block.text && !block.fields?.length) add(at, 'a section needs text or fields');
        if (block.text && block.text.text.length > L.sectionText) add(`${at}.text`, `${block.text.text.length} characters (limit ${L.sectionText})`);
        if (block.text && block.text.text.trim() === '') add(`${at}.text`, 'empty');
        if (block.fields && block.fields.length > L.sectionFields) add(`${at}.fields`, `${block.fields.length} fields (limit ${L.sectionFields})`);
        block.fields?.forEach((field, j) => {
          if (field.text.length > L.fieldText) add(`${at}.fields[${j}]`, `${field.text.length} characters (limit ${L.fieldText})`);
          if (field.text.trim() === '') add(`${at}.fields[${j}]`, 'empty');
        });
        break;
      case 'context':
        if (block.elements.length === 0) add(`${at}.elements`, 'empty');
        if (block.elements.length > L.contextElements) add(`${at}.elements`, `${block.elements.length} elements (limit ${L.contextElements})`);
        block.elements.forEach((el, j) => {
          if (el.text.length > L.contextText) add(`${at}.elements[${j}]`, `${el.text.length} characters (limit ${L.contextText})`);
        });
        break;
      case 'actions': {
        if (block.elements.length === 0) add(`${at}.elements`, 'empty');
        if (block.elements.length > L.actionsElements) add(`${at}.elements`, `${block.elements.length} elements (limit ${L.actionsElements})`);
        const actionIds = new Set<string>();
        block.elements.forEach((el, j) => {
          const e = `${at}.elements[${j}]`;
          if (el.text.text.length > L.buttonText) add(`${e}.text`, `${el.text.text.length} characters (limit ${L.buttonText})`);
          if (el.action_id.length > L.actionId) add(`${e}.action_id`, `${el.action_id.length} characters (limit ${L.actionId})`);
          if (actionIds.has(el.action_id)) add(`${e}.action_id`, `"${el.action_id}" repeats in this block`);
          actionIds.add(el.action_id);
          if (el.value !== undefined && el.value.length > L.buttonValue) add(`${e}.value`, `${el.value.length} characters (limit ${L.buttonValue})`);
        });
        break;
      }
      case 'divider':
        break;
    }
  });
  return problems;
}

/**
 * Collects blocks into messages, starting a new one before any limit would be crossed. Section text that
 * is too long becomes several sections. `continuationText(n)` names the n-th extra message for its fallback.
 */
export class MessageBuilder {
  private readonly messages: SlackMessage[] = [];
  private current: Block[] = [];
  private currentChars = 2; // "[]"

  constructor(
    private readonly fallback: string,
    private readonly continuationText: (part: number) => string,
  ) {}

  /** Blocks that must stay in one message (a section and its buttons). */
  addGroup(blocks: Block[]): void {
    const size = blocks.reduce((sum, b) => sum + JSON.stringify(b).length + 1, 0);
    const L = BLOCK_KIT_LIMITS;
    if (this.current.length + blocks.length > L.blocksPerMessage || this.currentChars + size > L.messageBlocksChars) this.newMessage();
    if (size > L.messageBlocksChars || blocks.length > L.blocksPerMessage) {
      throw new Error(`a block group of ${size} characters cannot fit one Slack message; split it before adding`);
    }
    this.current.push(...blocks);
    this.currentChars += size;
  }

  add(block: Block): void {
    this.addGroup([block]);
  }

  /** A section of mrkdwn of any length: split into as many sections as the limit needs. */
  addSection(text: string, blockId?: string): void {
    splitText(text, BLOCK_KIT_LIMITS.sectionText).forEach((piece, i) => {
      this.add({ type: 'section', ...(blockId !== undefined ? { block_id: i === 0 ? blockId : `${blockId}:${i}`.slice(0, BLOCK_KIT_LIMITS.blockId) } : {}), text: mrkdwn(piece) });
    });
  }

  newMessage(): void {
    if (this.current.length === 0) return;
    const part = this.messages.length;
    this.messages.push({ text: boundText(part === 0 ? this.fallback : this.continuationText(part + 1)), blocks: this.current });
    this.current = [];
    this.currentChars = 2;
  }

  build(): SlackMessage[] {
    this.newMessage();
    return this.messages;
  }
}
