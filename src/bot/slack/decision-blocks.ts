/**
 * The digest as it stands after engineers acted on it: the message as first posted, with each update's section
 * (and the release's buttons) carrying who approved or held it, when, and notes added since. Always drawn from
 * the original post plus the current state, never by patching the last edit, so an edit can be repeated or
 * skipped and the message still ends up right.
 */
import { formatDecisionTime, type ActiveHold, type UpdateStanding } from '../../domain/approval.ts';
import { BLOCK_KIT_LIMITS, checkMessage, escapeMrkdwn, mrkdwn, splitText, type Block, type SlackMessage } from './block-kit.ts';

export interface NoteLine {
  author: string;
  text: string;
  tags: string[];
}

export interface DigestStatus {
  releaseId: string;
  release: UpdateStanding;
  updates: ReadonlyMap<string, { standing: UpdateStanding; notes: NoteLine[] }>;
  /** The zone the times are shown in (the MSP's: a channel message is read by everyone). */
  zone: string;
  now: Date;
  /** Client names by id: a scoped hold names the client as people know it. */
  clientNames?: ReadonlyMap<string, string>;
  /** Display names by chat id: a hold a champion's problem report placed names them, not their Teams GUID. */
  personNames?: ReadonlyMap<string, string>;
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

/** The update key a digest section belongs to, read from its buttons (value `{release, kb}`). */
function keyOfActions(block: Record<string, unknown>): string | undefined {
  if (block.type !== 'actions' || !Array.isArray(block.elements)) return undefined;
  for (const el of block.elements as Array<Record<string, unknown>>) {
    if (el.action_id !== 'update.approve' || typeof el.value !== 'string') continue;
    try {
      const value = JSON.parse(el.value) as { kb?: unknown };
      if (typeof value.kb === 'string') return value.kb;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Update keys whose sections are in this message. */
export function updateKeysIn(blocks: readonly unknown[]): string[] {
  return blocks.map((b) => keyOfActions(b as Record<string, unknown>)).filter((k): k is string => k !== undefined);
}

export function hasReleaseActions(blocks: readonly unknown[]): boolean {
  return blocks.some((b) => typeof (b as { block_id?: unknown }).block_id === 'string' && (b as { block_id: string }).block_id.startsWith('release:'));
}

function annotate(original: SlackMessage, status: DigestStatus, compact: boolean): SlackMessage {
  const blocks = structuredClone(original.blocks) as Block[];
  const out: Block[] = [];
  for (let i = 0; i < blocks.length; i++) {
    const block = blocks[i]!;
    if (block.type === 'actions' && block.block_id?.startsWith('release:')) {
      const lines = standingLines(status.release, status, compact);
      if (lines.length > 0) out.push({ type: 'section', block_id: `status:${block.block_id}`.slice(0, BLOCK_KIT_LIMITS.blockId), text: mrkdwn(lines.join('\n')) });
      out.push(block);
      continue;
    }
    const key = keyOfActions(block as unknown as Record<string, unknown>);
    const entry = key === undefined ? undefined : status.updates.get(key);
    if (entry) {
      const lines = [...standingLines(entry.standing, status, compact), ...(compact ? (entry.notes.length ? [`_${entry.notes.length} new note(s): /patch notes ${escapeMrkdwn(key!)}_`] : []) : noteLines(entry.notes))];
      // The section pieces of this update sit just before its buttons; the status goes under the last piece.
      const last = out.at(-1);
      if (lines.length > 0 && last && last.type === 'section' && last.text) {
        const joined = `${last.text.text}\n${lines.join('\n')}`;
        if (joined.length <= BLOCK_KIT_LIMITS.sectionText) last.text = mrkdwn(joined);
        else {
          const pieces = splitText(lines.join('\n'), BLOCK_KIT_LIMITS.sectionText);
          pieces.forEach((piece, n) => out.push({ type: 'section', block_id: `status:${key}:${n}`.slice(0, BLOCK_KIT_LIMITS.blockId), text: mrkdwn(piece) }));
        }
      }
    }
    out.push(block);
  }
  return { text: original.text, blocks: out };
}

/**
 * The original message with the current status. If the full status (reasons, notes) would break a Block Kit
 * limit, a compact status is drawn instead (who and when; notes counted), and failing that the original.
 */
export function renderDigestStatus(original: SlackMessage, status: DigestStatus): SlackMessage {
  const full = annotate(original, status, false);
  if (checkMessage(full).length === 0) return full;
  const compact = annotate(original, status, true);
  if (checkMessage(compact).length === 0) return compact;
  return original;
}
