/**
 * External selects, as Slack drives them: a `block_suggestion` request while the user types in a modal's
 * external select, and the modal's `view_submission` carrying the options the user picked from those answers.
 * Kept beside the signing helpers (src/sandbox/emulators/slack-signing.ts re-exported from ./slack-signing.ts)
 * rather than in them, since those files belong to the sandbox; they build on the same emulator.
 */
import type { SlackEmulator, StoredView } from './slack-emulator.ts';
import { buildViewSubmission, type BuiltInteraction, type ViewSubmissionOptions } from './slack-signing.ts';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const form = (payload: Json): string => new URLSearchParams({ payload: JSON.stringify(payload) }).toString();

function modalShown(emu: SlackEmulator, to: string, callbackId: string | undefined): StoredView {
  const view = emu
    .views({ user: to, type: 'modal' })
    .filter((v) => callbackId === undefined || v.view.callback_id === callbackId)
    .at(-1);
  if (!view) throw new Error(`no modal ${callbackId ?? ''} shown to ${to}`);
  return view;
}

function inputElement(view: StoredView, actionId: string): { blockId: string; element: Json } {
  const blocks = Array.isArray(view.view.blocks) ? view.view.blocks.filter(isObject) : [];
  for (const b of blocks) {
    if (b.type === 'input' && isObject(b.element) && b.element.action_id === actionId) return { blockId: String(b.block_id), element: b.element };
  }
  throw new Error(`modal ${view.id} has no input with action_id ${actionId}`);
}

export interface BlockSuggestionOptions {
  /** Who types. Slack only sends this for the user the modal is shown to; `shownTo` lets a test forge otherwise. */
  user: string;
  shownTo?: string;
  callbackId?: string;
  actionId: string;
  /** What has been typed so far. */
  value: string;
}

/** The `block_suggestion` request Slack sends for an external select in a modal the bot opened. */
export function buildBlockSuggestion(emu: SlackEmulator, opts: BlockSuggestionOptions): BuiltInteraction {
  const view = modalShown(emu, opts.shownTo ?? opts.user, opts.callbackId);
  const { blockId, element } = inputElement(view, opts.actionId);
  if (element.type !== 'external_select' && element.type !== 'multi_external_select') {
    throw new Error(`${opts.actionId} is a ${String(element.type)}; Slack asks for options only for external selects`);
  }
  const u = emu.user(opts.user);
  const payload: Json = {
    type: 'block_suggestion',
    user: { id: opts.user, username: u?.name ?? opts.user, name: u?.name ?? opts.user, team_id: emu.team.id },
    container: { type: 'view', view_id: view.id },
    api_app_id: emu.bot.appId,
    token: emu.verificationToken,
    action_id: opts.actionId,
    block_id: blockId,
    value: opts.value,
    team: { id: emu.team.id, domain: emu.team.domain },
    enterprise: null,
    is_enterprise_install: false,
    view: emu.viewPayload(view),
  };
  return { body: form(payload), payload };
}

/**
 * A `view_submission` whose external selects hold `picked` (options as the app answered them, keyed by
 * action_id); the other inputs as {@link buildViewSubmission} fills them.
 */
export function buildViewSubmissionWithExternal(emu: SlackEmulator, opts: ViewSubmissionOptions, picked: Record<string, Json[]>): BuiltInteraction {
  const built = buildViewSubmission(emu, opts);
  const view = built.payload.view as { id: string; blocks?: unknown[]; state: { values: Record<string, Record<string, Json>> } };
  const stored = emu.view(view.id)!;
  for (const [actionId, options] of Object.entries(picked)) {
    const { blockId, element } = inputElement(stored, actionId);
    const multi = element.type === 'multi_external_select';
    if (!multi && element.type !== 'external_select') throw new Error(`${actionId} is not an external select`);
    view.state.values[blockId] = { [actionId]: multi ? { type: element.type, selected_options: options } : { type: element.type, selected_option: options[0] ?? null } };
  }
  return { body: form(built.payload), payload: built.payload };
}
