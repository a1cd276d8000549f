/**
 * The device manager the configuration names. Undefined for the simulated fleet: the rollout module then builds
 * its own on the jobs' clock and warns that nothing real is patched (src/jobs/rollout/).
 */
import type { Config } from '../../config.ts';
import type { AppDatabase } from '../../db/client.ts';
import type { Deployer } from './port.ts';
import { NinjaOneDeployer } from './ninjaone.ts';
import { TacticalDeployer } from './tactical.ts';

export function configuredDeployer(config: Pick<Config, 'deployer'>, db: AppDatabase, now: () => Date): Deployer | undefined {
  const chosen = config.deployer;
  if (chosen.kind === 'simulated') return undefined;
  if (chosen.kind === 'ninjaone') {
    const { url, clientId, clientSecret, requestsPerSecond, installScriptId } = chosen;
    return new NinjaOneDeployer({ client: { url, clientId, clientSecret, requestsPerSecond }, installScriptId, db, now });
  }
  return new TacticalDeployer({ client: { url: chosen.url, apiKey: chosen.apiKey, requestsPerSecond: chosen.requestsPerSecond }, db, now });
}
