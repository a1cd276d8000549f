/**
 * Slack views for the engineers: the Hold and Add note modals, `/patch` answers and the App Home tab. Layout
 * only; every piece of text a person or a feed wrote is escaped (mrkdwn) or put in plain_text.
 */
import { DateTime } from 'luxon';
import { zoneShort } from '../../domain/zone-label.ts';
import { MAX_NOTE_CHARS, MAX_REASON_CHARS, formatDecisionTime, validateReason } from '../../domain/approval.ts';
import { statusModel, type StatusNames, type StatusUpdateLine, type StatusView, type Who } from '../../domain/status.ts';
import { KNOWN_NOTE_TAGS, type StoredNote } from '../../db/notes-repo.ts';
import type { DecisionResult } from '../../use-cases/decisions.ts';
import type { ClientWindows, ReleaseStatus } from '../../use-cases/status.ts';
import { cutMrkdwn, escapeMrkdwn, truncateMrkdwn } from './block-kit.ts';
import { who } from './decision-blocks.ts';

export const HOLD_CALLBACK = 'patchbay.hold';
export const NOTE_CALLBACK = 'patchbay.note';

export interface ModalTarget {
  release: string;
  /** Null: the whole release. */
  kb: string | null;
  channel: string | undefined;
}

type Json = Record<string, unknown>;

const plainText = (text: string, max = 3000): Json => ({ type: 'plain_text', text: text.length <= max ? text : `${text.slice(0, max - 1)}…`, emoji: true });

export function targetLabel(target: { release: string; kb: string | null }): string {
  if (target.kb === null) return `the whole ${target.release} release`;
  return /^\d+$/.test(target.kb) ? `KB${target.kb}` : target.kb;
}

/** Slack caps a static select (and an options answer) at 100 options. */
export const MAX_CLIENT_OPTIONS = 100;
/** The Hold modal's client picker: its block and action id, and what an options request for it asks about. */
export const CLIENTS_ACTION = 'clients';

/** An option naming a client, the same in the static list and in answers to the external select. */
export function clientOption(c: { id: string; name: string }): Json {
  return { text: plainText(`${c.name} (${c.id})`, 75), value: c.id };
}

export function holdModal(target: ModalTarget, clients: Array<{ id: string; name: string }>): Json {
  const blocks: Json[] = [
    { type: 'context', elements: [plainText(`Hold ${targetLabel(target)}: nothing new starts past a hold until it is released.`)] },
    {
      type: 'input',
      block_id: 'reason',
      label: plainText('Reason'),
      hint: plainText('Required. What is wrong, so whoever releases it knows what to check.'),
      element: { type: 'plain_text_input', action_id: 'reason', multiline: true, max_length: MAX_REASON_CHARS },
    },
    {
      type: 'input',
      block_id: 'scope',
      label: plainText('For'),
      element: {
        type: 'radio_buttons',
        action_id: 'scope',
        initial_option: { text: plainText('All clients'), value: 'all' },
        options: [
          { text: plainText('All clients'), value: 'all' },
          { text: plainText('Chosen clients'), value: 'chosen' },
        ],
      },
    },
  ];
  if (clients.length > 0) {
    // Past Slack's 100 options a static list would hide clients; the external select asks patchbay as the
    // engineer types, so every client can be found. Both submit `selected_options`.
    const element =
      clients.length > MAX_CLIENT_OPTIONS
        ? { type: 'multi_external_select', action_id: CLIENTS_ACTION, placeholder: plainText('Type a client\u2019s name or id'), min_query_length: 0 }
        : { type: 'multi_static_select', action_id: CLIENTS_ACTION, placeholder: plainText('Choose clients'), options: clients.map(clientOption) };
    blocks.push({
      type: 'input',
      block_id: CLIENTS_ACTION,
      optional: true,
      label: plainText('Clients (when "Chosen clients")'),
      element,
    });
  }
  return {
    type: 'modal',
    callback_id: HOLD_CALLBACK,
    private_metadata: JSON.stringify(target),
    title: plainText('Hold', 24),
    submit: plainText('Hold', 24),
    close: plainText('Cancel', 24),
    blocks,
  };
}

/** What the Hold modal submitted, read from its state. */
export interface HoldModalInput {
  reason: string;
  scope: string;
  chosen: readonly string[];
  /** Whether the modal had a client picker (no clients in the inventory: none). */
  hasPicker: boolean;
}

/**
 * Field errors for a Hold modal submission, by block id (empty: fine). Clients picked while "All clients" is
 * selected are refused rather than read as "all": the engineer meant those clients, and holding everyone
 * silently is the worse mistake.
 */
export function holdModalErrors(input: HoldModalInput): Record<string, string> {
  const errors: Record<string, string> = {};
  const problem = validateReason(input.reason);
  if (problem) errors.reason = problem.message;
  if (input.scope === 'chosen' && input.chosen.length === 0) errors[input.hasPicker ? CLIENTS_ACTION : 'scope'] = 'Choose at least one client, or hold for all clients.';
  if (input.scope !== 'chosen' && input.chosen.length > 0) {
    errors.scope = `You picked ${input.chosen.length === 1 ? 'a client' : `${input.chosen.length} clients`} but "All clients" is selected. Choose "Chosen clients" to hold only them, or clear the picker to hold every client.`;
  }
  return errors;
}

