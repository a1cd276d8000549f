/**
 * The sandbox page: what the bot posted to the emulated Slack and Teams, drawn close enough to the real clients
 * that a newcomer can read it and click it. Plain browser JavaScript with no build step; the shapes it reads and
 * sends are defined in ../api-types.ts (SandboxState and the request types), which is the contract with the
 * server. The page never changes anything itself: it posts what a person did and redraws from the state.
 *
 * Text safety: everything the bot relays (MSRC titles, people's notes and hold reasons) is treated as hostile.
 * Strings reach innerHTML only through mrkdwnToHtml / plainToHtml / markdownToHtml, which escape first and then
 * add a fixed set of tags; everything else is set with textContent.
 *
 * Type-checked (checkJs, src/sandbox/page/tsconfig.json, run by `npm run typecheck`): the shapes come from
 * ../api-types.ts through the typedefs below; Block Kit and Adaptive Card JSON is the bot's, relayed unchecked,
 * and typed as BotJson: each renderer tests a field before it draws it.
 */

/** @typedef {import('../api-types.ts').SandboxState} SandboxState */
/** @typedef {import('../api-types.ts').SandboxAnswer} SandboxAnswer */
/** @typedef {import('../api-types.ts').SandboxSlackMessage} SandboxSlackMessage */
/** @typedef {import('../api-types.ts').SandboxSlackEphemeral} SandboxSlackEphemeral */
/** @typedef {import('../api-types.ts').SandboxSlackFile} SandboxSlackFile */
/** @typedef {import('../api-types.ts').SandboxPerson} SandboxPerson */
/** @typedef {import('../api-types.ts').SandboxTeamsActivity} SandboxTeamsActivity */
/** @typedef {import('../api-types.ts').SandboxTeamsConversation} SandboxTeamsConversation */
/** @typedef {import('../api-types.ts').SandboxJump} SandboxJump */
/** @typedef {import('../api-types.ts').SandboxSlackActionRequest} SandboxSlackActionRequest */
/** @typedef {import('../api-types.ts').SandboxSlackViewActionRequest} SandboxSlackViewActionRequest */
/** @typedef {import('../api-types.ts').SandboxSlackViewSubmitRequest} SandboxSlackViewSubmitRequest */
/** @typedef {import('../api-types.ts').SandboxSlackViewCloseRequest} SandboxSlackViewCloseRequest */
/** @typedef {import('../api-types.ts').SandboxSlackCommandRequest} SandboxSlackCommandRequest */
/** @typedef {import('../api-types.ts').SandboxTeamsActionRequest} SandboxTeamsActionRequest */
/** @typedef {import('../api-types.ts').SandboxTeamsMessageRequest} SandboxTeamsMessageRequest */
/** @typedef {import('../api-types.ts').SandboxClockRequest} SandboxClockRequest */
/** @typedef {import('../api-types.ts').SandboxTacticalState} SandboxTacticalState */
/** @typedef {import('../api-types.ts').SandboxTacticalAgent} SandboxTacticalAgent */
/** @typedef {import('../api-types.ts').SandboxTacticalRequest} SandboxTacticalRequest */
/** @typedef {import('../api-types.ts').SandboxNinjaOneState} SandboxNinjaOneState */
/** @typedef {import('../api-types.ts').SandboxNinjaOneDevice} SandboxNinjaOneDevice */
/**
 * Block Kit or Adaptive Card JSON as the bot sent it (api-types.ts: `unknown`). Open on purpose: Slack's and
 * Teams' schemas are not the sandbox's to restate, and every renderer below checks a field before using it.
 * @typedef {Record<string, any>} BotJson
 */
/**
 * Which conversation the main pane shows. Teams views have no `kind`, so `view.kind === 'dm'` reads on either.
 * @typedef {{ surface: 'slack', kind: 'channel' | 'dm' | 'home', id: string } | { surface: 'teams', kind?: undefined, id: string }} View
 */
/** @typedef {Node | string | number | null | undefined | false | ChildList} Child */
/** @typedef {Child[]} ChildList */
/** A control that reports its value, and how to read it: [element, read]. @typedef {[HTMLElement, () => string | string[] | null]} Control */
/** @typedef {HTMLElement & { value: string }} ValueControl */
/**
 * One item of a feed, kept across redraws while `sig` is unchanged (reconcile).
 * @typedef {{ key: string, sig: string, content?: string, build: () => HTMLElement }} FeedItem
 */
/** @typedef {HTMLElement & { sandboxSig?: string, sandboxContent?: string }} FeedEl */
/** @typedef {HTMLElement & { sandboxTimer?: ReturnType<typeof setTimeout>, sandboxRemove?: () => void }} ToastEl */

const API = {
  state: '/sandbox/api/state',
  events: '/sandbox/events',
  slackAction: '/sandbox/api/slack/action',
  slackViewAction: '/sandbox/api/slack/view-action',
  slackViewSubmit: '/sandbox/api/slack/view-submit',
  slackViewClose: '/sandbox/api/slack/view-close',
  slackCommand: '/sandbox/api/slack/command',
  slackHomeOpened: '/sandbox/api/slack/home-opened',
  slackFile: '/sandbox/api/slack/file',
  teamsAction: '/sandbox/api/teams/action',
  teamsMessage: '/sandbox/api/teams/message',
  clock: '/sandbox/api/clock',
  tactical: '/sandbox/api/tactical',
  ninjaone: '/sandbox/api/ninjaone',
};

/** This start's page token, served in the page itself; the API refuses calls without it. */
const TOKEN = document.querySelector('meta[name="patchbay-sandbox-token"]')?.getAttribute('content') ?? '';
const TOKEN_HEADER = 'x-patchbay-sandbox-token';

/** At most this often (~4/s) the state is refetched, however fast the server announces changes. */
const MIN_FETCH_GAP_MS = 250;
const POLL_MS = 3000;
/** A clicked button stays disabled at least this long, so a double-click is one click even before the answer. */
const CLICK_GUARD_MS = 700;

/**
 * @typedef {object} Ui
 * @property {SandboxState | null} state the last state drawn
 * @property {number} stateAt
 * @property {View | null} view
 * @property {string | null} slackActor
 * @property {Map<string, string>} dmActors
 * @property {Map<string, string>} teamsActors
 * @property {Set<string>} openThreads
 * @property {Map<string, string>} seen
 * @property {Map<string, string>} drafts
 * @property {Map<string, number | 'bottom'>} scrolls
 * @property {string[]} history
 * @property {Set<string>} dismissedViews
 * @property {string} paneKey
 * @property {string} modalKey
 * @property {string} actorKey
 * @property {Map<string, string>} [names] person id -> name, from the last state
 * @property {Map<string, string>} [channelNames]
 * @property {string} [namesSig]
 * @property {string} [botId]
 * @property {string} [homeOpenedFor] who the Home tab was last opened for
 */

/** @type {Ui} */
const ui = {
  /** the last SandboxState drawn */
  state: null,
  /** performance.now() when `state` arrived: the clock ticks on from there at state.clock.rate. */
  stateAt: 0,
  /** { surface: 'slack', kind: 'channel' | 'dm' | 'home', id } or { surface: 'teams', id } */
  view: null,
  /** Slack actor chosen for channels and Home; a DM defaults to its own user (dmActors overrides). */
  slackActor: null,
  dmActors: new Map(),
  teamsActors: new Map(),
  /** `${channel}:${ts}` of threads the reader opened. */
  openThreads: new Set(),
  /** Nav key -> the content signature the reader last saw there (for unread marks). */
  seen: new Map(),
  drafts: new Map(),
  scrolls: new Map(),
  history: [],
  /** Views the reader closed: Slack closes a modal at once, before the app hears of it. */
  dismissedViews: new Set(),
  paneKey: '',
  modalKey: '',
  actorKey: '',
};

/** The state being drawn: every draw function runs after the first state arrived (render checks). */
function drawn() {
  if (!ui.state) throw new Error('nothing to draw before the first state');
  return ui.state;
}

/** The view being drawn (render picks one before drawing). */
function shown() {
  if (!ui.view) throw new Error('no view chosen yet');
  return ui.view;
}

// ---------------------------------------------------------------------------------------------------------------
// Small DOM and network helpers

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown>} [props]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = String(value);
    // Only ever given strings from the escaping renderers in this file.
    else if (key === 'html') el.innerHTML = String(value);
    else if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of /** @type {unknown[]} */ (children).flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/**
 * One element of the page's own markup (index.html), which is always there.
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {HTMLElement}
 */
const $ = (selector, root = document) => /** @type {HTMLElement} */ (root.querySelector(selector));

