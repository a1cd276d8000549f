/** Small formatters shared by the PDF's pages: every instant in UTC, said so once on the summary page. */

export function when(iso: string | null): string {
  if (iso === null) return '';
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

export function day(iso: string | null): string {
  return iso === null ? '' : iso.slice(0, 10);
}

export function pct(value: number | null): string {
  return value === null ? 'n/a' : `${value.toFixed(1)}%`;
}

export function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

/** The period's last day: `to` is exclusive. */
export function lastDay(toIso: string): string {
  return new Date(Date.parse(toIso) - 1).toISOString().slice(0, 10);
}
