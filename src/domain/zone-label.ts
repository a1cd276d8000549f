/**
 * Time zones as people read them. Luxon's short offset name is ICU's for the locale, and for many zones en-US has
 * none: Auckland comes out as "GMT+13", Berlin as "GMT+1". Other English locales know those abbreviations (en-AU
 * says NZDT and AEDT, en-GB CET, en-IN IST); where none does, the zone's city says where the time is.
 */
import { DateTime } from 'luxon';

const LOCALES = ['en-US', 'en-GB', 'en-AU', 'en-IN'] as const;

/** "NZDT", "CST", "UTC"; undefined when no locale has an abbreviation in letters for the zone at that instant. */
export function zoneAbbreviation(at: DateTime): string | undefined {
  for (const locale of LOCALES) {
    const name = at.setLocale(locale).offsetNameShort;
    if (name && /^[A-Z]{2,5}$/.test(name)) return name;
  }
  return undefined;
}

/** "Auckland", "Sao Paulo", "Indiana/Indianapolis" → "Indianapolis"; undefined for fixed-offset or bare zones. */
export function zoneCity(zone: string): string | undefined {
  if (!zone.includes('/') || zone.startsWith('Etc/')) return undefined;
  return zone.slice(zone.lastIndexOf('/') + 1).replace(/_/g, ' ');
}

/** What goes after a clock time: "NZDT", else "Tokyo time", else the offset ("GMT+9"). */
export function zoneShort(at: DateTime): string {
  const zone = at.zoneName ?? 'UTC';
  return zoneAbbreviation(at) ?? (zoneCity(zone) ? `${zoneCity(zone)} time` : at.setLocale('en-US').offsetNameShort ?? zone);
}

/** A heading's zone: "Auckland time (NZDT)", "Tokyo time (GMT+9)", "UTC". */
export function zoneLabel(at: DateTime): string {
  const city = zoneCity(at.zoneName ?? 'UTC');
  const abbreviation = zoneAbbreviation(at) ?? at.setLocale('en-US').offsetNameShort ?? '';
  return city ? `${city} time (${abbreviation})` : abbreviation;
}

/** `iso` in `zone` as `format` (luxon tokens, no zone token) followed by the zone's short name. */
export function formatWithZone(iso: string, zone: string, format: string): string {
  const at = DateTime.fromISO(iso, { zone: 'utc' }).setZone(zone);
  return `${at.toFormat(format)} ${zoneShort(at)}`;
}
