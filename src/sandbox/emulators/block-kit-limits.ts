/**
 * An independent Block Kit checker for tests: the limits Slack documents (there is no official JSON schema),
 * written from Slack's reference pages, not from the product's code, so the product is checked against a
 * second opinion rather than against itself.
 *
 * Lengths are measured in UTF-16 code units (`string.length`). Slack's own counting is not documented; code
 * units are never fewer than code points, so a message this checker accepts is not longer than Slack allows.
 */

export type Surface = 'message' | 'modal' | 'home';

export interface Violation {
  /** JSON pointer into the checked payload, as Slack prints it: `/blocks/0/text/text`. */
  pointer: string;
  /** Short machine-readable rule name, e.g. `max_length`, `max_items`, `duplicate_block_id`. */
  rule: string;
  /** Human text in Slack's style: `must be less than 3001 characters`. */
  message: string;
}

export const LIMITS = {
  blocksPerMessage: 50,
  blocksPerView: 100,
  blockId: 255,
  actionId: 255,
  sectionText: 3000,
  sectionFields: 10,
  sectionFieldText: 2000,
  headerText: 150,
  contextElements: 10,
  actionsElements: 25,
  buttonText: 75,
  buttonValue: 2000,
  buttonAccessibilityLabel: 75,
  url: 3000,
  imageAltText: 2000,
  imageTitle: 2000,
  inputLabel: 2000,
  inputHint: 2000,
  plainTextInputLength: 3000,
  placeholder: 150,
  selectOptions: 100,
  optionText: 75,
  optionValue: 150,
  overflowOptionsMin: 2,
  overflowOptionsMax: 5,
  confirmTitle: 100,
  confirmText: 300,
  confirmButton: 30,
  /** Slack truncates or refuses a top-level `text` over this; the emulator refuses (`msg_too_long`). */
  messageText: 40_000,
  /**
   * Slack refuses messages whose blocks serialise to roughly 13k characters (`msg_blocks_too_long`),
   * below every documented per-field limit (bolt-js issue #2509 measured 13,172-13,297). 13,000 keeps a margin.
   */
  blocksJsonChars: 13_000,
  viewTitle: 24,
  viewButton: 24,
  callbackId: 255,
  externalId: 255,
  privateMetadata: 3000,
} as const;

export const KNOWN_BLOCK_TYPES = ['section', 'header', 'divider', 'context', 'actions', 'input', 'image', 'rich_text'] as const;

const SELECTS = [
  'static_select', 'external_select', 'users_select', 'conversations_select', 'channels_select',
  'multi_static_select', 'multi_external_select', 'multi_users_select', 'multi_conversations_select',
  'multi_channels_select',
];
const ACTIONS_ELEMENTS = new Set([
  'button', 'checkboxes', 'datepicker', 'datetimepicker', 'overflow', 'radio_buttons', 'timepicker',
  'workflow_button', 'rich_text_input', ...SELECTS,
]);
const ACCESSORY_ELEMENTS = new Set([
  'button', 'checkboxes', 'datepicker', 'image', 'overflow', 'radio_buttons', 'timepicker', 'workflow_button',
  ...SELECTS,
]);
const INPUT_ELEMENTS = new Set([
  'checkboxes', 'datepicker', 'datetimepicker', 'email_text_input', 'number_input', 'plain_text_input',
  'radio_buttons', 'rich_text_input', 'timepicker', 'url_text_input', 'file_input', ...SELECTS,
]);

