/**
 * The `/patch` command's grammar, as a pure parser: the Slack listener (and any other chat with text commands)
 * turns the text into one of these and calls the use-cases. Unknown input is a value too, so it is answered
 * with usage rather than silence.
 */
import type { Ring } from '../domain/inventory.ts';
import { monthPeriod } from '../domain/report-period.ts';

export type PatchCommand =
  | { kind: 'status' }
  | { kind: 'help' }
  /** `asClient`: typed `client:ID`, so a client even where an update has that name (or no client has it: refused). */
  | { kind: 'hold'; target: string; reason: string; asClient?: true }
  | { kind: 'hold_ring'; ring: Ring; reason: string }
  | { kind: 'release'; target: string; asClient?: true }
  | { kind: 'release_ring'; ring: Ring }
  | { kind: 'withdraw'; target: string }
  | { kind: 'windows'; client: string }
  | { kind: 'notes'; update: string }
  | { kind: 'link'; client: string }
  | { kind: 'promote'; release: string }
  | { kind: 'confirm'; client: string }
  /** Let one update past ring msp, or one client's pilot, untested: no device there runs it. Audited, shown. */
  | { kind: 'skip'; ring: 'msp' | 'pilot'; update: string; client: string | null; reason: string }
  /** Patch a device, a user's devices or a client's without waiting for the "save your work" DM (a user no chat
   * can reach). Audited, shown; `target` is an email, a client id or a device name, resolved by the use-case. */
  | { kind: 'notice_waive'; target: string; reason: string }
  | { kind: 'notice_revoke'; target: string }
  /** Read the devices from the device manager (Tactical RMM) now rather than at the daily sync. */
  | { kind: 'sync' }
  /** A client's compliance report, posted with its files in this channel; `period` a month like 2026-Nov (default: this month). */
  | { kind: 'report'; client: string; period: string | null }
  | { kind: 'unknown'; problem: string };

const RINGS: readonly Ring[] = ['msp', 'pilot', 'broad'];

/**
 * `ring:pilot` names a ring; a bare `pilot` would be a client id (an MSP may well call a client that). Undefined:
 * not a ring target; a string: what is wrong with it.
 */
function ringOf(arg: string): Ring | string | undefined {
  const m = /^ring:(.*)$/i.exec(arg);
  if (!m) return undefined;
  const ring = m[1]!.toLowerCase();
  return (RINGS as readonly string[]).includes(ring) ? (ring as Ring) : `\`${arg.slice(0, 40).replace(/`/g, "'")}\` is not a ring: use ring:msp, ring:pilot or ring:broad`;
}

const isRing = (r: Ring | string | undefined): r is Ring => r !== undefined && (RINGS as readonly string[]).includes(r);

/** What one subcommand reads: the words after the verb, and the whole text for a free-text reason. */
interface Words {
  /** The verb as typed. */
  word: string;
  /** The words after the verb. */
  args: readonly string[];
  /** The whole command text, trimmed: a reason keeps its spacing and line breaks. */
  text: string;
}

interface Subcommand {
  /** Its lines in `/patch help`, in the order of the table. */
  usage: readonly string[];
  parse(words: Words): PatchCommand;
}

const unknown = (problem: string): PatchCommand => ({ kind: 'unknown', problem });

/** A subcommand that takes exactly one word. */
const oneWord = (problem: string, build: (arg: string) => PatchCommand) => ({ args }: Words): PatchCommand =>
  args.length === 1 ? build(args[0]!) : unknown(problem);

/**
 * The grammar, one entry per subcommand: a new subcommand is one entry here (its usage lines and its parse) and
 * one kind in PatchCommand. The order is the order of `/patch help`.
 */
