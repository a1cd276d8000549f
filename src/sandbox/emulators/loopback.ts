/**
 * An emulated HTTP API served on loopback for tests, benches and the sandbox: each request's body read whole and
 * answered by the emulator; an answer of 'timeout' holds the socket open (as a server that never replies) until
 * close; `latencyMs` delays every reply, as a server across the internet would.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackServer {
  url: string;
  close(): Promise<void>;
}

/**
 * `answer` decides the reply when the request arrives and returns what writes it (called after the latency), so
 * each emulator keeps its own rendering of status, headers and body.
 */
export async function serveOnLoopback(
  answer: (method: string, url: string, headers: IncomingHttpHeaders, body: string) => ((res: ServerResponse) => void) | 'timeout',
  port = 0,
  latencyMs = 0,
): Promise<LoopbackServer> {
  const hanging = new Set<ServerResponse>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const reply = answer(req.method ?? 'GET', req.url ?? '/', req.headers, Buffer.concat(chunks).toString('utf8'));
      if (reply === 'timeout') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      if (latencyMs > 0) setTimeout(() => reply(res), latencyMs);
      else reply(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}/`,
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