/** @type {Record<string, string>} */
const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** @param {unknown} text */
const escapeHtml = (text) => String(text ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

/** Slack sends mrkdwn with &, < and > escaped; only those three are entities in Slack text. */
const decodeSlackEntities = (/** @type {string} */ text) => text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

const isSafeUrl = (/** @type {string} */ url) => /^(https?:|mailto:)/i.test(url.trim());

/**
 * @param {string} message
 * @param {'info' | 'error'} [kind]
 */
function toast(message, kind = 'info') {
  const host = $('.toasts');
  const ttl = kind === 'error' ? 9000 : 5000;
  // The same words again (e.g. a burst of clicks) count up on one toast instead of stacking copies.
  const last = /** @type {ToastEl | null} */ (host.lastElementChild);
  if (last && !last.classList.contains('leaving') && last.dataset.kind === kind && last.dataset.message === message) {
    last.dataset.count = String(Number(last.dataset.count) + 1);
    $('.toast-count', last).textContent = `×${last.dataset.count}`;
    clearTimeout(last.sandboxTimer);
    const remove = last.sandboxRemove;
    if (remove) last.sandboxTimer = setTimeout(remove, ttl);
    return;
  }
  /** @type {ToastEl} */
  const el = h(
    'div',
    { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast', 'data-kind': kind, 'data-message': message, 'data-count': '1' },
    h('span', { class: 'toast-text', text: message }),
    h('span', { class: 'toast-count' }),
  );
  const remove = () => {
    el.classList.add('leaving');
    setTimeout(() => el.remove(), 200);
  };
  el.sandboxRemove = remove;
  el.addEventListener('click', remove);
  host.append(el);
  while (host.children.length > 4) host.firstElementChild?.remove();
  el.sandboxTimer = setTimeout(remove, ttl);
}

/**
 * Every POST answers a SandboxAnswer. Errors are always shown (never swallowed); a `detail` is shown as a note.
 * The state is refetched afterwards even if the event stream is slow to announce the change.
 * @param {string} url
 * @param {SandboxSlackActionRequest | SandboxSlackViewActionRequest | SandboxSlackViewSubmitRequest | SandboxSlackViewCloseRequest | SandboxSlackCommandRequest | SandboxTeamsActionRequest | SandboxTeamsMessageRequest | SandboxClockRequest | { user: string }} body
 * @param {{ quietErrors?: boolean }} [options]
 * @returns {Promise<SandboxAnswer>}
 */
async function post(url, body, { quietErrors = false } = {}) {
  /** @type {SandboxAnswer} */
  let answer;
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', [TOKEN_HEADER]: TOKEN }, body: JSON.stringify(body) });
    const text = await res.text();
    try {
      answer = JSON.parse(text);
    } catch {
      answer = { ok: false, error: `${res.status} ${res.statusText}: ${text.slice(0, 200) || 'no answer'}` };
    }
    if (!res.ok && answer.ok !== false) answer = { ...answer, ok: false, error: answer.error ?? `${res.status} ${res.statusText}` };
  } catch (error) {
    answer = { ok: false, error: `Cannot reach the sandbox server (${error instanceof Error ? error.message : error}).` };
  }
  if (!answer.ok && !quietErrors) toast(answer.error ?? 'The sandbox refused that, without saying why.', 'error');
  else if (answer.detail) toast(answer.detail, answer.ok ? 'info' : 'error');
  requestRefresh();
  return answer;
}

/**
 * Disables a control while its request is in flight, and for at least `minMs`.
 * @template T
 * @param {(HTMLElement & { disabled?: boolean }) | null | undefined} control
 * @param {() => Promise<T>} work
 * @param {number} [minMs]
 * @returns {Promise<T | undefined>}
 */
async function guarded(control, work, minMs = CLICK_GUARD_MS) {
  if (!control) return work();
  if (control.disabled) return undefined;
  control.disabled = true;
  control.setAttribute('aria-busy', 'true');
  const started = performance.now();
  try {
    return await work();
  } finally {
    const left = minMs - (performance.now() - started);
    setTimeout(() => {
      control.disabled = false;
      control.removeAttribute('aria-busy');
    }, Math.max(0, left));
  }
}

/**
 * @param {string} url
 */
function openLink(url) {
  if (isSafeUrl(url)) window.open(url, '_blank', 'noopener,noreferrer');
}

// ---------------------------------------------------------------------------------------------------------------
// Time

/** @type {Map<string, Intl.DateTimeFormat>} */
const formatters = new Map();

/**
 * @param {string} locale
 * @param {Intl.DateTimeFormatOptions} options
 * @returns {Intl.DateTimeFormat}
 */
function formatter(locale, options) {
  const key = locale + JSON.stringify(options);
  let made = formatters.get(key);
  if (!made) formatters.set(key, (made = new Intl.DateTimeFormat(locale, options)));
  return made;
}

/**
 * @param {number} ms
 * @param {string} zone
 * @param {Intl.DateTimeFormatOptions} options
 * @returns {Partial<Record<Intl.DateTimeFormatPartTypes, string>>}
 */
function zoneParts(ms, zone, options) {
  return Object.fromEntries(formatter('en-GB', { timeZone: zone, ...options }).formatToParts(ms).map((p) => [p.type, p.value]));
}

/**
 * @param {number} ms
 * @param {string} zone
 */
function zoneAbbrev(ms, zone) {
  // en-US knows the US abbreviations (CST, PDT); elsewhere it gives GMT+11, which is still unambiguous.
  const part = formatter('en-US', { timeZone: zone, timeZoneName: 'short' }).formatToParts(ms).find((p) => p.type === 'timeZoneName');
  return part ? part.value : zone;
}

/**
 * "Tue 8 Dec 2026 10:05 CST"
 * @param {number} ms
 * @param {string} zone
 */
function formatClock(ms, zone) {
  try {
    const p = zoneParts(ms, zone, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    return `${p.weekday} ${p.day} ${p.month} ${p.year} ${p.hour}:${p.minute} ${zoneAbbrev(ms, zone)}`;
  } catch {
    return new Date(ms).toISOString();
  }
}

/**
 * A message's time: "10:05", or "7 Dec 10:05" when it is not the sandbox clock's day.
 * @param {number} ms
 * @param {string} zone
 */
function formatStamp(ms, zone) {
  try {
    const p = zoneParts(ms, zone, { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    const today = zoneParts(clockNow(), zone, { day: 'numeric', month: 'short', year: 'numeric' });
    const sameDay = p.day === today.day && p.month === today.month && p.year === today.year;
    return sameDay ? `${p.hour}:${p.minute}` : `${p.day} ${p.month} ${p.hour}:${p.minute}`;
  } catch {
    return new Date(ms).toISOString().slice(11, 16);
  }
}

function clockNow() {
  const clock = ui.state?.clock;
  if (!clock) return Date.now();
  const base = Date.parse(clock.now);
  return Number.isFinite(base) ? base + (performance.now() - ui.stateAt) * (clock.rate ?? 1) : Date.now();
}

/** Offered when the state does not list its jumps (an older server). */
/** @type {Array<{ jump: SandboxJump, label: string }>} */
const DEFAULT_JUMPS = [
  { jump: 'next-window', label: 'Next window' },
  { jump: 'next-dm', label: 'Next DM time' },
  { jump: 'next-patch-tuesday', label: 'Next Patch Tuesday' },
  { jump: 'plus-hour', label: '+1 hour' },
  { jump: 'next-morning', label: 'Next morning' },
];

function drawJumps() {
  const jumps = Array.isArray(ui.state?.clock?.jumps) && drawn().clock.jumps.length ? drawn().clock.jumps : DEFAULT_JUMPS;
  const key = JSON.stringify(jumps);
  const nav = $('.jumps');
  if (nav.dataset.key === key) return;
  nav.dataset.key = key;
  nav.replaceChildren(
    ...jumps.map(({ jump, label }) => {
      const button = h('button', { type: 'button', 'data-jump': jump, 'data-testid': `jump-${jump}`, text: label });
      button.addEventListener('click', () =>
        guarded(button, async () => {
          // One jump at a time: the next one should start from where this one lands.
          const all = nav.querySelectorAll('button');
          all.forEach((b) => b.classList.add('waiting'));
          try {
            await post(API.clock, { jump });
          } finally {
            all.forEach((b) => b.classList.remove('waiting'));
          }
        }),
      );
      return button;
    }),
  );
}

function drawClock() {
  const clock = ui.state?.clock;
  if (!clock) return;
  const zone = clock.zone || 'UTC';
  $('.clock').textContent = formatClock(clockNow(), zone);
  const rate = $('.clock-rate');
  rate.hidden = clock.rate === 1;
  rate.textContent = clock.rate === 0 ? 'paused' : `×${Number(clock.rate.toPrecision(4))}`;
  rate.title = clock.rate === 0 ? 'The sandbox clock is stopped' : `The sandbox clock runs ${clock.rate}× real time`;
}

// ---------------------------------------------------------------------------------------------------------------
// Text: Slack mrkdwn, Slack plain_text, Teams markdown

/** The shortcodes the bot and people commonly use; any other :name: is left as written. */
/** @type {Record<string, string>} */
const EMOJI = {
  white_check_mark: '✅', heavy_check_mark: '✔️', ballot_box_with_check: '☑️', x: '❌', warning: '⚠️', no_entry: '⛔',
  no_entry_sign: '🚫', octagonal_sign: '🛑', red_circle: '🔴', large_green_circle: '🟢', large_yellow_circle: '🟡',
  large_orange_circle: '🟠', large_blue_circle: '🔵', white_circle: '⚪', black_circle: '⚫', hourglass: '⌛',
  hourglass_flowing_sand: '⏳', stopwatch: '⏱️', alarm_clock: '⏰', calendar: '📅', date: '📅', rotating_light: '🚨',
  fire: '🔥', rocket: '🚀', repeat: '🔁', arrows_counterclockwise: '🔄', pause_button: '⏸️', arrow_forward: '▶️',
  information_source: 'ℹ️', memo: '📝', pencil: '📝', lock: '🔒', shield: '🛡️', computer: '💻', desktop_computer: '🖥️',
  zzz: '💤', construction: '🚧', bulb: '💡', mag: '🔍', eyes: '👀', tada: '🎉', thumbsup: '👍', '+1': '👍',
  thumbsdown: '👎', '-1': '👎', question: '❓', exclamation: '❗', heavy_exclamation_mark: '❗', sparkles: '✨',
  wrench: '🔧', package: '📦', bell: '🔔', link: '🔗', checkered_flag: '🏁', speech_balloon: '💬', wave: '👋',
  raised_hands: '🙌', pray: '🙏', bangbang: '‼️', recycle: '♻️', clipboard: '📋', bar_chart: '📊', gear: '⚙️',
};

const emojify = (/** @type {string} */ escaped) => escaped.replace(/:([a-z0-9_+-]+):/g, (whole, name) => EMOJI[name] ?? whole);

/**
 * @param {string} id
 */
function personName(id) {
  return ui.names?.get(id);
}

/**
 * @param {string} id
 */
function channelName(id) {
  return ui.channelNames?.get(id);
}

// Tokens (links, mentions, code) are cut out into numbered slots before the text is escaped and formatted, so
// formatting can wrap them (*<url|label>*) yet never reach inside them. The private-use characters that mark a
// slot are removed from the input first, so text cannot forge one.
const SLOT = /\uE000(\d+)\uE001/g;
const HAS_SLOT = /\uE000\d+\uE001/;

function slotter() {
  /** @type {string[]} */
  const slots = [];
  return {
    put: (/** @type {string} */ html) => `\uE000${slots.push(html) - 1}\uE001`,
    fill: (/** @type {string} */ html) => {
      let out = html;
      // Slots can hold slots (a link inside a code span is flattened first, but be safe for two levels).
      for (let i = 0; i < 3 && HAS_SLOT.test(out); i++) out = out.replace(SLOT, (_, n) => slots[Number(n)] ?? '');
      return out;
    },
  };
}

/**
 * A Slack `<...>` control sequence (`inner` still entity-escaped) read as a person would see it:
 * { kind: 'mention' | 'channel' | 'broadcast' | 'link' | 'text', text, url? }.
 * @param {string} inner
 * @returns {{ kind: 'mention' | 'channel' | 'broadcast' | 'link' | 'text', text: string, url?: string }}
 */
function readToken(inner) {
  const bar = inner.indexOf('|');
  const head = bar < 0 ? inner : inner.slice(0, bar);
  const label = bar < 0 ? undefined : decodeSlackEntities(inner.slice(bar + 1));
  if (head.startsWith('@')) return { kind: 'mention', text: `@${personName(head.slice(1)) ?? label ?? head.slice(1)}` };
  if (head.startsWith('#')) return { kind: 'channel', text: `#${label ?? channelName(head.slice(1)) ?? head.slice(1)}` };
  if (head.startsWith('!')) {
    const cmd = head.slice(1);
    if (cmd === 'here' || cmd === 'channel' || cmd === 'everyone') return { kind: 'broadcast', text: `@${cmd}` };
    if (cmd.startsWith('subteam^')) return { kind: 'mention', text: label ?? '@group' };
    return { kind: 'text', text: label ?? `<${decodeSlackEntities(cmd)}>` };
  }
  const url = decodeSlackEntities(head);
  return isSafeUrl(url) ? { kind: 'link', text: label ?? url, url } : { kind: 'text', text: label ?? url };
}

/** @type {Partial<Record<string, string>>} */
const TOKEN_CLASS = { mention: 'mk-mention', channel: 'mk-channel', broadcast: 'mk-mention mk-broadcast' };

/**
 * @param {string} inner
 */
function slackToken(inner) {
  const token = readToken(inner);
  const text = escapeHtml(token.text);
  if (token.kind === 'link') return `<a class="mk-link" href="${escapeHtml(token.url)}" target="_blank" rel="noopener noreferrer">${emojify(text)}</a>`;
  return TOKEN_CLASS[token.kind] ? `<span class="${TOKEN_CLASS[token.kind]}">${text}</span>` : text;
}

/**
 * Code keeps its characters: tokens show their label, entities are decoded once, nothing is formatted.
 * @param {string} body
 */
function codeText(body) {
  return escapeHtml(body.replace(/<([^<>\n]*)>|&lt;|&gt;|&amp;/g, (whole, inner) => (inner !== undefined ? readToken(inner).text : decodeSlackEntities(whole))));
}

/**
 * Slack's inline rules: a marker opens after a non-word character and closes before one, on one line.
 * @param {string} escaped
 */
function slackInline(escaped) {
  /** @type {(marker: string, tag: string) => [RegExp, string]} */
  const span = (marker, tag) => [
    new RegExp(`(^|[^\\w${marker}])\\${marker}([^\\s${marker}](?:[^\\n]*?[^\\s${marker}])?)\\${marker}(?![\\w${marker}])`, 'g'),
    `$1<${tag}>$2</${tag}>`,
  ];
  return emojify(
    escaped
      .replace(...span('*', 'b'))
      .replace(...span('_', 'i'))
      .replace(...span('~', 's')),
  );
}

/**
 * Slack mrkdwn to HTML. `verbatim` texts keep their text as written but still get links and entities.
 * @param {unknown} text
 * @param {{ verbatim?: boolean }} [options]
 */
function mrkdwnToHtml(text, { verbatim = false } = {}) {
  const slots = slotter();
  let src = String(text ?? '').replace(/[\uE000\uE001]/g, '');
  if (!verbatim) {
    src = src.replace(/```([\s\S]*?)```/g, (_, body) => slots.put(`<pre class="mk-pre">${codeText(body.replace(/^\n|\n$/g, ''))}</pre>`));
    src = src.replace(/`([^`\n]+)`/g, (_, body) => slots.put(`<code class="mk-code">${codeText(body)}</code>`));
  }
  src = src.replace(/<([^<>\n]*)>/g, (_, inner) => slots.put(slackToken(inner)));
  const line = (/** @type {string} */ raw) => {
    const escaped = escapeHtml(decodeSlackEntities(raw));
    return verbatim ? emojify(escaped) : slackInline(escaped);
  };
  let html = '';
  let prevInline = false;
  /** @type {string[]} */
  let quote = [];
  const flushQuote = () => {
    if (quote.length === 0) return;
    html += `<blockquote class="mk-quote">${quote.map(line).join('<br>')}</blockquote>`;
    quote = [];
    prevInline = false;
  };
  for (const raw of src.split('\n')) {
    // A quote is a raw ">" at the start of a line; an escaped "&gt;" is a literal character someone typed.
    if (!verbatim && raw.startsWith('>')) {
      quote.push(raw.replace(/^> ?/, ''));
      continue;
    }
    flushQuote();
    if (prevInline) html += '<br>';
    html += line(raw);
    prevInline = true;
  }
  flushQuote();
  return slots.fill(html);
}

/**
 * plain_text is shown literally; with emoji: true (Slack's default) shortcodes become emoji.
 * @param {BotJson | string | undefined} obj
 */
function plainToHtml(obj) {
  const text = typeof obj === 'string' ? obj : obj?.text;
  const escaped = escapeHtml(text ?? '');
  return typeof obj === 'object' && obj?.emoji === false ? escaped : emojify(escaped);
}

/**
 * @param {BotJson | undefined} obj
 */
function textObjectHtml(obj) {
  if (!obj) return '';
  return obj.type === 'mrkdwn' ? mrkdwnToHtml(obj.text, { verbatim: obj.verbatim === true }) : plainToHtml(obj);
}

/**
 * The markdown Teams renders in message text and TextBlocks: **bold**, _italic_, ~~strike~~, `code`, [links](url),
 * bullet and numbered lists, and backslash escapes (which the bot uses to show people's text as written).
 * @param {unknown} text
 */
function markdownToHtml(text) {
  const slots = slotter();
  let src = String(text ?? '').replace(/[\uE000\uE001]/g, '');
  src = src.replace(/\\([\\`*_{}[\]()#+\-.!~>|])/g, (_, c) => slots.put(escapeHtml(c)));
  src = src.replace(/`([^`\n]+)`/g, (_, body) => slots.put(`<code>${escapeHtml(body)}</code>`));
  src = src.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (whole, label, url) =>
    isSafeUrl(url) ? slots.put(`<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(label)}</a>`) : whole,
  );
  src = src.replace(/\bhttps?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/g, (url) => slots.put(`<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(url)}</a>`));
  const inline = (/** @type {string} */ raw) =>
    escapeHtml(raw)
      .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
      .replace(/__(?=\S)([\s\S]*?\S)__/g, '<strong>$1</strong>')
      .replace(/(^|[^\w*])\*(?=\S)([^*]*?\S)\*(?![\w*])/g, '$1<em>$2</em>')
      .replace(/(^|[^\w_])_(?=\S)([^_]*?\S)_(?![\w_])/g, '$1<em>$2</em>')
      .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>');
  /** @type {string[]} */
  const out = [];
  /** @type {{ tag: 'ul' | 'ol', items: string[] } | null} */
  let list = null;
  /** @type {string[]} */
  let para = [];
  const flushPara = () => {
    if (para.length) out.push(`<p>${para.map(inline).join('<br>')}</p>`);
    para = [];
  };
  const flushList = () => {
    const open = /** @type {{ tag: 'ul' | 'ol', items: string[] } | null} */ (list);
    if (open) out.push(`<${open.tag}>${open.items.map((i) => `<li>${inline(i)}</li>`).join('')}</${open.tag}>`);
    list = null;
  };
  for (const raw of src.split('\n')) {
    const bullet = /^\s*[-*+]\s+(.*)$/.exec(raw);
    const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(raw);
    if (bullet || numbered) {
      flushPara();
      const tag = bullet ? 'ul' : 'ol';
      if (list && list.tag !== tag) flushList();
      list ??= { tag, items: [] };
      list.items.push((bullet ?? numbered)?.[1] ?? '');
    } else if (raw.trim() === '') {
      flushList();
      flushPara();
    } else {
      flushList();
      para.push(raw);
    }
  }
  flushList();
  flushPara();
  return slots.fill(out.join(''));
}

// ---------------------------------------------------------------------------------------------------------------
// Block Kit

/**
 * Where a block is drawn decides where its clicks go.
 * @typedef {{ kind: 'message' | 'ephemeral' | 'modal' | 'home', user: string, channel?: string, ts?: string,
 *   viewId?: string, carry?: Map<string, unknown> }} BlockContext
 */

/**
 * Sends an element's interaction the way its surface would.
 * @param {BlockContext} ctx
 * @param {BotJson} element
 * @param {string} [blockId]
 * @param {string} [selectedValue]
 * @returns {Promise<SandboxAnswer>}
 */
function sendAction(ctx, element, blockId, selectedValue) {
  const actionId = element.action_id ?? '';
  // Read at click time: messages are not redrawn when the reader switches who they act as.
  const user = ctx.kind === 'modal' ? ctx.user : currentSlackActor();
  if (ctx.kind === 'ephemeral') {
    toast('Buttons in an ephemeral message are not wired up in the sandbox.', 'error');
    return Promise.resolve({ ok: false });
  }
  if (ctx.kind === 'modal' || ctx.kind === 'home') {
    return post(API.slackViewAction, { user, viewId: ctx.viewId ?? '', actionId, blockId, selectedValue });
  }
  return post(API.slackAction, { user, channel: ctx.channel ?? '', ts: ctx.ts ?? '', actionId, blockId, selectedValue });
}

/**
 * Slack's confirm dialog ("Are you sure?") on a button, select or overflow option that carries `confirm`.
 * @param {BotJson | undefined} confirm
 * @returns {Promise<boolean>}
 */
function confirmFirst(confirm) {
  if (!confirm) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (/** @type {boolean} */ yes) => {
      layer.remove();
      resolve(yes);
    };
    const layer = h(
      'div',
      { class: 'modal-backdrop confirm-layer' },
      h(
        'div',
        { class: 'modal confirm', role: 'alertdialog', 'aria-modal': 'true', 'data-testid': 'confirm' },
        h('header', { class: 'modal-head' }, h('h2', { html: plainToHtml(confirm.title ?? 'Are you sure?') })),
        h('div', { class: 'modal-body', html: textObjectHtml(confirm.text) }),
        h(
          'footer',
          { class: 'modal-foot' },
          h('button', { type: 'button', class: 'btn', onclick: () => done(false), html: plainToHtml(confirm.deny ?? 'Cancel') }),
          h('button', { type: 'button', class: `btn ${confirm.style === 'danger' ? 'btn-danger' : 'btn-primary'}`, onclick: () => done(true), html: plainToHtml(confirm.confirm ?? 'Yes') }),
        ),
      ),
    );
    document.body.append(layer);
    layer.querySelector(/** @type {'button'} */ ('.btn-primary, .btn-danger'))?.focus();
  });
}

/**
 * @param {BotJson} element
 * @param {BlockContext} ctx
 * @param {string} [blockId]
 */
function renderButton(element, ctx, blockId) {
  const style = element.style === 'primary' || element.style === 'danger' ? ` btn-${element.style}` : '';
  const button = h('button', {
    type: 'button',
    class: `btn bk-button${style}`,
    'data-action-id': element.action_id,
    title: element.url ? element.url : undefined,
    html: plainToHtml(element.text),
  });
  if (element.url) button.append(h('span', { class: 'ext', 'aria-hidden': 'true', text: ' ↗' }));
  button.addEventListener('click', () => {
    if (element.url) {
      openLink(element.url);
      return;
    }
    void guarded(button, async () => {
      if (await confirmFirst(element.confirm)) await sendAction(ctx, element, blockId);
    });
  });
  return button;
}

/**
 * @param {BotJson} element
 * @param {BlockContext} ctx
 * @param {string} [blockId]
 */
function renderOverflow(element, ctx, blockId) {
  const wrap = h('div', { class: 'bk-overflow' });
  const toggle = h('button', { type: 'button', class: 'btn bk-overflow-toggle', 'aria-label': 'More actions', 'aria-haspopup': 'menu', text: '⋯' });
  const menu = h('div', { class: 'bk-menu', role: 'menu', hidden: true });
  const close = () => {
    menu.hidden = true;
    document.removeEventListener('click', outside, true);
  };
  const outside = (/** @type {Event} */ event) => {
    if (!wrap.contains(/** @type {Node | null} */ (event.target))) close();
  };
  for (const option of element.options ?? []) {
    menu.append(
      h('button', {
        type: 'button',
        role: 'menuitem',
        class: 'bk-menu-item',
        html: plainToHtml(option.text),
        onclick: () => {
          close();
          if (option.url) openLink(option.url);
          void guarded(toggle, async () => {
            if (await confirmFirst(element.confirm)) await sendAction(ctx, element, blockId, option.value);
          });
        },
      }),
    );
  }
  toggle.addEventListener('click', () => {
    if (!menu.hidden) return close();
    menu.hidden = false;
    document.addEventListener('click', outside, true);
  });
  wrap.append(toggle, menu);
  return wrap;
}

/**
 * @param {BotJson} element
 * @returns {BotJson[]}
 */
function optionsOf(element) {
  if (element.type === 'users_select' || element.type === 'multi_users_select') {
    return (ui.state?.slack.people ?? []).map((p) => ({ text: { type: 'plain_text', text: p.name }, value: p.id }));
  }
  if (/(conversations|channels)_select$/.test(element.type)) {
    const slack = ui.state?.slack;
    const channels = (slack?.channels ?? []).map((c) => ({ text: { type: 'plain_text', text: `#${c.name}` }, value: c.id }));
    const dms = element.type.includes('channels') ? [] : (slack?.dms ?? []).map((d) => ({ text: { type: 'plain_text', text: d.userName }, value: d.channel }));
    return [...channels, ...dms];
  }
  return [...(element.options ?? []), ...(element.option_groups ?? []).flatMap((/** @type {BotJson} */ g) => g.options ?? [])];
}

