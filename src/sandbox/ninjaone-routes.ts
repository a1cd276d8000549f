/**
 * The sandbox page's NinjaOne panel API (PATCHBAY_SANDBOX_DEPLOYER=ninjaone): the emulator's devices (online, last
 * boot, whether maintenance holds NinjaOne's own patching back) and the requests it answered, newest first. Its own
 * route family so the page can poll it: the emulator's requests do not move the page state's `seq`.
 */
import type { RequestHandler } from '../runtime/http.ts';
import type { SandboxNinjaOneState } from './api-types.ts';
import type { SandboxNinjaOne } from './ninjaone.ts';
import { sendJson } from './routes/http.ts';

export const NINJAONE_STATE_PATH = '/sandbox/api/ninjaone';
const REQUEST_LIMIT = 100;

export function ninjaOnePanelState(ninjaone: SandboxNinjaOne, limit = REQUEST_LIMIT): SandboxNinjaOneState {
  const { emulator } = ninjaone;
  const devices = emulator.deviceList().map((d) => ({
    systemName: d.systemName,
    organization: d.organization,
    location: d.location,
    online: d.online,
    needsReboot: d.needsReboot,
    lastBootTime: new Date(d.lastBootTime * 1000).toISOString(),
    maintenance: d.inMaintenance,
  }));
  const requests = emulator.requests
    .slice(-limit)
    .reverse()
    .map((r) => ({ at: r.at, method: r.method, path: r.path, status: r.status }));
  return { devices, requests, total: emulator.requests.length };
}

/** Adds the panel's route to the page's handlers (routes.ts guards them all with the page token). */
export function addNinjaOneRoutes(handlers: Map<string, RequestHandler>, ninjaone: SandboxNinjaOne | undefined): void {
  handlers.set(NINJAONE_STATE_PATH, (req, res) => {
    if (req.method !== 'GET') return sendJson(res, 405, { ok: false, error: 'GET only' });
    if (!ninjaone) return sendJson(res, 404, { ok: false, error: 'the sandbox does not run on NinjaOne (PATCHBAY_SANDBOX_DEPLOYER=ninjaone shows it)' });
    sendJson(res, 200, ninjaOnePanelState(ninjaone));
  });
}
