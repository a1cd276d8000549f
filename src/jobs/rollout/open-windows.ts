/**
 * The sweep's first step: which gates' windows are open now for which devices (src/domain/plan.ts `openWindows`),
 * less the held gates and the devices whose users were not warned, and the gates opening their first window moved
 * to running.
 */
import { DateTime } from 'luxon';
import type { AppDatabase } from '../../db/client.ts';
import { noticeEvidence, noticeKey, userDevices } from '../../db/notice-repo.ts';
import type { OpenGateDevice } from '../../db/rollout-repo.ts';
import { admitWarned, noticeHoursOf, type NoticeEvidence } from '../../domain/notice.ts';
import { openWindows, type OpenWindow } from '../../domain/plan.ts';
import { isHeld } from '../../domain/rollout.ts';
import type { SweepStep } from './sweep-step.ts';

export interface OpenedWindows {
  open: OpenWindow<OpenGateDevice>[];
  /** Open windows of gates held as a whole, as `gateId windowStart`: they open nothing (a gate's pages count once). */
  held: string[];
}

export async function findOpenWindows(step: SweepStep, devices: readonly OpenGateDevice[], installBudgetMinutes: number): Promise<OpenedWindows> {
  const windows = openWindows(devices, DateTime.fromJSDate(step.now, { zone: 'utc' }), installBudgetMinutes);
  const isHeldGate = ({ gate }: OpenWindow<OpenGateDevice>) => isHeld(step.holds, { releaseId: gate.releaseId, ring: gate.ring, clientId: gate.clientId });
  const held = windows.filter(isHeldGate).map((w) => `${w.gate.id} ${w.windowStart}`);
  return { open: await warnedOnly(step.db, windows.filter((w) => !isHeldGate(w)), step.now), held };
}

/**
 * No unwarned reboot: each window keeps its devices without a user and those whose user was sent the "save your
 * work" DM for that window in time, or answered it, or whom an engineer's waiver in force at `now` covers
 * (src/domain/notice.ts). A window left with no device opens nothing: its gate waits for a window its users can be
 * told about.
 */
async function warnedOnly<G extends { windowStart: string; devices: OpenGateDevice[] }>(db: AppDatabase, groups: G[], now: Date): Promise<G[]> {
  // A fleet without users (servers, kiosks) asks nothing more.
  const withUser = new Set(groups.flatMap((g) => g.devices.filter((d) => d.hasUser).map((d) => d.id)));
  if (withUser.size === 0) return groups;
  const users = await userDevices(db, [...withUser]);
  if (users.size === 0) return groups;
  const pairs = groups.flatMap((g) => g.devices.filter((d) => users.has(d.id)).map((d) => ({ deviceId: d.id, windowStart: g.windowStart })));
  const evidence = await noticeEvidence(db, pairs, now);
  const kept: G[] = [];
  for (const g of groups) {
    const told = new Map<number, NoticeEvidence>();
    for (const d of g.devices) {
      const e = evidence.get(noticeKey(d.id, g.windowStart));
      if (e) told.set(d.id, e);
    }
    const subjects = g.devices.map((d) => ({ id: d.id, userEmail: users.get(d.id)?.userEmail ?? null, device: d }));
    const admitted = admitWarned(subjects, new Date(g.windowStart), (d) => noticeHoursOf({ noticeHours: users.get(d.id)?.noticeHours }), told);
    if (admitted.length > 0) kept.push({ ...g, devices: admitted.map((a) => a.device) });
  }
  return kept;
}

/** Gates opening their first window move to running, a release's gates in one transaction; returns how many moved. */
export async function openGates(step: SweepStep, open: readonly OpenWindow[]): Promise<number> {
  const opening = new Map<string, OpenWindow[]>();
  for (const window of open) {
    if (window.gate.state !== 'scheduled') continue;
    const list = opening.get(window.gate.releaseId) ?? [];
    if (!list.some((w) => w.gate.id === window.gate.id)) list.push(window);
    opening.set(window.gate.releaseId, list);
  }
  let opened = 0;
  for (const [releaseId, list] of opening) {
    const events = list.map((w) => ({ type: 'window_opened' as const, ring: w.gate.ring, clientId: w.gate.clientId, windowStart: w.windowStart, holds: step.holds }));
    for (const result of await step.gates.applyAll(releaseId, events)) if (result.outcome === 'applied') opened++;
  }
  return opened;
}