export interface CheckOptions {
  surface?: Surface;
  /**
   * Where action_id must be unique. Slack's reference says "unique among all other action_ids in the containing
   * block"; `message` is the stricter reading (unique across the whole message or view).
   */
  actionIdScope?: 'block' | 'message';
  /** Pointer prefix for the blocks array, `/blocks` for messages, `/view/blocks` for views. */
  pointer?: string;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Checker {
  readonly violations: Violation[] = [];
  private readonly blockIds = new Set<string>();
  private readonly messageActionIds = new Set<string>();
  private blockActionIds = new Set<string>();

  constructor(private readonly actionIdScope: 'block' | 'message') {}

  add(pointer: string, rule: string, message: string): void {
    this.violations.push({ pointer, rule, message });
  }

  maxLen(value: unknown, max: number, pointer: string, required = false): void {
    if (value === undefined || value === null) {
      if (required) this.add(pointer, 'required', 'must provide a string');
      return;
    }
    if (typeof value !== 'string') {
      this.add(pointer, 'type', 'must provide a string');
      return;
    }
    if (value.length > max) this.add(pointer, 'max_length', `must be less than ${max + 1} characters`);
  }

  /** A text composition object: `{type: 'plain_text'|'mrkdwn', text}` with 1..max characters. */
  text(obj: unknown, max: number, pointer: string, opts: { plainOnly?: boolean; required?: boolean } = {}): void {
    if (obj === undefined || obj === null) {
      if (opts.required ?? true) this.add(pointer, 'required', 'must provide an object');
      return;
    }
    if (!isObject(obj)) {
      this.add(pointer, 'type', 'must provide an object');
      return;
    }
    const allowed = opts.plainOnly ? ['plain_text'] : ['plain_text', 'mrkdwn'];
    if (typeof obj.type !== 'string' || !allowed.includes(obj.type)) {
      this.add(`${pointer}/type`, 'text_type', `must be one of: ${allowed.join(', ')}`);
    }
    if (typeof obj.text !== 'string') {
      this.add(`${pointer}/text`, 'required', 'must provide a string');
      return;
    }
    if (obj.text.length === 0) this.add(`${pointer}/text`, 'min_length', 'must be more than 0 characters');
    if (obj.text.length > max) this.add(`${pointer}/text`, 'max_length', `must be less than ${max + 1} characters`);
  }

  blockId(block: Json, pointer: string): void {
    if (block.block_id === undefined) return;
    this.maxLen(block.block_id, LIMITS.blockId, `${pointer}/block_id`);
    if (typeof block.block_id === 'string') {
      if (this.blockIds.has(block.block_id)) {
        this.add(`${pointer}/block_id`, 'duplicate_block_id', `duplicate block_id: ${block.block_id}`);
      }
      this.blockIds.add(block.block_id);
    }
  }

  actionId(el: Json, pointer: string): void {
    if (el.action_id === undefined) return;
    this.maxLen(el.action_id, LIMITS.actionId, `${pointer}/action_id`);
    if (typeof el.action_id !== 'string') return;
    const seen = this.actionIdScope === 'message' ? this.messageActionIds : this.blockActionIds;
    if (seen.has(el.action_id)) {
      this.add(`${pointer}/action_id`, 'duplicate_action_id', `duplicate action_id: ${el.action_id}`);
    }
    seen.add(el.action_id);
  }

  confirm(obj: unknown, pointer: string): void {
    if (obj === undefined) return;
    if (!isObject(obj)) return this.add(pointer, 'type', 'must provide an object');
    this.text(obj.title, LIMITS.confirmTitle, `${pointer}/title`, { plainOnly: true });
    this.text(obj.text, LIMITS.confirmText, `${pointer}/text`);
    this.text(obj.confirm, LIMITS.confirmButton, `${pointer}/confirm`, { plainOnly: true });
    this.text(obj.deny, LIMITS.confirmButton, `${pointer}/deny`, { plainOnly: true });
  }

  option(obj: unknown, pointer: string): void {
    if (!isObject(obj)) return this.add(pointer, 'type', 'must provide an object');
    this.text(obj.text, LIMITS.optionText, `${pointer}/text`);
    this.maxLen(obj.value, LIMITS.optionValue, `${pointer}/value`);
  }

  element(el: unknown, pointer: string, allowed: Set<string>, where: string): void {
    if (!isObject(el)) return this.add(pointer, 'type', 'must provide an object');
    if (typeof el.type !== 'string' || !allowed.has(el.type)) {
      return this.add(`${pointer}/type`, 'element_type', `unsupported element type in ${where}: ${String(el.type)}`);
    }
    this.actionId(el, pointer);
    switch (el.type) {
      case 'button':
        this.text(el.text, LIMITS.buttonText, `${pointer}/text`, { plainOnly: true });
        this.maxLen(el.value, LIMITS.buttonValue, `${pointer}/value`);
        this.maxLen(el.url, LIMITS.url, `${pointer}/url`);
        this.maxLen(el.accessibility_label, LIMITS.buttonAccessibilityLabel, `${pointer}/accessibility_label`);
        if (el.style !== undefined && el.style !== 'primary' && el.style !== 'danger') {
          this.add(`${pointer}/style`, 'enum', 'must be one of: primary, danger');
        }
        this.confirm(el.confirm, `${pointer}/confirm`);
        break;
      case 'image':
        this.maxLen(el.image_url, LIMITS.url, `${pointer}/image_url`, el.slack_file === undefined);
        this.maxLen(el.alt_text, LIMITS.imageAltText, `${pointer}/alt_text`, true);
        break;
      case 'plain_text_input':
        for (const key of ['min_length', 'max_length'] as const) {
          const n = el[key];
          if (n === undefined) continue;
          if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > LIMITS.plainTextInputLength) {
            this.add(`${pointer}/${key}`, 'range', `must be an integer from 0 to ${LIMITS.plainTextInputLength}`);
          }
        }
        this.text(el.placeholder, LIMITS.placeholder, `${pointer}/placeholder`, { plainOnly: true, required: false });
        this.maxLen(el.initial_value, LIMITS.plainTextInputLength, `${pointer}/initial_value`);
        break;
      case 'overflow': {
        const opts = el.options;
        if (!Array.isArray(opts) || opts.length < LIMITS.overflowOptionsMin || opts.length > LIMITS.overflowOptionsMax) {
          this.add(`${pointer}/options`, 'items', `must provide ${LIMITS.overflowOptionsMin} to ${LIMITS.overflowOptionsMax} items`);
        } else opts.forEach((o, i) => this.option(o, `${pointer}/options/${i}`));
        this.confirm(el.confirm, `${pointer}/confirm`);
        break;
      }
      default:
        if (el.type === 'static_select' || el.type === 'multi_static_select' || el.type === 'checkboxes' || el.type === 'radio_buttons') {
          const opts = el.options;
          if (Array.isArray(opts)) {
            if (opts.length > LIMITS.selectOptions) {
              this.add(`${pointer}/options`, 'max_items', `must provide no more than ${LIMITS.selectOptions} items`);
            }
            opts.forEach((o, i) => this.option(o, `${pointer}/options/${i}`));
          } else if (el.option_groups === undefined) {
            this.add(`${pointer}/options`, 'required', 'must provide an array');
          }
        }
        if (SELECTS.includes(el.type)) {
          this.text(el.placeholder, LIMITS.placeholder, `${pointer}/placeholder`, { plainOnly: true, required: false });
        }
        this.confirm(el.confirm, `${pointer}/confirm`);
    }
  }