/**
 * @param {BotJson} element
 * @returns {unknown[]}
 */
function initialValues(element) {
  if (Array.isArray(element.initial_options)) return element.initial_options.map((/** @type {BotJson} */ o) => o.value);
  if (element.initial_option) return [element.initial_option.value];
  const initial = element.initial_user ?? element.initial_conversation ?? element.initial_channel;
  if (initial) return [initial];
  return [...(element.initial_users ?? []), ...(element.initial_conversations ?? []), ...(element.initial_channels ?? [])];
}

/**
 * @param {BotJson | undefined} option
 * @returns {string}
 */
function optionLabel(option) {
  return option?.text?.text ?? option?.value ?? '';
}

/**
 * One control for a select; `onPick` is called with the chosen value. Returns [element, read].
 * @param {BotJson} element
 * @param {string | undefined} id
 * @param {unknown} carried
 * @param {((value: string, control: HTMLSelectElement) => void) | undefined} onPick
 * @returns {Control}
 */
function renderSelect(element, id, carried, onPick) {
  const select = h('select', { class: 'bk-select', id, 'data-action-id': element.action_id });
  const chosen = carried !== undefined ? carried : initialValues(element)[0];
  select.append(h('option', { value: '', disabled: true, selected: chosen === undefined || chosen === null }, optionLabel({ text: element.placeholder }) || 'Select an item'));
  const add = (/** @type {HTMLElement} */ parent, /** @type {BotJson} */ option) => parent.append(h('option', { value: option.value, selected: option.value === chosen }, optionLabel(option)));
  const grouped = Array.isArray(element.option_groups) && !/(users|conversations|channels)/.test(element.type);
  if (grouped) {
    for (const group of element.option_groups) {
      const optgroup = h('optgroup', { label: optionLabel({ text: group.label }) });
      for (const option of group.options ?? []) add(optgroup, option);
      select.append(optgroup);
    }
  } else {
    for (const option of optionsOf(element)) add(select, option);
  }
  select.addEventListener('change', () => onPick?.(select.value, select));
  return [select, () => (select.value === '' ? null : select.value)];
}

/**
 * Slack's multi-select: chosen items as removable chips, a select to add more.
 * @param {BotJson} element
 * @param {string | undefined} id
 * @param {unknown} carried
 * @param {(() => void) | undefined} onChange
 * @returns {[HTMLElement, () => string[]]}
 */
function renderMultiSelect(element, id, carried, onChange) {
  const options = optionsOf(element);
  const chosen = new Set(Array.isArray(carried) ? carried : initialValues(element));
  const max = Number(element.max_selected_items) || Infinity;
  const chips = h('div', { class: 'chips' });
  const adder = h('select', { class: 'bk-select', id, 'data-action-id': element.action_id });
  const read = () => options.filter((o) => chosen.has(o.value)).map((o) => o.value);
  const draw = () => {
    chips.replaceChildren(
      ...options
        .filter((o) => chosen.has(o.value))
        .map((o) =>
          h(
            'span',
            { class: 'chip', 'data-value': o.value },
            optionLabel(o),
            h('button', {
              type: 'button',
              class: 'chip-x',
              'aria-label': `Remove ${optionLabel(o)}`,
              text: '×',
              onclick: () => {
                chosen.delete(o.value);
                draw();
                onChange?.();
              },
            }),
          ),
        ),
    );
    const rest = options.filter((o) => !chosen.has(o.value));
    const full = chosen.size >= max;
    adder.replaceChildren(
      h('option', { value: '', selected: true }, full ? `At most ${max}` : optionLabel({ text: element.placeholder }) || 'Select items'),
      ...rest.map((o) => h('option', { value: o.value }, optionLabel(o))),
    );
    adder.disabled = full || rest.length === 0;
  };
  adder.addEventListener('change', () => {
    if (adder.value) chosen.add(adder.value);
    draw();
    onChange?.();
  });
  draw();
  return [h('div', { class: 'bk-multi' }, chips, adder), read];
}

let uid = 0;

/**
 * Checkboxes and radio buttons. Returns [element, read].
 * @param {BotJson} element
 * @param {unknown} carried
 * @param {((value: string) => void) | undefined} onChange
 * @returns {Control}
 */
function renderChoices(element, carried, onChange) {
  const radio = element.type === 'radio_buttons';
  const name = `choice-${++uid}`;
  const initial = new Set(carried !== undefined ? [carried].flat().filter((v) => v !== null) : initialValues(element));
  /** @type {HTMLInputElement[]} */
  const inputs = [];
  const group = h('div', { class: 'bk-choices', role: radio ? 'radiogroup' : 'group', 'data-action-id': element.action_id });
  for (const option of element.options ?? []) {
    const input = h('input', { type: radio ? 'radio' : 'checkbox', name, value: option.value, checked: initial.has(option.value) });
    input.addEventListener('change', () => onChange?.(input.value));
    inputs.push(input);
    group.append(
      h(
        'label',
        { class: 'bk-choice' },
        input,
        h('span', { class: 'bk-choice-text' }, h('span', { html: textObjectHtml(option.text) }), option.description ? h('span', { class: 'bk-choice-desc', html: textObjectHtml(option.description) }) : null),
      ),
    );
  }
  const read = () => {
    const values = inputs.filter((i) => i.checked).map((i) => i.value);
    return radio ? (values[0] ?? null) : values;
  };
  return [group, read];
}

/** @type {Record<string, string>} */
const TEXTUAL = {
  plain_text_input: 'text',
  number_input: 'number',
  email_text_input: 'email',
  url_text_input: 'url',
  datepicker: 'date',
  timepicker: 'time',
  datetimepicker: 'datetime-local',
};

/**
 * A text-like input. Returns [element, read].
 * @param {BotJson} element
 * @param {string | undefined} id
 * @param {unknown} carried
 * @param {(value: string) => void} [onEnter]
 * @returns {[HTMLInputElement | HTMLTextAreaElement, () => string | null]}
 */
