/**
 * How a rollout run talks to its device manager, and what the engineers hear about the manager itself:
 *
 * - every Deployer call becomes a step outcome for src/domain/run.ts; the port's DeployerUnavailable (the manager
 *   down, or refusing patchbay's key) becomes `unavailable`, which pauses the run instead of failing it;
 * - the first worker to find the manager down tells the engineers once (the outage is one shared row), and the
 *   first to hear it answer again says so, under that message;
 * - a device the manager's own settings made patchbay leave alone is named in the release's thread, once per
 *   device and release however many runs hit it;
 * - the updates a run installs carry MSRC's supersedence (`supersededBy`), so a manager that dropped a superseded
 *   update can count it installed when its successor is.
 */
import { DeployerUnavailable, toOutcome, type Deployer, type DeviceRef, type UpdateRef } from '../adapters/deployers/port.ts';
import type { AppDatabase } from '../db/client.ts';
import { closeDeployerOutage, openDeployerOutage } from '../db/deployer-outages-repo.ts';
import { updatesSuperseding } from '../db/supersedence-repo.ts';
import type { Action, Outcome } from '../domain/run.ts';
import { supersededBy } from '../domain/supersedence.ts';
import { notify } from '../chat/notify.ts';

/** How often (real time) a worker that saw no outage itself checks whether another worker's outage is over. */
const OUTAGE_CHECK_MS = 30_000;

/** Whose run a call is for: where a refusal is reported. */
export interface RunOwner {
  releaseId: string | null;
  clientId: string | null;
}

export class DeployerCalls {
  /** This worker saw the manager down: the next answer it gets may end the outage. */
  private sawOutage = false;
  private checkedAt = 0;

  constructor(
    private readonly deployer: Deployer,
    private readonly db: AppDatabase,
    private readonly now: () => Date,
  ) {}

  /** Does `action` against the device manager and answers what the run step machine reads. */
  async ask(device: DeviceRef, updates: UpdateRef[], action: Action, owner: RunOwner): Promise<Outcome> {
    let outcome: Outcome;
    try {
      outcome = await this.call(device, updates, action);
    } catch (error) {
      if (!(error instanceof DeployerUnavailable)) throw error;
      await this.reportOutage(error);
      return { type: 'unavailable', reason: error.reason };
    }
    await this.noticeAnswer();
    if (outcome.type === 'failed' && outcome.refused) {
      await notify(this.db, [{ kind: 'device_refused', releaseId: owner.releaseId, device: device.name, clientId: owner.clientId, why: outcome.error }], this.now());
    }
    return outcome;
  }

  private async call(device: DeviceRef, updates: UpdateRef[], action: Action): Promise<Outcome> {
    switch (action.type) {
      case 'check_online':
        return { type: 'online', online: await this.deployer.isOnline(device) };
      case 'install':
        return toOutcome(await this.deployer.install(device, updates, action.key), true);
      case 'reboot':
        return toOutcome(await this.deployer.reboot(device, action.key), true);
      case 'poll':
        return toOutcome(await this.deployer.status(device, action.operation.handle!), false);
      case 'verify': {
        const verified = await this.deployer.verify(device, updates);
        return { type: 'verified', missing: verified.missing, rebootPending: verified.rebootPending };
      }
    }
  }

  private async reportOutage(error: DeployerUnavailable): Promise<void> {
    this.sawOutage = true;
    const snapshot = { backend: this.deployer.name, manager: error.manager, host: error.host, since: this.now().toISOString(), reason: error.reason };
    await this.db.transaction(async (tx) => {
      const { outage, opened } = await openDeployerOutage(tx, this.deployer.name, snapshot);
      if (opened) await notify(tx, [{ kind: 'deployer_unavailable', ...outage }], this.now());
    });
  }

  /** The manager answered: if it was down (as this worker saw, or now and then in case another did), say it is back. */
  private async noticeAnswer(): Promise<void> {
    if (!this.sawOutage && Date.now() - this.checkedAt < OUTAGE_CHECK_MS) return;
    this.sawOutage = false;
    this.checkedAt = Date.now();
    await this.db.transaction(async (tx) => {
      const outage = await closeDeployerOutage(tx, this.deployer.name);
      if (outage) await notify(tx, [{ kind: 'deployer_answering', ...outage, at: this.now().toISOString() }], this.now());
    });
  }
}

/** The run's update refs with `supersededBy` filled from every stored release's supersedence. */
export async function withSupersedence(db: AppDatabase, refs: ReadonlyMap<string, UpdateRef>): Promise<Map<string, UpdateRef>> {
  const kbs = [...refs.values()].flatMap((ref) => (ref.kb ? [ref.kb] : []));
  const later = supersededBy(kbs, await updatesSuperseding(db, kbs));
  return new Map([...refs].map(([key, ref]) => [key, ref.kb && later.has(ref.kb) ? { ...ref, supersededBy: later.get(ref.kb) } : ref]));
}
