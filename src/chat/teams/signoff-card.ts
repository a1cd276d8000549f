/**
 * Cards for a client's people, in Adaptive Card 1.5: the pilot sign-off (Universal Actions) and the broad plan
 * (a window's summary is in window-card.ts). Plain words for non-technical readers; anything a person or a feed wrote is escaped.
 * Teams refuses a message over ~28 KB as sent: the activity's JSON, where escaping can double a text (a card's
 * markdown escape, then JSON's) and a character can take four bytes. So the sign-off card is measured as rendered
 * and drawn again with shorter lists and texts until it fits its share, whatever the fleet and whatever was typed.
 */
import { DateTime } from 'luxon';
import { zoneShort } from '../../domain/zone-label.ts';
import type { SignoffView } from '../../domain/signoff-view.ts';
import { CARD_VERSION, escapeCardText } from './digest-card.ts';
import { executeAction } from './card-actions.ts';
import { isSlackUserId } from '../chat-ids.ts';

// An engineer the directory has no name for: the client reads who, not a Slack id.
const ENGINEER_UNNAMED = 'your IT provider\u2019s engineer';

type El = Record<string, unknown>;
const LIST_MAX = 15;

/**
 * The sign-off card's share of a Teams message, in bytes of its JSON: the rest of the ~28 KB is the activity's
 * text (signoffText, its names clipped), summary (200 characters) and envelope.
 */
export const SIGNOFF_CARD_MAX_BYTES = 24 * 1024;
/** How long lists and texts may be, from the generous first try to the last, which fits by construction. */
interface Budget {
  list: number;
  chars: number;
}
const BUDGETS: readonly Budget[] = [
  { list: LIST_MAX, chars: 600 },
  { list: LIST_MAX, chars: 300 },
  { list: 10, chars: 160 },
  { list: 5, chars: 100 },
  { list: 3, chars: 60 },
  { list: 1, chars: 40 },
];
const NAME_MAX_CHARS = 100;