function renderTextual(element, id, carried, onEnter) {
  const type = TEXTUAL[element.type] ?? 'text';
  const initial = carried !== undefined ? (carried ?? '') : (element.initial_value ?? element.initial_date ?? element.initial_time ?? '');
  const placeholder = element.placeholder ? optionLabel({ text: element.placeholder }) : undefined;
  /** @type {HTMLInputElement | HTMLTextAreaElement} */
  let control;
  if (element.type === 'plain_text_input' && element.multiline) {
    control = h('textarea', { class: 'bk-text', id, rows: 4, placeholder, 'data-action-id': element.action_id });
    control.value = initial;
  } else {
    control = h('input', { class: 'bk-text', id, type, placeholder, 'data-action-id': element.action_id, step: type === 'number' && element.is_decimal_allowed ? 'any' : undefined });
    control.value = initial;
    const input = control;
    if (onEnter) {
      input.addEventListener('keydown', (event) => {
        if (event.key === 'Enter') {
          event.preventDefault();
          onEnter(input.value);
        }
      });
    }
  }
  if (element.focus_on_load) queueMicrotask(() => control.focus());
  return [control, () => (control.value === '' ? null : control.value)];
}

/**
 * An interactive element outside an input block (a section accessory, an actions element): every change is
 * sent as an action, as in Slack.
 * @param {BotJson | undefined} element
 * @param {BlockContext} ctx
 * @param {string} [blockId]
 * @returns {HTMLElement | null}
 */
function renderElement(element, ctx, blockId) {
  if (!element || typeof element !== 'object') return null;
  /** @type {(value: string, control?: HTMLElement) => void} */
  const send = (value, control) =>
    void guarded(control, async () => {
      if (await confirmFirst(element.confirm)) await sendAction(ctx, element, blockId, value);
    });
  switch (element.type) {
    case 'button':
      return renderButton(element, ctx, blockId);
    case 'overflow':
      return renderOverflow(element, ctx, blockId);
    case 'image':
      return renderImage(element.image_url, element.alt_text, 'bk-accessory-img');
    case 'static_select':
    case 'external_select':
    case 'users_select':
    case 'conversations_select':
    case 'channels_select':
      return renderSelect(element, undefined, undefined, (value, control) => send(value, control))[0];
    case 'multi_static_select':
    case 'multi_external_select':
    case 'multi_users_select':
    case 'multi_conversations_select':
    case 'multi_channels_select': {
      const [el, read] = renderMultiSelect(element, undefined, undefined, () => send(read().join(',')));
      return el;
    }
    case 'checkboxes':
    case 'radio_buttons':
      return renderChoices(element, undefined, (value) => send(value))[0];
    case 'datepicker':
    case 'timepicker':
    case 'datetimepicker': {
      const [el] = renderTextual(element, undefined, undefined);
      el.addEventListener('change', () => send(el.value, el));
      return el;
    }
    default:
      return h('span', { class: 'bk-unsupported', text: `[${element.type ?? 'element'}]` });
  }
}

/**
 * @param {unknown} url
 * @param {string | undefined} alt
 * @param {string} cls
 */
function renderImage(url, alt, cls) {
  const img = h('img', { class: cls, src: isSafeUrl(String(url ?? '')) ? url : undefined, alt: alt ?? '', loading: 'lazy' });
  // The sandbox usually has no internet: show the alt text where the picture would be.
  img.addEventListener('error', () => img.replaceWith(h('span', { class: `${cls} img-missing`, title: String(url ?? ''), text: alt || 'image' })));
  return img;
}

/**
 * @param {BotJson[] | undefined} elements
 * @returns {Node[]}
 */
function renderRichInline(elements) {
  /** @type {Node[]} */
  const out = [];
  for (const e of elements ?? []) {
    /** @type {Node} */
    let node;
    switch (e.type) {
      case 'text':
        node = document.createTextNode(e.text ?? '');
        break;
      case 'link':
        node = isSafeUrl(String(e.url ?? '')) ? h('a', { class: 'mk-link', href: e.url, target: '_blank', rel: 'noopener noreferrer', text: e.text || e.url }) : document.createTextNode(e.text || e.url || '');
        break;
      case 'user':
        node = h('span', { class: 'mk-mention', text: `@${personName(e.user_id) ?? e.user_id}` });
        break;
      case 'usergroup':
        node = h('span', { class: 'mk-mention', text: '@group' });
        break;
      case 'channel':
        node = h('span', { class: 'mk-channel', text: `#${channelName(e.channel_id) ?? e.channel_id}` });
        break;
      case 'broadcast':
        node = h('span', { class: 'mk-mention mk-broadcast', text: `@${e.range}` });
        break;
      case 'emoji':
        node = document.createTextNode(
          e.unicode ? String.fromCodePoint(...String(e.unicode).split('-').map((/** @type {string} */ x) => parseInt(x, 16))) : (EMOJI[e.name] ?? `:${e.name}:`),
        );
        break;
      case 'date':
        node = document.createTextNode(e.fallback ?? String(e.timestamp ?? ''));
        break;
      default:
        node = document.createTextNode(e.text ?? '');
    }
    const style = e.style ?? {};
    if (style.code) node = h('code', { class: 'mk-code' }, node);
    if (style.strike) node = h('s', {}, node);
    if (style.italic) node = h('i', {}, node);
    if (style.bold) node = h('b', {}, node);
    out.push(node);
  }
  return out;
}

/**
 * @param {BotJson} block
 */
function renderRichText(block) {
  const root = h('div', { class: 'bk-rich' });
  for (const el of block.elements ?? []) {
    switch (el.type) {
      case 'rich_text_section':
        root.append(h('div', { class: 'rt-section' }, renderRichInline(el.elements)));
        break;
      case 'rich_text_list': {
        const list = h(el.style === 'ordered' ? 'ol' : 'ul', { class: 'rt-list', style: `margin-left:${(Number(el.indent) || 0) * 22}px` });
        for (const item of el.elements ?? []) list.append(h('li', {}, renderRichInline(item.elements)));
        root.append(list);
        break;
      }
      case 'rich_text_preformatted':
        root.append(h('pre', { class: 'mk-pre' }, renderRichInline(el.elements)));
        break;
      case 'rich_text_quote':
        root.append(h('blockquote', { class: 'mk-quote' }, renderRichInline(el.elements)));
        break;
      default:
        root.append(h('div', { class: 'bk-unsupported', text: `[${el.type}]` }));
    }
  }
  return root;
}

/**
 * An input block in a modal. Registers how to read its value for Submit.
 * @param {BotJson} block
 * @param {BlockContext} ctx
 */
function renderInputBlock(block, ctx) {
  const element = block.element ?? {};
  const id = `in-${++uid}`;
  const key = `${block.block_id}/${element.action_id}`;
  const carried = ctx.carry?.get(key);
  // dispatch_action: the input reports each change to the app at once (e.g. a select that redraws the modal).
  const dispatch = block.dispatch_action === true ? (/** @type {string} */ value) => void sendAction(ctx, element, block.block_id, value) : undefined;
  /** @type {HTMLElement} */
  let control;
  /** @type {() => string | string[] | null} */
  let read;
  if (element.type?.startsWith('multi_')) [control, read] = renderMultiSelect(element, id, carried, dispatch && (() => dispatch(/** @type {string[]} */ (read()).join(','))));
  else if (/_select$/.test(element.type ?? '')) [control, read] = renderSelect(element, id, carried, dispatch);
  else if (element.type === 'checkboxes' || element.type === 'radio_buttons') [control, read] = renderChoices(element, carried, dispatch);
  else [control, read] = renderTextual(element, id, carried, dispatch);

  const wrap = h(
    'div',
    { class: 'bk-input', 'data-block-id': block.block_id, 'data-testid': 'modal-input' },
    h('label', { class: 'bk-label', for: id }, h('span', { html: plainToHtml(block.label) }), block.optional ? h('span', { class: 'optional', text: ' (optional)' }) : null),
    control,
  );
  const foot = h('div', { class: 'bk-input-foot' });
  if (block.hint) foot.append(h('div', { class: 'bk-hint', html: plainToHtml(block.hint) }));
  const counter = element.max_length ? h('span', { class: 'bk-counter' }) : null;
  if (counter) {
    const count = () => {
      const length = (/** @type {ValueControl} */ (control).value ?? '').length;
      counter.textContent = `${length} / ${element.max_length}`;
      counter.classList.toggle('over', length > element.max_length);
      counter.hidden = length < element.max_length * 0.8;
    };
    control.addEventListener('input', count);
    count();
    foot.append(counter);
  }
  wrap.append(foot, h('div', { class: 'bk-error', 'data-testid': 'modal-error', role: 'alert', hidden: true }));
  // Editing a field clears its error, as Slack does once the person starts fixing it.
  wrap.addEventListener('input', () => setBlockError(wrap, undefined));
  wrap.addEventListener('change', () => setBlockError(wrap, undefined));
  inputReaders.set(wrap, { block, element, key, read });
  return wrap;
}

/** @type {WeakMap<Element, { block: BotJson, element: BotJson, key: string, read: () => string | string[] | null }>} */
const inputReaders = new WeakMap();

/**
 * @param {Element} wrap
 * @param {string | undefined} message
 */
function setBlockError(wrap, message) {
  const slot = /** @type {HTMLElement | null} */ (wrap.querySelector(':scope > .bk-error'));
  if (!slot) return;
  slot.hidden = !message;
  slot.textContent = message ?? '';
  wrap.classList.toggle('has-error', Boolean(message));
}

/**
 * @param {BotJson | undefined} block
 * @param {BlockContext} ctx
 * @returns {HTMLElement}
 */
function renderBlock(block, ctx) {
  switch (block?.type) {
    case 'header':
      return h('div', { class: 'bk-header', html: plainToHtml(block.text) });
    case 'section': {
      const main = h('div', { class: 'bk-section-main' });
      if (block.text) main.append(h('div', { class: 'bk-text-body', html: textObjectHtml(block.text) }));
      if (Array.isArray(block.fields) && block.fields.length) {
        main.append(h('div', { class: 'bk-fields' }, block.fields.map((/** @type {BotJson} */ f) => h('div', { class: 'bk-field', html: textObjectHtml(f) }))));
      }
      const accessory = block.accessory ? h('div', { class: 'bk-accessory' }, renderElement(block.accessory, ctx, block.block_id)) : null;
      return h('div', { class: `bk-section${accessory ? ' has-accessory' : ''}` }, main, accessory);
    }
    case 'divider':
      return h('hr', { class: 'bk-divider' });
    case 'context':
      return h(
        'div',
        { class: 'bk-context' },
        (block.elements ?? []).map((/** @type {BotJson} */ e) => (e.type === 'image' ? renderImage(e.image_url, e.alt_text, 'bk-context-img') : h('span', { class: 'bk-context-text', html: textObjectHtml(e) }))),
      );
    case 'actions':
      return h('div', { class: 'bk-actions' }, (block.elements ?? []).map((/** @type {BotJson} */ e) => renderElement(e, ctx, block.block_id)));
    case 'image':
      return h(
        'figure',
        { class: 'bk-image' },
        block.title ? h('figcaption', { html: plainToHtml(block.title) }) : null,
        renderImage(block.image_url, block.alt_text, 'bk-image-img'),
      );
    case 'rich_text':
      return renderRichText(block);
    case 'input':
      return ctx.kind === 'modal' || ctx.kind === 'home'
        ? renderInputBlock(block, ctx)
        : h('div', { class: 'bk-unsupported', text: 'An input block outside a modal (Slack would reject this message).' });
    default:
      return h('div', { class: 'bk-unsupported', text: `Unsupported block: ${block?.type ?? typeof block}` });
  }
}

/**
 * @param {unknown[] | undefined} blocks
 * @param {BlockContext} ctx
 */
function renderBlocks(blocks, ctx) {
  const root = h('div', { class: 'blocks' });
  for (const block of /** @type {BotJson[]} */ (blocks ?? [])) {
    const el = renderBlock(block, ctx);
    if (block?.block_id && el instanceof HTMLElement) el.dataset.blockId = block.block_id;
    root.append(el);
  }
  return root;
}

// ---------------------------------------------------------------------------------------------------------------
// Slack pane

/**
 * @param {string | undefined} name
 */
function initials(name) {
  const words = String(name ?? '?').trim().split(/\s+/);
  return ((words[0]?.[0] ?? '?') + (words.length > 1 ? (words.at(-1)?.[0] ?? '') : '')).toUpperCase();
}

/**
 * @param {string} id
 */
function hue(id) {
  let n = 0;
  for (const c of String(id)) n = (n * 31 + c.charCodeAt(0)) % 360;
  return n;
}

const BOT_NAMES = new Set(['patchbay']);

/**
 * @param {string} id
 * @param {string} name
 * @param {string} cls
 */
function avatar(id, name, cls) {
  const bot = BOT_NAMES.has(String(name).toLowerCase());
  return h('div', { class: `${cls}${bot ? ' is-bot' : ''}`, style: bot ? undefined : `--avatar-hue:${hue(id)}`, 'aria-hidden': 'true', text: bot ? 'pb' : initials(name) });
}

/**
 * @param {SandboxSlackMessage} message
 * @param {BlockContext} ctx
 * @param {{ reply?: boolean }} [options]
 * @returns {HTMLElement}
 */