const SUBCOMMANDS: Record<string, Subcommand> = {
  status: {
    usage: ['`/patch status`: each release, per update, per ring, per client'],
    parse: ({ args }) => (args.length === 0 ? { kind: 'status' } : unknown('`status` takes nothing after it')),
  },
  hold: {
    usage: [
      '`/patch hold KB|CLIENT|all REASON`: hold an update, a client (or `client:CLIENT`), or the whole current release',
      '`/patch hold ring:msp|ring:pilot|ring:broad REASON`: hold one ring of the current release, for every client',
    ],
    parse: parseHold,
  },
  release: {
    usage: ['`/patch release KB|CLIENT|ring:RING|all`: release the matching holds'],
    parse: ({ args }) => {
      const arg = args[0];
      if (!arg || args.length > 1) return unknown('`release` takes one thing: a KB, a client id, ring:RING, or all');
      const ring = ringOf(arg);
      if (ring !== undefined && !isRing(ring)) return unknown(ring);
      return ring !== undefined ? { kind: 'release_ring', ring } : { kind: 'release', ...clientOrTarget(arg) };
    },
  },
  withdraw: {
    usage: ['`/patch withdraw KB|all`: withdraw an approval (only before anything was deployed)'],
    parse: oneWord('`withdraw` takes one thing: a KB, or all for the release approval', (target) => ({ kind: 'withdraw', target })),
  },
  windows: {
    usage: ['`/patch windows CLIENT`: the client\u2019s next maintenance windows, in its time and yours'],
    parse: oneWord('`windows` takes one client id', (client) => ({ kind: 'windows', client })),
  },
  notes: {
    usage: ['`/patch notes KB`: the research notes on an update'],
    parse: oneWord('`notes` takes one KB', (update) => ({ kind: 'notes', update })),
  },
  link: {
    usage: ['`/patch link CLIENT`: a one-time code the client\u2019s champion sends the Teams bot to link their chat'],
    parse: oneWord('`link` takes one client id', (client) => ({ kind: 'link', client })),
  },
  promote: {
    usage: ['`/patch promote RELEASE`: promote a release to pilot once ring msp has finished and soaked'],
    parse: oneWord('`promote` takes one release, e.g. 2024-Feb', (release) => ({ kind: 'promote', release })),
  },
  confirm: {
    usage: ['`/patch confirm CLIENT`: confirm the client\u2019s pilot on its champion\u2019s behalf (audited)'],
    parse: oneWord('`confirm` takes one client id', (client) => ({ kind: 'confirm', client })),
  },
  skip: {
    usage: ['`/patch skip msp KB [REASON]` / `/patch skip pilot KB CLIENT [REASON]`: let an update past a ring no machine of which runs it (audited, shown)'],
    parse: ({ args }) => parseSkip(args),
  },
  notice: {
    usage: [
      '`/patch notice waive USER-EMAIL|DEVICE|CLIENT [REASON]`: patch those machines in their windows without waiting for the \u201csave your work\u201d message, for users no chat can reach (audited, shown); `/patch notice revoke \u2026` undoes it',
    ],
    parse: ({ args, text }) => parseNotice(text, args),
  },
  sync: {
    usage: ['`/patch sync`: read the devices from Tactical RMM now (it also runs daily); this channel hears what changed'],
    parse: ({ args }) => (args.length === 0 ? { kind: 'sync' } : unknown('`sync` takes nothing after it')),
  },
  report: {
    usage: ['`/patch report CLIENT [MONTH]`: the client\u2019s compliance report (summary, PDF and CSV files) here, e.g. `/patch report acme 2026-Nov`; default this month so far'],
    parse: ({ args }) => {
      const [client, period, ...rest] = args;
      if (client === undefined || rest.length > 0) return unknown('`report` takes a client id and, optionally, a month like 2026-Nov');
      if (period === undefined) return { kind: 'report', client, period: null };
      const month = monthPeriod(period);
      return month.ok ? { kind: 'report', client, period: month.period.id } : unknown(`\`${period.slice(0, 40).replace(/`/g, "'")}\` is not a month like 2026-Nov`);
    },
  },
  help: {
    usage: ['`/patch help`: this list'],
    parse: () => ({ kind: 'help' }),
  },
};

