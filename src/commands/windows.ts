import { CliError } from './cli-error.ts';
import { zoneShort } from '../domain/zone-label.ts';

interface WindowsOptions {
  tz?: string;
  window?: string;
  from?: string;
  count: string;
  json?: boolean;
}

// Said in the option's help too (src/commands/index.ts).
const MAX_COUNT = 1000;

export async function windowsCommand(options: WindowsOptions): Promise<void> {
  const { DateTime } = await import('luxon');
  const { parseWindowSpec, WINDOW_EXAMPLES } = await import('../domain/window-spec.ts');
  const { canonicalZoneName, windowsFrom } = await import('../domain/windows.ts');

  if (options.tz === undefined) throw new CliError('--tz is required (an IANA time zone, e.g. America/Chicago)', 2);
  const zone = canonicalZoneName(options.tz);
  if (zone === undefined) throw new CliError(`--tz: ${await describeBadZone(options.tz)}`, 2);

  if (options.window === undefined) throw new CliError(`--window is required (e.g. ${WINDOW_EXAMPLES})`, 2);
  const parsed = parseWindowSpec(options.window);
  if (!parsed.ok) throw new CliError(`--window: "${options.window}" is not a window: ${parsed.error}`, 2);
  const rule = parsed.value;

  const from = options.from === undefined ? DateTime.now() : DateTime.fromISO(options.from, { zone });
  if (!from.isValid) {
    throw new CliError(
      `--from: "${options.from}" is not an ISO 8601 date-time (e.g. 2026-03-07T12:00, read in --tz, or 2026-03-07T18:00:00Z)`,
      2,
    );
  }

  if (!/^\d+$/.test(options.count) || Number(options.count) < 1 || Number(options.count) > MAX_COUNT) {
    throw new CliError(`--count: "${options.count}" is not a whole number from 1 to ${MAX_COUNT}`, 2);
  }
  const windows = windowsFrom(rule, zone, from, Number(options.count));

  if (options.json) {
    const rows = windows.map((window) => ({ start: window.start.toISO(), end: window.end.toISO() }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${await renderTable(rule, zone, windows)}\n`);
}

async function describeBadZone(text: string): Promise<string> {
  const { closest, distance } = await import('fastest-levenshtein');
  const zones = Intl.supportedValuesOf('timeZone');
  const nearest = closest(text, zones);
  const hint =
    distance(text.toLowerCase(), nearest.toLowerCase()) <= 3 ? ` Did you mean ${nearest}?` : ' Use a region name such as America/Chicago.';
  return `"${text}" is not an IANA time zone.${hint}`;
}

async function renderTable(
  rule: import('../domain/window-spec.ts').WindowRule,
  zone: string,
  windows: import('../domain/windows.ts').MaintenanceWindow[],
): Promise<string> {
  const { default: Table } = await import('cli-table3');
  const { clockChangeMinutes, isCollapsed, windowMinutes } = await import('../domain/windows.ts');
  const table = new Table({
    head: ['day', 'local start', 'local end', 'UTC start', 'UTC end', 'length', 'clock change'],
    style: { head: [], border: [] },
    // One line per window, no rules between rows: the list is easier to scan.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  // zoneShort, not luxon's ZZZZ: en-US has no abbreviation for most zones outside the US (Auckland read "GMT+13").
  const local = (instant: import('luxon').DateTime) => `${instant.setLocale('en-US').toFormat('ccc yyyy-MM-dd HH:mm')} ${zoneShort(instant)}`;
  const utc = (instant: import('luxon').DateTime) => instant.toUTC().toFormat("yyyy-MM-dd HH:mm'Z'");
  for (const window of windows) {
    const change = clockChangeMinutes(window, rule);
    let note = '';
    if (isCollapsed(window)) note = 'wholly inside the skipped hour: no window';
    else if (change < 0) note = `clocks go forward: ${formatMinutes(-change)} short`;
    else if (change > 0) note = `clocks go back: ${formatMinutes(change)} long`;
    table.push([window.day, local(window.start), local(window.end), utc(window.start), utc(window.end), formatMinutes(windowMinutes(window)), note]);
  }
  return `${rule.spec} in ${zone}\n${table.toString()}`;
}

function formatMinutes(minutes: number): string {
  const rounded = Math.round(minutes);
  return `${Math.floor(rounded / 60)}h ${String(rounded % 60).padStart(2, '0')}m`;
}
