/**
 * drizzle hands postgres.js every query it did not name as unprepared, and postgres.js sends an unprepared query
 * that has parameters in two round trips (Parse and Describe, wait for the parameter types, then Bind and Execute)
 * and sends nothing else on that connection until it completes: no pipelining, and the server parses and plans each
 * statement every time. A click's decision is a dozen such statements, so under a burst each decision waited twice
 * per statement on an event loop busy with the burst itself.
 *
 * Here the pool's small statements are prepared instead: postgres.js keeps them by text per connection (Describe
 * once, then Bind and Execute in one round trip, pipelined), and the server keeps their plans. Large statements
 * (bulk inserts whose text changes with the row count) stay unprepared: each would be a one-off kept on the server
 * for the connection's life. Schema changes happen in migrations, before the pool serves (and on their own
 * connection), so a kept statement does not meet a table changed under it.
 */
import type { Sql } from 'postgres';

/** Parameters and text length under which a statement is likely one of the repeated ones, and cheap to keep. */
const MAX_PARAMETERS = 100;
const MAX_TEXT = 4000;

type UnsafeOptions = { prepare?: boolean } & Record<string, unknown>;

function worthPreparing(query: string, parameters: unknown): boolean {
  const count = Array.isArray(parameters) ? parameters.length : 0;
  return count > 0 && count <= MAX_PARAMETERS && query.length <= MAX_TEXT;
}

/** The same client (and the transactions and savepoints it opens) with its small statements prepared. */
export function preparingSmallStatements<S extends Sql<Record<string, unknown>>>(client: S): S {
  return new Proxy(client, {
    get(target, property, receiver) {
      switch (property) {
        case 'unsafe':
          return (query: string, parameters?: unknown[], options?: UnsafeOptions) =>
            target.unsafe(query, parameters as never, (worthPreparing(query, parameters) ? { ...options, prepare: true } : options) as never);
        case 'begin':
        case 'savepoint':
          return (...args: unknown[]) => {
            const work = args.pop() as (inner: S) => unknown;
            return ((target as unknown as Record<string, (...a: unknown[]) => unknown>)[property]!)(...args, (inner: S) => work(preparingSmallStatements(inner)));
          };
        default:
          return Reflect.get(target, property, receiver) as unknown;
      }
    },
  });
}