export const PATCH_USAGE = ['*/patch* commands:', ...Object.values(SUBCOMMANDS).flatMap((s) => s.usage.map((line) => `\u2022 ${line}`))].join('\n');

/** Pure: the text after `/patch` to a command, or to what is wrong with it (`unknown`, answered with the usage). */
export function parsePatchCommand(text: string): PatchCommand {
  const trimmed = text.trim();
  if (trimmed === '') return { kind: 'help' };
  const [word = '', ...args] = trimmed.split(/\s+/);
  const subcommand = Object.hasOwn(SUBCOMMANDS, word.toLowerCase()) ? SUBCOMMANDS[word.toLowerCase()] : undefined;
  if (!subcommand) return unknown(`I don't know \`${word.slice(0, 40).replace(/`/g, "'")}\``);
  return subcommand.parse({ word, args, text: trimmed });
}

function parseHold({ word, args, text }: Words): PatchCommand {
  const arg = args[0];
  if (!arg) return unknown('`hold` needs what to hold (a KB, a client id, ring:RING, or all) and a reason');
  // The reason is everything after the target, exactly as typed (spacing and line breaks kept).
  const reason = text.slice(text.indexOf(arg, word.length) + arg.length).trim();
  const ring = ringOf(arg);
  if (ring !== undefined && !isRing(ring)) return unknown(ring);
  if (reason === '') return unknown(`a hold needs a reason: \`/patch hold ${arg.replace(/`/g, "'")} REASON\``);
  return ring !== undefined ? { kind: 'hold_ring', ring, reason } : { kind: 'hold', ...clientOrTarget(arg), reason };
}

/** Engineers who learned `ring:pilot` type `client:acme` too; it read as an update called "client:acme". */
function clientOrTarget(arg: string): { target: string; asClient?: true } {
  const m = /^client:(.+)$/i.exec(arg);
  return m ? { target: m[1]!, asClient: true } : { target: arg };
}

const SKIP_USAGE = '`skip` takes a ring and a KB, and for the pilot a client: `/patch skip msp KB [REASON]` or `/patch skip pilot KB CLIENT [REASON]`';

function parseSkip(args: readonly string[]): PatchCommand {
  const [ringWord = '', update, ...more] = args;
  const ring = ringWord.toLowerCase().replace(/^ring:/, '');
  if ((ring !== 'msp' && ring !== 'pilot') || !update) return { kind: 'unknown', problem: SKIP_USAGE };
  const client = ring === 'pilot' ? (more.shift() ?? null) : null;
  if (ring === 'pilot' && client === null) return { kind: 'unknown', problem: SKIP_USAGE };
  const reason = more.join(' ').trim();
  return { kind: 'skip', ring, update, client, reason: reason === '' ? 'no test machine' : reason };
}

const NOTICE_USAGE = '`notice` takes `waive` or `revoke` and a user\u2019s email, a device or a client id: `/patch notice waive USER-EMAIL|DEVICE|CLIENT [REASON]` or `/patch notice revoke USER-EMAIL|DEVICE|CLIENT`';

function parseNotice(text: string, args: readonly string[]): PatchCommand {
  const [action = '', target, ...more] = args;
  const verb = action.toLowerCase();
  if (!target || (verb !== 'waive' && verb !== 'revoke')) return { kind: 'unknown', problem: NOTICE_USAGE };
  if (verb === 'revoke') return more.length === 0 ? { kind: 'notice_revoke', target } : { kind: 'unknown', problem: NOTICE_USAGE };
  // The reason is everything after the target, as typed (the use-case supplies a default when there is none).
  const afterAction = text.indexOf(action, 'notice'.length) + action.length;
  const reason = text.slice(text.indexOf(target, afterAction) + target.length).trim();
  return { kind: 'notice_waive', target, reason };
}
