/**
 * Slack views for the engineers: the Hold and Add note modals, `/patch` answers and the App Home tab. Layout
 * only; every piece of text a person or a feed wrote is escaped (mrkdwn) or put in plain_text.
 */
import { DateTime } from 'luxon';
import { MAX_NOTE_CHARS, MAX_REASON_CHARS, formatDecisionTime, type UpdateStanding } from '../../domain/approval.ts';
import { KNOWN_NOTE_TAGS, type StoredNote } from '../../db/notes-repo.ts';
import type { DecisionResult } from '../use-cases/decisions.ts';
import type { ClientWindows, ReleaseStatus } from '../use-cases/status.ts';
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

function standingText(s: UpdateStanding, zone: string, now: Date): string {
  const bits: string[] = [];
  if (s.approval) bits.push(`approved${s.viaRelease ? ' (release)' : ''} by ${who(s.approval.by)} ${formatDecisionTime(s.approval.at, zone, now)}`);
  for (const h of s.holds) bits.push(`held${h.ring ? ` in ring ${h.ring}` : ''}${h.clientId ? ` for ${escapeMrkdwn(h.clientId)}` : ''} by ${who(h.by)}: ${escapeMrkdwn(h.reason)}`);
  return bits.length ? bits.join('; ') : 'waiting for a decision';
}

export function statusText(statuses: ReleaseStatus[], zone: string, now: Date): string {
  if (statuses.length === 0) return 'No release is stored yet. `patchbay digest --cvrf FILE --post` brings one in.';
  const parts = statuses.map((s) => {
    const lines = [`*${escapeMrkdwn(s.releaseId)}*${s.title ? ` ${escapeMrkdwn(s.title)}` : ''}: ${standingText(s.release, zone, now)}`];
    const approved = s.updates.filter((u) => u.standing.approval && u.standing.holds.length === 0).length;
    const held = s.updates.filter((u) => u.standing.holds.length > 0).length;
    lines.push(`Updates: ${approved} approved, ${held} held, ${s.updates.length - approved - held} waiting`);
    for (const u of s.updates) {
      if (!u.standing.approval && u.standing.holds.length === 0) continue;
      lines.push(`• ${escapeMrkdwn(targetLabel({ release: s.releaseId, kb: u.key }))}: ${standingText(u.standing, zone, now)}`);
    }
    lines.push(
      s.rings.length
        ? `Rings: ${s.rings.map((r) => `${r.ring}${r.clientId ? `/${escapeMrkdwn(r.clientId)}` : ''} ${escapeMrkdwn(r.state)}`).join(' · ')}`
        : 'Rings: nothing rolled out yet',
    );
    if (s.clientHolds.length) {
      lines.push(`Clients held: ${s.clientHolds.map((h) => `${escapeMrkdwn(h.clientId ?? '')}${h.ring ? ` in ring ${h.ring}` : ''} (${escapeMrkdwn(h.reason)})`).join(', ')}`);
    }
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
      const local = `${win.start.toFormat('ccc d LLL HH:mm')}–${win.end.toFormat('HH:mm ZZZZ')}`;
      const mine = `${win.start.setZone(viewerZone).toFormat('ccc HH:mm')}–${win.end.setZone(viewerZone).toFormat('HH:mm ZZZZ')}`;
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
    .map((n) => `• ${who(n.author)} ${DateTime.fromISO(n.at).setZone(zone).toFormat('d LLL HH:mm ZZZZ')}${n.tags.length ? ` [${escapeMrkdwn(n.tags.join(', '))}]` : ''}:\n> ${escapeMrkdwn(n.text).replace(/\n/g, '\n> ')}`)
    .join('\n');
  const text = `*Notes on ${label}* (${escapeMrkdwn(releaseId)}):\n${body}`;
  return text.length <= 3900 ? text : `${cutMrkdwn(text, 3860)}\n… (more in the digest thread)`;
}

export function homeView(status: ReleaseStatus | undefined, isEngineer: boolean, zone: string, now: Date): Json {
  const section = (text: string): Json => ({ type: 'section', text: { type: 'mrkdwn', text: truncateMrkdwn(text, 3000) } });
  const blocks: Json[] = [{ type: 'header', text: plainText('patchbay', 150) }];
  if (!isEngineer) {
    blocks.push(section('patchbay runs the MSP\u2019s Patch Tuesday cycle. Approvals and holds are for the MSP\u2019s engineers.'));
  } else if (!status) {
    blocks.push(section('No release is stored yet.'));
  } else {
    blocks.push(section(`*Current release: ${escapeMrkdwn(status.releaseId)}*${status.title ? `\n${escapeMrkdwn(status.title)}` : ''}`));
    blocks.push(section(`Release: ${standingText(status.release, zone, now)}`));
    const approved = status.updates.filter((u) => u.standing.approval && u.standing.holds.length === 0);
    const held = status.updates.filter((u) => u.standing.holds.length > 0);
    const waiting = status.updates.filter((u) => !u.standing.approval && u.standing.holds.length === 0);
    const names = (list: typeof approved) => list.slice(0, 40).map((u) => escapeMrkdwn(targetLabel({ release: status.releaseId, kb: u.key }))).join(', ') + (list.length > 40 ? ', …' : '');
    blocks.push({
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: `*Approved (${approved.length})*\n${names(approved) || '—'}` },
        { type: 'mrkdwn', text: `*Held (${held.length})*\n${names(held) || '—'}` },
        { type: 'mrkdwn', text: `*Waiting (${waiting.length})*\n${names(waiting) || '—'}` },
      ],
    });
    for (const u of held.slice(0, 20)) blocks.push(section(`• ${escapeMrkdwn(targetLabel({ release: status.releaseId, kb: u.key }))}: ${standingText(u.standing, zone, now)}`));
    blocks.push(
      section(
        status.rings.length
          ? `*Rings*\n${status.rings.map((r) => `• ${r.ring}${r.clientId ? ` / ${escapeMrkdwn(r.clientId)}` : ''}: ${escapeMrkdwn(r.state)}`).join('\n')}`
          : '*Rings*\nNothing rolled out yet.',
      ),
    );
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `Updated ${DateTime.fromJSDate(now).setZone(zone).toFormat('d LLL HH:mm ZZZZ')} · /patch help` }] });
  return { type: 'home', blocks: blocks.slice(0, 100) };
}