  block(block: unknown, pointer: string): void {
    if (!isObject(block)) return this.add(pointer, 'type', 'must provide an object');
    this.blockActionIds = new Set();
    this.blockId(block, pointer);
    switch (block.type) {
      case 'section': {
        if (block.text === undefined && block.fields === undefined) {
          this.add(pointer, 'required', 'must provide text or fields');
        }
        if (block.text !== undefined) this.text(block.text, LIMITS.sectionText, `${pointer}/text`);
        if (block.fields !== undefined) {
          if (!Array.isArray(block.fields)) this.add(`${pointer}/fields`, 'type', 'must provide an array');
          else {
            if (block.fields.length > LIMITS.sectionFields) {
              this.add(`${pointer}/fields`, 'max_items', `must provide no more than ${LIMITS.sectionFields} items`);
            }
            block.fields.forEach((f, i) => this.text(f, LIMITS.sectionFieldText, `${pointer}/fields/${i}`));
          }
        }
        if (block.accessory !== undefined) this.element(block.accessory, `${pointer}/accessory`, ACCESSORY_ELEMENTS, 'section accessory');
        break;
      }
      case 'header':
        this.text(block.text, LIMITS.headerText, `${pointer}/text`, { plainOnly: true });
        break;
      case 'divider':
        break;
      case 'context': {
        const els = block.elements;
        if (!Array.isArray(els) || els.length === 0) {
          this.add(`${pointer}/elements`, 'required', 'must provide a non-empty array');
          break;
        }
        if (els.length > LIMITS.contextElements) {
          this.add(`${pointer}/elements`, 'max_items', `must provide no more than ${LIMITS.contextElements} items`);
        }
        els.forEach((el, i) => {
          const p = `${pointer}/elements/${i}`;
          if (isObject(el) && el.type === 'image') this.element(el, p, new Set(['image']), 'context');
          // Context text has no documented per-element limit below the message's; 3000 matches section text.
          else this.text(el, LIMITS.sectionText, p);
        });
        break;
      }
      case 'actions': {
        const els = block.elements;
        if (!Array.isArray(els) || els.length === 0) {
          this.add(`${pointer}/elements`, 'required', 'must provide a non-empty array');
          break;
        }
        if (els.length > LIMITS.actionsElements) {
          this.add(`${pointer}/elements`, 'max_items', `must provide no more than ${LIMITS.actionsElements} items`);
        }
        els.forEach((el, i) => this.element(el, `${pointer}/elements/${i}`, ACTIONS_ELEMENTS, 'actions'));
        break;
      }
      case 'input':
        this.text(block.label, LIMITS.inputLabel, `${pointer}/label`, { plainOnly: true });
        this.text(block.hint, LIMITS.inputHint, `${pointer}/hint`, { plainOnly: true, required: false });
        if (block.element === undefined) this.add(`${pointer}/element`, 'required', 'must provide an object');
        else this.element(block.element, `${pointer}/element`, INPUT_ELEMENTS, 'input');
        break;
      case 'image':
        this.maxLen(block.image_url, LIMITS.url, `${pointer}/image_url`, block.slack_file === undefined);
        this.maxLen(block.alt_text, LIMITS.imageAltText, `${pointer}/alt_text`, true);
        this.text(block.title, LIMITS.imageTitle, `${pointer}/title`, { plainOnly: true, required: false });
        break;
      case 'rich_text':
        if (!Array.isArray(block.elements)) this.add(`${pointer}/elements`, 'required', 'must provide an array');
        break;
      default:
        this.add(`${pointer}/type`, 'block_type', `unsupported block type: ${String(block.type)}`);
    }
  }
}

