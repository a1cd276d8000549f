/**
 * The digest as it stands after engineers acted on it: each message re-rendered whole from the release model (see
 * digest-blocks.ts), with each update's section (and the release's buttons) carrying who approved or held it,
 * when, and notes added since it was posted. Always drawn from the model plus the current state, never by patching
 * a stored message, so an edit can be repeated or skipped and the message still ends up right.
 */
import { formatDecisionTime, type ActiveHold, type UpdateStanding } from '../../domain/approval.ts';
import { BLOCK_KIT_LIMITS, checkMessage, escapeMrkdwn, mrkdwn, splitText, type Block, type SlackMessage } from './block-kit.ts';
import { releaseActionsBlockId, updateActionsBlockId } from './digest-blocks.ts';

export interface NoteLine {
  author: string;
  text: string;
  tags: string[];
}

/** A name for an id, undefined when unknown (a Map will do). */
export type NameLookup = Pick<ReadonlyMap<string, string>, 'get'>;

export interface DigestStatus {
  releaseId: string;
  release: UpdateStanding;
  updates: ReadonlyMap<string, { standing: UpdateStanding; notes: NoteLine[] }>;
  /** The zone the times are shown in (the MSP's: a channel message is read by everyone). */
  zone: string;
  now: Date;
  /** Client names by id: a scoped hold names the client as people know it. */
  clientNames?: NameLookup;
  /** Display names by chat id: a hold a champion's problem report placed names them, not their Teams GUID. */
  personNames?: NameLookup;
}

/** A Slack user id we stored ourselves is safe to turn into a mention; anything else is shown as text. */
export function who(actor: string): string {
  return /^[UW][A-Z0-9]{2,20}$/.test(actor) ? `<@${actor}>` : escapeMrkdwn(actor);
}

function holdLine(h: ActiveHold, status: DigestStatus, compact: boolean): string {
  const clients = h.clientId === null ? (h.updateKey === null ? 'whole release, all clients' : 'all clients') : escapeMrkdwn(status.clientNames?.get(h.clientId) ?? h.clientId);
  const scope = h.ring === null ? clients : h.ring === 'msp' ? `${h.updateKey === null ? 'whole release, ' : ''}ring msp` : `ring ${h.ring}, ${clients}`;
  const reason = compact ? '' : `: ${escapeMrkdwn(h.reason)}`;
  const by = /^[UW][A-Z0-9]{2,20}$/.test(h.by) ? who(h.by) : escapeMrkdwn(status.personNames?.get(h.by) ?? h.by);
  return `:no_entry: *Held* (${scope}) by ${by} at ${formatDecisionTime(h.at, status.zone, status.now)}${reason}`;
}

export function standingLines(standing: UpdateStanding, status: DigestStatus, compact = false): string[] {
  const lines: string[] = [];
  if (standing.approval) {
    const via = standing.viaRelease ? ' (whole release)' : '';
    lines.push(`:white_check_mark: *Approved*${via} by ${who(standing.approval.by)} at ${formatDecisionTime(standing.approval.at, status.zone, status.now)}`);
  }
  for (const h of standing.holds) lines.push(holdLine(h, status, compact));
  return lines;
}

function noteLines(notes: NoteLine[]): string[] {
  return notes.map((n) => `> ${who(n.author)}${n.tags.length ? ` [${escapeMrkdwn(n.tags.join(', '))}]` : ''}: ${escapeMrkdwn(n.text).replace(/\n/g, '\n> ')}`);
}

/** Which update's buttons each block id holds, for the updates `keys` (ids the digest renderer gives them). */
function actionsBlocksOf(keys: Iterable<string>): Map<string, string> {
  return new Map([...keys].map((key) => [updateActionsBlockId(key), key]));
}

/** Of the updates `keys`, those whose buttons (and so whose section) are in this rendered digest message. */
export function updatesShown(message: SlackMessage, keys: Iterable<string>): string[] {
  const byBlock = actionsBlocksOf(keys);
  return message.blocks.flatMap((b) => (b.block_id !== undefined && byBlock.has(b.block_id) ? [byBlock.get(b.block_id)!] : []));
}

/** Whether this rendered digest message carries the release's own buttons. */
export function showsRelease(message: SlackMessage, releaseId: string): boolean {
  return message.blocks.some((b) => b.block_id === releaseActionsBlockId(releaseId));
}

function annotate(rendered: SlackMessage, status: DigestStatus, compact: boolean): SlackMessage {
  const blocks = structuredClone(rendered.blocks) as Block[];
  const byBlock = actionsBlocksOf(status.updates.keys());
  const out: Block[] = [];
  for (const block of blocks) {
    if (block.type === 'actions' && block.block_id === releaseActionsBlockId(status.releaseId)) {
      const lines = standingLines(status.release, status, compact);
      if (lines.length > 0) out.push({ type: 'section', block_id: `status:${block.block_id}`.slice(0, BLOCK_KIT_LIMITS.blockId), text: mrkdwn(lines.join('\n')) });
      out.push(block);
      continue;
    }
    const key = block.type === 'actions' && block.block_id !== undefined ? byBlock.get(block.block_id) : undefined;
    const entry = key === undefined ? undefined : status.updates.get(key);
    if (entry) addUpdateStatus(out, key!, entry, status, compact);
    out.push(block);
  }
  return { text: rendered.text, blocks: out };
}

/** The update's status goes under the last section piece of the update, which sits just before its buttons. */
function addUpdateStatus(out: Block[], key: string, entry: { standing: UpdateStanding; notes: NoteLine[] }, status: DigestStatus, compact: boolean): void {
  const notes = compact ? (entry.notes.length ? [`_${entry.notes.length} new note(s): /patch notes ${escapeMrkdwn(key)}_`] : []) : noteLines(entry.notes);
  const lines = [...standingLines(entry.standing, status, compact), ...notes];
  const last = out.at(-1);
  if (lines.length === 0 || !last || last.type !== 'section' || !last.text) return;
  const joined = `${last.text.text}\n${lines.join('\n')}`;
  if (joined.length <= BLOCK_KIT_LIMITS.sectionText) last.text = mrkdwn(joined);
  else {
    const pieces = splitText(lines.join('\n'), BLOCK_KIT_LIMITS.sectionText);
    pieces.forEach((piece, n) => out.push({ type: 'section', block_id: `status:${key}:${n}`.slice(0, BLOCK_KIT_LIMITS.blockId), text: mrkdwn(piece) }));
  }
}

/**
 * A digest message as the renderer draws it from the model, with the current status under each update it shows
 * (`status.updates`) and under the release's buttons. If the full status (reasons, notes) would break a Block Kit
 * limit, a compact status is drawn instead (who and when; notes counted), and failing that the message as rendered.
 */
export function renderDigestStatus(rendered: SlackMessage, status: DigestStatus): SlackMessage {
  const full = annotate(rendered, status, false);
  if (checkMessage(full).length === 0) return full;
  const compact = annotate(rendered, status, true);
  if (checkMessage(compact).length === 0) return compact;
  return rendered;
}
