/**
 * The sandbox page's Tactical RMM panel API (PATCHBAY_SANDBOX_DEPLOYER=tactical): the emulator's agents, whether
 * patchbay would drive each (its effective patch policy), and the requests the emulator answered, newest first.
 * Its own route family so the page can poll it: the emulator's requests do not move the page state's `seq`.
 */
import type http from 'node:http';
import type { RequestHandler } from '../runtime/http.ts';
import { policyProblems } from '../adapters/deployers/tactical-policy.ts';
import type { SandboxTacticalState } from './api-types.ts';
import type { SandboxTactical } from './tactical.ts';

export const TACTICAL_STATE_PATH = '/sandbox/api/tactical';
const REQUEST_LIMIT = 100;

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function tacticalPanelState(tactical: SandboxTactical, limit = REQUEST_LIMIT): SandboxTacticalState {
  const { emulator } = tactical;
  const agents = emulator.agentList().map((agent) => {
    const problems = policyProblems(agent.effectivePolicy);
    return {
      hostname: agent.hostname,
      client: agent.client,
      site: agent.site,
      status: agent.status,
      needsReboot: agent.needsReboot,
      bootTime: new Date(agent.bootTime * 1000).toISOString(),
      policy: { ok: problems.length === 0, problems },
    };
  });
  const requests = emulator.requests
    .slice(-limit)
    .reverse()
    .map((r) => ({ at: r.at, method: r.method, path: r.path, status: r.status }));
  return { agents, requests, total: emulator.requests.length };
}

/** Adds the panel's route to the page's handlers (routes.ts guards them all with the page token). */
export function addTacticalRoutes(handlers: Map<string, RequestHandler>, tactical: SandboxTactical | undefined): void {
  handlers.set(TACTICAL_STATE_PATH, (req, res) => {
    if (req.method !== 'GET') return sendJson(res, 405, { ok: false, error: 'GET only' });
    if (!tactical) return sendJson(res, 404, { ok: false, error: 'the sandbox runs on the simulated fleet (PATCHBAY_SANDBOX_DEPLOYER=tactical shows Tactical RMM)' });
    sendJson(res, 200, tacticalPanelState(tactical));
  });
}