function slackMessageEl(message, ctx, { reply = false } = {}) {
  const zone = drawn().clock.zone;
  const bot = BOT_NAMES.has(String(message.userName).toLowerCase()) || message.user === ui.botId;
  const key = `${message.channel}:${message.ts}`;
  const stamp = new Date(message.updatedAt);
  const el = h(
    'article',
    { class: `msg${reply ? ' reply' : ''}`, 'data-testid': 'slack-message', 'data-ts': message.ts, 'data-channel': message.channel, 'data-thread-ts': message.threadTs },
    avatar(message.user, message.userName, 'avatar'),
    h(
      'div',
      { class: 'msg-body' },
      h(
        'div',
        { class: 'msg-head' },
        h('span', { class: 'author', text: message.userName || personName(message.user) || message.user }),
        bot ? h('span', { class: 'app-badge', text: 'APP' }) : null,
        h('time', { datetime: stamp.toISOString(), title: formatClock(message.updatedAt, zone), text: formatStamp(message.updatedAt, zone) }),
        message.edits > 0 ? h('span', { class: 'edited', title: `Edited ${message.edits} time${message.edits === 1 ? '' : 's'} in place`, text: '(edited)' }) : null,
      ),
      Array.isArray(message.blocks) && message.blocks.length
        ? renderBlocks(message.blocks, { ...ctx, ts: message.ts, channel: message.channel })
        : h('div', { class: 'blocks' }, h('div', { class: 'bk-text-body', html: mrkdwnToHtml(message.text) })),
      message.files?.length ? h('div', { class: 'msg-files', 'data-testid': 'slack-files' }, message.files.map(slackFileEl)) : null,
    ),
  );
  const replies = message.replies ?? [];
  if (!reply && replies.length) {
    const open = ui.openThreads.has(key);
    const last = replies.reduce((max, r) => Math.max(max, r.updatedAt ?? 0), 0);
    const faces = [...new Map(replies.map((r) => [r.user, r])).values()].slice(0, 3);
    const toggle = h(
      'button',
      { type: 'button', class: 'thread-toggle', 'aria-expanded': String(open), 'data-testid': 'thread-toggle' },
      h('span', { class: 'thread-faces' }, faces.map((r) => avatar(r.user, r.userName, 'avatar tiny'))),
      h('span', { class: 'thread-count', text: `${replies.length} ${replies.length === 1 ? 'reply' : 'replies'}` }),
      h('span', { class: 'thread-last', text: open ? 'Hide thread' : `Last reply ${formatStamp(last, zone)}` }),
    );
    toggle.addEventListener('click', () => {
      if (ui.openThreads.has(key)) ui.openThreads.delete(key);
      else ui.openThreads.add(key);
      drawFeed();
    });
    $('.msg-body', el).append(toggle);
    if (open) {
      $('.msg-body', el).append(h('div', { class: 'thread', 'data-testid': 'thread' }, replies.map((r) => slackMessageEl(r, ctx, { reply: true }))));
    }
  }
  return el;
}

/** @param {number} bytes */
function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * A file shared in a message, as Slack shows one: its kind, name, size and a download of the bytes as uploaded.
 * A link cannot send the token's header, so it rides in the query (as for the event stream).
 * @param {SandboxSlackFile} file
 */
function slackFileEl(file) {
  const href = `${API.slackFile}?id=${encodeURIComponent(file.id)}&token=${encodeURIComponent(TOKEN)}`;
  const kind = /\.([A-Za-z0-9]{1,5})$/.exec(file.name)?.[1]?.toUpperCase() ?? 'FILE';
  return h(
    'div',
    { class: 'file-card', 'data-testid': 'slack-file', 'data-file-id': file.id },
    h('span', { class: `file-kind file-kind-${kind.toLowerCase()}`, text: kind }),
    h(
      'div',
      { class: 'file-meta' },
      h('a', { class: 'file-name', href, download: file.name, title: `Download ${file.name}`, 'data-testid': 'slack-file-link', text: file.title || file.name }),
      h('span', { class: 'file-info', text: `${formatSize(file.size)} · ${file.mimetype}` }),
    ),
  );
}

const EYE_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M1 12s4-7 11-7 11 7 11 7-4 7-11 7S1 12 1 12z"/><circle cx="12" cy="12" r="3"/></svg>';

/**
 * @param {SandboxSlackEphemeral} ephemeral
 * @param {BlockContext} ctx
 */
function ephemeralEl(ephemeral, ctx) {
  const zone = drawn().clock.zone;
  return h(
    'article',
    { class: 'msg ephemeral', 'data-testid': 'slack-ephemeral', 'data-channel': ephemeral.channel },
    avatar('bot', 'patchbay', 'avatar'),
    h(
      'div',
      { class: 'msg-body' },
      h(
        'div',
        { class: 'msg-head' },
        h('span', { class: 'author', text: 'patchbay' }),
        h('span', { class: 'app-badge', text: 'APP' }),
        h('time', { title: formatClock(ephemeral.at, zone), text: formatStamp(ephemeral.at, zone) }),
      ),
      Array.isArray(ephemeral.blocks) && ephemeral.blocks.length
        ? renderBlocks(ephemeral.blocks, { ...ctx, kind: 'ephemeral' })
        : h('div', { class: 'blocks' }, h('div', { class: 'bk-text-body', html: mrkdwnToHtml(ephemeral.text) })),
      h('div', { class: 'only-you', html: `${EYE_ICON}<span>Only visible to you</span>` }),
    ),
  );
}

function slackSurface() {
  const slack = drawn().slack;
  const view = shown();
  if (view.kind === 'channel') {
    const channel = slack.channels.find((c) => c.id === view.id);
    return channel && { channel: channel.id, messages: channel.messages ?? [] };
  }
  if (view.kind === 'dm') {
    const dm = slack.dms.find((d) => d.channel === view.id);
    return dm && { channel: dm.channel, messages: dm.messages ?? [] };
  }
  return undefined;
}

/**
 * Slack sends `app_home_opened` each time a person opens the app's Home tab; the bot publishes the tab in answer.
 * Sent once per opening: on navigating to Home, and again when the person acting changes while it is open.
 * @param {string} actor
 */
function openHome(actor) {
  if (!actor || ui.homeOpenedFor === actor) return;
  ui.homeOpenedFor = actor;
  void post(API.slackHomeOpened, { user: actor });
}

/**
 * @returns {FeedItem[]}
 */
function slackFeedItems() {
  const actor = currentSlackActor();
  if (shown().kind === 'home') {
    openHome(actor);
    const home = drawn().slack.home?.[actor];
    const sig = JSON.stringify(home ?? null) + actor;
    return [
      {
        key: `home:${actor}`,
        sig,
        build: () =>
          home
            ? h('div', { class: 'home', 'data-testid': 'slack-home' }, renderBlocks(/** @type {unknown[] | undefined} */ (home.blocks), { kind: 'home', user: actor, viewId: typeof home.id === 'string' ? home.id : '' }))
            : empty(`The bot has not published a Home tab for ${personName(actor) ?? actor} yet.`),
      },
    ];
  }
  const surface = slackSurface();
  if (!surface) return [{ key: 'missing', sig: 'missing', build: () => empty('This conversation is gone from the sandbox.') }];
  /** @type {BlockContext} */
  const ctx = { kind: 'message', user: actor, channel: surface.channel };
  /** @type {FeedItem[]} */
  const items = surface.messages.map((m) => {
    const key = `${m.channel}:${m.ts}`;
    const content = JSON.stringify(m);
    return { key, content, sig: `${content}|${ui.openThreads.has(key)}|${ui.namesSig}`, build: () => slackMessageEl(m, ctx) };
  });
  const ephemerals = (drawn().slack.ephemerals ?? []).filter((e) => e.channel === surface.channel && e.user === actor).sort((a, b) => a.at - b.at);
  ephemerals.forEach((e, i) => items.push({ key: `eph:${e.at}:${i}`, sig: JSON.stringify(e) + ui.namesSig, build: () => ephemeralEl(e, ctx) }));
  if (items.length === 0) {
    const name = shown().kind === 'channel' ? `#${channelName(surface.channel)}` : 'this conversation';
    items.push({ key: 'empty', sig: 'empty', build: () => empty(`Nothing posted in ${name} yet.`) });
  }
  return items;
}

/**
 * @param {string} text
 */
function empty(text) {
  return h('div', { class: 'empty', 'data-testid': 'empty', text });
}

// ---------------------------------------------------------------------------------------------------------------
// Teams pane

const TEAMS_HOST_CONFIG = {
  fontFamily: "'Segoe UI', 'Segoe UI Web (West European)', system-ui, -apple-system, 'Helvetica Neue', Arial, sans-serif",
  supportsInteractivity: true,
  spacing: { small: 4, default: 8, medium: 16, large: 20, extraLarge: 24, padding: 16 },
  separator: { lineThickness: 1, lineColor: '#E0E0E0' },
  fontSizes: { small: 12, default: 14, medium: 14, large: 18, extraLarge: 24 },
  fontWeights: { lighter: 300, default: 400, bolder: 600 },
  imageSizes: { small: 32, medium: 52, large: 100 },
  containerStyles: {
    default: {
      backgroundColor: '#FFFFFF',
      foregroundColors: {
        default: { default: '#242424', subtle: '#616161' },
        dark: { default: '#242424', subtle: '#424242' },
        light: { default: '#FFFFFF', subtle: '#F5F5F5' },
        accent: { default: '#5B5FC7', subtle: '#7579EB' },
        good: { default: '#0E7A0B', subtle: '#13A10E' },
        warning: { default: '#835C00', subtle: '#A67800' },
        attention: { default: '#C4314B', subtle: '#D13438' },
      },
    },
    emphasis: { backgroundColor: '#F5F5F5', foregroundColors: { default: { default: '#242424', subtle: '#616161' } } },
    accent: { backgroundColor: '#E8EBFA', foregroundColors: { default: { default: '#242424', subtle: '#616161' } } },
    good: { backgroundColor: '#E7F2DA', foregroundColors: { default: { default: '#242424', subtle: '#616161' } } },
    attention: { backgroundColor: '#FCF4F6', foregroundColors: { default: { default: '#242424', subtle: '#616161' } } },
    warning: { backgroundColor: '#FBF6D9', foregroundColors: { default: { default: '#242424', subtle: '#616161' } } },
  },
  actions: {
    maxActions: 6,
    spacing: 'medium',
    buttonSpacing: 8,
    showCard: { actionMode: 'inline', inlineTopMargin: 12, style: 'emphasis' },
    actionsOrientation: 'horizontal',
    actionAlignment: 'left',
  },
  adaptiveCard: { allowCustomStyle: true },
  factSet: {
    title: { color: 'default', size: 'default', isSubtle: false, weight: 'bolder', wrap: true, maxWidth: 180 },
    value: { color: 'default', size: 'default', isSubtle: false, weight: 'default', wrap: true },
    spacing: 12,
  },
  inputs: { label: { requiredInputs: { weight: 'bolder', suffix: ' *', suffixColor: 'attention' }, optionalInputs: { weight: 'bolder' } }, errorMessage: { color: 'attention' } },
};

/** @type {any} the Adaptive Cards library's HostConfig (the library is loaded as a global script, untyped here) */
let hostConfig;
let markdownHooked = false;

/**
 * @param {Record<string, unknown>} card
 * @param {(action: any) => void} onAction an Adaptive Cards Action
 */
function renderCard(card, onAction) {
  const AC = /** @type {any} */ (window).AdaptiveCards;
  if (!AC) return h('div', { class: 'card-error', text: 'The Adaptive Cards renderer did not load (/sandbox/assets/adaptivecards.js).' });
  if (!markdownHooked) {
    AC.AdaptiveCard.onProcessMarkdown = (/** @type {string} */ text, /** @type {{ outputHtml?: string, didProcess?: boolean }} */ result) => {
      result.outputHtml = markdownToHtml(text);
      result.didProcess = true;
    };
    markdownHooked = true;
  }
  hostConfig ??= new AC.HostConfig(TEAMS_HOST_CONFIG);
  try {
    const ac = new AC.AdaptiveCard();
    ac.hostConfig = hostConfig;
    ac.onExecuteAction = onAction;
    ac.parse(card);
    const rendered = ac.render();
    if (!rendered) throw new Error('the renderer returned nothing');
    return rendered;
  } catch (error) {
    return h(
      'div',
      { class: 'card-error' },
      `This card could not be drawn: ${error instanceof Error ? error.message : error}`,
      h('details', {}, h('summary', { text: 'Card JSON' }), h('pre', { text: JSON.stringify(card, null, 2) })),
    );
  }
}

/**
 * What Teams sends for a press. Action.Execute: its verb and data (the library has already merged the card's
 * input values into action.data). Action.Submit: the verb rides in data (the bot's fallback puts it there),
 * and an imBack is a plain message from the person.
 * @param {any} action an Adaptive Cards Action (Action.Execute, Action.Submit, Action.OpenUrl)
 * @param {SandboxTeamsConversation} conversation
 * @param {SandboxTeamsActivity} activity
 * @param {HTMLElement} holder
 */
async function cardAction(action, conversation, activity, holder) {
  const type = action.getJsonTypeName();
  if (type === 'Action.OpenUrl') {
    openLink(String(action.url ?? ''));
    return;
  }
  if (type !== 'Action.Execute' && type !== 'Action.Submit') return;
  const raw = action.data;
  const data = raw && typeof raw === 'object' && !Array.isArray(raw) ? { ...raw } : raw === undefined ? {} : { value: raw };
  const user = currentTeamsActor(conversation);
  const msteams = data.msteams;
  if (type === 'Action.Submit' && msteams?.type === 'imBack' && typeof msteams.value === 'string') {
    await post(API.teamsMessage, { user, conversationId: conversation.id, text: msteams.value });
    return;
  }
  const verb =
    type === 'Action.Execute'
      ? String(action.verb ?? '')
      : String(data.verb ?? (msteams && typeof msteams.value === 'object' ? (msteams.value?.verb ?? '') : ''));
  const errorSlot = $('.tm-error', holder);
  errorSlot.hidden = true;
  if (holder.classList.contains('busy')) return;
  holder.classList.add('busy');
  const started = performance.now();
  const answer = await post(API.teamsAction, { user, conversationId: conversation.id, activityId: activity.id, verb, data });
  setTimeout(() => holder.classList.remove('busy'), Math.max(0, CLICK_GUARD_MS - (performance.now() - started)));
  if (!answer.ok) {
    // Teams shows a failed action under the card; the toast may be gone by the time the reader looks.
    errorSlot.textContent = answer.error ?? 'Something went wrong.';
    errorSlot.hidden = false;
  }
}

