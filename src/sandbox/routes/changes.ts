/**
 * Tells the page something changed (server-sent events), by polling the emulators' call logs: cheap, and it needs
 * no hooks inside the emulators.
 */
import type http from 'node:http';
import type { Sandbox } from '../sandbox-types.ts';

export interface ChangeFeed {
  /** Grows by one at each change the page should redraw for. */
  seq(): number;
  /** Streams changes to `res` until the page goes away. */
  subscribe(req: http.IncomingMessage, res: http.ServerResponse): void;
  close(): void;
}

/** `localSignature` covers what the routes keep themselves (closed modals, slash-command answers). */
export function startChangeFeed(sandbox: Sandbox, localSignature: () => string): ChangeFeed {
  const { slack, connector, clock } = sandbox;
  let seq = 0;
  let signature = '';
  const streams = new Set<http.ServerResponse>();
  const bump = () => {
    seq += 1;
    for (const res of streams) res.write(`event: change\ndata: ${JSON.stringify({ seq })}\n\n`);
  };
  const poll = setInterval(() => {
    const next = `${slack.calls().length}:${slack.responses().length}:${connector.calls().length}:${connector.activities().length}:${localSignature()}`;
    if (next !== signature) {
      signature = next;
      bump();
    }
  }, 250);
  const heartbeat = setInterval(() => {
    for (const res of streams) res.write(': keep-alive\n\n');
  }, 15_000);
  const unClock = clock.onChange(bump);
  return {
    seq: () => seq,
    subscribe(req, res) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(`event: change\ndata: ${JSON.stringify({ seq })}\n\n`);
      streams.add(res);
      req.on('close', () => streams.delete(res));
    },
    close() {
      clearInterval(poll);
      clearInterval(heartbeat);
      unClock();
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}
