/**
 * What the engineers are told about the device manager itself (src/jobs/deployer-calls.ts): that it stopped
 * answering and runs are paused, that it answers again, and that it was left alone on a device whose own
 * settings would act outside patchbay's windows. Each notice carries what was true when it was decided (the
 * outage's start and answer, the refusal's reasons), so a re-delivery says the same.
 */
import type { OutboxItem } from '../../db/outbox-repo.ts';
import { escapeMrkdwn } from '../slack/block-kit.ts';
import { formatWithZone } from '../../domain/zone-label.ts';
import { subjects } from '../subjects.ts';
import type { Audiences } from '../audiences.ts';

/** One outage of one device manager, as first recorded. Host only: never a path, a query or a key. */
export interface OutageSnapshot {
  /** The Deployer's name (`tactical`): what the outage's subject is keyed by. */
  backend: string;
  /** The manager as people call it: `Tactical RMM`. */
  manager: string;
  host: string;
  /** When patchbay first found it not answering (ISO). */
  since: string;
  /** What it answered then: `HTTP 503`, `HTTP 401: the API key was refused`. */
  reason: string;
}

export type DeployerNotice =
  /** The device manager stopped answering: runs pause (once per outage). */
  | ({ kind: 'deployer_unavailable' } & OutageSnapshot)
  /** It answers again (`at`): paused runs carry on. A reply under the outage's message. */
  | ({ kind: 'deployer_answering'; at: string } & OutageSnapshot)
  /** The manager would act on its own on this device, so patchbay left it alone (once per device and release). */
  | { kind: 'device_refused'; releaseId: string | null; device: string; clientId: string | null; why: string };

export function renderDeployerNotice(notice: DeployerNotice, audiences: Audiences): OutboxItem[] {
  const audience = audiences.engineers;
  if (!audience) return [];
  const post = (subject: string, payload: OutboxItem['payload'], key = subject): OutboxItem => ({ key, channel: audience.channel, action: 'post', subject, payload });
  switch (notice.kind) {
    case 'deployer_unavailable': {
      const subject = subjects.deployerOutage(notice.backend, notice.host, notice.since);
      return [post(subject, { text: `${outageLine(notice, audiences.mspZone)}; runs are paused, nothing was marked failed.` })];
    }
    case 'deployer_answering': {
      const outage = subjects.deployerOutage(notice.backend, notice.host, notice.since);
      const back = formatWithZone(notice.at, audiences.mspZone, 'HH:mm');
      return [
        post(`${outage}:answering`, {
          text: `${escapeMrkdwn(notice.manager)} at ${escapeMrkdwn(notice.host)} answers again since ${back}; paused runs carry on (inside their windows, else in their next ones).`,
          threadSubject: outage,
        }),
      ];
    }
    case 'device_refused': {
      const owner = notice.clientId === null ? 'our own machines' : audiences.clientName(notice.clientId);
      const release = notice.releaseId ? `${notice.releaseId}: ` : '';
      const text = `${release}patchbay left ${escapeMrkdwn(notice.device)} (${escapeMrkdwn(owner)}) alone, nothing installed: ${escapeMrkdwn(notice.why)} \`patchbay devices check\` lists every such agent; it is tried again in its next window.`;
      return [post(subjects.deviceRefused(notice.releaseId, notice.device), { text, ...(notice.releaseId ? { threadSubject: subjects.digest(notice.releaseId) } : {}) })];
    }
  }
}

function outageLine(outage: OutageSnapshot, zone: string): string {
  const since = formatWithZone(outage.since, zone, 'HH:mm');
  return `${escapeMrkdwn(outage.manager)} at ${escapeMrkdwn(outage.host)} has not answered since ${since} (${escapeMrkdwn(outage.reason)})`;
}