/** Check a blocks array for the given surface. An empty list means Slack would accept it (as far as we know). */
export function checkBlocks(blocks: unknown, options: CheckOptions = {}): Violation[] {
  const surface = options.surface ?? 'message';
  const pointer = options.pointer ?? '/blocks';
  const checker = new Checker(options.actionIdScope ?? 'block');
  if (!Array.isArray(blocks)) {
    checker.add(pointer, 'type', 'must provide an array');
    return checker.violations;
  }
  const max = surface === 'message' ? LIMITS.blocksPerMessage : LIMITS.blocksPerView;
  if (blocks.length > max) checker.add(pointer, 'max_items', `must provide no more than ${max} items`);
  blocks.forEach((b, i) => checker.block(b, `${pointer}/${i}`));
  return checker.violations;
}

export type MessageError = 'invalid_blocks' | 'msg_too_long' | 'msg_blocks_too_long' | 'no_text';

export interface MessageCheck {
  /** The error name Slack answers with, or undefined when the message is accepted. */
  error?: MessageError;
  violations: Violation[];
  /** True when blocks are sent without a top-level `text` fallback (accepted, but warned about). */
  missingText: boolean;
}

export interface MessageCheckOptions {
  actionIdScope?: 'block' | 'message';
  /** Serialised-blocks threshold for `msg_blocks_too_long`; default {@link LIMITS.blocksJsonChars}. */
  maxBlocksJsonChars?: number;
  /** chat.update may omit everything else (previous blocks are kept); postMessage needs text or blocks. */
  requireContent?: boolean;
}