export function noteModal(target: ModalTarget & { kb: string }): Json {
  return {
    type: 'modal',
    callback_id: NOTE_CALLBACK,
    private_metadata: JSON.stringify(target),
    title: plainText('Add note', 24),
    submit: plainText('Save', 24),
    close: plainText('Cancel', 24),
    blocks: [
      { type: 'context', elements: [plainText(`Research note on ${targetLabel(target)} (${target.release}). Stored as you type it.`)] },
      {
        type: 'input',
        block_id: 'text',
        label: plainText('Note'),
        element: { type: 'plain_text_input', action_id: 'text', multiline: true, max_length: MAX_NOTE_CHARS },
      },
      {
        type: 'input',
        block_id: 'tags',
        optional: true,
        label: plainText('Tags'),
        element: { type: 'checkboxes', action_id: 'tags', options: KNOWN_NOTE_TAGS.map((tag) => ({ text: plainText(tag), value: tag })) },
      },
    ],
  };
}

/** The reply to the engineer who asked (ephemeral), in their zone. */
export function resultText(result: DecisionResult): string {
  const message = escapeMrkdwn(result.message);
  if (result.outcome === 'noop' && result.by && result.at) return `${message} (${who(result.by)} at ${formatDecisionTime(result.at, result.zone)})`;
  if (result.outcome === 'refused') return `:no_entry_sign: ${message}`;
  return message;
}

const NO_NAMES: StatusNames = { clients: new Map(), people: new Map() };

/** A person: a Slack mention for a Slack user (Slack shows their name), else their display name, else the id. */
function person(w: Who): string {
  if (/^[UW][A-Z0-9]{2,20}$/.test(w.id) || w.name === undefined) return who(w.id);
  return escapeMrkdwn(w.name);
}

/** "approved by Sam Feb 13 14:02 CST; held for Harbour Accounting by Ana Silva: printers stopped". */
function decisionText(line: StatusUpdateLine, zone: string, now: Date): string {
  const bits: string[] = [];
  if (line.approval) bits.push(`approved${line.approval.viaRelease ? ' (release)' : ''} by ${person(line.approval.by)} ${formatDecisionTime(line.approval.at, zone, now)}`);
  for (const h of line.holds) bits.push(`held ${escapeMrkdwn(h.scope)} by ${person(h.by)}: ${escapeMrkdwn(h.reason)}`);
  if (line.rings) bits.push(escapeMrkdwn(line.rings));
  return bits.join('; ');
}

function releaseLines(v: StatusView, zone: string, now: Date): string[] {
  const lines = [`*${escapeMrkdwn(v.releaseId)}*${v.title ? ` ${escapeMrkdwn(v.title)}` : ''}: ${escapeMrkdwn(v.summary)}`];
  if (v.supersededBy === null && (v.release.approval || v.release.holds.length > 0)) lines.push(`Whole release: ${decisionText(v.release, zone, now)}`);
  if (v.supersededBy === null) for (const u of v.decided) lines.push(`• ${escapeMrkdwn(u.label)}: ${decisionText(u, zone, now)}`);
  return lines;
}

function clientHoldLines(v: StatusView): string[] {
  return v.clientHolds.map((h) => `• ${escapeMrkdwn(h.client)}${h.ring ? ` (ring ${h.ring})` : ''}, held by ${person(h.by)}: ${escapeMrkdwn(h.reason)}`);
}

function ringLine(r: StatusView['rings'][number]): string {
  return `${r.ring}${r.client ? ` / ${escapeMrkdwn(r.client)}` : ''}: ${escapeMrkdwn(r.state)}`;
}

export function statusText(statuses: ReleaseStatus[], zone: string, now: Date, names: StatusNames = NO_NAMES): string {
  if (statuses.length === 0) return 'No release is stored yet. `patchbay digest --cvrf FILE --post` brings one in.';
  const parts = statuses.map((s) => {
    const v = statusModel(s, names);
    const lines = releaseLines(v, zone, now);
    if (v.supersededBy === null) lines.push(`Updates: ${v.counts.approved} approved, ${v.counts.held} held, ${v.counts.waiting} waiting for a decision`);
    if (v.rings.length) lines.push(`Rings: ${v.rings.map(ringLine).join(' · ')}`);
    else if (v.supersededBy === null) lines.push('Rings: nothing rolled out yet');
    if (v.clientHolds.length) lines.push('Clients held:', ...clientHoldLines(v));
    for (const k of s.skips ?? []) {
      const where = k.ring === 'msp' ? 'ring msp' : `${escapeMrkdwn(k.clientId ?? '')}'s pilot`;
      lines.push(`Skipped ${where} for ${escapeMrkdwn(targetLabel({ release: s.releaseId, kb: k.updateKey }))} (no test machine) by ${who(k.by)} ${formatDecisionTime(k.at, zone, now)}: ${escapeMrkdwn(k.reason)}`);
    }
    return lines.join('\n');
  });
  const text = parts.join('\n\n');
  return text.length <= 3900 ? text : `${cutMrkdwn(text, 3880)}\n…`;
}

