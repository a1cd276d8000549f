/** Words both the Slack summary and the Teams card use, so a sent report reads the same on either. */
import type { ReportSnapshot } from './report-snapshot.ts';

/** " (11 outstanding updates within the 14-day grace)": why a device missing updates can still count as compliant. */
export function inGraceWords(s: ReportSnapshot['summary']): string {
  if (!s.outstandingInGrace || s.graceDays === undefined) return '';
  return ` (${s.outstandingInGrace} outstanding ${s.outstandingInGrace === 1 ? 'update' : 'updates'} still within the ${s.graceDays}-day grace after Patch Tuesday)`;
}

/** " (none of them reached by a run yet)": a device never seen is not the same worry as one gone quiet. */
export function neverSeenWords(s: ReportSnapshot['summary']): string {
  if (!s.neverSeenDevices) return '';
  return s.neverSeenDevices === s.staleDevices ? ' (none of them reached by a run yet)' : ` (${s.neverSeenDevices} of them not reached by a run yet)`;
}
