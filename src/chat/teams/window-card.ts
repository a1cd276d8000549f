/**
 * A window's summary for a client's champions, in Adaptive Card 1.5: which machines updated with which KBs,
 * which did not, and why the rest moved to the next window (off, the window ended first, put off by their user,
 * on hold): each asks something different of the reader. Names came from the inventory: escaped. Lists are
 * capped so the card stays small whatever the fleet.
 */
import { DateTime } from 'luxon';
import { kbLabel, type RollReason, type WindowTally } from '../../domain/window-report.ts';
import { zoneLabel } from '../../domain/zone-label.ts';
import { CARD_VERSION, escapeCardText } from './digest-card.ts';

type El = Record<string, unknown>;
/** Devices shown per list before "and N more". */
export const CARD_LIST_MAX = 10;

const text = (value: string, extra: El = {}): El => ({ type: 'TextBlock', text: value, wrap: true, ...extra });

const ROLL_FACTS: Record<RollReason, string> = {
  offline: 'Was off (tries again next window)',
  window_ended: 'Window ended before it finished (next window)',
  deferred: 'Put off by its user (next window)',
  other: 'Moved to the next window',
};

/** While the client's updates are on hold, nothing tries again next window: the same facts, without that promise. */
const HELD_ROLL_FACTS: Record<RollReason, string> = {
  offline: 'Was off',
  window_ended: 'Window ended before it finished',
  deferred: 'Put off by its user',
  other: 'Not finished',
};

const ROLL_WORDS: Record<RollReason, string> = {
  offline: 'was off',
  window_ended: 'the window ended first',
  deferred: 'its user put it off',
  other: 'moved',
};

function capped<T>(items: readonly T[], all: number, render: (item: T) => string): El[] {
  const shown = items.slice(0, CARD_LIST_MAX).map((item) => text(`• ${render(item)}`, { spacing: 'None' }));
  const rest = all - Math.min(CARD_LIST_MAX, items.length);
  if (rest > 0) shown.push(text(`and ${rest} more`, { isSubtle: true, spacing: 'None', size: 'Small' }));
  return shown;
}

function facts(tally: WindowTally): El {
  const c = tally.counts;
  const list = [
    { title: 'Updated', value: String(c.succeeded ?? 0) },
    { title: 'Did not update', value: String(c.failed ?? 0) },
  ];
  const rolled = (c.offline ?? 0) + (c.rolled ?? 0);
  const told = Object.values(tally.rollReasons).reduce((sum, n) => sum + (n ?? 0), 0);
  for (const reason of ['offline', 'window_ended', 'deferred', 'other'] as const) {
    const n = (tally.rollReasons[reason] ?? 0) + (reason === 'other' ? Math.max(0, rolled - told) : 0);
    if (n > 0) list.push({ title: (tally.held ? HELD_ROLL_FACTS : ROLL_FACTS)[reason], value: String(n) });
  }
  if (c.skipped) list.push({ title: 'On hold (not started)', value: String(c.skipped) });
  return { type: 'FactSet', facts: list };
}

export function renderWindowSummaryCard(tally: WindowTally, clientName: string, zone: string): El {
  const start = DateTime.fromISO(tally.windowStart, { zone: 'utc' }).setZone(zone);
  const end = DateTime.fromISO(tally.windowEnd, { zone: 'utc' }).setZone(zone);
  const c = tally.counts;
  const kbs = (updates: readonly string[] | undefined) => (updates?.length ? `: ${updates.map(kbLabel).join(', ')}` : '');
  const body: El[] = [
    text('Last night’s updates', { size: 'Large', weight: 'Bolder' }),
    text(`${escapeCardText(clientName)}, ${start.toFormat('ccc d LLL, HH:mm')} to ${end.toFormat('HH:mm')} ${zoneLabel(start)}`, { isSubtle: true }),
    facts(tally),
  ];
  if ((c.succeeded ?? 0) > 0) body.push(text('Updated', { weight: 'Bolder' }), ...capped(tally.updated, c.succeeded ?? 0, (u) => escapeCardText(`${u.device}${kbs(u.updates)}`)));
  if ((c.failed ?? 0) > 0) body.push(text('Needs a look from us', { weight: 'Bolder' }), ...capped(tally.failed, c.failed ?? 0, (f) => escapeCardText(`${f.device}${kbs(f.updates)}`)));
  const rolled = (c.offline ?? 0) + (c.rolled ?? 0);
  if (rolled > 0) {
    body.push(
      text(tally.held ? 'Will try again once your IT provider lifts the hold on your updates' : 'Will try again next window', { weight: 'Bolder' }),
      ...capped(tally.rolled, rolled, (r) => `${escapeCardText(r.device)}: ${ROLL_WORDS[r.reason ?? (r.offline ? 'offline' : 'other')]}`),
    );
  }
  return { type: 'AdaptiveCard', $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', version: CARD_VERSION, body };
}