/** Check a message's `text` and `blocks` (already parsed from JSON) the way chat.postMessage/chat.update would. */
export function checkMessage(msg: { text?: unknown; blocks?: unknown; attachments?: unknown }, options: MessageCheckOptions = {}): MessageCheck {
  const text = typeof msg.text === 'string' ? msg.text : undefined;
  const hasBlocks = Array.isArray(msg.blocks) && msg.blocks.length > 0;
  const hasAttachments = Array.isArray(msg.attachments) && msg.attachments.length > 0;
  const missingText = text === undefined || text === '';
  if ((options.requireContent ?? true) && missingText && !hasBlocks && !hasAttachments) {
    return { error: 'no_text', violations: [{ pointer: '/text', rule: 'required', message: 'no text, blocks or attachments' }], missingText };
  }
  if (text !== undefined && text.length > LIMITS.messageText) {
    return {
      error: 'msg_too_long',
      violations: [{ pointer: '/text', rule: 'max_length', message: `must be less than ${LIMITS.messageText + 1} characters` }],
      missingText,
    };
  }
  if (msg.blocks !== undefined) {
    const violations = checkBlocks(msg.blocks, { surface: 'message', actionIdScope: options.actionIdScope });
    if (violations.length > 0) return { error: 'invalid_blocks', violations, missingText };
    const size = JSON.stringify(msg.blocks).length;
    const max = options.maxBlocksJsonChars ?? LIMITS.blocksJsonChars;
    if (size > max) {
      return {
        error: 'msg_blocks_too_long',
        violations: [{ pointer: '/blocks', rule: 'max_json_length', message: `blocks serialise to ${size} characters, over ${max}` }],
        missingText,
      };
    }
  }
  return { violations: [], missingText: missingText && (hasBlocks || hasAttachments) };
}

/** Check a view payload (views.open/update/publish). Slack answers `invalid_arguments` when this is non-empty. */
export function checkView(view: unknown, options: { actionIdScope?: 'block' | 'message'; expect?: 'modal' | 'home' } = {}): Violation[] {
  const out: Violation[] = [];
  const add = (pointer: string, rule: string, message: string) => out.push({ pointer, rule, message });
  if (!isObject(view)) {
    add('/view', 'type', 'must provide an object');
    return out;
  }
  if (view.type !== 'modal' && view.type !== 'home') {
    add('/view/type', 'enum', 'must be one of: modal, home');
    return out;
  }
  if (options.expect !== undefined && view.type !== options.expect) {
    add('/view/type', 'enum', `must be ${options.expect} for this method`);
  }
  const checker = new Checker(options.actionIdScope ?? 'block');
  if (view.type === 'modal') {
    checker.text(view.title, LIMITS.viewTitle, '/view/title', { plainOnly: true });
    checker.text(view.submit, LIMITS.viewButton, '/view/submit', { plainOnly: true, required: false });
    checker.text(view.close, LIMITS.viewButton, '/view/close', { plainOnly: true, required: false });
    const hasInput = Array.isArray(view.blocks) && view.blocks.some((b) => isObject(b) && b.type === 'input');
    if (hasInput && view.submit === undefined) {
      checker.add('/view/submit', 'required', 'must provide submit when the view has input blocks');
    }
  }
  checker.maxLen(view.callback_id, LIMITS.callbackId, '/view/callback_id');
  checker.maxLen(view.external_id, LIMITS.externalId, '/view/external_id');
  checker.maxLen(view.private_metadata, LIMITS.privateMetadata, '/view/private_metadata');
  out.push(...checker.violations);
  out.push(...checkBlocks(view.blocks, { surface: view.type, pointer: '/view/blocks', actionIdScope: options.actionIdScope }));
  return out;
}

/** Slack's response_metadata.messages line: `[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]`. */
export function formatViolation(v: Violation): string {
  return `[ERROR] ${v.message} [json-pointer:${v.pointer}]`;
}