/**
 * A message a person typed (activity.from set): on the right, like one's own message in Teams.
 * @param {SandboxTeamsActivity & { from: string }} activity
 */
function teamsOwnEl(activity) {
  const zone = drawn().clock.zone;
  const name = personName(activity.from) ?? activity.from;
  return h(
    'article',
    { class: 'tm-activity tm-own', 'data-testid': 'teams-activity', 'data-id': activity.id, 'data-from': activity.from },
    h(
      'div',
      { class: 'tm-bubble' },
      h('div', { class: 'tm-head' }, h('span', { class: 'tm-author', text: name }), h('time', { title: formatClock(activity.updatedAt, zone), text: formatStamp(activity.updatedAt, zone) })),
      h('div', { class: 'tm-text', html: markdownToHtml(activity.text) }),
    ),
  );
}

/**
 * @param {SandboxTeamsActivity} activity
 * @param {SandboxTeamsConversation} conversation
 */
function teamsActivityEl(activity, conversation) {
  if (activity.from) return teamsOwnEl({ ...activity, from: activity.from });
  const zone = drawn().clock.zone;
  const bubble = h(
    'div',
    { class: 'tm-bubble' },
    h(
      'div',
      { class: 'tm-head' },
      h('span', { class: 'tm-author', text: 'patchbay' }),
      h('time', { title: formatClock(activity.updatedAt, zone), text: formatStamp(activity.updatedAt, zone) }),
    ),
  );
  if (activity.text) bubble.append(h('div', { class: 'tm-text', html: markdownToHtml(activity.text) }));
  const el = h('article', { class: 'tm-activity', 'data-testid': 'teams-activity', 'data-id': activity.id }, h('div', { class: 'tm-avatar', 'aria-hidden': 'true', text: 'pb' }), bubble);
  if (activity.card) {
    bubble.append(h('div', { class: 'tm-card', 'data-testid': 'teams-card' }, renderCard(activity.card, (action) => void cardAction(action, conversation, activity, el))));
  }
  bubble.append(h('div', { class: 'tm-error', role: 'alert', 'data-testid': 'teams-error', hidden: true }));
  return el;
}

/**
 * @returns {FeedItem[]}
 */
function teamsFeedItems() {
  const conversation = drawn().teams.conversations.find((c) => c.id === shown().id);
  if (!conversation) return [{ key: 'missing', sig: 'missing', build: () => empty('This conversation is gone from the sandbox.') }];
  /** @type {FeedItem[]} */
  const items = conversation.activities.map((a) => ({
    key: `act:${a.id}`,
    // The actor is read at click time, so switching it keeps drawn cards (and anything typed into them).
    sig: JSON.stringify(a),
    content: JSON.stringify(a),
    build: () => teamsActivityEl(a, conversation),
  }));
  if (items.length === 0) items.push({ key: 'empty', sig: 'empty', build: () => empty('The bot has not written here yet.') });
  return items;
}

// ---------------------------------------------------------------------------------------------------------------
// Who is acting

function currentSlackActor() {
  const slack = drawn().slack;
  if (ui.view?.surface === 'slack' && shown().kind === 'dm') {
    const dm = slack.dms.find((d) => d.channel === shown().id);
    return ui.dmActors.get(shown().id) ?? dm?.user ?? defaultSlackActor();
  }
  return ui.slackActor ?? defaultSlackActor();
}

function defaultSlackActor() {
  const people = drawn().slack.people ?? [];
  return (people.find((p) => p.role === 'engineer') ?? people.find((p) => p.id !== ui.botId) ?? people[0])?.id ?? '';
}

/**
 * @param {SandboxTeamsConversation} conversation
 * @returns {string}
 */
function currentTeamsActor(conversation) {
  return ui.teamsActors.get(conversation.id) ?? conversation.defaultActor ?? drawn().teams.people?.[0]?.id ?? '';
}

/** @type {Record<string, string>} */
const ROLE_LABEL = { engineer: 'Engineers', champion: 'Champions', user: 'Users', other: 'Others' };

function drawActorSelect() {
  const select = /** @type {HTMLSelectElement} */ ($('[data-testid$="actor"]'));
  const slack = shown().surface === 'slack';
  const conversation = slack ? undefined : drawn().teams.conversations.find((c) => c.id === shown().id);
  let people = slack ? drawn().slack.people : drawn().teams.people;
  if (slack) people = people.filter((p) => p.id !== ui.botId);
  const current = slack ? currentSlackActor() : conversation ? currentTeamsActor(conversation) : '';
  select.dataset.testid = slack ? 'slack-actor' : 'teams-actor';
  const key = JSON.stringify([shown().surface, people, current]);
  if (key === ui.actorKey) return;
  ui.actorKey = key;
  /** @type {Map<string, SandboxPerson[]>} */
  const groups = new Map();
  for (const p of people) {
    const role = ROLE_LABEL[p.role] ? p.role : 'other';
    if (!groups.has(role)) groups.set(role, []);
    groups.get(role)?.push(p);
  }
  /** @type {HTMLElement[]} */
  const options = [];
  for (const role of Object.keys(ROLE_LABEL)) {
    const list = groups.get(role);
    if (!list) continue;
    options.push(h('optgroup', { label: ROLE_LABEL[role] }, list.map((p) => h('option', { value: p.id, selected: p.id === current }, p.client ? `${p.name} · ${p.client}` : p.name))));
  }
  if (current && !people.some((p) => p.id === current)) options.unshift(h('option', { value: current, selected: true }, current));
  select.replaceChildren(...options);
  select.value = current;
}

/**
 * @param {Event} event
 */
function onActorChange(event) {
  const value = /** @type {HTMLSelectElement} */ (event.target).value;
  if (shown().surface === 'slack') {
    if (shown().kind === 'dm') ui.dmActors.set(shown().id, value);
    else ui.slackActor = value;
  } else {
    ui.teamsActors.set(shown().id, value);
  }
  render();
}

// ---------------------------------------------------------------------------------------------------------------
// Navigation

/**
 * @param {View | null | undefined} view
 */
function viewKey(view) {
  if (!view) return '';
  return view.surface === 'slack' ? `slack:${view.kind === 'home' ? 'home' : view.id}` : `teams:${view.id}`;
}

/**
 * @returns {View | undefined}
 */
function viewFromHash() {
  const hash = decodeURIComponent(location.hash.slice(1));
  const [surface, ...rest] = hash.split('/');
  const id = rest.join('/');
  const slack = drawn().slack;
  if (surface === 'slack') {
    if (id === 'home') return { surface, kind: 'home', id: 'home' };
    if (slack.channels.some((c) => c.id === id)) return { surface, kind: 'channel', id };
    if (slack.dms.some((d) => d.channel === id)) return { surface, kind: 'dm', id };
  }
  if (surface === 'teams' && drawn().teams.conversations.some((c) => c.id === id)) return { surface, id };
  return undefined;
}

/**
 * @returns {View}
 */
function defaultView() {
  const { slack, teams, msp } = drawn();
  const channel = slack.channels.find((c) => c.id === msp?.channel) ?? slack.channels[0];
  if (channel) return { surface: 'slack', kind: 'channel', id: channel.id };
  if (slack.dms[0]) return { surface: 'slack', kind: 'dm', id: slack.dms[0].channel };
  if (teams.conversations[0]) return { surface: 'teams', id: teams.conversations[0].id };
  return { surface: 'slack', kind: 'home', id: 'home' };
}

/**
 * @param {View} view
 */
function go(view) {
  const feed = $('.feed');
  const input = /** @type {HTMLInputElement} */ ($('.composer input'));
  if (ui.view) {
    ui.scrolls.set(viewKey(ui.view), feed.scrollHeight - feed.scrollTop - feed.clientHeight < 48 ? 'bottom' : feed.scrollTop);
    ui.drafts.set(viewKey(ui.view), input.value);
  }
  ui.view = view;
  // Leaving Home (or arriving at it) is a new opening: Slack sends app_home_opened every time the tab is shown.
  ui.homeOpenedFor = undefined;
  const hash = `#${view.surface}/${encodeURIComponent(view.surface === 'slack' && view.kind === 'home' ? 'home' : view.id)}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
  input.value = ui.drafts.get(viewKey(view)) ?? '';
  ui.paneKey = '';
  render();
}

/**
 * What the reader would notice changing: new messages or replies, edits, ephemerals.
 * @param {'teams' | 'home' | 'slack'} kind
 * @param {SandboxTeamsConversation | { messages?: SandboxSlackMessage[] } | Record<string, unknown> | undefined} item a Teams
 *   conversation, a Home view (or nothing), a Slack channel or DM: as `kind` says
 * @returns {string}
 */
function navSignature(kind, item) {
  if (kind === 'teams') return /** @type {SandboxTeamsConversation} */ (item).activities.map((a) => `${a.id}@${a.updatedAt}`).join(',');
  if (kind === 'home') return JSON.stringify(item ?? null);
  const parts = (/** @type {{ messages?: SandboxSlackMessage[] }} */ (item).messages ?? []).map((m) => `${m.ts}@${m.updatedAt}#${m.edits}:${(m.replies ?? []).map((r) => `${r.ts}@${r.updatedAt}`).join('.')}`);
  return parts.join(',');
}

/**
 * @param {string} testid
 * @param {string} key
 * @param {string} label
 * @param {string} icon
 * @param {string} sig
 * @param {() => void} onClick
 * @param {{ title?: string, iconClass?: string }} [extra]
 */
function navItem(testid, key, label, icon, sig, onClick, extra = {}) {
  const current = viewKey(ui.view) === key;
  if (current) ui.seen.set(key, sig);
  const unread = !current && sig !== '' && ui.seen.get(key) !== sig;
  return h(
    'li',
    {},
    h(
      'button',
      { type: 'button', class: `nav-item${current ? ' current' : ''}${unread ? ' unread' : ''}`, 'data-testid': testid, 'aria-current': current ? 'page' : undefined, title: extra.title, onclick: onClick },
      h('span', { class: `nav-icon ${extra.iconClass ?? ''}`, 'aria-hidden': 'true', text: icon }),
      h('span', { class: 'nav-label', text: label }),
      unread ? h('span', { class: 'nav-dot', 'aria-label': 'new activity' }) : null,
    ),
  );
}

function drawNav() {
  const { slack, teams, msp } = drawn();
  const slackList = $('[data-testid="nav-slack"]');
  const actor = ui.slackActor ?? defaultSlackActor();
  const items = [];
  items.push(
    navItem('nav-slack-home', 'slack:home', `Home · ${personName(actor) ?? actor}`, '⌂', navSignature('home', slack.home?.[actor]), () => go({ surface: 'slack', kind: 'home', id: 'home' }), {
      title: "The bot's App Home tab, as the person you act as sees it",
      iconClass: 'icon-home',
    }),
  );
  items.push(h('li', { class: 'nav-heading', text: 'Channels' }));
  for (const channel of slack.channels) {
    items.push(
      navItem(`nav-slack-${channel.id}`, `slack:${channel.id}`, channel.name, '#', navSignature('slack', channel), () => go({ surface: 'slack', kind: 'channel', id: channel.id }), {
        title: channel.id === msp?.channel ? `${msp.name}'s engineers' channel` : undefined,
      }),
    );
  }
  if (slack.dms.length) items.push(h('li', { class: 'nav-heading', text: 'Direct messages' }));
  for (const dm of slack.dms) {
    items.push(
      navItem(`nav-slack-${dm.channel}`, `slack:${dm.channel}`, `DM · ${dm.userName}`, initials(dm.userName), navSignature('slack', dm), () => go({ surface: 'slack', kind: 'dm', id: dm.channel }), {
        iconClass: 'icon-person',
      }),
    );
  }
  slackList.replaceChildren(...items);

  const teamsList = $('[data-testid="nav-teams"]');
  /** @type {Partial<Record<string, string>>} */
  const KIND_ICON = { groupChat: '◆', channel: '#' };
  const teamsItems = [];
  // Every client brings a team and a personal chat per person: grouped under the client, the list stays readable.
  /** @type {Map<string, SandboxTeamsConversation[]>} */
  const groups = new Map();
  for (const c of teams.conversations) {
    const key = c.clientId ?? '';
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)?.push(c);
  }
  for (const [clientId, conversations] of groups) {
    const client = clientLabel(clientId, conversations);
    if (groups.size > 1 || clientId) teamsItems.push(h('li', { class: 'nav-heading', text: client || 'Other' }));
    for (const c of conversations) {
      const label = shortTitle(c.title, client);
      teamsItems.push(
        navItem(`nav-teams-${c.id}`, `teams:${c.id}`, label, KIND_ICON[c.kind] ?? initials(label.replace(/\s*\(.*\)\s*$/, '')), navSignature('teams', c), () => go({ surface: 'teams', id: c.id }), {
          iconClass: `icon-teams icon-${c.kind}`,
          title: c.title,
        }),
      );
    }
  }
  teamsList.replaceChildren(...(teamsItems.length ? teamsItems : [h('li', { class: 'nav-empty', text: 'No conversations yet' })]));
}

