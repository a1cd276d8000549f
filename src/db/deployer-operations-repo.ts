/**
 * The key -> operation mapping a device-manager adapter keeps (deployer_operations). Insert is first-writer-wins
 * (ON CONFLICT DO NOTHING, then read back), so two workers racing on one key both end up with the same row.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type AppDatabase } from './client.ts';

export type OperationPhase = 'preparing' | 'sent' | 'done';

export interface OperationResult {
  state: 'succeeded' | 'failed';
  rebootRequired?: boolean;
  error?: string;
  /** Failed without reaching the device (see the port's OperationStatus.notStarted). */
  notStarted?: boolean;
  /** Refused by the adapter (see the port's OperationStatus.refused). */
  refused?: boolean;
}

export interface StoredOperation {
  key: string;
  backend: string;
  kind: 'install' | 'reboot';
  device: string;
  target: string;
  updates: string[];
  phase: OperationPhase;
  facts: Record<string, unknown>;
  result: OperationResult | null;
  sentAt: Date | null;
  createdAt: Date;
}

const json = (value: unknown) => (typeof value === 'string' ? (JSON.parse(value) as unknown) : value);

function toOperation(r: Record<string, unknown>): StoredOperation {
  return {
    key: String(r.key),
    backend: String(r.backend),
    kind: r.kind as StoredOperation['kind'],
    device: String(r.device),
    target: String(r.target),
    updates: (json(r.updates) as string[] | null) ?? [],
    phase: r.phase as OperationPhase,
    facts: (json(r.facts) as Record<string, unknown> | null) ?? {},
    result: (json(r.result) as OperationResult | null) ?? null,
    sentAt: r.sent_at === null || r.sent_at === undefined ? null : new Date(r.sent_at as string | Date),
    createdAt: new Date(r.created_at as string | Date),
  };
}

export async function findOperation(db: AppDatabase, key: string): Promise<StoredOperation | undefined> {
  const rows = rowsOf<Record<string, unknown>>(await db.execute(sql`select * from deployer_operations where key = ${key}`));
  return rows[0] ? toOperation(rows[0]) : undefined;
}

export interface NewOperation {
  key: string;
  backend: string;
  kind: 'install' | 'reboot';
  device: string;
  target: string;
  updates?: string[];
  phase: OperationPhase;
  facts?: Record<string, unknown>;
  sentAt?: Date;
  at: Date;
}

/** Records an operation unless the key already has one; answers the row that holds the key either way. */
export async function claimOperation(db: AppDatabase, op: NewOperation): Promise<{ operation: StoredOperation; created: boolean }> {
  const inserted = rowsOf<Record<string, unknown>>(
    await db.execute(sql`insert into deployer_operations (key, backend, kind, device, target, updates, phase, facts, sent_at, created_at, updated_at)
      values (${op.key}, ${op.backend}, ${op.kind}, ${op.device}, ${op.target}, ${JSON.stringify(op.updates ?? [])}::jsonb, ${op.phase},
        ${JSON.stringify(op.facts ?? {})}::jsonb, ${op.sentAt?.toISOString() ?? null}, ${op.at.toISOString()}, ${op.at.toISOString()})
      on conflict (key) do nothing returning *`),
  );
  if (inserted[0]) return { operation: toOperation(inserted[0]), created: true };
  const existing = await findOperation(db, op.key);
  if (!existing) throw new Error(`deployer operation ${op.key} vanished while being claimed`);
  return { operation: existing, created: false };
}

/** Moves an operation forward; facts are merged into what is stored. */
export async function updateOperation(
  db: AppDatabase,
  key: string,
  change: { phase?: OperationPhase; facts?: Record<string, unknown>; result?: OperationResult; sentAt?: Date; at: Date },
): Promise<void> {
  await db.execute(sql`update deployer_operations set
      phase = coalesce(${change.phase ?? null}, phase),
      facts = facts || ${JSON.stringify(change.facts ?? {})}::jsonb,
      result = coalesce(${change.result ? JSON.stringify(change.result) : null}::jsonb, result),
      sent_at = coalesce(${change.sentAt?.toISOString() ?? null}::timestamptz, sent_at),
      updated_at = ${change.at.toISOString()}
    where key = ${key}`);
}

/**
 * Takes an operation that is `preparing` on to `op.phase` with `op`'s facts, unless another asker already did:
 * compare-and-set on the phase, so of two workers resuming one key only one sends (`created` says which).
 */
export async function claimPreparedOperation(db: AppDatabase, op: NewOperation): Promise<{ operation: StoredOperation; created: boolean }> {
  const taken = rowsOf<Record<string, unknown>>(
    await db.execute(sql`update deployer_operations set phase = ${op.phase}, target = ${op.target},
        facts = facts || ${JSON.stringify(op.facts ?? {})}::jsonb, sent_at = ${op.sentAt?.toISOString() ?? null}::timestamptz, updated_at = ${op.at.toISOString()}
      where key = ${op.key} and phase = 'preparing' returning *`),
  );
  if (taken[0]) return { operation: toOperation(taken[0]), created: true };
  const existing = await findOperation(db, op.key);
  if (!existing) throw new Error(`deployer operation ${op.key} vanished while being claimed`);
  return { operation: existing, created: false };
}