export function windowsText(w: ClientWindows, viewerZone: string): string {
  const lines = [`*${escapeMrkdwn(w.name)}* (${escapeMrkdwn(w.clientId)}), ${escapeMrkdwn(w.zone)}; your time: ${escapeMrkdwn(viewerZone)}`];
  for (const c of w.byClass) {
    if ('error' in c) {
      lines.push(`• ${escapeMrkdwn(c.deviceClass)} \`${escapeMrkdwn(c.spec)}\`: ${escapeMrkdwn(c.error)}`);
      continue;
    }
    lines.push(`• ${escapeMrkdwn(c.deviceClass)} \`${escapeMrkdwn(c.spec)}\`:`);
    for (const win of c.windows) {
      const local = `${win.start.toFormat('ccc d LLL HH:mm')}–${win.end.toFormat('HH:mm')} ${zoneShort(win.end)}`;
      const mine = `${win.start.setZone(viewerZone).toFormat('ccc HH:mm')}–${win.end.setZone(viewerZone).toFormat('HH:mm')} ${zoneShort(win.end.setZone(viewerZone))}`;
      const hours = win.end.diff(win.start, 'minutes').minutes / 60;
      lines.push(`    ${local} (${hours}h) · yours ${mine}`);
    }
  }
  return lines.join('\n');
}

export function notesText(releaseId: string, kb: string, notes: StoredNote[], zone: string): string {
  const label = escapeMrkdwn(targetLabel({ release: releaseId, kb: kb.replace(/^KB/i, '') }));
  if (notes.length === 0) return `No notes on ${label} in ${escapeMrkdwn(releaseId)}.`;
  const body = notes
    .map((n) => `• ${who(n.author)} ${stamp(DateTime.fromISO(n.at).setZone(zone))}${n.tags.length ? ` [${escapeMrkdwn(n.tags.join(', '))}]` : ''}:\n> ${escapeMrkdwn(n.text).replace(/\n/g, '\n> ')}`)
    .join('\n');
  const text = `*Notes on ${label}* (${escapeMrkdwn(releaseId)}):\n${body}`;
  return text.length <= 3900 ? text : `${cutMrkdwn(text, 3860)}\n… (more in the digest thread)`;
}

export function homeView(status: ReleaseStatus | undefined, isEngineer: boolean, zone: string, now: Date, names: StatusNames = NO_NAMES): Json {
  const section = (text: string): Json => ({ type: 'section', text: { type: 'mrkdwn', text: truncateMrkdwn(text, 3000) } });
  const blocks: Json[] = [{ type: 'header', text: plainText('patchbay', 150) }];
  if (!isEngineer) {
    blocks.push(section('patchbay runs the MSP\u2019s Patch Tuesday cycle. Approvals and holds are for the MSP\u2019s engineers.'));
  } else if (!status) {
    blocks.push(section('No release is stored yet.'));
  } else {
    const v = statusModel(status, names);
    blocks.push(section(`*Current release: ${escapeMrkdwn(v.releaseId)}*${v.title ? `\n${escapeMrkdwn(v.title)}` : ''}`));
    blocks.push(section(`Release: ${escapeMrkdwn(v.summary)}${v.release.approval || v.release.holds.length ? `\n${decisionText(v.release, zone, now)}` : ''}`));
    const listed = (list: string[]) => list.slice(0, 40).map(escapeMrkdwn).join(', ') + (list.length > 40 ? ', …' : '');
    blocks.push({
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: truncateMrkdwn(`*Approved (${v.counts.approved})*\n${listed(v.approved) || '—'}`, 2000) },
        { type: 'mrkdwn', text: truncateMrkdwn(`*Held (${v.counts.held})*\n${listed(v.held) || '—'}`, 2000) },
        { type: 'mrkdwn', text: truncateMrkdwn(`*Waiting (${v.counts.waiting})*\n${listed(v.waiting) || '—'}`, 2000) },
      ],
    });
    for (const u of v.decided.filter((d) => d.holds.length > 0).slice(0, 20)) blocks.push(section(`• ${escapeMrkdwn(u.label)}: ${decisionText(u, zone, now)}`));
    if (v.clientHolds.length) blocks.push(section(`*Clients held*\n${clientHoldLines(v).join('\n')}`));
    blocks.push(section(v.rings.length ? `*Rings*\n${v.rings.map((r) => `• ${ringLine(r)}`).join('\n')}` : '*Rings*\nNothing rolled out yet.'));
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `Updated ${stamp(DateTime.fromJSDate(now).setZone(zone))} · /patch help` }] });
  return { type: 'home', blocks: blocks.slice(0, 100) };
}

/** "9 Dec 14:02 NZDT": a time with its zone as people read it. */
function stamp(at: DateTime): string {
  return `${at.toFormat('d LLL HH:mm')} ${zoneShort(at)}`;
}