/**
 * A client's name as its conversations spell it ("Acme Dental · Patching", "Jane Roe (Acme Dental)").
 * @param {string} clientId
 * @param {SandboxTeamsConversation[]} conversations
 */
function clientLabel(clientId, conversations) {
  for (const c of conversations) {
    const prefix = /^(.+?)\s+[·—–-]\s+/.exec(c.title);
    if (c.kind !== 'personal' && prefix) return prefix[1];
  }
  for (const c of conversations) {
    const suffix = /\(([^()]+)\)\s*$/.exec(c.title);
    if (c.kind === 'personal' && suffix && suffix[1] !== 'personal') return suffix[1];
  }
  return clientId;
}

/**
 * @param {string} title
 * @param {string | undefined} client
 */
function shortTitle(title, client) {
  let short = title.replace(/\s*\(personal\)\s*$/, '');
  if (client) {
    short = short.replace(` (${client})`, '');
    for (const sep of [' · ', ' — ', ' – ', ' - ']) if (short.startsWith(client + sep)) short = short.slice(client.length + sep.length);
  }
  return short || title;
}

// ---------------------------------------------------------------------------------------------------------------
// Main pane

/** @type {Partial<Record<string, string>>} */
const KIND_LABEL = { personal: 'Personal chat', groupChat: 'Group chat', channel: 'Team channel' };

function drawHead() {
  const { slack, teams, msp } = drawn();
  const title = $('[data-testid="pane-title"]');
  const sub = $('[data-testid="pane-sub"]');
  const main = $('.main');
  main.dataset.surface = shown().surface;
  if (shown().surface === 'slack') {
    if (shown().kind === 'home') {
      title.textContent = 'Home';
      sub.textContent = `patchbay's App Home, as ${personName(currentSlackActor()) ?? 'this person'} sees it`;
    } else if (shown().kind === 'dm') {
      const dm = slack.dms.find((d) => d.channel === shown().id);
      title.textContent = dm?.userName ?? shown().id;
      sub.textContent = 'Direct messages with patchbay';
    } else {
      const channel = slack.channels.find((c) => c.id === shown().id);
      title.textContent = `# ${channel?.name ?? shown().id}`;
      sub.textContent = shown().id === msp?.channel ? `${msp.name} engineers: digests, approvals and results` : 'Slack channel';
    }
  } else {
    const conversation = teams.conversations.find((c) => c.id === shown().id);
    title.textContent = conversation?.title ?? shown().id;
    sub.textContent = [KIND_LABEL[conversation?.kind ?? ''] ?? 'Teams', conversation?.clientId].filter(Boolean).join(' · ');
  }
  drawActorSelect();
  drawModalHint();
}

/** Tells the reader a modal is open for someone else (it only shows to the person it was opened for). */
function drawModalHint() {
  const hint = $('[data-testid="modal-hint"]');
  const actor = currentSlackActor();
  const others = shown().surface === 'slack' ? (drawn().slack.modals ?? []).filter((m) => m.user !== actor && !ui.dismissedViews.has(m.id)) : [];
  hint.hidden = others.length === 0;
  if (others.length === 0) return hint.replaceChildren();
  const who = others[others.length - 1]?.user ?? '';
  hint.replaceChildren(
    h('span', { text: `A modal is open for ${personName(who) ?? who}` }),
    h('button', {
      type: 'button',
      class: 'linkish',
      text: 'Act as them',
      onclick: () => {
        if (shown().kind === 'dm') ui.dmActors.set(shown().id, who);
        else ui.slackActor = who;
        render();
      },
    }),
  );
}

function drawComposer() {
  const form = $('.composer');
  const input = /** @type {HTMLInputElement} */ ($('input', form));
  const slack = shown().surface === 'slack';
  form.hidden = slack && shown().kind === 'home';
  form.dataset.testid = slack ? 'slack-composer' : 'teams-composer';
  if (slack) {
    const where = shown().kind === 'dm' ? 'this DM' : `#${channelName(shown().id) ?? shown().id}`;
    input.placeholder = `Slash command in ${where} as ${personName(currentSlackActor()) ?? 'you'}, e.g. /patch status`;
  } else {
    const conversation = drawn().teams.conversations.find((c) => c.id === shown().id);
    const actor = conversation ? currentTeamsActor(conversation) : '';
    const name = drawn().teams.people.find((p) => p.id === actor)?.name ?? actor;
    input.placeholder = `Type a message as ${name || 'you'}`;
  }
}

/**
 * Reuses the DOM of items whose signature did not change, so open menus, expanded cards, typed text and the
 * reader's place survive a redraw. Returns the elements redrawn because their content (not just how they are
 * shown, e.g. a thread opened) changed.
 * @param {HTMLElement} container
 * @param {FeedItem[]} items
 * @returns {HTMLElement[]}
 */
function reconcile(container, items) {
  /** @type {Map<string, FeedEl>} */
  const old = new Map();
  for (const child of /** @type {HTMLCollectionOf<FeedEl>} */ (container.children)) if (child.dataset.key) old.set(child.dataset.key, child);
  /** @type {HTMLElement[]} */
  const changed = [];
  const nodes = items.map((item) => {
    const prev = old.get(item.key);
    if (prev && prev.sandboxSig === item.sig) {
      old.delete(item.key);
      return prev;
    }
    /** @type {FeedEl} */
    const el = item.build();
    el.dataset.key = item.key;
    el.sandboxSig = item.sig;
    el.sandboxContent = item.content;
    if (prev && item.content !== undefined && prev.sandboxContent !== item.content) changed.push(el);
    return el;
  });
  for (const stale of old.values()) stale.remove();
  nodes.forEach((node, i) => {
    const at = container.children[i];
    if (at !== node) container.insertBefore(node, at ?? null);
  });
  return changed;
}

function drawFeed() {
  const feed = $('.feed');
  const key = viewKey(ui.view);
  const switched = ui.paneKey !== key;
  const nearBottom = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 48;
  if (switched) feed.replaceChildren();
  feed.dataset.surface = shown().surface;
  const items = shown().surface === 'slack' ? slackFeedItems() : teamsFeedItems();
  const changed = reconcile(feed, items);
  if (switched) {
    ui.paneKey = key;
    const saved = ui.scrolls.get(key);
    feed.scrollTop = saved === undefined || saved === 'bottom' ? feed.scrollHeight : saved;
  } else {
    // Otherwise the browser's scroll anchoring keeps the reader's place while things above them change.
    if (nearBottom) feed.scrollTop = feed.scrollHeight;
    for (const el of changed) {
      el.classList.add('flash');
      setTimeout(() => el.classList.remove('flash'), 1600);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Modals

function topModal() {
  if (ui.view?.surface !== 'slack') return undefined;
  const actor = currentSlackActor();
  return (drawn().slack.modals ?? []).filter((m) => m.user === actor && !ui.dismissedViews.has(m.id)).at(-1);
}

/**
 * @param {Element} root
 */
function readModal(root) {
  /** @type {Record<string, string | string[] | null>} */
  const values = {};
  /** @type {Map<string, unknown>} */
  const carry = new Map();
  /** @type {Record<string, string>} */
  const errors = {};
  for (const wrap of root.querySelectorAll('.bk-input')) {
    const reader = inputReaders.get(wrap);
    if (!reader) continue;
    const { block, element, key, read } = reader;
    const value = read();
    if (element.action_id) values[element.action_id] = value;
    carry.set(key, value);
    // What Slack's client checks before the app ever sees the submission.
    const emptyValue = value === null || (Array.isArray(value) && value.length === 0);
    if (!block.optional && emptyValue) errors[block.block_id] = 'Please complete this required field.';
    else if (typeof value === 'string' && element.max_length && value.length > element.max_length) {
      errors[block.block_id] = `Please enter no more than ${element.max_length} characters (you have ${value.length}).`;
    } else if (typeof value === 'string' && element.min_length && value.length < element.min_length) {
      errors[block.block_id] = `Please enter at least ${element.min_length} characters.`;
    }
  }
  return { values, carry, errors };
}

/**
 * @param {Element} root
 * @param {Record<string, string> | undefined} errors
 */
function showModalErrors(root, errors) {
  /** @type {HTMLElement | undefined} */
  let first;
  for (const wrap of /** @type {NodeListOf<HTMLElement>} */ (root.querySelectorAll('.bk-input'))) {
    const message = errors?.[wrap.dataset.blockId ?? ''];
    setBlockError(wrap, message);
    if (message && !first) first = wrap;
  }
  const unplaced = Object.entries(errors ?? {}).filter(([blockId]) => !root.querySelector(`.bk-input[data-block-id="${CSS.escape(blockId)}"]`));
  for (const [blockId, message] of unplaced) toast(`${blockId}: ${message}`, 'error');
  /** @type {HTMLElement | null | undefined} */ (first?.querySelector('input, textarea, select'))?.focus();
}

function drawModal() {
  const layer = $('.modal-layer');
  const modal = topModal();
  const stale = new Set((drawn().slack.modals ?? []).map((m) => m.id));
  for (const id of ui.dismissedViews) if (!stale.has(id)) ui.dismissedViews.delete(id);
  if (!modal) {
    layer.hidden = true;
    layer.replaceChildren();
    ui.modalKey = '';
    return;
  }
  const key = `${modal.id}\n${JSON.stringify(modal.view)}`;
  if (key === ui.modalKey) return;
  // views.update keeps what the person typed in inputs whose block_id and action_id survive, as Slack does.
  const previous = /** @type {HTMLElement | null} */ (layer.querySelector('[data-testid="modal"]'));
  const carry = previous && previous.dataset.viewId === modal.id ? readModal(previous).carry : new Map();
  ui.modalKey = key;

  /** @type {BotJson} */
  const view = modal.view ?? {};
  const actor = modal.user;
  /** @type {BlockContext} */
  const ctx = { kind: 'modal', user: actor, viewId: modal.id, carry };
  const close = () => {
    ui.dismissedViews.add(modal.id);
    drawModal();
    void post(API.slackViewClose, { user: actor, viewId: modal.id });
  };
  const submitButton = view.submit ? h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'modal-submit', html: plainToHtml(view.submit) }) : null;
  const titleId = `modal-title-${++uid}`;
  const form = h(
    'form',
    { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': titleId, 'data-testid': 'modal', 'data-view-id': modal.id, novalidate: true },
    h(
      'header',
      { class: 'modal-head' },
      h('span', { class: 'modal-app', 'aria-hidden': 'true', text: 'pb' }),
      h('h2', { id: titleId, html: plainToHtml(view.title ?? 'patchbay') }),
      h('button', { type: 'button', class: 'modal-x', 'aria-label': 'Close', 'data-testid': 'modal-x', text: '×', onclick: close }),
    ),
    h('div', { class: 'modal-body' }, renderBlocks(view.blocks, ctx)),
    h(
      'footer',
      { class: 'modal-foot' },
      h('button', { type: 'button', class: 'btn', 'data-testid': 'modal-close', html: plainToHtml(view.close ?? (view.submit ? 'Cancel' : 'Close')), onclick: close }),
      submitButton,
    ),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!submitButton) return;
    const { values, errors } = readModal(form);
    showModalErrors(form, errors);
    if (Object.keys(errors).length) return;
    void guarded(submitButton, async () => {
      const answer = await post(API.slackViewSubmit, { user: actor, viewId: modal.id, values }, { quietErrors: true });
      if (answer.errors && Object.keys(answer.errors).length) showModalErrors(form, answer.errors);
      else if (!answer.ok) toast(answer.error ?? 'The submission was refused.', 'error');
    });
  });
  form.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      close();
    }
  });
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  const focusedAction = active && layer.contains(active) ? active.dataset?.actionId : undefined;
  layer.replaceChildren(h('div', { class: 'modal-backdrop' }, form));
  layer.hidden = false;
  const refocus = focusedAction ? form.querySelector(`[data-action-id="${CSS.escape(focusedAction)}"]`) : null;
  /** @type {HTMLElement | null} */ (refocus ?? form.querySelector('.modal-body input, .modal-body textarea, .modal-body select') ?? form.querySelector('.modal-x'))?.focus();
}

// ---------------------------------------------------------------------------------------------------------------
// Drawing everything

function indexNames() {
  const names = new Map();
  const channels = new Map();
  const { slack, teams } = drawn();
  for (const p of [...(teams.people ?? []), ...(slack.people ?? [])]) names.set(p.id, p.name);
  for (const dm of slack.dms ?? []) if (!names.has(dm.user)) names.set(dm.user, dm.userName);
  for (const c of slack.channels ?? []) channels.set(c.id, c.name);
  ui.names = names;
  ui.channelNames = channels;
  ui.namesSig = JSON.stringify([...names, ...channels]);
  ui.botId = (slack.people ?? []).find((p) => BOT_NAMES.has(String(p.name).toLowerCase()))?.id;
}

function render() {
  if (!ui.state) return;
  if (!ui.view || !stillExists(ui.view)) ui.view = viewFromHash() ?? defaultView();
  drawClock();
  drawJumps();
  drawNav();
  drawHead();
  drawComposer();
  drawFeed();
  drawModal();
}

/**
 * @param {View} view
 */
function stillExists(view) {
  const { slack, teams } = drawn();
  if (view.surface === 'teams') return teams.conversations.some((c) => c.id === view.id);
  if (view.kind === 'home') return true;
  if (view.kind === 'dm') return slack.dms.some((d) => d.channel === view.id);
  return slack.channels.some((c) => c.id === view.id);
}

/**
 * @param {SandboxState} state
 */