/** At most `max` characters (code points: an emoji is never cut in half), with an ellipsis when cut. */
export function clip(value: string, max: number): string {
  const chars = Array.from(value);
  return chars.length <= max ? value : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`;
}

const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), 'utf8');

export const VERB_CONFIRM = 'pilot.confirm';
export const VERB_PROBLEM = 'pilot.problem';
export const VERB_REFRESH = 'pilot.refresh';

const text = (value: string, extra: El = {}): El => ({ type: 'TextBlock', text: value, wrap: true, ...extra });

function card(body: El[], extra: El = {}): El {
  return { type: 'AdaptiveCard', $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', version: CARD_VERSION, body, ...extra };
}

const when = (iso: string, zone: string) => {
  const t = DateTime.fromISO(iso).setZone(zone);
  return `${t.toFormat('ccc d LLL, HH:mm')} ${zoneShort(t)}`;
};

const OUTCOME_WORDS: Record<SignoffView['devices'][number]['outcome'], string> = {
  updated: 'Updated',
  failed: 'Did not update',
  missed: 'Was off or busy: tried again next window',
  nothing: 'Nothing to install',
  in_progress: 'Updating now',
  waiting: 'Not started yet',
};

function capped<T>(list: readonly T[], max: number, render: (item: T) => El): El[] {
  const shown = list.slice(0, max).map(render);
  if (list.length > max) shown.push(text(`and ${list.length - max} more`, { isSubtle: true, spacing: 'None', size: 'Small' }));
  return shown;
}

function statusLine(view: SignoffView, budget: Budget): El | undefined {
  const say = (value: string) => escapeCardText(clip(value, budget.chars));
  const name = (value: string) => escapeCardText(clip(value, Math.min(NAME_MAX_CHARS, budget.chars)));
  const a = view.answer;
  if (a?.kind === 'confirmed') {
    const who =
      a.as === 'auto'
        ? 'Confirmed automatically'
        : isSlackUserId(a.by)
          ? 'Your IT provider\u2019s engineer confirmed on your behalf'
          : `${name(a.by)} said everything works${a.as === 'engineer' ? ' (an engineer, on your behalf)' : ''}`;
    // Not "the rest of your machines are scheduled": those that run none of the tested updates are not (they wait on
    // updates no test machine took), and the card cannot say which without the engineers' detail.
    return text(`✅ ${who} on ${when(a.at, view.zone)}. The tested updates now go to your other machines that need them, in their windows.`, { weight: 'Bolder', color: 'Good' });
  }
  if (a?.kind === 'problem') {
    return {
      type: 'Container',
      style: 'warning',
      items: [
        text(`⚠️ ${name(a.by)} reported a problem on ${when(a.at, view.zone)}. Your rollout is on hold and the engineers are looking.`, { weight: 'Bolder' }),
        text(`“${say(a.text)}”`, { isSubtle: true }),
      ],
    };
  }
  if (view.hold) {
    return text(`⏸️ On hold by the engineers since ${when(view.hold.at, view.zone)}: ${say(view.hold.reason)}`, { weight: 'Bolder', color: 'Warning' });
  }
  return undefined;
}

/** Whether the two answers are still offered: only while the pilot waits for one and nobody holds the client. */
export function answerable(view: SignoffView): boolean {
  return view.gate === 'awaiting_confirmation' && view.answer === undefined && view.hold === undefined;
}

export function signoffText(view: SignoffView): string {
  const a = view.answer;
  const client = clip(view.clientName, NAME_MAX_CHARS);
  if (a?.kind === 'confirmed') return `${view.releaseId} pilot for ${client}: confirmed by ${isSlackUserId(a.by) ? ENGINEER_UNNAMED : clip(a.by, NAME_MAX_CHARS)}.`;
  if (a?.kind === 'problem') return `${view.releaseId} pilot for ${client}: problem reported by ${clip(a.by, NAME_MAX_CHARS)}.`;
  return `${view.releaseId} pilot for ${client}: please check your test machines and tell us whether everything works.`;
}

/** The card at the first budget whose rendering fits SIGNOFF_CARD_MAX_BYTES (the last always does). */
export function renderSignoffCard(view: SignoffView): El {
  for (const budget of BUDGETS.slice(0, -1)) {
    const card = renderWithin(view, budget);
    if (jsonBytes(card) <= SIGNOFF_CARD_MAX_BYTES) return card;
  }
  return renderWithin(view, BUDGETS.at(-1)!);
}

function signoffBody(view: SignoffView, budget: Budget): El[] {
  const say = (value: string) => escapeCardText(clip(value, budget.chars));
  const status = statusLine(view, budget);
  return [
    text(`Patch check for ${escapeCardText(clip(view.clientName, NAME_MAX_CHARS))}`, { size: 'Large', weight: 'Bolder' }),
    text(`This month’s Microsoft updates (${escapeCardText(view.releaseId)}) went to your test machines first. Please check they work as usual.`, { isSubtle: true }),
    ...(status ? [status] : []),
    text('Your test machines', { weight: 'Bolder', spacing: 'Medium' }),
    view.devices.length === 0
      ? text('No test machines are listed for you.', { isSubtle: true })
      : {
          type: 'FactSet',
          facts: view.devices.slice(0, budget.list).map((d) => ({
            title: escapeCardText(clip(d.name, Math.min(NAME_MAX_CHARS, budget.chars))),
            value: `${OUTCOME_WORDS[d.outcome]}${d.reboots >= 2 ? ` (restarted ${d.reboots} times)` : ''}`,
          })),
        },
    ...(view.devices.length > budget.list ? [text(`and ${view.devices.length - budget.list} more`, { isSubtle: true, size: 'Small' })] : []),
    text('What was installed', { weight: 'Bolder', spacing: 'Medium' }),
    ...capped(view.updates, budget.list, (u) => text(`• ${say(u.words)}`, { spacing: 'None' })),
    ...(view.notes.length > 0
      ? [text('Notes from your IT team', { weight: 'Bolder', spacing: 'Medium' }), ...capped(view.notes, budget.list, (n) => text(`• ${say(n.body)}`, { spacing: 'None' }))]
      : []),
  ];
}

function renderWithin(view: SignoffView, budget: Budget): El {
  const data = { releaseId: view.releaseId, clientId: view.clientId };
  const execute = (verb: string, title: string, style?: string): El => executeAction(data, verb, title, style);
  const body = signoffBody(view, budget);
  const actions: El[] = answerable(view)
    ? [
        execute(VERB_CONFIRM, 'Everything works', 'positive'),
        {
          type: 'Action.ShowCard',
          title: 'Report a problem',
          card: {
            type: 'AdaptiveCard',
            body: [
              {
                type: 'Input.Text',
                id: 'problem',
                label: 'What is not working?',
                isMultiline: true,
                maxLength: 2000,
                isRequired: true,
                errorMessage: 'Please say what went wrong.',
                placeholder: 'e.g. the reception PC cannot print since this morning',
              },
            ],
            actions: [execute(VERB_PROBLEM, 'Send to the engineers', 'destructive')],
          },
        },
      ]
    : [];
  return card(body, {
    ...(actions.length > 0 ? { actions } : {}),
    // Everyone the card refreshes for sees the latest answer when they open the conversation.
    refresh: { action: { type: 'Action.Execute', verb: VERB_REFRESH, data }, userIds: view.championIds.slice(0, 60) },
  });
}

export interface PlanCardInput {
  releaseId: string;
  clientName: string;
  groups: Array<{ deviceClass: string; count: number; nights: string[] }>;
}

export function renderPlanCard(input: PlanCardInput): El {
  return card([
    text(`Your machines will be updated soon`, { size: 'Large', weight: 'Bolder' }),
    text(`${escapeCardText(input.clientName)}: the updates (${escapeCardText(input.releaseId)}) worked on your test machines, so the rest follow on these nights.`, { wrap: true }),
    ...input.groups.slice(0, LIST_MAX).map((g) => ({
      type: 'Container',
      spacing: 'Medium',
      items: [
        text(`${escapeCardText(g.deviceClass)} (${g.count})`, { weight: 'Bolder' }),
        ...g.nights.map((n) => text(`• ${n}`, { spacing: 'None' })),
      ],
    })),
    text('Please save your work and leave your computer on (and plugged in) at the end of the day. It may restart during the night.', { weight: 'Bolder', spacing: 'Medium' }),
  ]);
}
