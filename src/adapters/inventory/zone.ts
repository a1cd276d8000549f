import { IANAZone } from 'luxon';
import { closest, distance } from 'fastest-levenshtein';

/**
 * Abbreviations people write for a zone. ICU accepts some of them (CST, EST, PST…) but what they mean
 * differs between ICU and tzdata versions, and several are fixed offsets with no daylight saving, so a
 * client written as "CST" could be patched an hour off for half the year. We refuse them and name the
 * place-based zone the writer most likely meant.
 */
const ABBREVIATIONS: Record<string, string> = {
  EST: 'America/New_York',
  EDT: 'America/New_York',
  EST5EDT: 'America/New_York',
  CST: 'America/Chicago',
  CDT: 'America/Chicago',
  CST6CDT: 'America/Chicago',
  MST: 'America/Denver',
  MDT: 'America/Denver',
  MST7MDT: 'America/Denver',
  PST: 'America/Los_Angeles',
  PDT: 'America/Los_Angeles',
  PST8PDT: 'America/Los_Angeles',
  AKST: 'America/Anchorage',
  HST: 'Pacific/Honolulu',
  GMT: 'Europe/London',
  BST: 'Europe/London',
  IST: 'Europe/Dublin',
  WET: 'Europe/Lisbon',
  CET: 'Europe/Berlin',
  CEST: 'Europe/Berlin',
  MET: 'Europe/Berlin',
  EET: 'Europe/Athens',
  AEST: 'Australia/Sydney',
  AEDT: 'Australia/Sydney',
  ACST: 'Australia/Adelaide',
  AWST: 'Australia/Perth',
  NZST: 'Pacific/Auckland',
};

let knownZones: string[] | undefined;
let knownByLowerCase: Map<string, string> | undefined;

function zoneList(): string[] {
  // Built lazily: only a file with a zone problem or an oddly cased zone pays for it.
  knownZones ??= Intl.supportedValuesOf('timeZone');
  return knownZones;
}

function zonesByLowerCase(): Map<string, string> {
  knownByLowerCase ??= new Map(zoneList().map((zone) => [zone.toLowerCase(), zone]));
  return knownByLowerCase;
}

export type ZoneCheck = { ok: true; zone: string } | { ok: false; message: string };

/** Zones repeat across clients and luxon builds an Intl formatter per check, so each spelling is checked once. */
const checked = new Map<string, ZoneCheck>();

/** Accepts an IANA zone (spelled in its usual case); otherwise says why and suggests the closest real one. */
export function checkZone(text: string): ZoneCheck {
  let check = checked.get(text);
  if (!check) {
    check = checkZoneUncached(text);
    checked.set(text, check);
  }
  return check;
}

function checkZoneUncached(text: string): ZoneCheck {
  const upper = text.toUpperCase();
  if (upper in ABBREVIATIONS) {
    return {
      ok: false,
      message: `"${text}" is an abbreviation, not an IANA time zone (abbreviations miss or misplace daylight saving); use e.g. "${ABBREVIATIONS[upper]}"`,
    };
  }
  if (IANAZone.isValidZone(text)) {
    // ICU accepts any case; keep one spelling so the same zone always compares equal downstream.
    return { ok: true, zone: zonesByLowerCase().get(text.toLowerCase()) ?? text };
  }
  const suggestion = suggestZone(text);
  return {
    ok: false,
    message: `unknown time zone "${text}"${suggestion ? ` (did you mean "${suggestion}"?)` : ' (expected an IANA zone such as "America/Chicago")'}`,
  };
}

function suggestZone(text: string): string | undefined {
  const wanted = text.trim().replace(/ +/g, '_').toLowerCase();
  if (wanted === '') return undefined;
  // A bare city ("Chicago", "new york") is the most common slip: match it against the last segment.
  if (!wanted.includes('/')) {
    const byCity = zoneList().find((zone) => zone.toLowerCase().split('/').pop() === wanted);
    if (byCity) return byCity;
  }
  const lowerZones = [...zonesByLowerCase().keys()];
  const best = closest(wanted, lowerZones);
  // Only suggest when the typo is small relative to the name; a wild guess is worse than none.
  const allowed = Math.max(2, Math.floor(wanted.length / 4));
  return distance(wanted, best) <= allowed ? zonesByLowerCase().get(best) : undefined;
}