function applyState(state) {
  ui.state = state;
  ui.stateAt = performance.now();
  indexNames();
  render();
  if (state.tactical) watchDeviceManager(deviceManagers.tactical);
  if (state.ninjaone) watchDeviceManager(deviceManagers.ninjaone);
}

// ---------------------------------------------------------------------------------------------------------------
// Device managers (PATCHBAY_SANDBOX_DEPLOYER=tactical|ninjaone): the emulator's machines and what it was asked.
// One panel drawer; each manager says only how its machines read as rows.

/** The emulators' requests do not move the state's seq (nothing the bot posted changed): the panel polls. */
const DEVICE_MANAGER_POLL_MS = 2000;

/**
 * @typedef {{ title: string, label: string, machinesHeading: string, headings: string[], rows: HTMLElement[], tableTestid: string, requests: SandboxTacticalRequest[], total: number }} DeviceManagerPanel
 * @typedef {{ key: string, url: string, describe: (json: unknown) => DeviceManagerPanel, poll: ReturnType<typeof setInterval> | 0, sig: string, fetching: boolean }} DeviceManagerView
 */

/** @type {Record<'tactical' | 'ninjaone', DeviceManagerView>} */
const deviceManagers = {
  tactical: { key: 'tactical', url: API.tactical, describe: describeTactical, poll: 0, sig: '', fetching: false },
  ninjaone: { key: 'ninjaone', url: API.ninjaone, describe: describeNinjaOne, poll: 0, sig: '', fetching: false },
};

/**
 * @param {DeviceManagerView} view
 */
function watchDeviceManager(view) {
  if (!view.poll) view.poll = setInterval(() => void refreshDeviceManager(view), DEVICE_MANAGER_POLL_MS);
  void refreshDeviceManager(view);
}

/**
 * @param {DeviceManagerView} view
 */
async function refreshDeviceManager(view) {
  if (view.fetching) return;
  view.fetching = true;
  try {
    const res = await fetch(view.url, { cache: 'no-store', headers: { [TOKEN_HEADER]: TOKEN } });
    if (!res.ok) return;
    const data = await res.json();
    const sig = JSON.stringify(data);
    if (sig === view.sig) return;
    view.sig = sig;
    drawDeviceManager(view.key, view.describe(data));
  } catch {
    // The page's own connection indicator already says when the server is away; the next poll tries again.
  } finally {
    view.fetching = false;
  }
}

/**
 * @param {string} iso
 */
function managerTime(iso) {
  const ms = Date.parse(iso);
  const zone = ui.state?.clock.zone ?? 'UTC';
  return Number.isFinite(ms) ? formatStamp(ms, zone) : iso;
}

/**
 * @param {unknown} json
 * @returns {DeviceManagerPanel}
 */
function describeTactical(json) {
  const data = /** @type {SandboxTacticalState} */ (json);
  const refused = data.agents.filter((a) => !a.policy.ok).length;
  return {
    title: 'Tactical RMM (emulated)',
    label: 'Tactical RMM emulator',
    machinesHeading: `Agents (${data.agents.length}${refused ? `, ${refused} refused by policy` : ''})`,
    headings: ['Host', 'Client / site', 'Status', 'Reboot', 'Booted', 'Policy'],
    rows: data.agents.map(tacticalAgentRow),
    tableTestid: 'tactical-agents',
    requests: data.requests,
    total: data.total,
  };
}

/**
 * @param {SandboxTacticalAgent} agent
 */
function tacticalAgentRow(agent) {
  const policy = agent.policy.ok ? 'ok' : 'refused';
  return h(
    'tr',
    { 'data-testid': 'tactical-agent', 'data-hostname': agent.hostname },
    h('td', { text: agent.hostname }),
    h('td', { text: `${agent.client} / ${agent.site}` }),
    h('td', { text: agent.status, 'data-status': agent.status }),
    h('td', { text: agent.needsReboot ? 'needs reboot' : '—' }),
    h('td', { text: managerTime(agent.bootTime), title: agent.bootTime }),
    h('td', { text: policy, 'data-policy': policy, title: agent.policy.problems.join('\n') || 'Its patch policy leaves approvals, installs and reboots to patchbay' }),
  );
}

/**
 * @param {unknown} json
 * @returns {DeviceManagerPanel}
 */
function describeNinjaOne(json) {
  const data = /** @type {SandboxNinjaOneState} */ (json);
  const held = data.devices.filter((d) => d.maintenance).length;
  return {
    title: 'NinjaOne (emulated)',
    label: 'NinjaOne emulator',
    machinesHeading: `Devices (${data.devices.length}${held ? `, ${held} in maintenance` : ''})`,
    headings: ['Device', 'Organization / location', 'Online', 'Reboot', 'Last boot', 'Maintenance'],
    rows: data.devices.map(ninjaOneDeviceRow),
    tableTestid: 'ninjaone-devices',
    requests: data.requests,
    total: data.total,
  };
}

/**
 * @param {SandboxNinjaOneDevice} device
 */
function ninjaOneDeviceRow(device) {
  const online = device.online ? 'online' : 'offline';
  const maintenance = device.maintenance ? 'on' : 'off';
  return h(
    'tr',
    { 'data-testid': 'ninjaone-device', 'data-name': device.systemName },
    h('td', { text: device.systemName }),
    h('td', { text: `${device.organization} / ${device.location}` }),
    h('td', { text: online, 'data-online': online }),
    h('td', { text: device.needsReboot ? 'needs reboot' : '—' }),
    h('td', { text: managerTime(device.lastBootTime), title: device.lastBootTime, 'data-boot': device.lastBootTime }),
    h('td', { text: maintenance, 'data-maintenance': maintenance, title: device.maintenance ? 'NinjaOne’s own patching is held back while patchbay works' : 'NinjaOne’s policy runs as configured' }),
  );
}

/**
 * @param {string} key
 * @param {SandboxTacticalRequest} request
 */
function managerRequestRow(key, request) {
  const failed = request.status === 'timeout' || request.status >= 400;
  return h(
    'tr',
    { 'data-testid': `${key}-request`, style: failed ? 'color:#b42318' : undefined },
    h('td', { text: managerTime(request.at), title: request.at }),
    h('td', { text: request.method }),
    h('td', { text: request.path, style: 'word-break:break-all' }),
    h('td', { text: String(request.status) }),
  );
}

/**
 * @param {string[]} headings
 * @param {HTMLElement[]} rows
 * @param {string} testid
 */
function managerTable(headings, rows, testid) {
  return h(
    'table',
    { 'data-testid': testid, style: 'width:100%;border-collapse:collapse;font-size:12px' },
    h('thead', {}, h('tr', {}, headings.map((text) => h('th', { text, style: 'text-align:left;padding:2px 6px 2px 0' })))),
    h('tbody', {}, rows),
  );
}

/**
 * A third column beside the chat: the manager's machines, then its request log, newest first.
 * @param {string} key
 * @param {DeviceManagerPanel} panelData
 */
function drawDeviceManager(key, panelData) {
  let panel = document.querySelector(`[data-testid="${key}-panel"]`);
  if (!panel) {
    panel = h('aside', { class: `${key}-panel device-manager-panel`, 'data-testid': `${key}-panel`, 'aria-label': panelData.label, style: 'width:420px;flex:none;overflow:auto;padding:8px 12px;border-left:1px solid #ddd;background:#fafafa' });
    $('.layout').append(panel);
  }
  const { requests } = panelData;
  panel.replaceChildren(
    h('h2', { text: panelData.title, style: 'font-size:15px;margin:4px 0 8px' }),
    h('h3', { text: panelData.machinesHeading, style: 'font-size:13px;margin:8px 0 4px' }),
    // Bounded, so the request log below stays in view beside a fleet of dozens.
    h('div', { style: 'max-height:45vh;overflow:auto' }, managerTable(panelData.headings, panelData.rows, panelData.tableTestid)),
    h('h3', { text: `Requests, newest first (${requests.length} of ${panelData.total})`, style: 'font-size:13px;margin:12px 0 4px' }),
    requests.length ? managerTable(['Time', 'Method', 'Path', 'Status'], requests.map((r) => managerRequestRow(key, r)), `${key}-requests`) : empty('Nothing asked yet'),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Live updates: SSE announces, a coalesced fetch follows; polling when the stream is down

/** @type {{ fetching: boolean, pending: boolean, lastFetch: number, timer: ReturnType<typeof setTimeout> | 0, poll: ReturnType<typeof setInterval> | 0, streamOpen: boolean }} */
const live = { fetching: false, pending: false, lastFetch: 0, timer: 0, poll: 0, streamOpen: false };

/**
 * @param {'live' | 'polling' | 'offline' | 'connecting'} mode
 * @param {string} title
 */
function setConnection(mode, title) {
  const el = $('.connection');
  el.dataset.mode = mode;
  el.title = title;
  el.textContent = { live: 'live', polling: 'polling', offline: 'offline', connecting: '…' }[mode] ?? mode;
}

function requestRefresh() {
  live.pending = true;
  void pump();
}

async function pump() {
  if (live.fetching || !live.pending || live.timer) return;
  const wait = live.lastFetch + MIN_FETCH_GAP_MS - performance.now();
  if (wait > 0) {
    live.timer = setTimeout(() => {
      live.timer = 0;
      void pump();
    }, wait);
    return;
  }
  live.pending = false;
  live.fetching = true;
  live.lastFetch = performance.now();
  try {
    const res = await fetch(API.state, { cache: 'no-store', headers: { [TOKEN_HEADER]: TOKEN } });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const state = await res.json();
    if (live.streamOpen) {
      stopPolling();
      setConnection('live', 'Live: the page redraws as soon as the bot does something');
    } else if (live.poll) {
      setConnection('polling', 'The event stream is down: polling every 3 s');
    }
    if (!ui.state || state.seq !== ui.state.seq) applyState(state);
    else {
      // Same seq: the clock may still have been moved by the rate alone; re-base it.
      ui.state.clock = state.clock;
      ui.stateAt = performance.now();
    }
  } catch (error) {
    if (!ui.state) $('.feed').replaceChildren(empty(`Cannot reach the sandbox server (${error instanceof Error ? error.message : error}). Retrying…`));
    setConnection('offline', `The sandbox server did not answer: ${error instanceof Error ? error.message : error}`);
    startPolling();
  } finally {
    live.fetching = false;
    if (live.pending) void pump();
  }
}

function startPolling() {
  if (live.poll) return;
  live.poll = setInterval(requestRefresh, POLL_MS);
}

function stopPolling() {
  clearInterval(live.poll);
  live.poll = 0;
}

function connectEvents() {
  if (typeof EventSource === 'undefined') {
    setConnection('polling', 'This browser has no EventSource: polling every 3 s');
    startPolling();
    return;
  }
  // EventSource cannot send headers: the token rides in the query.
  const source = new EventSource(`${API.events}?token=${encodeURIComponent(TOKEN)}`);
  source.addEventListener('open', () => {
    live.streamOpen = true;
    stopPolling();
    setConnection('live', 'Live: the page redraws as soon as the bot does something');
    // Anything that happened while the stream was down.
    requestRefresh();
  });
  source.addEventListener('change', (event) => {
    let seq;
    try {
      seq = JSON.parse(event.data).seq;
    } catch {
      seq = undefined;
    }
    if (seq === undefined || !ui.state || seq !== ui.state.seq) requestRefresh();
  });
  source.addEventListener('error', () => {
    live.streamOpen = false;
    // EventSource reconnects by itself; meanwhile poll so the page does not go stale.
    setConnection('polling', 'The event stream dropped: polling every 3 s while it reconnects');
    startPolling();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $('[data-testid$="actor"]').addEventListener('change', onActorChange);

  const form = $('.composer');
  const input = /** @type {HTMLInputElement} */ ($('input', form));
  let back = 0;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || !ui.state) return;
    const send = form.querySelector('button');
    // Like Slack and Teams, sending takes the reader to the end, where the answer will appear.
    const feed = $('.feed');
    feed.scrollTop = feed.scrollHeight;
    void guarded(send, async () => {
      let answer;
      if (shown().surface === 'slack') {
        if (!text.startsWith('/')) {
          toast('The bot reads slash commands here, not chat: try /patch help.', 'error');
          return;
        }
        const surface = slackSurface();
        answer = await post(API.slackCommand, { user: currentSlackActor(), channel: surface?.channel ?? shown().id, text });
      } else {
        const conversation = drawn().teams.conversations.find((c) => c.id === shown().id);
        if (!conversation) return;
        answer = await post(API.teamsMessage, { user: currentTeamsActor(conversation), conversationId: conversation.id, text });
      }
      // Keep the text when it was refused, so it can be fixed rather than retyped.
      if (answer.ok) {
        ui.history.push(text);
        back = 0;
        if (input.value.trim() === text) input.value = '';
      }
      // A typed line is not a double-click risk: free the composer as soon as the answer is in.
    }, 0);
  });
  input.addEventListener('keydown', (event) => {
    // Up/Down walk through what was sent before, like a shell.
    if ((event.key === 'ArrowUp' || event.key === 'ArrowDown') && ui.history.length) {
      event.preventDefault();
      back = Math.max(0, Math.min(ui.history.length, back + (event.key === 'ArrowUp' ? 1 : -1)));
      input.value = back === 0 ? '' : (ui.history[ui.history.length - back] ?? '');
    }
  });

  window.addEventListener('hashchange', () => {
    if (!ui.state) return;
    const view = viewFromHash();
    if (view && viewKey(view) !== viewKey(ui.view)) go(view);
  });
  setInterval(drawClock, 1000);
}

wire();
setConnection('connecting', 'Connecting…');
requestRefresh();
connectEvents();
