/**
 * Every chat subject the bot writes, as one constructor each. A subject names what a message is about
 * (`digest:2024-Feb`, `window:acme-dental:2024-02-14T07:00Z`): the outbox threads replies under it, edits find
 * the posted message by it, and chat_messages rows already in databases are keyed by it. So the strings these
 * functions return are a stored format: test/unit/chat-subjects.test.ts pins each one byte for byte, and a
 * change here is a data migration, not a refactor.
 *
 * Pure and import-free but for the domain's window subject, so any layer that writes the outbox may use it.
 */
import { windowSubject } from '../domain/window-report.ts';

/** `msp` stands for "the MSP's own machines" wherever a subject names a client. */
const clientOrMsp = (clientId: string | null | undefined): string => clientId ?? 'msp';

export const subjects = {
  /** The release digest in the engineers' channel; most notices thread under it. */
  digest: (releaseId: string) => `digest:${releaseId}`,
  /** The digest's nth continuation message (a digest too long for one message). */
  digestThread: (releaseId: string, n: number) => `digest:${releaseId}:thread:${n}`,
  /** A maintenance window's progress message: `window:acme-dental:2024-02-14T07:00Z`. */
  window: (who: string, windowStart: string) => windowSubject(who, windowStart),
  /** The end-of-window summary that replies under the window's progress message. */
  windowSummary: (windowSubjectText: string) => windowSubjectText.replace(/^window:/, 'window-summary:'),
  /** The promotion offer (Promote button) in the engineers' thread; offers after the nth promotion are round n. */
  promote: (releaseId: string, round = 0) => `rollout:${releaseId}:promote${round > 0 ? `:${round}` : ''}`,
  /** "A ring is about to get updates no pilot tried" in the engineers' thread. */
  untested: (releaseId: string, ring: string, clientId: string | null | undefined, updateKeys: readonly string[]) =>
    `rollout:${releaseId}:untested:${ring}:${clientOrMsp(clientId)}:${updateKeys.join('+')}`,
  /** The engine's note that a client reported a pilot problem and is held. */
  gateProblem: (releaseId: string, clientId: string) => `rollout:${releaseId}:problem:${clientId}`,
  /** The engine's pilot status line for a client (waiting, then finished: the same subject). */
  gatePilot: (releaseId: string, clientId: string) => `rollout:${releaseId}:pilot:${clientId}`,
  /** "The rest of a client's machines start tonight". */
  broadNight: (releaseId: string, clientId: string) => `rollout:${releaseId}:broad-night:${clientId}`,
  /** A champion confirmed the pilot went well. */
  pilotConfirmed: (releaseId: string, clientId: string) => `pilot-confirmed:${releaseId}:${clientId}`,
  /** A champion reported a pilot problem (the champion's own words). */
  pilotProblem: (releaseId: string, clientId: string) => `pilot-problem:${releaseId}:${clientId}`,
  /** The champion's sign-off card. */
  signoff: (releaseId: string, clientId: string) => `signoff:${releaseId}:${clientId}`,
  /** The Teams card telling a client's users which nights their machines are patched. */
  plan: (releaseId: string, clientId: string) => `plan:${releaseId}:${clientId}`,
  /** A device that missed several windows in a row. */
  deviceFlagged: (deviceId: string | number, windowStart: string) => `device-flagged:${deviceId}:${windowStart}`,
  /** A DM to one user (its key: the dm's own, or an offline notice's). */
  userDm: (key: string | number) => `userdm:${key}`,
  /** A device manager's outage (`since`: when patchbay first found it down), and its "answers again" reply. */
  deployerOutage: (backend: string, host: string, since: string) => `deployer-outage:${backend}:${host}:${since}`,
  /** A device its manager's own settings made patchbay leave alone, once per release. */
  deviceRefused: (releaseId: string | null | undefined, device: string) => `device-refused:${releaseId ?? 'none'}:${device}`,
  /** A user's DM escalated to the engineers. */
  userDmEscalated: (dmId: string | number) => `userdm:${dmId}:escalated`,
  /** Users the night's DMs could not reach, listed for the engineers. */
  userDmUnmatched: (clientId: string | null | undefined, night: string) => `userdm-unmatched:${clientOrMsp(clientId)}:${night}`,
  /** Users whose DM for a night could not be sent before its deadline, listed for the engineers. */
  userDmLate: (clientId: string | null | undefined, night: string) => `userdm-late:${clientOrMsp(clientId)}:${night}`,
  /** What a device manager sync (Tactical RMM) changed, one message per sync that changed something. */
  deviceSync: (at: string) => `device-sync:${at}`,
  /** A compliance report sent, by its report archive delivery key (`report:monthly:acme:2026-Nov`); files thread under it. */
  report: (deliveryKey: string) => deliveryKey,
  /** A device manager sync that could not read the device manager (said once until a sync works again). */
  deviceSyncFailed: (since: string) => `device-sync-failed:${since}`,
} as const;

export type SubjectKind = keyof typeof subjects;
