/** What every page-API route shares: reading a bounded JSON body against a schema, and answering in JSON. */
import type http from 'node:http';
import type { z } from 'zod';
import type { Logger } from '../../log.ts';
import type { RequestHandler } from '../../runtime/http.ts';
import type { SandboxAnswer } from '../api-types.ts';

const MAX_BODY = 256 * 1024;

/** A request the page should not have sent: answered 400 with the message, not logged. */
export class BadRequest extends Error {}

async function readJson<T>(req: http.IncomingMessage, schema: z.ZodType<T>): Promise<T> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new BadRequest('request too large');
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadRequest('the body is not JSON');
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new BadRequest(parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return parsed.data;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** A POST route whose body is checked against `schema` before `act` sees it; `act`'s answer goes back as JSON. */
export function postRoute<T>(log: Logger, schema: z.ZodType<T>, act: (input: T) => Promise<SandboxAnswer>): RequestHandler {
  return async (req, res) => {
    if (req.method !== 'POST') return sendJson(res, 405, { ok: false, error: 'POST only' });
    try {
      const answer = await act(await readJson(req, schema));
      sendJson(res, answer.ok ? 200 : 422, answer);
    } catch (error) {
      if (error instanceof BadRequest) return sendJson(res, 400, { ok: false, error: error.message });
      // The page shows this to the person who clicked; the log keeps the detail.
      log.warn({ err: error }, 'sandbox: a click could not be delivered');
      sendJson(res, 422, { ok: false, error: error instanceof Error ? error.message : String(error) });
    }
  };
}
